"""Time to render ``/metrics`` with 50 queues x 4 priorities x 8 channels.

The worker's metrics are built here through the same code the worker runs, without Faust:
simulated events of a busy team with 50 queues (the label cap), 8 channels and the 4
priorities equally likely go through the stream's stages in batches of 2,000
(tests/inprocess.py, which counts each ticket batch in ``PipelineMetrics`` as the worker
does), with a 1 h step so building stays quick (the step does not change what is
rendered: one latest snapshot per scope). Then ``PipelineMetrics.render`` (what
``GET /metrics`` returns) is timed over every scope record, as a worker owning every
partition renders it. HTTP and the table scan around it are not included (a whole
GET /metrics on a worker with the default team's 13 scopes took about 8 ms).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace

from streams.commands.simulate import Scenario, encode, generate_events
from streams.outputs.metrics import PipelineMetrics, drop_created_series
from tests.bench_support import busy_team
from tests.conftest import core_settings
from tests.inprocess import run_core

QUEUES, CHANNELS, LABEL_CAP = 50, 8, 50
BATCH = 2000
TAGS = ("login", "bug", "invoice", "refund", "outage", "pricing")


@dataclass(frozen=True)
class RenderTimes:
    median_ms: float
    max_ms: float
    scopes: int
    series: int
    size_bytes: int
    events: int


def wide_team(days: float) -> Scenario:
    """A busy team (2,100 tickets a day) spread over 50 queues, 8 channels, 4 priorities."""
    queues = tuple((f"queue{n:02d}", 1.0) for n in range(QUEUES))
    tags = tuple(
        (name, tuple((tag, 1.0) for tag in TAGS[n % 4 : n % 4 + 3]))
        for n, (name, _) in enumerate(queues)
    )
    return replace(
        busy_team(days),
        queues=queues,
        channels=tuple((f"channel{n}", 1.0) for n in range(CHANNELS)),
        priorities=tuple((p, 0.25) for p in ("P0", "P1", "P2", "P3")),
        queue_tags=tags,
    )


def bench_render(days: float = 14.0, renders: int = 50) -> RenderTimes:
    events = [encode(event) for event in generate_events(wide_team(days))]
    drop_created_series()  # as the worker serves them
    metrics = PipelineMetrics(LABEL_CAP)
    scopes = run_core(events, core_settings(3600), batch=BATCH, metrics=metrics).scopes
    records = list(scopes.values())
    times = []
    for _ in range(renders):
        started = time.perf_counter()
        body = metrics.render(records)
        times.append(time.perf_counter() - started)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return RenderTimes(
        statistics.median(times) * 1e3,
        max(times) * 1e3,
        len(records),
        series,
        len(body),
        len(events),
    )
