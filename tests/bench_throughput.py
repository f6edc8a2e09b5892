"""Events/s over the same input, all in one run, each reader on an embedded broker of its own.

A raw aiokafka consumer (the ceiling) and the bare Faust agent of tests/bench_faust.py
(the baseline of the 60% target) read the topic filled beforehand; so does the same agent
taking batches as a worker does, for the CPU Faust alone costs a worker per event. One
worker with every feature on, then two workers in one group, are started first and the
same events are produced flat out (in about a second) once the group is stable: a worker
joining a busy group makes a rebalance, and on Tansu the skipped-messages check then
restarts a worker (streams/workarounds/gaps.py), which would be timed instead of the processing.

A worker's rate is timed from its first event taken in to its last snapshot published:
the count ``flowgauge report`` gives for the same events (the input read alone says
little, since the scope stage may still be minutes behind). Its end includes the idle
timeout, after which the last boundary closes. While the workers run, the CPU time of the
workers, of the broker and of the whole machine is read from /proc, so the scale-out
figure says what held it back.

A worker's CPU per event is then split: Faust's intake (the batched bare agent), the core
(``flowgauge report``'s pipeline over the same events in this process, no Kafka) and the
rest (the stages' Kafka traffic, tables, serialization, and what the worker adds to
Faust's intake). The first two alone set how fast one worker could go on one core,
whatever the rest cost.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from streams.commands.broker import EmbeddedBroker
from streams.commands.cli import fewer_collections
from streams.commands.replay import message_key
from streams.commands.report import LocalPipeline, in_order
from streams.config import FlowgaugeConfig
from streams.core.topics import INPUT
from tests.bench_faust import BareRun, Batches, bare_faust_run
from tests.bench_support import Target, cpu_seconds, events_taken
from tests.cluster import Worker, produce, start_worker

_SNAPSHOTS = re.compile(r"^flowgauge_snapshots_emitted_total (\S+)$", re.M)
_LAG = re.compile(r'^flowgauge_consumer_lag_messages\{partition="(\d+)"\} (\S+)$', re.M)


@dataclass(frozen=True)
class Run:
    """One timed worker run: its rate and the cores each part kept busy meanwhile."""

    rate: float  # events in over seconds to the last snapshot out
    intake_rate: float  # events in over seconds to the last event taken in
    worker_cores: float
    broker_cores: float
    machine_cores: float  # every process on the machine, other users' included


def bench_throughput(lines: list[bytes], workdir: Path, load: str) -> list[Target]:
    """The four readers over ``lines``; ``load`` names the workload in the targets."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = FlowgaugeConfig()  # what the workers read, from the same environment
    core, snapshots = core_cost(lines, config)
    print(
        f"snapshots the events make (flowgauge report, step {config.step}): {snapshots:,},"
        f" {snapshots / len(lines):.2f} per event"
    )
    with EmbeddedBroker() as broker:
        produce(broker, INPUT, _keyed(lines))
        raw = raw_consumer_rate(broker, len(lines))
        print(f"raw aiokafka consumer: {raw:,.0f} events/s")
        bare = bare_faust_run(broker, len(lines), workdir)
        batches = Batches(config.batch_size, config.batch_seconds)
        intake = bare_faust_run(broker, len(lines), workdir, batches)
    print(
        f"bare Faust agent (iterate only): {bare.rate:,.0f} events/s ({bare.rate / raw:.1%} of raw)"
    )
    one = worker_rate(lines, workdir, 1, snapshots)
    print(f"one worker, all features: {one.rate:,.0f} events/s ({one.rate / bare.rate:.1%} of the")
    print(f"  bare Faust agent, {one.rate / raw:.2%} of raw); {_intake(one)}; {_cores(one)}")
    for line in _split(one, intake, core, bare):
        print(f"  {line}")
    two = worker_rate(lines, workdir, 2, snapshots)
    print(f"two workers: {two.rate:,.0f} events/s ({two.rate / one.rate:.2f}x one worker);")
    print(f"  {_intake(two)}; {_cores(two)}")
    print(f"  held back by: {bottleneck(two, raw)}")
    print(f"  {_per_core(one, two)}")
    scale_out = f"two workers / one worker, {load} ({bottleneck(two, raw)})"
    return [
        Target(f"one worker / bare Faust agent, {load}", one.rate / bare.rate, 0.6, ""),
        Target(scale_out, two.rate / one.rate, 1.6, ""),
    ]


def core_cost(lines: list[bytes], config: FlowgaugeConfig) -> tuple[float, int]:
    """The core's CPU per event in this process and the snapshots it emits, run as a worker
    runs it: the collector set as the worker sets it, the snapshots counted, none kept (a
    full collection walking them all was a third of the figure before)."""
    thresholds = gc.get_threshold()
    fewer_collections()
    try:
        started = time.process_time()
        pipeline = LocalPipeline(config.core(), config.grace_us)
        snapshots = sum(1 for _ in in_order(lines, pipeline))
        return (time.process_time() - started) / len(lines), snapshots
    finally:
        gc.set_threshold(*thresholds)


def _split(one: Run, intake: BareRun, core: float, bare: BareRun) -> list[str]:
    """One worker's CPU per event by where it goes, and what its two fixed parts allow."""
    spent = one.worker_cores / one.rate
    rest = spent - intake.cpu_per_event - core
    best = 1 / (intake.cpu_per_event + core)
    return [
        f"CPU per event: {_us(spent)} in all; Faust's intake {_us(intake.cpu_per_event)}"
        f" (the bare agent taking batches, at {intake.rate:,.0f} events/s), the core {_us(core)}"
        f" ({1 / core:,.0f} events/s in-process), the rest {_us(rest)}",
        f"intake and core alone allow one worker {best:,.0f} events/s on one core:"
        f" {best / bare.rate:.1%} of the bare agent (which spends {_us(bare.cpu_per_event)})",
    ]


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def _keyed(lines: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    return [(message_key(line), line) for line in lines]


def _intake(run: Run) -> str:
    return f"input read at {run.intake_rate:,.0f} events/s"


def _cores(run: Run) -> str:
    return (
        f"cores busy: workers {run.worker_cores:.2f}, broker {run.broker_cores:.2f},"
        f" whole machine {run.machine_cores:.2f} of {os.cpu_count()}"
    )


def _per_core(one: Run, two: Run) -> str:
    """Scale-out split into efficiency and the cores the two workers got: with the
    machine full, the second factor caps the ratio whatever the code does."""
    single, double = one.rate / one.worker_cores, two.rate / two.worker_cores
    return (
        f"per worker core: {single:,.0f} events/s with one worker, {double:,.0f} with two"
        f" ({double / single:.2f}x); the cores the two got allow"
        f" {two.worker_cores / one.worker_cores:.2f}x one worker at its rate per core"
    )


def bottleneck(run: Run, raw_rate: float) -> str:
    """What kept a run from going faster, judged from where the CPU went."""
    cores = os.cpu_count() or 1
    if run.broker_cores >= 0.9 or raw_rate < 2 * run.rate:
        return "the broker"
    if run.machine_cores >= 0.9 * cores:
        return f"the machine's {cores} cores (workers, broker and the rest share them)"
    return "neither the broker nor the cores: the workers themselves"


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
    return events_taken(worker.metrics(timeout=60))  # a busy worker answers late


def processed(workers: list[Worker]) -> int:
    return sum(processed_by(worker) for worker in workers)


def published(workers: list[Worker]) -> int:
    """Snapshots the workers have published together, by their /metrics."""
    texts = [worker.metrics(timeout=60) for worker in workers]
    return sum(int(float(value)) for text in texts for value in _SNAPSHOTS.findall(text))


def caught_up(workers: list[Worker], partitions: int = 4) -> bool:
    lags: dict[str, float] = {}
    for worker in workers:
        text = worker.metrics(timeout=60)  # a busy worker answers late; the figure is what counts
        for partition, value in _LAG.findall(text):
            lags[partition] = float(value)
    return len(lags) == partitions and not any(lags.values())


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat, idle and iowait aside)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def worker_rate(lines: list[bytes], workdir: Path, workers: int, snapshots: int) -> Run:
    """Events/s through ``workers`` workers in a stable group, input produced flat out.

    Timed from the moment every worker is processing to the moment they have published
    ``snapshots`` snapshots together.
    """
    with EmbeddedBroker() as broker:
        assert broker.process is not None
        started_workers = [
            start_worker(broker, workdir, f"w{workers}-{i}", FLOWGAUGE_APP_ID=f"bench{workers}")
            for i in range(workers)
        ]
        try:
            produce(broker, INPUT, _keyed(lines))
            return _timed(started_workers, broker.process.pid, len(lines), snapshots)
        finally:
            for worker in started_workers:
                worker.stop()


def _timed(workers: list[Worker], broker_pid: int, count: int, snapshots: int) -> Run:
    while not all(processed_by(worker) for worker in workers):
        time.sleep(0.05)
    pids = [worker.process.pid for worker in workers]
    cpu = _cpu(pids, broker_pid)
    started, first = time.perf_counter(), processed(workers)
    deadline = started + 900
    while not caught_up(workers) and time.perf_counter() < deadline:
        time.sleep(0.2)
    taken, done = time.perf_counter() - started, processed(workers)
    while published(workers) < snapshots and time.perf_counter() < deadline:
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    workers_cpu, broker_cpu, machine_cpu = _cpu(pids, broker_pid)
    if done < count:
        print(f"  note: {count - done} of {count} input events not accounted for")
    if (out := published(workers)) < snapshots:
        print(f"  note: {out:,} of {snapshots:,} snapshots published when timing stopped")
    return Run(
        (done - first) / elapsed,
        (done - first) / taken,
        (workers_cpu - cpu[0]) / elapsed,
        (broker_cpu - cpu[1]) / elapsed,
        (machine_cpu - cpu[2]) / elapsed,
    )


def _cpu(worker_pids: list[int], broker_pid: int) -> tuple[float, float, float]:
    """CPU seconds so far: the workers together, the broker, the whole machine."""
    workers = sum(cpu_seconds(pid) for pid in worker_pids)
    return workers, cpu_seconds(broker_pid), machine_busy_seconds()
