"""``make bench``: figures, never assertions. Ratios are measured in one run (machines are shared).

python -m tests.bench [--quick] [--only PART ...] [--days N]

Parts, all by default, in this order: report (``report`` in-process over ``--days`` of the
default team), million (``flowgauge report`` over 1,000,000 events, tests/bench_million.py),
throughput (raw aiokafka consumer, bare Faust agent, one worker, two workers over the same
events, and where one worker's CPU goes, tests/bench_throughput.py), codec (what writing
and reading back a ticket batch's deltas and tickets costs per event, tests/bench_codec.py),
latency (at 500 events/s, tests/bench_latency.py), render (``/metrics`` at 50 queues x 4
priorities x 8 channels, tests/bench_render.py), recovery, gateway (signed GitHub deliveries
through ``flowgauge gateway`` beside a bare aiohttp handler, tests/bench_gateway.py),
alerts, rules (the other rules on the scenarios, tests/bench_alerts.py), aging (as-of
queries on a big aging index). ``--quick`` runs smaller sizes of each.
Each target of the issue is printed at the end as met or not met, with the measured ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from streams.commands.report import run
from streams.commands.simulate import Scenario, encode, generate_events
from streams.core.aging import ScopeAging
from streams.core.sla import Clock, SlaPolicy, TargetClock, Targets
from streams.core.ticket import Kind, Transition
from streams.core.timeline import US_PER_SECOND
from tests.bench_alerts import run_alerts, run_other_rules
from tests.bench_bound import run_bound as run_bound_table
from tests.bench_codec import bench_codec
from tests.bench_forecast import bench_forecast, calibration
from tests.bench_gateway import bench_gateway
from tests.bench_gateway import report as report_gateway
from tests.bench_latency import bench_latency
from tests.bench_million import bench_million
from tests.bench_recovery import bench_recovery
from tests.bench_render import bench_render
from tests.bench_speedup import bench_speedup
from tests.bench_support import Target, busy_team
from tests.bench_throughput import bench_throughput
from tests.bench_web import bench_web
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
        aging.add(
            Transition("all", Kind.INFLOW, opened, ticket, opened, None, clock.flat()), policy
        )
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


@dataclass(frozen=True)
class Sizes:
    days: float  # of the default team, for report and throughput
    aging: tuple[int, ...]
    million: int
    latency_seconds: float
    render_days: float
    recovery: tuple[int, ...]  # open tickets a worker's tables hold when a second recovers them
    gateway: int  # signed deliveries posted through the gateway, 16 at a time
    codec: int  # busy-team events whose ticket batches are written and read back


FULL = Sizes(
    56.0, (10_000, 100_000, 1_000_000), 1_000_000, 60.0, 14.0, (10_000, 100_000), 10_000, 20_000
)
QUICK = Sizes(14.0, (10_000, 100_000), 100_000, 20.0, 3.0, (10_000,), 2_000, 5_000)


def run_aging(sizes: Sizes) -> list[Target]:
    bench_aging(sizes.aging)
    return []


def run_report(sizes: Sizes) -> list[Target]:
    lines = simulated(sizes.days)
    print(f"{len(lines)} simulated events over {sizes.days:g} days (default team)")
    bench_report(lines)
    return []


def run_million(sizes: Sizes) -> list[Target]:
    result = bench_million(sizes.million)
    print(
        f"generating {result.events:,} events (busy team) to a file: {result.generate_seconds:.1f}s"
    )
    print(f"`{result.command}`:")
    print(
        f"  {result.events:,} events, {result.rows:,} rows in {result.report_seconds:.1f}s"
        f" = {result.events_per_second:,.0f} events/s; peak RSS {result.peak_rss_mib:,.0f} MiB"
    )
    name = f"report events/s over {result.events:,} events"
    return [Target(name, result.events_per_second, 100_000, " events/s")]


def run_throughput(sizes: Sizes) -> list[Target]:
    """Twice, over about as many events: a catch-up of the default team's log, where
    snapshots outnumber events and their cost leads, then a team ten times as busy over a
    tenth of the days, where the per-event cost leads as under a heavy live load."""
    workdir = Path(tempfile.mkdtemp(prefix="flowgauge-bench-"))
    sparse = simulated(sizes.days)
    print(f"{len(sparse)} events of the default team over {sizes.days:g} days; logs in {workdir}")
    targets = bench_throughput(sparse, workdir / "sparse", "catch-up of the default team")
    days = sizes.days / 10
    dense = [encode(event) for event in generate_events(busy_team(days))]
    print(f"{len(dense)} events of a team ten times as busy over {days:g} days")
    return targets + bench_throughput(dense, workdir / "dense", "a team ten times as busy")


def run_latency(sizes: Sizes) -> list[Target]:
    result = bench_latency(seconds=sizes.latency_seconds)
    print(f"latency at {result.rate:g} events/s for {sizes.latency_seconds:g}s (busy team):")
    print(f"  produce to /metrics, in order: p50 {_p(result.metrics_in_order)}")
    print(f"  produce to /metrics, certain (upper bound): p50 {_p(result.metrics_certain)}")
    print(f"  over {result.events:,} events; worker busy {result.worker_cores:.2f} cores")
    print(f"  watermark past boundary + grace to backlog.flow: p50 {_p(result.snapshot)}")
    print(f"  over {result.snapshots:,} snapshots of {result.boundaries:,} boundaries")
    return [
        Target("p99 produce to /metrics, in order", result.metrics_in_order[1], 2.0, " s", True),
        Target("p99 produce to /metrics, certain", result.metrics_certain[1], 2.0, " s", True),
    ]


def _p(p50_p99: tuple[float, float]) -> str:
    return f"{p50_p99[0]:.3f}s, p99 {p50_p99[1]:.3f}s"


def run_render(sizes: Sizes) -> list[Target]:
    result = bench_render(sizes.render_days)
    print(
        f"/metrics render (PipelineMetrics.render) with {result.scopes} scopes from"
        f" {result.events:,} events over 50 queues x 4 priorities x 8 channels:"
    )
    print(
        f"  {result.series:,} series, {result.size_bytes / 1024:,.0f} KiB;"
        f" median {result.median_ms:.1f} ms, max {result.max_ms:.1f} ms"
    )
    return []


def run_recovery(sizes: Sizes) -> list[Target]:
    for one in bench_recovery(sizes.recovery):
        mib = one.changelog_bytes / 1024**2
        print(
            f"recovery, {one.open_tickets:,} open tickets ({one.events:,} events): first worker"
            f" caught up in {one.catch_up_seconds:.1f}s (sending {one.produce_seconds:.1f}s),"
            f" peak RSS {one.first_peak_rss_mib:,.0f} MiB"
        )
        print(
            f"  changelogs: {one.changelog_records:,} records, {mib:,.1f} MiB"
            f" (a raw read {one.changelog_read_seconds:.1f}s)"
        )
        print(
            f"  second worker, from its start: web up {one.web_seconds:.1f}s, joined the group"
            f" {one.joined_seconds:.1f}s, /readyz 200 {one.ready_seconds:.1f}s,"
            f" 'Worker ready' {one.worker_ready_seconds:.1f}s (changelogs read in"
            f" {one.restore_seconds:.1f}s of it)"
        )
        print(
            f"  then its first /metrics {one.first_metrics_seconds:.1f}s, showing"
            f" {one.recovered_open:,} open; peak RSS {one.peak_rss_mib:,.0f} MiB;"
            f" restarts {one.restarts}"
        )
    return []


def run_forecast(_: Sizes) -> list[Target]:
    return bench_forecast(Path(tempfile.mkdtemp(prefix="flowgauge-bench-forecast-")))


def run_calibration(_: Sizes) -> list[Target]:
    calibration(("surge", "understaffed", "mixed"), range(1, 4))
    return []


def run_gateway(sizes: Sizes) -> list[Target]:
    report_gateway(bench_gateway(sizes.gateway, concurrency=16))
    return []


def run_web(_: Sizes) -> list[Target]:
    bench_web()
    return []


def run_codec(sizes: Sizes) -> list[Target]:
    bench_codec(sizes.codec)
    return []


def run_speedup(sizes: Sizes) -> list[Target]:
    return bench_speedup(sizes.days)


def run_alert_quality(_: Sizes) -> list[Target]:
    run_alerts()
    return []


def run_bound(_: Sizes) -> list[Target]:
    run_bound_table()
    return []


def run_rules(_: Sizes) -> list[Target]:
    run_other_rules()
    return []


PARTS: dict[str, Callable[[Sizes], list[Target]]] = {
    "report": run_report,  # first: its peak RSS is this process's
    "speedup": run_speedup,  # report against BASELINE=<commit>, checked out beside
    "million": run_million,
    "throughput": run_throughput,
    "codec": run_codec,  # the internal topics' codec per event, over the ticket stage's batches
    "latency": run_latency,
    "render": run_render,
    "recovery": run_recovery,
    "gateway": run_gateway,
    "forecast": run_forecast,  # in-process and one worker, with and without
    "web": run_web,  # the web view's history: memory per scope and day, the report page
    "calibration": run_calibration,  # the forecast against what happened, ~10 min
    "alerts": run_alert_quality,  # the scenarios: about half an hour
    "bound": run_bound,  # how soon any rule could detect them: about a minute
    "rules": run_rules,  # the other rules on the scenarios: about 5 minutes
    "aging": run_aging,  # last: a million open tickets take gigabytes
}


def machine() -> str:
    with open("/proc/meminfo") as meminfo:
        memory_kib = int(meminfo.readline().split()[1])
    return (
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {os.cpu_count()} cores,"
        f" {memory_kib / 1024**2:.1f} GiB, Python {platform.python_version()},"
        f" {platform.platform()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller sizes everywhere")
    parser.add_argument("--only", action="append", choices=list(PARTS), help="run this part")
    parser.add_argument("--days", type=float, help="simulated days for report and throughput")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.days is not None:
        sizes = replace(sizes, days=args.days)
    print(machine())
    targets: list[Target] = []
    for name in args.only or PARTS:
        print(f"--- {name}")
        started = time.perf_counter()
        targets += PARTS[name](sizes)
        print(f"    ({name} took {time.perf_counter() - started:.0f}s)")
    print("--- targets (figures from this run, never asserted)")
    for target in targets:
        print(target.line())


if __name__ == "__main__":
    main()
