"""The records flowgauge writes to Kafka, as pydantic models: the edge of the system.

``schemas/`` holds their JSON Schema and one example each (``flowgauge schemas``).

A catch-up publishes three or more records per scope and boundary. Those come from
values the core has already typed, so ``outgoing`` writes each one's fields with
pydantic-core's serializer straight away instead of validating a model first (a third
of the cost); ``tests/test_contract.py`` checks that every such record validates as its
model and reads back to the same bytes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic_core import to_json

from streams.config import FlowgaugeConfig
from streams.core.aging import BANDS, AgingSnapshot
from streams.core.alerts import AlertTransition, CrossingPolicy, capacity_days, describe
from streams.core.events import TicketEvent
from streams.core.flow import FlowSnapshot
from streams.core.forecast import QUANTILES, Forecast, ForecastPolicy
from streams.core.indicators import IndicatorSnapshot
from streams.core.pull import Part, PullList, PullPolicy
from streams.core.scope import Emitted, Settings
from streams.core.sla import SlaChange
from streams.core.timeline import iso
from streams.core.topics import AGING, ALERTS, FLOW, FORECAST, INDICATORS, PULL, SLA
from streams.outputs.truth import EXAMPLE as TRUTH_EXAMPLE


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class FlowRecord(Record):
    """``backlog.flow``, key = scope: inflow, outflow and level as of one boundary."""

    as_of: str = Field(description="the boundary, ISO 8601 UTC")
    scope: str = Field(description="all, queue:NAME, priority:P0..P3 or channel:NAME")
    open: int = Field(description="tickets open at as_of (transfers included for a scope)")
    inflow: dict[str, int] = Field(description="tickets opened or reopened, per window")
    outflow: dict[str, int] = Field(description="tickets resolved or closed, per window")
    transfers_in: dict[str, int]
    transfers_out: dict[str, int]

    @staticmethod
    def fields_of(snapshot: FlowSnapshot) -> dict[str, Any]:
        return {
            "as_of": iso(snapshot.as_of_us),
            "scope": snapshot.scope,
            "open": snapshot.open,
            "inflow": snapshot.inflow,
            "outflow": snapshot.outflow,
            "transfers_in": snapshot.transfers_in,
            "transfers_out": snapshot.transfers_out,
        }


class AgingRecord(Record):
    """``backlog.aging``, key = scope: the age of the open tickets as of one boundary."""

    as_of: str
    scope: str
    open: int
    bands: dict[str, int] = Field(description=", ".join(name for name, _, _ in BANDS))
    oldest_age_seconds: int
    untouched: int = Field(description="open tickets with no meaningful agent reply yet")
    p50_age_seconds: int
    p85_age_seconds: int
    p95_age_seconds: int
    sla: dict[str, dict[str, int]] = Field(
        description="open tickets at_risk and breached, per target (first_response, resolution)"
    )

    @staticmethod
    def fields_of(snapshot: AgingSnapshot) -> dict[str, Any]:
        percentiles = snapshot.percentiles
        return {
            "as_of": iso(snapshot.as_of_us),
            "scope": snapshot.scope,
            "open": snapshot.open,
            "bands": snapshot.bands,
            "oldest_age_seconds": snapshot.oldest_age_seconds,
            "untouched": snapshot.untouched,
            "p50_age_seconds": percentiles[50],
            "p85_age_seconds": percentiles[85],
            "p95_age_seconds": percentiles[95],
            "sla": {
                target.value: {state.value: count for state, count in counts.items()}
                for target, counts in snapshot.sla.items()
            },
        }


class SlaRecord(Record):
    """``ticket.sla``, key = ticket_id: one SLA clock entered a state."""

    ticket_id: str
    target: Literal["first_response", "resolution"]
    state: Literal["at_risk", "breached", "met"]
    due_at: str = Field(description="when the target is (or was) used up, ISO 8601 UTC")
    as_of: str = Field(description="the instant the state changed, ISO 8601 UTC")
    link: str | None = Field(
        default=None, description="the ticket in its helpdesk, where a gateway source has a link"
    )

    @staticmethod
    def fields_of(change: SlaChange, link: str | None = None) -> dict[str, Any]:
        return {
            "ticket_id": change.ticket_id,
            "target": change.target.value,
            "state": change.state.value,
            "due_at": iso(change.due_us),
            "as_of": iso(change.as_of_us),
            "link": link,
        }


REPORTED_DAYS = ForecastPolicy().reported_days


class ForecastFields(Record):
    """``backlog.forecast``, key = scope: when the backlog is back in its healthy band at the
    recent pace, and what it takes to be there by the target (whole hours only)."""

    as_of: str
    scope: str
    open: int
    band_tickets: int = Field(
        description="the band's upper edge in tickets: band_high_days of the capacity at as_of"
    )
    status: Literal["ok", "insufficient_history"] = Field(
        description="insufficient_history: fewer whole days seen than min_days; no numbers"
    )
    in_band_by_p50: str | None = Field(
        description="the first date by which half the sampled futures are in band "
        "(the team's time zone); null: not within the horizon"
    )
    in_band_by_p85: str | None
    in_band_by_p95: str | None
    closes_needed_per_day_p85: int | None = Field(
        description="extra closes per business day that put 85% of the futures in band by "
        "the target; null when the target is missed or history is short"
    )
    inflow_reduction_per_day_p85: int | None = Field(
        description="fewer arrivals per day (never more than a day brings) that would do the "
        "same; null also when no reduction of arrivals alone would"
    )
    target_by: str | None = Field(description="the target's last day")
    target_status: Literal["met", "open", "missed"] | None = Field(
        description="met: in band now; missed: no business day left before the target; "
        "null: insufficient history"
    )
    weeks: int = Field(description="weeks of history sampled, by weekday")
    days_sampled: int = Field(description="whole days of history found in those weeks")
    paths: int = Field(description="futures sampled")
    horizon_days: int
    band_high_days: float


ForecastRecord = create_model(
    "ForecastRecord",
    __base__=ForecastFields,
    __doc__=ForecastFields.__doc__,
    **{
        f"p_in_band_d{day}": (
            float | None,
            Field(
                description=f"the share of futures in band by the end of business day {day} "
                "(first passage: never falls with the day; 1 when in band now)"
            ),
        )
        for day in range(1, REPORTED_DAYS + 1)
    },  # type: ignore[call-overload]
)


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def forecast_fields(forecast: Forecast) -> dict[str, Any]:
    shares = dict(enumerate(forecast.p_in_band, 1))
    by = dict(zip(QUANTILES, forecast.in_band_by, strict=True)) if forecast.sufficient else {}
    return {
        "as_of": iso(forecast.as_of_us),
        "scope": forecast.scope,
        "open": forecast.open,
        "band_tickets": forecast.band_tickets,
        "status": "ok" if forecast.sufficient else "insufficient_history",
        "in_band_by_p50": _day(by.get(0.5)),
        "in_band_by_p85": _day(by.get(0.85)),
        "in_band_by_p95": _day(by.get(0.95)),
        "closes_needed_per_day_p85": forecast.closes_needed_per_day,
        "inflow_reduction_per_day_p85": forecast.inflow_reduction_per_day,
        "target_by": _day(forecast.target_by),
        "target_status": forecast.target_status,
        "weeks": forecast.weeks,
        "days_sampled": forecast.days_sampled,
        "paths": forecast.paths,
        "horizon_days": forecast.horizon_days,
        "band_high_days": forecast.band_high_days,
        **{f"p_in_band_d{day}": shares.get(day) for day in range(1, REPORTED_DAYS + 1)},
    }


class PickRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int
    ticket_id: str
    score: float = Field(
        description="the weighted sum of the parts: 0..1 while the weights add up to 1, as "
        "the defaults do"
    )
    parts: dict[Part, float] = Field(description="each part, 0..1, before its weight")
    link: str | None = Field(default=None, description="the ticket in its helpdesk, if known")


class PullRecord(Record):
    """``backlog.pull``, key = queue:NAME: the queue's open tickets to work next, at whole
    hours; paused (pending, on hold) tickets left out."""

    as_of: str
    scope: str = Field(description="queue:NAME")
    open: int = Field(description="open tickets in the queue, paused ones included")
    candidates: int = Field(description="open tickets not paused: those ranked")
    weights: dict[Part, float]
    picks: list[PickRecord] = Field(description="highest score first; ties by ticket_id")

    @staticmethod
    def fields_of(
        pull: PullList, weights: dict[Part, float], links: Callable[[str], str | None]
    ) -> dict[str, Any]:
        return {
            "as_of": iso(pull.as_of_us),
            "scope": pull.scope,
            "open": pull.open,
            "candidates": pull.candidates,
            "weights": weights,
            "picks": [
                {
                    "rank": pick.rank,
                    "ticket_id": pick.ticket_id,
                    "score": pick.score,
                    "parts": pick.parts,
                    "link": links(pick.ticket_id),
                }
                for pick in pull.picks
            ],
        }


class DriverRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tag: str
    recent: int = Field(description="inflow with the tag in the recent window (24h)")
    recent_share: float = Field(description="share of the recent window's inflow, 0..1")
    baseline_share: float = Field(
        description="usual share: of the inflow in the baseline window before the recent one, 0..1"
    )
    spike: bool = Field(description="recent share >= 3x baseline share and >= 10 tickets")


class IndicatorRecord(Record):
    """``backlog.indicators``, key = scope: leading indicators as of one boundary."""

    as_of: str
    scope: str
    window: str = Field(description="the rolling window of the indicators (default 7d)")
    resolutions: int = Field(description="resolutions in the window")
    reopen_rate: float = Field(description="reopens within 7 days of resolving / resolutions")
    recontact_rate: float = Field(
        description="new tickets from a requester resolved in the 7 days before / resolutions"
    )
    ai_resolutions: int = Field(
        description="ai_resolved resolutions in the window ending 48 hours before as_of"
    )
    deflection_rate: float | None = Field(
        description="share of those ai_resolutions not reopened and whose requester opened no "
        "new ticket within 48 hours; null without any"
    )
    first_response_p50_seconds: float = Field(description="nearest rank, over the window")
    first_response_p90_seconds: float
    first_responses: int = Field(description="first meaningful replies in the window")
    transfers_per_resolved: float = Field(description="queue changes per resolved ticket")
    turns_per_resolved: float = Field(description="customer replies answered per resolved ticket")
    days_of_capacity: float | None = Field(
        description="open / (outflow over the capacity window per day); null without outflow"
    )
    drivers: list[DriverRecord] = Field(description="the top 3 tags of recent inflow")

    @staticmethod
    def fields_of(
        snapshot: IndicatorSnapshot, window: str, capacity: float | None
    ) -> dict[str, Any]:
        return {
            "as_of": iso(snapshot.as_of_us),
            "scope": snapshot.scope,
            "window": window,
            "resolutions": snapshot.resolutions,
            "reopen_rate": snapshot.reopen_rate,
            "recontact_rate": snapshot.recontact_rate,
            "ai_resolutions": snapshot.ai_resolutions,
            "deflection_rate": snapshot.deflection_rate if snapshot.ai_resolutions else None,
            "first_response_p50_seconds": snapshot.first_response_p50_seconds,
            "first_response_p90_seconds": snapshot.first_response_p90_seconds,
            "first_responses": snapshot.responses,
            "transfers_per_resolved": snapshot.transfers_per_resolved,
            "turns_per_resolved": snapshot.turns_per_resolved,
            "days_of_capacity": capacity,
            "drivers": [
                {
                    "tag": d.tag,
                    "recent": d.recent,
                    "recent_share": d.recent_share,
                    "baseline_share": d.baseline_share,
                    "spike": d.spike,
                }
                for d in snapshot.drivers
            ],
        }


class AlertRecord(Record):
    """``backlog.alerts``, key = incident_id: one firing or resolved transition."""

    alert_id: str = Field(description="unique and stable per transition: dedupe on it")
    incident_id: str = Field(description="shared by a firing and its resolution")
    rule: str
    scope: str
    state: Literal["firing", "resolved"]
    at: str = Field(description="the boundary at which the rule changed state, ISO 8601 UTC")
    value: float
    threshold: float
    summary: str

    @classmethod
    def of(cls, alert: AlertTransition, summary: str) -> AlertRecord:
        return cls(
            alert_id=alert.alert_id,
            incident_id=alert.incident_id,
            rule=alert.rule,
            scope=alert.scope,
            state=alert.state.value,
            at=iso(alert.at_us),
            value=alert.value,
            threshold=alert.threshold,
            summary=summary,
        )


class DeadLetter(Record):
    """``ticket-events.dlq``, key = the original key: an event that failed validation."""

    reason: str
    original_base64: str = Field(description="the message value exactly as received")
    source_topic: str
    source_partition: int
    source_offset: int

    @classmethod
    def of(cls, raw: bytes, reason: str, topic: str, partition: int, offset: int) -> DeadLetter:
        encoded = base64.b64encode(raw).decode("ascii")
        return cls(
            reason=reason,
            original_base64=encoded,
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
        )


class Rejected(Record):
    """``ticket-events.rejected``, key = the source instance's name: a connector delivery that
    verified but could not be mapped, kept whole. It may hold personal data (names, emails,
    ticket text): the topic keeps it for its retention only."""

    source: str = Field(description="the configured source instance ([[gateway.sources]] name)")
    kind: str
    reason: str
    received_at: str = Field(description="when the gateway received it (wall clock, UTC)")
    event: str | None = Field(None, description="the event named in a header, if any")
    original_base64: str = Field(description="the body exactly as received")

    @classmethod
    def of(
        cls, source: str, kind: str, reason: str, received_at: str, event: str | None, raw: bytes
    ) -> Rejected:
        encoded = base64.b64encode(raw).decode("ascii")
        return cls(
            source=source,
            kind=kind,
            reason=reason,
            received_at=received_at,
            event=event,
            original_base64=encoded,
        )


def publisher(
    config: FlowgaugeConfig, settings: Settings
) -> Callable[[Emitted], Iterator[tuple[str, bytes, bytes]]]:
    """``outgoing`` with the configuration's settings: what the worker publishes."""
    window, capacity = config.indicators.window, settings.rules.capacity_window
    earlier = isinstance(settings.crossing, CrossingPolicy)
    weights = settings.pull.weights if settings.pull else None

    def records(item: Emitted) -> Iterator[tuple[str, bytes, bytes]]:
        return outgoing(
            item, config.dashboard_url, window, capacity, earlier, config.ticket_link, weights
        )

    return records


def outgoing(
    item: Emitted,
    dashboard_url: str | None,
    indicator_window: str,
    capacity_window: str,
    earlier_rule: bool = False,
    links: Callable[[str], str | None] = lambda ticket_id: None,
    pull_weights: dict[Part, float] | None = None,
) -> Iterator[tuple[str, bytes, bytes]]:
    """Every record one emitted boundary of one scope publishes: (topic, key, value);
    ``earlier_rule``: the headline is the rule of earlier versions; ``links``: a ticket's
    URL in its helpdesk; ``pull_weights``: the pull list's, as its records state them."""
    key = item.flow.scope.encode()
    pull_weights = pull_weights or PullPolicy().weights
    yield FLOW, key, to_json(FlowRecord.fields_of(item.flow))
    if item.aging is not None:
        yield AGING, key, to_json(AgingRecord.fields_of(item.aging))
        for change in item.aging.sla_changes:
            fields = SlaRecord.fields_of(change, links(change.ticket_id))
            yield SLA, change.ticket_id.encode(), to_json(fields)
    if item.indicators is not None:
        capacity = capacity_days(item.flow, capacity_window)
        fields = IndicatorRecord.fields_of(item.indicators, indicator_window, capacity)
        yield INDICATORS, key, to_json(fields)
    if item.forecast is not None:
        yield FORECAST, key, to_json(forecast_fields(item.forecast))
    if item.pull is not None:
        yield PULL, key, to_json(PullRecord.fields_of(item.pull, pull_weights, links))
    for alert in item.alerts:
        summary = describe(
            alert, item.flow, dashboard_url, item.indicators, earlier_rule, item.plan
        )
        yield ALERTS, alert.incident_id.encode(), AlertRecord.of(alert, summary).to_bytes()


_EXAMPLE_SHARES = (0.0, 0.0, 0.01, 0.04, 0.12, 0.27, 0.45, 0.61, 0.74, 0.83, 0.86, 0.9, 0.94, 0.96)

EXAMPLES: dict[str, BaseModel] = {
    "ticket-event": TicketEvent.model_validate(
        {
            "event_id": "E1",
            "ticket_id": "T1",
            "type": "created",
            "occurred_at": "2026-03-02T08:03:00Z",
            "queue": "billing",
            "priority": "P1",
            "channel": "email",
            "requester_id": "R1",
            "tags": ["refund"],
        }
    ),
    "flow": FlowRecord(
        as_of="2026-03-02T09:00:00Z",
        scope="queue:billing",
        open=42,
        inflow={"1h": 3, "24h": 41, "7d": 260},
        outflow={"1h": 2, "24h": 38, "7d": 255},
        transfers_in={"1h": 0, "24h": 2, "7d": 9},
        transfers_out={"1h": 1, "24h": 1, "7d": 7},
    ),
    "aging": AgingRecord(
        as_of="2026-03-02T09:00:00Z",
        scope="all",
        open=3,
        bands={
            name: 1 if name in {"age_lt_1h", "age_1h_4h", "age_1d_3d"} else 0
            for name, _, _ in BANDS
        },
        oldest_age_seconds=90000,
        untouched=1,
        p50_age_seconds=7200,
        p85_age_seconds=90000,
        p95_age_seconds=90000,
        sla={
            "first_response": {"at_risk": 1, "breached": 0},
            "resolution": {"at_risk": 0, "breached": 1},
        },
    ),
    "sla": SlaRecord(
        ticket_id="T1",
        target="first_response",
        state="breached",
        due_at="2026-03-02T08:33:00Z",
        as_of="2026-03-02T08:33:00Z",
    ),
    "indicators": IndicatorRecord(
        as_of="2026-03-02T09:00:00Z",
        scope="queue:billing",
        window="7d",
        resolutions=255,
        reopen_rate=0.07,
        recontact_rate=0.05,
        ai_resolutions=18,
        deflection_rate=0.83,
        first_response_p50_seconds=1260.0,
        first_response_p90_seconds=5400.0,
        first_responses=240,
        transfers_per_resolved=0.2,
        turns_per_resolved=1.4,
        days_of_capacity=1.2,
        drivers=[
            DriverRecord(
                tag="refund", recent=14, recent_share=0.34, baseline_share=0.09, spike=True
            )
        ],
    ),
    "forecast": ForecastRecord.model_validate(
        {
            "as_of": "2026-03-02T09:00:00Z",
            "scope": "queue:billing",
            "open": 412,
            "band_tickets": 180,
            "status": "ok",
            "in_band_by_p50": "2026-03-11",
            "in_band_by_p85": "2026-03-16",
            "in_band_by_p95": "2026-03-19",
            "closes_needed_per_day_p85": 9,
            "inflow_reduction_per_day_p85": 7,
            "target_by": "2026-03-13",
            "target_status": "open",
            "weeks": 6,
            "days_sampled": 42,
            "paths": 500,
            "horizon_days": 90,
            "band_high_days": 3.0,
            **{f"p_in_band_d{day}": share for day, share in enumerate(_EXAMPLE_SHARES, 1)},
        }
    ),
    "pull": PullRecord(
        as_of="2026-03-02T09:00:00Z",
        scope="queue:billing",
        open=42,
        candidates=37,
        weights=PullPolicy().weights,
        picks=[
            PickRecord(
                rank=1,
                ticket_id="zendesk:acme:3112",
                score=0.7425,
                parts={
                    "age": 1.0,
                    "untouched": 1.0,
                    "sla": 0.95,
                    "priority": 1 / 3,
                    "tier": 0.5,
                    "sentiment": 0.2,
                },
                link="https://acme.zendesk.com/agent/tickets/3112",
            )
        ],
    ),
    "alert": AlertRecord(
        alert_id="inflow_above_outflow:queue:billing:2026-03-02T14:00:00Z:firing",
        incident_id="inflow_above_outflow:queue:billing:2026-03-02T14:00:00Z",
        rule="inflow_above_outflow",
        scope="queue:billing",
        state="firing",
        at="2026-03-02T14:00:00Z",
        value=26.0,
        threshold=0.0,
        summary="billing: inflow 214/day now exceeds outflow 188/day",
    ),
    "dead-letter": DeadLetter.of(
        b"{not json", "not JSON: key must be a string", "ticket-events", 2, 17
    ),
    "rejected": Rejected.of(
        "acme-zendesk",
        "zendesk",
        "detail.id: no ticket id",
        "2026-03-02T09:14:03Z",
        None,
        b'{"type": "zen:event-type:ticket.created", "detail": {}}',
    ),
    "truth": TRUTH_EXAMPLE,  # the simulator's ground truth (flowgauge simulate --scenario)
}


def render_schemas() -> dict[str, str]:
    """File name -> text of every schema and example, exactly as committed in schemas/."""
    files: dict[str, str] = {}
    for name, example in EXAMPLES.items():
        # The input is described as it is read, the outputs as they are written.
        mode: Literal["validation", "serialization"] = (
            "validation" if isinstance(example, TicketEvent) else "serialization"
        )
        schema = type(example).model_json_schema(mode=mode)
        files[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        files[f"{name}.example.json"] = (
            example.model_dump_json(indent=2, exclude_defaults=False) + "\n"
        )
    return files


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written
