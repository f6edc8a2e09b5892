"""Real parts for integration tests: the embedded broker, worker processes, topic readers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer

from streams.commands.broker import EmbeddedBroker, free_port
from streams.kafka import Kafka

# For the worker tests that neither read nor compare the planning topics (backlog.forecast,
# backlog.pull): planning re-runs every whole hour of a catch-up, which is most of what a
# replayed gap in event time costs a worker. test_pipeline (its kill -9 test included) and
# test_prometheus_e2e keep it on and check it.
NO_PLANNING = {"FLOWGAUGE_FORECAST": '{"enabled": false}', "FLOWGAUGE_PULL": '{"enabled": false}'}
WORKER_ENV = {
    "FLOWGAUGE_IDLE_TIMEOUT": "2s",
    "FLOWGAUGE_REBALANCE_TIMEOUT": "3",
    "FLOWGAUGE_LOG_LEVEL": "info",
}


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    web_port: int
    log: Path

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/metrics"

    def metrics(self, timeout: float = 5.0, restarting: float = 90.0) -> str:
        """The worker's /metrics; waits while it restarts itself (streams/workarounds/gaps.py)."""
        deadline = time.monotonic() + restarting
        while True:
            try:
                with urllib.request.urlopen(self.metrics_url, timeout=timeout) as response:
                    text: str = response.read().decode()
                    return text
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        end_process(self.process, sig)


def end_process(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait: float = 20.0
) -> None:
    """Signal a process that still runs, and kill it if it has not ended within ``wait``."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def start_worker(broker: EmbeddedBroker, workdir: Path, name: str, **env: str) -> Worker:
    worker = spawn_worker(broker, workdir, name, **env)
    _wait_ready(worker)
    return worker


def spawn_worker(broker: EmbeddedBroker, workdir: Path, name: str, **env: str) -> Worker:
    """A worker process, not waited for."""
    port = free_port()
    log = workdir / f"{name}.log"
    environment = {
        **os.environ,
        **WORKER_ENV,
        "FLOWGAUGE_BROKER": broker.url,
        "FLOWGAUGE_WEB_PORT": str(port),
        "FLOWGAUGE_DATA_DIR": str(workdir / name),
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.commands.cli", "worker"],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Worker(process, port, log)


def _wait_ready(worker: Worker, timeout: float = 60) -> None:
    """Until the worker has joined the group and recovered its tables.

    Waiting for this before starting the next worker matters on Tansu: two members
    joining at the same moment may each be made leader of a generation of their own.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited: {_tail(worker.log)}")
        if b"Worker ready" in worker.log.read_bytes():
            worker.metrics()
            return
        time.sleep(0.1)
    raise TimeoutError(f"worker not ready in {timeout}s: {_tail(worker.log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def stacks(running: list[Worker]) -> str:
    """Every task's stack in each worker (mode's Worker logs them on SIGUSR1), for a stall."""
    marks = {}
    for worker in running:
        marks[worker.log] = worker.log.stat().st_size
        worker.process.send_signal(signal.SIGUSR1)
    time.sleep(3)
    return "\n".join(
        f"--- {log.name} after SIGUSR1:\n{log.read_bytes()[mark:].decode(errors='replace')}"
        for log, mark in marks.items()
    )


@contextmanager
def workers(
    broker: EmbeddedBroker, workdir: Path, count: int, **env: str
) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for index in range(count):
            started.append(start_worker(broker, workdir, f"worker{index}", **env))
        yield started
    finally:
        for worker in started:
            worker.stop()


def produce(
    broker: EmbeddedBroker,
    topic: str,
    messages: list[tuple[bytes | None, bytes]],
    partition: int | None = None,
) -> None:
    """Send in order; to ``partition`` if given, else where the key hashes."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.url.removeprefix("kafka://"))
        await producer.start()
        try:
            for key, value in messages:
                await producer.send(topic, value, key=key, partition=partition)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(send())


def read_topic(
    broker: EmbeddedBroker,
    topic: str,
    until: int,
    timeout: float = 120.0,
    quiet: float = 2.0,
    kafka: Kafka | None = None,
) -> list[tuple[bytes | None, bytes]]:
    """Every message of a topic, reading until ``until`` distinct ones have come and none more
    for ``quiet`` s. Distinct, because after a crash a record may come twice: counting the
    copies would stop the read before the last records arrive. ``kafka``: how to connect,
    if not in plaintext to the broker's address."""

    async def read() -> list[tuple[bytes | None, bytes]]:
        reader = kafka or Kafka((broker.url.removeprefix("kafka://"),))
        consumer = reader.consumer(topic, auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        got: list[tuple[bytes | None, bytes]] = []
        distinct: set[tuple[bytes | None, bytes]] = set()
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        try:
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=300)
                for records in batch.values():
                    received = [(record.key, record.value) for record in records]
                    got += received
                    distinct.update(received)
                    last = time.monotonic()
                if len(distinct) >= until and time.monotonic() - last >= quiet:
                    break
        finally:
            await consumer.stop()
        return got

    return asyncio.run(read())


def latest_by_key(messages: list[tuple[bytes | None, bytes]]) -> dict[tuple[str, str], dict]:
    """``backlog.flow`` as a compacted topic would keep it: one record per (as_of, scope)."""
    rows: dict[tuple[str, str], dict] = {}
    for _, value in messages:
        record = json.loads(value)
        rows[(record["as_of"], record["scope"])] = record
    return rows
