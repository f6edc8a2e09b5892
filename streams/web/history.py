"""What the web view remembers of the derived topics, bounded, and the view of one scope.

It is fed the records themselves (topic, value), as ``flowgauge web`` reads them from
Kafka and as ``report --html`` has them from the core, so the live page and the one-file
report are one computation. A record is validated by the model it was written with; one
that is not such a record is skipped and counted, never fatal: the topics are anyone's to
write to.

Series are columns keyed by boundary. A boundary written twice (a worker restarted and
wrote its hours again) replaces itself. History is thinned as it ages, relative to the
newest boundary seen: every boundary for ``fine`` (default 7 days), then the last
boundary of each hour until ``hourly`` (90 days), then the last of each day, and nothing
older than ``retention``. The last boundary of an hour is the one at the whole hour, so
a window of an hour summed over hourly points counts every ticket once: the cumulative
flow diagram is exact at that grain.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from streams.core.aging import BANDS
from streams.core.alerts import INFLOW_ABOVE_OUTFLOW
from streams.core.timeline import iso_seconds
from streams.core.topics import AGING, ALERTS, FLOW, FORECAST, INDICATORS, PULL, SLA
from streams.outputs.records import (
    AgingRecord,
    AlertRecord,
    FlowRecord,
    ForecastRecord,
    IndicatorRecord,
    PullRecord,
    SlaRecord,
)

log = logging.getLogger(__name__)

HOUR = 3600
DAY = 24 * HOUR
MODELS: dict[str, type[BaseModel]] = {
    FLOW: FlowRecord,
    AGING: AgingRecord,
    INDICATORS: IndicatorRecord,
    ALERTS: AlertRecord,
    SLA: SlaRecord,
    FORECAST: ForecastRecord,
    PULL: PullRecord,
}
TOPICS = tuple(MODELS)
SLA_KEPT = 200  # ticket.sla changes kept, newest
TIMELINE_SHOWN = 50
Kind = Literal["flow", "aging", "indicators"]


@dataclass(frozen=True)
class Thinning:
    """How history is thinned as it ages: each duration in seconds."""

    fine: int = 7 * DAY  # every boundary younger than this is kept
    hourly: int = 90 * DAY  # then each hour's last; beyond, each day's last
    retention: int = 400 * DAY  # then none

    def cutoffs(self, newest: int) -> tuple[tuple[int, int], ...]:
        """(grain, through): each boundary at or before ``through`` is its grain's last.
        Each cutoff is a whole hour or day, so the coarser points end where the finer
        begin: the last daily point is a midnight and the next kept is an hour after it."""
        hourly_through = (newest - self.fine) // HOUR * HOUR
        daily_through = (newest - self.hourly) // DAY * DAY
        return (HOUR, hourly_through), (DAY, daily_through)


@dataclass
class Columns:
    """One kind of record of one scope: a sorted time axis and a column per value."""

    t: list[int] = field(default_factory=list)
    values: dict[str, list[Any]] = field(default_factory=dict)
    thinned: dict[int, int] = field(default_factory=dict)  # grain -> thinned through

    def put(self, at: int, row: dict[str, Any]) -> None:
        """Insert or replace the row at boundary ``at``; a column first seen is earlier
        absent (None). Where history is thinned already, a bucket keeps its latest."""
        for name in row.keys() - self.values.keys():
            self.values[name] = [None] * len(self.t)
        index = bisect.bisect_left(self.t, at)
        grain = max((g for g, through in self.thinned.items() if at <= through), default=0)
        if index < len(self.t) and self.t[index] == at:
            self._set(index, at, row)
            return
        if grain and index < len(self.t) and _bucket(self.t[index], grain) == _bucket(at, grain):
            return  # a later boundary of the bucket is kept
        if grain and index and _bucket(self.t[index - 1], grain) == _bucket(at, grain):
            self._set(index - 1, at, row)
            return
        self.t.insert(index, at)
        for name, column in self.values.items():
            column.insert(index, row.get(name))

    def _set(self, index: int, at: int, row: dict[str, Any]) -> None:
        self.t[index] = at
        for name, column in self.values.items():
            column[index] = row.get(name)

    def thin(self, newest: int, thinning: Thinning) -> None:
        """Drop what is past retention; keep only each bucket's last boundary where its age
        has passed the grain's cutoff. Each call thins only what aged since the last one."""
        expired = bisect.bisect_left(self.t, newest - thinning.retention)
        if expired:
            self._splice(0, expired, [])
        for grain, through in thinning.cutoffs(newest):
            before = self.thinned.get(grain)
            if before is not None and through <= before:
                continue
            # From the bucket the last cutoff fell in: its later boundaries were kept then.
            start = 0 if before is None else bisect.bisect_left(self.t, before - grain + 1)
            end = bisect.bisect_right(self.t, through)
            kept: list[int] = []
            for index in range(start, end):
                same = kept and _bucket(self.t[kept[-1]], grain) == _bucket(self.t[index], grain)
                if same:
                    kept[-1] = index
                else:
                    kept.append(index)
            if len(kept) < end - start:
                self._splice(start, end, kept)
            self.thinned[grain] = through

    def _splice(self, start: int, end: int, kept: list[int]) -> None:
        """Keep of ``start:end`` only the indexes ``kept``."""
        self.t[start:end] = [self.t[i] for i in kept]
        for column in self.values.values():
            column[start:end] = [column[i] for i in kept]

    def since(self, start: int | None) -> dict[str, Any]:
        first = 0 if start is None else bisect.bisect_left(self.t, start)
        return {"t": self.t[first:], **{k: v[first:] for k, v in self.values.items()}}


def _bucket(at: int, grain: int) -> int:
    """The bucket (at - grain, at] whose last instant is a multiple of ``grain``."""
    return -(-at // grain)


def flow_row(record: FlowRecord) -> dict[str, Any]:
    row: dict[str, Any] = {"open": record.open}
    for prefix, counts in (
        ("in", record.inflow),
        ("out", record.outflow),
        ("tin", record.transfers_in),
        ("tout", record.transfers_out),
    ):
        row.update({f"{prefix}_{window}": count for window, count in counts.items()})
    return row


def aging_row(record: AgingRecord) -> dict[str, Any]:
    return {
        **record.bands,
        "oldest_age_seconds": record.oldest_age_seconds,
        "untouched": record.untouched,
        "p85_age_seconds": record.p85_age_seconds,
        "sla_at_risk": sum(counts.get("at_risk", 0) for counts in record.sla.values()),
        "sla_breached": sum(counts.get("breached", 0) for counts in record.sla.values()),
    }


def indicator_row(record: IndicatorRecord) -> dict[str, Any]:
    deflection = record.deflection_rate
    return {
        "reopen_rate": round(record.reopen_rate, 4),
        "recontact_rate": round(record.recontact_rate, 4),
        "first_response_p50_seconds": round(record.first_response_p50_seconds),
        "first_response_p90_seconds": round(record.first_response_p90_seconds),
        "deflection_rate": None if deflection is None else round(deflection, 4),
    }


@dataclass
class ScopeHistory:
    """Everything kept of one scope."""

    series: dict[Kind, Columns] = field(
        default_factory=lambda: {"flow": Columns(), "aging": Columns(), "indicators": Columns()}
    )
    latest: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    alerts: dict[str, AlertRecord] = field(default_factory=dict)  # by alert_id

    def keep_latest(self, kind: str, at: int, record: BaseModel) -> None:
        held = self.latest.get(kind)
        if held is None or held[0] <= at:
            self.latest[kind] = (at, record.model_dump(mode="json"))


@dataclass
class History:
    """The derived topics as the web view holds them; ``take`` is its only input."""

    thinning: Thinning = field(default_factory=Thinning)
    scopes: dict[str, ScopeHistory] = field(default_factory=dict)
    sla: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    newest: int | None = None
    skipped: int = 0
    taken: int = 0
    _thinned_at: int | None = None

    def take(self, topic: str, value: bytes | None) -> bool:
        """Keep one record of ``topic``; False (and counted) when it is not one."""
        model = MODELS.get(topic)
        if model is None:
            return False
        try:
            record = model.model_validate_json(value or b"")
        except ValidationError as exc:
            self.skipped += 1
            log.warning("%s: skipped a record that is not one: %s", topic, _first_error(exc))
            return False
        self.taken += 1
        self._keep(record)
        return True

    def take_all(self, records: Iterable[tuple[str, bytes]]) -> None:
        for topic, value in records:
            self.take(topic, value)

    def _keep(self, record: BaseModel) -> None:
        keepers: dict[type[BaseModel], Callable[[Any], None]] = {
            FlowRecord: lambda r: self._boundary("flow", r, flow_row(r)),
            AgingRecord: lambda r: self._boundary("aging", r, aging_row(r)),
            IndicatorRecord: lambda r: self._boundary("indicators", r, indicator_row(r)),
            AlertRecord: self._alert,
            SlaRecord: self._sla,
            ForecastRecord: lambda r: self._scope(r.scope).keep_latest(
                "forecast", iso_seconds(r.as_of), r
            ),
            PullRecord: lambda r: self._scope(r.scope).keep_latest("pull", iso_seconds(r.as_of), r),
        }
        keepers[type(record)](record)

    def _scope(self, name: str) -> ScopeHistory:
        held = self.scopes.get(name)
        if held is None:
            held = self.scopes[name] = ScopeHistory()
        return held

    def _boundary(self, kind: Kind, record: Any, row: dict[str, Any]) -> None:
        at = iso_seconds(record.as_of)
        scope = self._scope(record.scope)
        # Indicators move over days (a 7-day window): an hourly series of them at every
        # age shows all there is to see, at a twelfth of the size at a 5-minute step.
        if kind != "indicators" or at % HOUR == 0:
            scope.series[kind].put(at, row)
        scope.keep_latest(kind, at, record)
        if self.newest is None or at > self.newest:
            self.newest = at
            self._thin_hourly(at)

    def _sla(self, record: SlaRecord) -> None:
        """Keep the newest ``SLA_KEPT`` changes; one read twice is kept once."""
        self.sla[(record.ticket_id, record.target, record.state, record.as_of)] = record.model_dump(
            mode="json"
        )
        if len(self.sla) > SLA_KEPT:
            oldest = min(self.sla, key=lambda key: key[3])
            del self.sla[oldest]

    def sla_changes(self) -> list[dict[str, Any]]:
        """The SLA changes kept, newest first."""
        return [self.sla[key] for key in sorted(self.sla, key=lambda key: key[3], reverse=True)]

    def _alert(self, record: AlertRecord) -> None:
        self._scope(record.scope).alerts[record.alert_id] = record

    def _thin_hourly(self, newest: int) -> None:
        """Thin every series once an hour of event time (thinning is linear in the kept
        points; once per boundary would be quadratic in a catch-up), and forget what is
        past retention: alerts, and scopes with nothing left within it."""
        if self._thinned_at is not None and newest - self._thinned_at < HOUR:
            return
        self._thinned_at = newest
        oldest = newest - self.thinning.retention
        for name, scope in list(self.scopes.items()):
            for columns in scope.series.values():
                columns.thin(newest, self.thinning)
            scope.alerts = {k: a for k, a in scope.alerts.items() if iso_seconds(a.at) >= oldest}
            scope.latest = {k: held for k, held in scope.latest.items() if held[0] >= oldest}
            if not scope.latest and not scope.alerts:
                del self.scopes[name]

    def scope_names(self) -> list[str]:
        return sorted(self.scopes, key=_scope_order)

    def alerts_of(self, scope: str) -> list[AlertRecord]:
        """A scope's alert transitions, oldest first (by boundary, then firing first)."""
        held = self.scopes.get(scope)
        records = list(held.alerts.values()) if held else []
        return sorted(records, key=lambda a: (a.at, a.state != "firing", a.alert_id))


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "record"
    return f"{where}: {error['msg']}"


def _scope_order(scope: str) -> tuple[int, str]:
    dimension = scope.partition(":")[0]
    order = {"all": 0, "queue": 1, "priority": 2, "channel": 3}
    return order.get(dimension, 4), scope


def headline_intervals(alerts: list[AlertRecord]) -> list[list[int | None]]:
    """The firing intervals of the headline rule, from its transitions in order."""
    intervals: list[list[int | None]] = []
    for alert in alerts:
        if alert.rule != INFLOW_ABOVE_OUTFLOW:
            continue
        if alert.state == "firing" and (not intervals or intervals[-1][1] is not None):
            intervals.append([iso_seconds(alert.at), None])
        elif alert.state == "resolved" and intervals and intervals[-1][1] is None:
            intervals[-1][1] = iso_seconds(alert.at)
    return intervals


def firing_now(alerts: list[AlertRecord]) -> list[AlertRecord]:
    """Each incident whose latest transition is a firing."""
    latest: dict[str, AlertRecord] = {}
    for alert in alerts:
        latest[alert.incident_id] = alert
    return [alert for alert in latest.values() if alert.state == "firing"]


AGE_BANDS = tuple(name for name, _, _ in BANDS)
