"""How long a worker takes to recover its tables, for N open tickets.

For each N, on an embedded broker of its own: a first worker takes in N ``created`` events
of distinct tickets (nothing else, so all N stay open), spread over the last three days
and over queues, priorities and channels as in the fixtures. Its catch-up is timed from
the first event sent to the moment its ``/metrics`` says it has taken all N in and the
``all`` scope's ``flowgauge_open_tickets`` (the latest emitted boundary) shows N: its
tables are then written. It is stopped (SIGTERM), and the changelog topics it leaves are
read once by a raw consumer, for their records and bytes (Tansu keeps every version: no
compaction) and for how fast a bare read of them goes.

A second worker then starts with the same app id and a fresh data dir: its tables are in
memory, so it rebuilds them from the changelogs. This bench starts its process itself (as
``tests.cluster.start_worker`` does, without the wait) and times, from just before
``Popen``: the first HTTP answer of any kind (the web server up), the first ``GET /readyz``
answering 200 (polled every 0.1 s; 503 while it recovers), and, by the timestamps of its
own log lines (milliseconds, against the wall clock read just before ``Popen``): joining the
group, reading the changelogs ("Restoring state from changelog topics" to "Done reading
from changelog topics") and its first "Worker ready" (Faust's, once recovery is done and
the streams resume). Tables keep recovered values encoded until first read
(``streams.shell.tables``), so the first ``/metrics`` after ready, which reads every owned
scope, is timed too; the open count it shows says whether the recovered tables are right.
The second worker's peak RSS is its VmHWM from /proc after that ``/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.commands.broker import EmbeddedBroker
from streams.commands.replay import message_key
from streams.core.topics import INPUT
from tests.bench_support import events_taken
from tests.cluster import Worker, produce, spawn_worker, start_worker

APP_ID = "recovery"
QUEUES = ("billing", "sales", "tech")
PRIORITIES = ("P0", "P1", "P2", "P3")
CHANNELS = ("chat", "email", "phone")
SPREAD = timedelta(days=3)  # the events' dates: from now - SPREAD to now - NEWEST
NEWEST = timedelta(hours=1)
CATCH_UP_LIMIT = 1800.0  # seconds the first worker gets to take every event in
READY_LIMIT = 1800.0  # seconds the second worker gets to recover
POLL = 0.1

_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
_OPEN = re.compile(r"^flowgauge_open_tickets\{([^}]*)\} (\S+)$", re.M)


@dataclass(frozen=True)
class RecoveryRun:
    """One recovery: the state a first worker built, and a second worker rebuilding it."""

    open_tickets: int  # the ``all`` scope's open count the first worker reached
    events: int  # events sent
    produce_seconds: float  # sending them (the first worker reads meanwhile)
    catch_up_seconds: float  # first event sent to all taken in and open == N on /metrics
    first_peak_rss_mib: float  # the first worker's VmHWM when caught up
    changelog_records: int  # in every changelog topic of the app, when the second starts
    changelog_bytes: int  # their keys and values
    changelog_read_seconds: float  # a raw aiokafka consumer reading them all once
    web_seconds: float  # second worker: Popen to its first HTTP answer of any kind
    joined_seconds: float  # Popen to "Joined group" in its log
    restore_seconds: float  # its log: reading the changelogs, start to done
    ready_seconds: float  # Popen to ``GET /readyz`` answering 200
    worker_ready_seconds: float  # Popen to its first "Worker ready" log line
    first_metrics_seconds: float  # its first /metrics after ready (decodes what it reads)
    peak_rss_mib: float  # the second worker's VmHWM after ready and one /metrics
    recovered_open: int  # the ``all`` scope's open count on that /metrics
    restarts: int  # "Worker ready" lines in the second worker's log by then, minus one


def bench_recovery(counts: tuple[int, ...], workdir: Path | None = None) -> list[RecoveryRun]:
    """One run per count of open tickets, each on a fresh embedded broker."""
    base = workdir or Path(tempfile.mkdtemp(prefix="flowgauge-recovery-"))
    return [_one(count, base / f"n{count}") for count in counts]


def open_ticket_events(count: int, now: datetime) -> list[bytes]:
    """``count`` ``created`` events of distinct tickets, in time order over the last days."""
    rng = random.Random(count)
    first = now - SPREAD
    span = (SPREAD - NEWEST).total_seconds()
    lines = []
    for number in range(count):
        occurred = first + timedelta(seconds=span * number / max(count - 1, 1))
        event = {
            "schema_version": 1,
            "event_id": f"E{number:07d}",
            "type": "created",
            "ticket_id": f"T{number:07d}",
            "occurred_at": occurred.isoformat(timespec="seconds"),
            "queue": rng.choice(QUEUES),
            "priority": rng.choice(PRIORITIES),
            "channel": rng.choice(CHANNELS),
            "requester_id": f"R{rng.randrange(max(count // 3, 1)):07d}",
        }
        lines.append(json.dumps(event).encode())
    return lines


def _one(count: int, workdir: Path) -> RecoveryRun:
    workdir.mkdir(parents=True, exist_ok=True)
    lines = open_ticket_events(count, datetime.now(UTC))
    keyed = [(message_key(line), line) for line in lines]
    with EmbeddedBroker() as broker:
        first = start_worker(broker, workdir, "first", FLOWGAUGE_APP_ID=APP_ID)
        try:
            started = time.perf_counter()
            produce(broker, INPUT, keyed)
            produce_seconds = time.perf_counter() - started
            reached = _catch_up(first, count, started + CATCH_UP_LIMIT)
            catch_up = time.perf_counter() - started
            first_rss = peak_rss_mib(first.process.pid)
        finally:
            first.stop()
        records, size, read_seconds = changelog_size(broker, APP_ID)
        second = _spawn(broker, workdir, "second", FLOWGAUGE_APP_ID=APP_ID)
        try:
            web, ready = _time_recovery(second.worker, second.started)
            asked = time.perf_counter()
            recovered = open_all(second.worker.metrics(timeout=300)) or 0
            first_metrics = time.perf_counter() - asked
            rss = peak_rss_mib(second.worker.process.pid)
            log = second.worker.log.read_text(errors="replace")
        finally:
            second.worker.stop()
    joined = _logged(log, "Joined group") - second.wall
    restore = _logged(log, "Done reading from changelog") - _logged(log, "Restoring state from")
    logged = _logged(log, "Worker ready") - second.wall
    restarts = max(log.count("Worker ready") - 1, 0)
    return RecoveryRun(
        reached, len(lines), produce_seconds, catch_up, first_rss, records, size, read_seconds,
        web, joined, restore, ready, logged, first_metrics, rss, recovered, restarts,
    )  # fmt: skip


def _logged(log: str, text: str) -> float:
    """The wall-clock time (Unix) of the first log line holding ``text``, from its stamp."""
    for line in log.splitlines():
        if text in line and (stamp := _STAMP.match(line)):
            return datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local
    raise ValueError(f"no log line with {text!r}")


def _catch_up(worker: Worker, count: int, deadline: float) -> int:
    """Until the worker has taken ``count`` events in and shows ``count`` open; the count
    it shows when that or the deadline comes."""
    shown = 0
    while time.perf_counter() < deadline:
        text = worker.metrics(timeout=60)  # a busy worker answers late
        shown = open_all(text) or 0
        if events_taken(text) >= count and shown >= count:
            return shown
        time.sleep(0.5)
    print(f"  note: not caught up in {CATCH_UP_LIMIT:.0f}s: {shown:,} of {count:,} open shown")
    return shown


def open_all(metrics_text: str) -> int | None:
    """The ``all`` scope's open tickets (every scope label empty); None before a snapshot."""
    for labels, value in _OPEN.findall(metrics_text):
        if all(part.endswith('=""') for part in labels.split(",")):
            return int(float(value))
    return None


def peak_rss_mib(pid: int) -> float:
    """VmHWM of a live process, in MiB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def changelog_size(broker: EmbeddedBroker, app_id: str) -> tuple[int, int, float]:
    """Records and key+value bytes in the app's changelog topics, and the seconds a raw
    consumer took to read them all (a floor for any recovery of the same topics)."""

    async def read() -> tuple[int, int, float]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=broker.url.removeprefix("kafka://"),
            auto_offset_reset="earliest", group_id=None,
            max_partition_fetch_bytes=64 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024,
        )  # fmt: skip
        await consumer.start()
        try:
            topics = sorted(
                topic
                for topic in await consumer.topics()
                if topic.startswith(f"{app_id}-") and topic.endswith("-changelog")
            )
            partitions = [
                TopicPartition(topic, partition)
                for topic in topics
                for partition in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            records = size = 0
            started = time.perf_counter()
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for received in batch.values():
                    records += len(received)
                    size += sum(len(r.key or b"") + len(r.value or b"") for r in received)
            return records, size, time.perf_counter() - started
        finally:
            await consumer.stop()

    return asyncio.run(read())


@dataclass(frozen=True)
class _Spawned:
    worker: Worker
    started: float  # perf_counter just before Popen
    wall: float  # time.time() then, for the log's timestamps


def _spawn(broker: EmbeddedBroker, workdir: Path, name: str, **env: str) -> _Spawned:
    """A worker process as ``tests.cluster.start_worker`` starts it, without waiting."""
    started, wall = time.perf_counter(), time.time()
    return _Spawned(spawn_worker(broker, workdir, name, **env), started, wall)


def _time_recovery(worker: Worker, started: float) -> tuple[float, float]:
    """Seconds from ``started`` to the first HTTP answer and to ``/readyz`` 200, polling
    every 0.1 s; then waits for "Worker ready" in the log."""
    url = f"http://127.0.0.1:{worker.web_port}/readyz"
    web = ready = None
    deadline = started + READY_LIMIT
    while ready is None or b"Worker ready" not in worker.log.read_bytes():
        now = time.perf_counter()
        if now > deadline:
            raise TimeoutError(f"{worker.log.name} not ready in {READY_LIMIT:.0f}s")
        if worker.process.poll() is not None:
            raise RuntimeError(f"{worker.log.name} exited: {worker.log.read_text()[-3000:]}")
        if ready is None:
            status = _status(url)
            if status is not None:
                web = web if web is not None else time.perf_counter() - started
            if status == 200:
                ready = time.perf_counter() - started
        time.sleep(max(0.0, now + POLL - time.perf_counter()))
    assert web is not None
    return web, ready


def _status(url: str) -> int | None:
    """The HTTP status of a GET, None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None
