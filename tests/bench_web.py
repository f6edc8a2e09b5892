"""What the web view costs: its history's memory per scope and day, reading the records,
building a view, and the one-file report (``make bench BENCH_ARGS="--only web"``).

The records are those the worker publishes for the default simulated team at a 5-minute
step (``report``'s pipeline and the worker's ``publisher``), made once; the history is then
fed them as ``flowgauge web`` is from the topics. Memory is what ``tracemalloc`` finds
allocated by feeding it: after 7 days every boundary is held; after 56, the last 7 days'
boundaries and the hourly ones before, so the difference is the cost of a thinned day.
"""

from __future__ import annotations

import time
import tracemalloc

from streams.commands.report import LocalPipeline, in_order
from streams.commands.simulate import Scenario, encode, generate_events
from streams.config import FlowgaugeConfig
from streams.outputs.records import publisher
from streams.web.history import History
from streams.web.page import report_page
from streams.web.service import history_of, view_settings
from streams.web.view import Freshness, view


def records_of(days: float, config: FlowgaugeConfig) -> tuple[list[tuple[str, bytes]], float]:
    """The records of ``days`` of the default team, and the seconds ``report``'s pipeline
    took to compute them (without publishing)."""
    lines = [encode(event) for event in generate_events(Scenario(days=days))]
    settings = config.core()
    pipeline = LocalPipeline(settings, config.grace_us)
    records = publisher(config, settings)
    started = time.process_time()
    emitted = list(in_order(lines, pipeline))
    seconds = time.process_time() - started
    return [(topic, value) for item in emitted for topic, _, value in records(item)], seconds


def fed(records: list[tuple[str, bytes]], config: FlowgaugeConfig) -> tuple[History, int, float]:
    """A history fed ``records``: it, the bytes it holds, and the CPU seconds it took."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    started = time.process_time()
    history = history_of(config)
    history.take_all(records)
    seconds = time.process_time() - started
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return history, held, seconds


def bench_web() -> None:
    config = FlowgaugeConfig(step="5m")
    held: dict[int, tuple[int, int]] = {}
    for days in (7, 56):
        records, report_seconds = records_of(days, config)
        history, size, seconds = fed(records, config)
        scopes = len(history.scopes)
        held[days] = (size, scopes)
        print(
            f"    {days} days: {len(records):,} records, {scopes} scopes; history "
            f"{size / 2**20:.1f} MiB; fed in {seconds:.1f}s CPU ({len(records) / seconds:,.0f}"
            f" records/s), {seconds / report_seconds:.2f}x the {report_seconds:.1f}s report's"
            " pipeline took to compute them"
        )
    fine, scopes = held[7]
    thinned = (held[56][0] - fine) / (49 * scopes)
    print(
        f"    memory per scope and day: {fine / (7 * scopes) / 1024:.0f} KiB while every "
        f"5-minute boundary is held (the last 7 days), {thinned / 1024:.1f} KiB once thinned"
        " to hours"
    )
    settings = view_settings(config, show_tickets=True)
    started = time.perf_counter()
    views = {s: view(history, s, settings, Freshness(now=time.time())) for s in history.scopes}
    built = (time.perf_counter() - started) / len(views)
    week = view(history, "all", settings, Freshness(now=time.time()), 7 * 86400)
    started = time.perf_counter()
    page = report_page(views)
    packed = time.perf_counter() - started
    print(
        f"    a view of all 56 days: {built * 1000:.0f} ms per scope (a week's: "
        f"{len(week['flow']['t'])} boundaries); the one-file report of {len(views)} scopes: "
        f"{len(page) / 1e6:.1f} MB, packed in {packed:.1f}s"
    )
