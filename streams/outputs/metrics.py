"""Prometheus metrics: pipeline counters and gauges holding each scope's latest snapshot.

Every worker has its own registry. Scope gauges are rendered at scrape time from
the scopes of the partitions this worker actively owns, so ``sum()`` across
workers is exact. Label values that come from input are capped per dimension.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from streams.core.alerts import capacity_days
from streams.core.forecast import QUANTILES, Forecast, day_end_seconds
from streams.core.scope import Emitted
from streams.core.sla import SlaState, Target
from streams.core.stages import RequesterBatch, ScopeRecord, TicketBatch
from streams.core.ticket import DIMENSIONS, FINDING_KINDS
from streams.core.timeline import US_PER_SECOND

FINDINGS = sorted(kind.name.lower() for kind in FINDING_KINDS)

OTHER = "other"
CAPACITY_WINDOW = "7d"
DAY_SECONDS = 86400
MINUTE, HOUR = 60.0, 3600.0
FIRST_RESPONSE_BUCKETS = (
    MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 4 * HOUR, 8 * HOUR, 24 * HOUR, 72 * HOUR
)  # fmt: skip
SCOPE_LABELS = list(DIMENSIONS)


class LabelCap:
    """The first ``cap`` distinct values of a dimension keep their name; later ones are "other"."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept: dict[str, set[str]] = defaultdict(set)

    def __call__(self, dimension: str, value: str) -> str:
        kept = self.kept[dimension]
        if value in kept:
            return value
        if len(kept) < self.cap:
            kept.add(value)
            return value
        return OTHER

    def scope_labels(self, scope: str) -> tuple[str, str, str]:
        """Labels of a scope: the dimension it is cut by, the others empty ("all of them")."""
        labels = dict.fromkeys(DIMENSIONS, "")
        if scope != "all":
            dimension, _, value = scope.partition(":")
            labels[dimension] = self(dimension, value)
        return labels["queue"], labels["priority"], labels["channel"]


class ScopeCollector(Collector):
    """Renders the latest emitted snapshot of every owned scope, summed per capped label set."""

    def __init__(self, cap: LabelCap) -> None:
        self.cap = cap
        self.owned: list[ScopeRecord] = []

    def collect(self) -> Iterator[Metric]:
        families = _scope_families()
        values: dict[tuple[str, tuple[str, ...]], float] = {}
        for record in self.owned:
            if record.last is None:
                continue
            labels = self.cap.scope_labels(record.state.scope)
            for name, extra, value in _scope_values(record, self.cap):
                key = (name, (*extra, *labels))
                # Scopes capped into "other" add up, except the oldest ticket (the earliest
                # wins) and the date back in band (the latest).
                merge = _MERGES.get(name, _add)
                values[key] = merge(values[key], value) if key in values else value
        for (name, label_values), value in sorted(values.items()):
            families[name].add_metric(list(label_values), value)
        yield from families.values()


def _add(a: float, b: float) -> float:
    return a + b


_MERGES = {"oldest": min, "in_band": max}


def _scope_families() -> dict[str, GaugeMetricFamily]:
    def family(name: str, doc: str, extra: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"flowgauge_{name}", doc, labels=[*extra, *SCOPE_LABELS])

    return {
        "open": family("open_tickets", "Open tickets at the latest emitted boundary", []),
        "inflow": family("inflow_tickets", "Tickets opened or reopened in the window", ["window"]),
        "outflow": family(
            "outflow_tickets", "Tickets resolved or closed in the window", ["window"]
        ),
        "transfers_in": family("transfers_in_tickets", "Tickets moved into the scope", ["window"]),
        "transfers_out": family(
            "transfers_out_tickets", "Tickets moved out of the scope", ["window"]
        ),
        "as_of": family(
            "snapshot_timestamp_seconds", "Event time (Unix) of the latest emitted boundary", []
        ),
        "alert_firing": family("alert_firing", "1 while the rule fires for the scope", ["rule"]),
        "band": family("open_tickets_by_age", "Open tickets per age band", ["band"]),
        "untouched": family(
            "untouched_tickets", "Open tickets with no meaningful agent reply yet", []
        ),
        "oldest": family(
            "oldest_open_ticket_timestamp_seconds",
            "When the oldest open ticket first opened (Unix); time() - x is its age",
            [],
        ),
        "in_band": family(
            "backlog_in_band_timestamp_seconds",
            "When the backlog is back in its band at the recent pace, with this probability: "
            "the end of that day (Unix); absent when not within the forecast's horizon",
            ["quantile"],
        ),
        "closes_needed": family(
            "closes_needed_per_day",
            "Extra closes per business day that put the backlog in its band by the target, "
            "at 85% (tickets per day: a rate the team plans in, not a base unit)",
            [],
        ),
        "sla_at_risk": family(
            "sla_at_risk_tickets", "Open tickets with little of an SLA target left", ["target"]
        ),
        "sla_breached": family(
            "sla_breached_tickets", "Open tickets past an SLA target", ["target"]
        ),
        "reopen_rate": family(
            "reopen_rate_ratio", "Reopens within 7 days of resolving / resolutions, window", []
        ),
        "recontact_rate": family(
            "recontact_rate_ratio",
            "New tickets from a requester resolved in the 7 days before / resolutions, window",
            [],
        ),
        "deflection": family(
            "deflection_ratio",
            "AI resolutions nobody came back from within 48h / AI resolutions, settled window",
            [],
        ),
        "response_quantile": family(
            "first_response_quantile_seconds",
            "Time to first meaningful response over the indicator window (nearest rank)",
            ["quantile"],
        ),
        "transfers_per_resolved": family(
            "transfers_per_resolved_ratio", "Queue changes per resolved ticket, window", []
        ),
        "turns_per_resolved": family(
            "turns_per_resolved_ratio", "Customer replies answered per resolved ticket, window", []
        ),
        "capacity": family(
            "backlog_capacity_seconds",
            "Open tickets in time of recent outflow: open / (outflow per second), 7d window",
            [],
        ),
        "driver_share": family(
            "driver_share_ratio",
            "Share of inflow with a top tag: window recent (the last day) and baseline (its"
            " usual share: the indicator window before the recent one)",
            ["tag", "window"],
        ),
        "driver_spike": family(
            "driver_spike", "1 while a top tag's recent share is 3x its baseline", ["tag"]
        ),
    }


def _indicator_values(
    emitted: Emitted, cap: LabelCap
) -> Iterator[tuple[str, tuple[str, ...], float]]:
    indicators = emitted.indicators
    if indicators is None:
        return
    yield "reopen_rate", (), indicators.reopen_rate
    yield "recontact_rate", (), indicators.recontact_rate
    if indicators.ai_resolutions:
        yield "deflection", (), indicators.deflection_rate
    yield "response_quantile", ("0.5",), indicators.first_response_p50_seconds
    yield "response_quantile", ("0.9",), indicators.first_response_p90_seconds
    yield "transfers_per_resolved", (), indicators.transfers_per_resolved
    yield "turns_per_resolved", (), indicators.turns_per_resolved
    days = capacity_days(emitted.flow, CAPACITY_WINDOW)
    if days is not None:
        yield "capacity", (), days * DAY_SECONDS
    for driver in indicators.drivers:
        tag = cap("tag", driver.tag)
        yield "driver_share", (tag, "recent"), driver.recent_share
        yield "driver_share", (tag, "baseline"), driver.baseline_share
        yield "driver_spike", (tag,), driver.spike


def _forecast_values(forecast: Forecast | None) -> Iterator[tuple[str, tuple[str, ...], float]]:
    if forecast is None or not forecast.sufficient:
        return
    for quantile, day in zip(QUANTILES, forecast.in_band_by, strict=True):
        if day is not None:
            yield "in_band", (str(quantile),), day_end_seconds(day, forecast.timezone)
    if forecast.closes_needed_per_day is not None:
        yield "closes_needed", (), forecast.closes_needed_per_day


def _scope_values(
    record: ScopeRecord, cap: LabelCap
) -> Iterator[tuple[str, tuple[str, ...], float]]:
    assert record.last is not None
    flow, aging = record.last.flow, record.last.aging
    yield "open", (), flow.open
    yield "as_of", (), flow.as_of_us / US_PER_SECOND
    for kind, per_window in (
        ("inflow", flow.inflow),
        ("outflow", flow.outflow),
        ("transfers_in", flow.transfers_in),
        ("transfers_out", flow.transfers_out),
    ):
        for window, count in per_window.items():
            yield kind, (window,), count
    if record.state.crossing is not None:
        yield "alert_firing", ("inflow_above_outflow",), record.state.crossing.firing
    if record.state.rules is not None:
        for rule, machine in record.state.rules.machines.items():
            yield "alert_firing", (rule,), machine.firing
    yield from _indicator_values(record.last, cap)
    yield from _forecast_values(record.state.plan)
    if aging is not None:
        for band, count in aging.bands.items():
            yield "band", (band.removeprefix("age_"),), count
        yield "untouched", (), aging.untouched
        if aging.oldest_open_us is not None:
            yield "oldest", (), aging.oldest_open_us / US_PER_SECOND
        for target, counts in aging.sla.items():
            yield "sla_at_risk", (target.value,), counts[SlaState.AT_RISK]
            yield "sla_breached", (target.value,), counts[SlaState.BREACHED]


class PipelineMetrics:
    """The metrics one worker serves on ``GET /metrics``."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, label_cap: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.cap = LabelCap(label_cap)
        self.scopes = ScopeCollector(self.cap)
        self.registry.register(self.scopes)
        r = self.registry
        ticket_labels = SCOPE_LABELS
        self.lifecycle = {
            cause: Counter(
                f"flowgauge_tickets_{cause}", f"Tickets {cause}", ticket_labels, registry=r
            )
            for cause in ("created", "reopened", "resolved")
        }
        self.processed = Counter(
            "flowgauge_events_processed", "Valid events applied, by type", ["type"], registry=r
        )
        self.dead_lettered = Counter(
            "flowgauge_events_dead_lettered",
            "Invalid events sent to the dead-letter topic",
            registry=r,
        )
        self.ahead_of_clock = Counter(
            "flowgauge_events_ahead_of_clock",
            "Dead-lettered events dated ahead of the wall clock plus the tolerance",
            registry=r,
        )
        self.duplicates = Counter(
            "flowgauge_events_duplicate", "Redelivered events ignored", registry=r
        )
        self.late = Counter(
            "flowgauge_events_late",
            "Events older than their partition's newest event minus the grace period",
            registry=r,
        )
        self.folded = Counter(
            "flowgauge_transitions_folded",
            "Transitions of values beyond FLOWGAUGE_SCOPE_CAP, counted in their dimension's other",
            ["dimension"],
            registry=r,
        )
        self.late_transitions = Counter(
            "flowgauge_late_transitions",
            "Transitions that arrived after their boundary was emitted (kept in later ones)",
            registry=r,
        )
        self.snapshots = Counter(
            "flowgauge_snapshots_emitted", "Scope snapshots published", registry=r
        )
        self.sla_breaches = Counter(
            "flowgauge_sla_breaches", "SLA targets breached, in event time", ["target"], registry=r
        )
        for target in Target:  # exported at 0 before the first breach, for rate() and dashboards
            self.sla_breaches.labels(target.value)
        self.chat = Counter(
            "flowgauge_chat_messages",
            "Chat posts per destination and outcome"
            " (delivered, retried, rejected, dropped, silenced)",
            ["destination", "outcome"],
            registry=r,
        )
        self.findings = Counter(
            "flowgauge_requester_findings",
            "Recontacts and AI resolutions a requester came back from, found by this worker",
            ["kind"],
            registry=r,
        )
        for kind in FINDINGS:
            self.findings.labels(kind)
        self.requesters = Gauge(
            "flowgauge_requesters_tracked",
            "Requesters whose recent contacts this worker keeps",
            registry=r,
        )
        self.first_response = Histogram(
            "flowgauge_first_response_seconds",
            "Time from a ticket's first opening to its first meaningful agent reply",
            ["priority"],
            buckets=FIRST_RESPONSE_BUCKETS,
            registry=r,
        )
        self.last_event = Gauge(
            "flowgauge_last_event_timestamp_seconds",
            "Event time (Unix) of the newest event this worker has processed",
            registry=r,
        )
        self.newest_event = 0.0
        self.lag = Gauge(
            "flowgauge_consumer_lag_messages",
            "Input messages not yet processed",
            ["partition"],
            registry=r,
        )
        self.intake_stalled = Gauge(
            "flowgauge_intake_stalled_seconds",
            "How long this worker has taken in none of the input waiting for it (0 while it"
            " moves or is caught up)",
            registry=r,
        )

    def count_ticket_batch(self, batch: TicketBatch) -> None:
        for (cause, queue, priority, channel), count in batch.lifecycle.items():
            labels = (
                self.cap("queue", queue),
                self.cap("priority", priority),
                self.cap("channel", channel),
            )
            self.lifecycle[cause].labels(*labels).inc(count)
        for kind, count in batch.processed.items():
            self.processed.labels(kind).inc(count)
        for priority, seconds in batch.first_responses:
            self.first_response.labels(self.cap("priority", priority)).observe(seconds)
        self.dead_lettered.inc(len(batch.dead_letters))
        self.ahead_of_clock.inc(batch.ahead)
        self.duplicates.inc(batch.duplicates)
        self.late.inc(batch.late)
        newest = max((p.newest_us for p in batch.progress.values() if p.newest_us), default=None)
        if newest is not None:
            self.newest_event = max(self.newest_event, newest / US_PER_SECOND)
            self.last_event.set(self.newest_event)

    def count_chat(self, destination: str, outcome: str) -> None:
        self.chat.labels(destination, outcome).inc()

    def count_late(self, late: int) -> None:
        self.late_transitions.inc(late)

    def count_folded(self, dimension: str, transitions: int) -> None:
        if transitions:
            self.folded.labels(dimension).inc(transitions)

    def count_snapshots(self, emitted: Sequence[Emitted]) -> None:
        self.snapshots.inc(len(emitted))
        for item in emitted:
            for change in item.aging.sla_changes if item.aging is not None else ():
                if change.state is SlaState.BREACHED:
                    self.sla_breaches.labels(change.target.value).inc()

    def count_requester_batch(self, batch: RequesterBatch, tracked: int) -> None:
        for kind, count in batch.findings.items():
            self.findings.labels(kind).inc(count)
        self.requesters.set(tracked)

    def set_lag(self, lags: dict[int, int]) -> None:
        """Lag of the owned input partitions; a partition that moved away leaves the gauge."""
        for labels in list(self.lag._metrics):
            if int(labels[0]) not in lags:
                self.lag.remove(*labels)
        for partition, lag in lags.items():
            self.lag.labels(str(partition)).set(lag)

    def render(self, owned: list[ScopeRecord]) -> bytes:
        self.scopes.owned = owned
        return generate_latest(self.registry)


def drop_created_series() -> None:
    """Serve counters and histograms without their ``_created`` timestamps, process-wide.

    At the label cap they are a third of a scrape's lines, and nothing flowgauge ships (rules,
    dashboards) reads them.
    """
    disable_created_metrics()  # type: ignore[no-untyped-call]


class GatewayMetrics:
    """``flowgauge gateway``'s own registry. ``source`` is a configured instance's name (a
    bounded set) or ``unknown`` for a path naming none."""

    OUTCOMES = (
        "published", "ignored", "rejected", "refused", "not_json", "too_large", "timeout",
        "unsupported_media_type", "unknown_source", "unavailable",
    )  # fmt: skip

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, sources: Sequence[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.deliveries = Counter(
            "flowgauge_gateway_deliveries",
            "Webhook deliveries answered, by source and outcome",
            ["source", "outcome"],
            registry=r,
        )
        self.published = Counter(
            "flowgauge_gateway_events_published",
            "Events the broker acknowledged on ticket-events",
            ["source"],
            registry=r,
        )
        self.signature_failures = Counter(
            "flowgauge_gateway_signature_failures",
            "Deliveries refused for a missing, stale or wrong signature or token",
            ["source"],
            registry=r,
        )
        self.latency = Histogram(
            "flowgauge_gateway_delivery_seconds",
            "From a delivery's arrival to its answer",
            ["source"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        for source in sources:  # every series present from the start, at zero
            self.published.labels(source)
            self.signature_failures.labels(source)
            for outcome in self.OUTCOMES:
                self.deliveries.labels(source, outcome)

    def render(self) -> bytes:
        return generate_latest(self.registry)
