"""The baselines of the worker benchmark: a bare Faust agent iterating the input topic.

One ``faust.App``, one agent over every message of ``ticket-events`` with raw bytes (no
parsing, no table), on the same broker as the worker. The baseline of the 60% target
iterates message by message. Given a batch size, it takes batches instead, as a worker's
ticket stage does (``stream.take_events``): what Faust alone costs a worker per event
(without the worker's fetch settings and its per-message seek-fence check,
streams/workarounds/gaps.py and streams/workarounds/tansu.py, which the split counts in the
rest).
It counts until it has seen ``COUNT`` messages, writes its rate (events/s from its first
step to its last) and its CPU time per event meanwhile (every thread of the process) to
``DIR/<app id>.rate``, and stops itself.

python -m tests.bench_faust kafka://HOST:PORT COUNT DIR [BATCH_SIZE BATCH_SECONDS]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust

from streams.commands.broker import EmbeddedBroker
from streams.core.topics import INPUT


@dataclass(frozen=True)
class Batches:
    size: int
    seconds: float


@dataclass(frozen=True)
class BareRun:
    rate: float  # events/s from the first step to the last
    cpu_per_event: float  # CPU seconds, every thread of the process, over the same span


def app_id(batches: Batches | None) -> str:
    """One consumer group per kind of agent: each reads the topic from the start."""
    return "bench-bare-faust" if batches is None else "bench-bare-faust-batched"


@dataclass
class Tally:
    """Counts messages; once ``count`` are in, writes the figures and stops the process."""

    count: int
    path: Path
    seen: int = 0
    before: int = 0  # the first step's messages, taken in before the clocks start
    started: tuple[float, float] = (0.0, 0.0)  # wall and CPU clocks at the first step

    def add(self, taken: int) -> None:
        if self.seen == 0:
            self.before, self.started = taken, (time.perf_counter(), time.process_time())
        self.seen += taken
        if self.seen >= self.count and self.seen - taken < self.count:
            events = self.seen - self.before
            wall = time.perf_counter() - self.started[0]
            cpu = time.process_time() - self.started[1]
            self.path.write_text(f"{events / wall} {cpu / events}\n")
            os.kill(os.getpid(), signal.SIGTERM)


def bare_app(name: str, broker_url: str, datadir: Path) -> faust.App:
    """A Faust app with nothing of flowgauge's, its state in memory, quick to rebalance."""
    return faust.App(
        name,
        broker=broker_url,
        store="memory://",
        datadir=str(datadir),
        topic_replication_factor=1,
        broker_rebalance_timeout=3,
        broker_session_timeout=4.5,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )


def build_app(broker_url: str, count: int, workdir: Path, batches: Batches | None) -> faust.App:
    name = app_id(batches)
    app = bare_app(name, broker_url, workdir / name)
    topic = app.topic(
        INPUT, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    tally = Tally(count, workdir / f"{name}.rate")
    if batches is None:

        @app.agent(topic)
        async def each_event(stream: Any) -> AsyncIterator[None]:
            async for _ in stream:
                tally.add(1)
                yield None

    else:

        @app.agent(topic)
        async def batched(stream: Any) -> AsyncIterator[None]:
            async for events in stream.take_events(batches.size, within=batches.seconds):
                tally.add(len(events))
                yield None

    return app


def bare_faust_run(
    broker: EmbeddedBroker, count: int, workdir: Path, batches: Batches | None = None
) -> BareRun:
    """Run the bare agent in its own process (as a worker runs) and read its figures."""
    if batches is not None and count <= batches.size:
        raise ValueError("the clocks start after the first batch: give it more events")
    name = app_id(batches)
    log = workdir / f"{name}.log"
    command = [sys.executable, "-m", "tests.bench_faust", broker.url, str(count), str(workdir)]
    if batches is not None:
        command += [str(batches.size), str(batches.seconds)]
    with log.open("wb") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False)
    figures = workdir / f"{name}.rate"
    if not figures.exists():
        raise RuntimeError(f"the bare Faust agent wrote no figures; see {log}")
    rate, cpu_per_event = figures.read_text().split()
    return BareRun(float(rate), float(cpu_per_event))


def main() -> None:
    broker_url, count, workdir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    batches = Batches(int(sys.argv[4]), float(sys.argv[5])) if len(sys.argv) > 5 else None
    app = build_app(broker_url, count, workdir, batches)
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
