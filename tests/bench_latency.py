"""Latency through one worker at a steady input rate (default 500 events/s).

A fresh embedded broker and one worker (default step 5 min, grace 10 min). The events are
a simulated team ten times the default one (2,100 tickets a day, 13 scopes), sent at a
steady rate from this process. Event time therefore runs about 2,700x faster than the
wall clock: a boundary every 0.1 s, so snapshots flow all the time. Measured together:

- produce to metrics: the time from sending event i to the first ``/metrics`` poll (every
  100 ms) whose processed + duplicate count shows it. Counts do not say which events they
  hold, so two readings are given: "in order" takes the count as the first n events sent
  (each partition is processed in order, partitions may pass each other), "certain" only
  counts event i once the total leaves no other way to reach it (count minus everything
  sent to the other partitions still covers its place in its own partition): an upper
  bound;
- watermark to snapshot: for each boundary, the moment the events sent so far let the
  core's own ``Watermarks`` rule emit it (every partition has passed the boundary plus
  grace), to the arrival of each scope's record for it on ``backlog.flow`` (read with a
  10 ms fetch wait). Boundaries are only counted once that moment lies in the measured
  period.

The first ``warmup`` seconds of sending are left out of both.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.commands.broker import EmbeddedBroker
from streams.commands.replay import message_key
from streams.commands.simulate import encode, generate_events
from streams.core.timeline import US_PER_SECOND, to_us
from streams.core.topics import FLOW, INPUT
from streams.core.watermark import Watermarks
from tests.bench_support import busy_team, cpu_seconds, events_taken, percentiles
from tests.cluster import Worker, start_worker

STEP_US = 300 * US_PER_SECOND
GRACE_US = 600 * US_PER_SECOND
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Sent:
    at: float  # loop time of the send
    partition: int
    occurred_us: int


@dataclass
class Observed:
    sent: list[Sent] = field(default_factory=list)
    polls: list[tuple[float, int]] = field(default_factory=list)  # (loop time, events taken)
    snapshots: list[tuple[float, int]] = field(default_factory=list)  # (loop time, boundary)


@dataclass(frozen=True)
class Latencies:
    rate: float  # events/s sent
    worker_cores: float  # CPU the worker used over the run, in cores
    metrics_in_order: tuple[float, float]  # p50, p99 in seconds
    metrics_certain: tuple[float, float]
    snapshot: tuple[float, float]
    events: int
    snapshots: int
    boundaries: int


def busy_team_events(count: int) -> list[bytes]:
    return [encode(event) for event in itertools.islice(generate_events(busy_team()), count)]


def bench_latency(rate: float = 500.0, seconds: float = 60.0, warmup: float = 5.0) -> Latencies:
    lines = busy_team_events(int(rate * seconds))
    workdir = Path(tempfile.mkdtemp(prefix="flowgauge-latency-"))
    with EmbeddedBroker() as broker:
        worker = start_worker(broker, workdir, "latency", FLOWGAUGE_APP_ID="benchlatency")
        try:
            cpu, started = cpu_seconds(worker.process.pid), time.perf_counter()
            observed = asyncio.run(_observe(broker, worker, lines, rate))
            cores = (cpu_seconds(worker.process.pid) - cpu) / (time.perf_counter() - started)
        finally:
            worker.stop()
    return summarise(observed, observed.sent[0].at + warmup, rate, cores)


async def _observe(
    broker: EmbeddedBroker, worker: Worker, lines: list[bytes], rate: float
) -> Observed:
    observed = Observed()
    bootstrap = broker.url.removeprefix("kafka://")
    done = asyncio.Event()
    tail = asyncio.create_task(_tail_flow(bootstrap, observed, done))
    poll = asyncio.create_task(_poll_metrics(worker.metrics_url, observed, len(lines), done))
    await _send_steadily(bootstrap, lines, rate, observed)
    await asyncio.wait([poll], timeout=60)  # until every event is counted
    await asyncio.sleep(3)  # the last snapshots of the boundaries passed
    done.set()
    await asyncio.gather(poll, tail)
    return observed


async def _send_steadily(
    bootstrap: str, lines: list[bytes], rate: float, observed: Observed
) -> None:
    loop = asyncio.get_running_loop()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        pending = []
        origin = loop.time()
        for index, line in enumerate(lines):
            if (wait := origin + index / rate - loop.time()) > 0:
                await asyncio.sleep(wait)
            at = loop.time()
            pending.append((at, line, await producer.send(INPUT, line, key=message_key(line))))
        for at, line, future in pending:
            metadata = await future
            occurred = to_us(datetime.fromisoformat(json.loads(line)["occurred_at"]))
            observed.sent.append(Sent(at, metadata.partition, occurred))
    finally:
        await producer.stop()


async def _poll_metrics(url: str, observed: Observed, total: int, done: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        while not done.is_set():
            async with session.get(url) as response:
                taken = events_taken(await response.text())
            observed.polls.append((loop.time(), taken))
            if taken >= total:
                return
            await asyncio.sleep(POLL_SECONDS)


async def _tail_flow(bootstrap: str, observed: Observed, done: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    consumer = AIOKafkaConsumer(
        FLOW, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
        fetch_max_wait_ms=10, metadata_max_age_ms=1000,
    )  # fmt: skip
    await consumer.start()
    try:
        while not done.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            now = loop.time()
            for records in batch.values():
                for record in records:
                    as_of = to_us(datetime.fromisoformat(json.loads(record.value)["as_of"]))
                    observed.snapshots.append((now, as_of // STEP_US))
    finally:
        await consumer.stop()


def summarise(observed: Observed, start: float, rate: float, worker_cores: float) -> Latencies:
    in_order = list(_in_order(observed.sent, observed.polls, start))
    certain = list(_certain(observed.sent, observed.polls, start))
    passed = _boundaries_passed(observed.sent)
    waits = [
        at - passed[boundary]
        for at, boundary in observed.snapshots
        if boundary in passed and passed[boundary] >= start
    ]
    counted = {boundary for _, boundary in observed.snapshots if passed.get(boundary, 0) >= start}
    return Latencies(
        rate,
        worker_cores,
        percentiles(in_order),
        percentiles(certain),
        percentiles(waits),
        len(in_order),
        len(waits),
        len(counted),
    )


def _in_order(sent: list[Sent], polls: list[tuple[float, int]], start: float) -> Iterator[float]:
    """Event i is counted at the first poll showing more than i events."""
    counts = [taken for _, taken in polls]
    for index, event in enumerate(sent):
        poll = bisect_right(counts, index)
        if event.at >= start and poll < len(polls):
            yield polls[poll][0] - event.at


def _certain(sent: list[Sent], polls: list[tuple[float, int]], start: float) -> Iterator[float]:
    """Event i is surely counted once the count minus all sent elsewhere covers its place."""
    partitions = sorted({event.partition for event in sent})
    times = {p: [event.at for event in sent if event.partition == p] for p in partitions}
    position = dict.fromkeys(partitions, 0)
    places = []
    for event in sent:
        places.append(position[event.partition])
        position[event.partition] += 1
    sure: dict[int, list[int]] = {p: [0] for p in partitions}  # per poll: surely counted
    for at, taken in polls:
        sent_by = {p: bisect_right(times[p], at) for p in partitions}
        everywhere = sum(sent_by.values())
        for p in partitions:
            bound = min(sent_by[p], taken - (everywhere - sent_by[p]))
            sure[p].append(max(sure[p][-1], bound))  # once counted, always counted
    sure = {p: values[1:] for p, values in sure.items()}
    poll_times = [at for at, _ in polls]
    for event, place in zip(sent, places, strict=True):
        counted = _first_above(sure[event.partition], place)
        if event.at >= start and counted is not None:
            yield poll_times[counted] - event.at


def _first_above(values: list[int], place: int) -> int | None:
    """Index of the first value above ``place`` in a list that only grows."""
    index = bisect_right(values, place)
    return index if index < len(values) else None


def _boundaries_passed(sent: list[Sent]) -> dict[int, float]:
    """For each boundary: the send after which the watermark rule lets it be emitted."""
    watermarks = Watermarks()
    passed: dict[int, float] = {}
    emitted: int | None = None
    for event in sent:
        watermarks.observe(event.partition, event.occurred_us)
        limit = watermarks.emit_limit(STEP_US, GRACE_US)
        if limit is None:
            continue
        first = limit if emitted is None else emitted + 1
        for boundary in range(first, limit + 1):
            passed[boundary] = event.at
        emitted = limit if emitted is None else max(emitted, limit)
    return passed
