"""``make bench``: figures, never assertions. Ratios are measured in one run (machines are shared).

python -m tests.bench [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from streams.aging import ScopeAging
from streams.broker import EmbeddedBroker
from streams.producer import message_key
from streams.report import run
from streams.simulate import Scenario, encode, generate_events
from streams.sla import Clock, SlaPolicy, TargetClock, Targets
from streams.ticket import Kind, Transition
from streams.timeline import US_PER_SECOND
from streams.topics import INPUT
from tests.cluster import Worker, produce, start_worker
from tests.conftest import core_settings

GRACE_US = 600 * 1_000_000


def simulated(days: float) -> list[bytes]:
    return [encode(event) for event in generate_events(Scenario(days=days))]


def bench_report(lines: list[bytes]) -> None:
    for step in (300, 3600):
        started = time.perf_counter()
        emitted, _ = run(lines, core_settings(step), GRACE_US)
        elapsed = time.perf_counter() - started
        print(
            f"report step {step // 60}m: {len(lines)} events, {len(emitted)} rows in {elapsed:.2f}s"
            f" = {len(lines) / elapsed:,.0f} events/s"
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process so far: {peak_mib:.0f} MiB")


def open_tickets(count: int, policy: SlaPolicy) -> ScopeAging:
    """A scope holding ``count`` open tickets, one opened every 3 s, every SLA clock running."""
    aging = ScopeAging("all")
    start = 1_767_225_600 * US_PER_SECOND  # 2026-01-01
    for number in range(count):
        opened = start + number * 3 * US_PER_SECOND
        targets = policy.targets("default", ("P0", "P1", "P2", "P3")[number % 4])
        running = TargetClock(0, True)
        clock = Clock(opened, targets, running, running)
        ticket = f"T{number}"
        aging.add(Transition("all", Kind.INFLOW, opened, ticket, opened, None, clock), policy)
    return aging


def bench_aging(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)) -> None:
    """As-of queries on an aging index of many open tickets, and its memory per ticket.

    Once with the default SLA targets, so each query also applies the SLA state changes
    falling in its step (work that grows with the tickets whose clocks cross then), and
    once with targets no clock reaches, which leaves the query itself.
    """
    never = Targets(10**18, 10**18)
    for size in sizes:
        for label, policy in (
            ("SLA changes included", SlaPolicy()),
            ("query alone", SlaPolicy(by_priority=dict.fromkeys(("P0", "P1", "P2", "P3"), never))),
        ):
            _bench_aging(size, label, policy)


def _bench_aging(size: int, label: str, policy: SlaPolicy) -> None:
    tracemalloc.start()
    aging = open_tickets(size, policy)
    newest = 1_767_225_600 * US_PER_SECOND + size * 3 * US_PER_SECOND
    aging.settle(newest, policy)
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    times = []
    for step in range(1, 101):  # 100 boundaries 5 min apart, nothing new arriving
        started = time.perf_counter()
        snapshot = aging.settle(newest + step * 300 * US_PER_SECOND, policy)
        times.append(time.perf_counter() - started)
    median_ms, max_ms = statistics.median(times) * 1e3, max(times) * 1e3
    print(
        f"aging, {size:>9,} open tickets, {label}: as-of query median {median_ms:.2f} ms,"
        f" max {max_ms:.2f} ms; {memory / size:,.0f} bytes per open ticket"
        f" (index + SLA clocks); last snapshot open={snapshot.open}"
    )


def raw_consumer_rate(broker: EmbeddedBroker, count: int) -> float:
    """A raw aiokafka consumer reading the same topic: the ceiling on this machine."""

    async def read() -> float:
        consumer = AIOKafkaConsumer(
            INPUT, bootstrap_servers=broker.url.removeprefix("kafka://"),
            auto_offset_reset="earliest", group_id=None,
        )  # fmt: skip
        await consumer.start()
        seen, started = 0, time.perf_counter()
        try:
            while seen < count:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                seen += sum(len(records) for records in batch.values())
        finally:
            await consumer.stop()
        return seen / (time.perf_counter() - started)

    return asyncio.run(read())


def processed_by(worker: Worker) -> int:
    """Input messages a worker has taken in: applied, or recognised as repeats."""
    pattern = r"^flowgauge_events_(?:processed|duplicate)_total(?:\{[^}]*\})? (\S+)$"
    text = worker.metrics(timeout=60)  # a busy worker answers late; the figure is what counts
    return sum(int(float(value)) for value in re.findall(pattern, text, re.M))


def processed(workers: list[Worker]) -> int:
    return sum(processed_by(worker) for worker in workers)


def caught_up(workers: list[Worker], partitions: int = 4) -> bool:
    lags: dict[str, float] = {}
    for worker in workers:
        text = worker.metrics(timeout=60)  # a busy worker answers late; the figure is what counts
        for partition, value in re.findall(
            r'^flowgauge_consumer_lag_messages\{partition="(\d+)"\} (\S+)$', text, re.M
        ):
            lags[partition] = float(value)
    return len(lags) == partitions and not any(lags.values())


def worker_rate(broker: EmbeddedBroker, workdir: Path, count: int, workers: int) -> float:
    """Events/s through ``workers`` workers over a topic filled beforehand.

    Timed from the moment every worker is processing to zero lag on every input
    partition, so the rebalance a joining worker causes is not counted.
    """
    started_workers = [
        start_worker(broker, workdir, f"w{workers}-{i}", FLOWGAUGE_APP_ID=f"bench{workers}")
        for i in range(workers)
    ]
    try:
        while not all(processed_by(worker) for worker in started_workers):
            time.sleep(0.05)
        started, first = time.perf_counter(), processed(started_workers)
        deadline = started + 600
        while not caught_up(started_workers) and time.perf_counter() < deadline:
            time.sleep(0.2)
        done = processed(started_workers)
        elapsed = time.perf_counter() - started
        if done < count:
            print(f"  note: {count - done} of {count} input events not accounted for")
        return (done - first) / elapsed
    finally:
        for worker in started_workers:
            worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=float, default=56.0, help="simulated days of events")
    args = parser.parse_args()
    lines = simulated(args.days)
    print(f"{len(lines)} simulated events over {args.days:g} days")
    bench_aging()
    bench_report(lines)
    workdir = tempfile.mkdtemp(prefix="flowgauge-bench-")
    print(f"worker logs in {workdir}")
    with EmbeddedBroker() as broker:
        produce(broker, INPUT, [(message_key(line), line) for line in lines])
        raw = raw_consumer_rate(broker, len(lines))
        print(f"raw aiokafka consumer: {raw:,.0f} events/s")
        one = worker_rate(broker, Path(workdir), len(lines), 1)
        print(f"one worker, all features: {one:,.0f} events/s ({one / raw:.1%} of raw)")
        two = worker_rate(broker, Path(workdir), len(lines), 2)
        print(f"two workers: {two:,.0f} events/s ({two / one:.2f}x one worker)")


if __name__ == "__main__":
    main()
