"""The view of one scope the page draws: columns of numbers, the newest records, alerts.

Its shape is the contract with ``static/app.js`` (docs/web.md). Times are epoch
seconds; the page shows them in the team's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.core.timeline import parse_duration
from streams.web.history import (
    AGE_BANDS,
    TIMELINE_SHOWN,
    Columns,
    History,
    firing_now,
    headline_intervals,
)

ALL = "all"
DAY = 86400
FLOW_PREFIXES = {"inflow": "in", "outflow": "out"}
INDICATORS = (
    "reopen_rate",
    "recontact_rate",
    "first_response_p50_seconds",
    "first_response_p90_seconds",
    "deflection_rate",
)


@dataclass(frozen=True)
class ViewSettings:
    timezone: str
    step_seconds: int
    windows: tuple[str, ...]
    band_low_days: float
    band_high_days: float
    capacity_window: str  # the window whose outflow is the capacity (7d by default)
    show_tickets: bool  # ticket ids (pull list, SLA changes) only behind credentials


@dataclass(frozen=True)
class Freshness:
    """When the view is built and how fresh its feed is (wall clock)."""

    now: float
    received_at: float | None = None
    stale: str | None = None
    live: bool = False


def view(
    history: History,
    scope: str,
    settings: ViewSettings,
    freshness: Freshness,
    since_seconds: int | None = None,
) -> dict[str, Any]:
    """The view of ``scope``; with ``since_seconds``, only the boundaries that recent
    before its newest (the page's range) rather than all that is held."""
    held = history.scopes.get(scope)
    latest = {kind: record for kind, (_, record) in held.latest.items()} if held else {}
    as_of = latest["flow"]["as_of"] if "flow" in latest else None
    newest = held.series["flow"].t[-1] if held and held.series["flow"].t else None
    start = newest - since_seconds if newest is not None and since_seconds else None
    alerts = history.alerts_of(scope)
    series = held.series if held else None
    return {
        "scope": scope,
        "scopes": history.scope_names(),
        "timezone": settings.timezone,
        "step_seconds": settings.step_seconds,
        "windows": list(settings.windows),
        "band": {"low_days": settings.band_low_days, "high_days": settings.band_high_days},
        "as_of": newest,
        "as_of_text": as_of,
        "now": freshness.now,
        "received_at": freshness.received_at,
        "stale": freshness.stale,
        "live": freshness.live,
        "skipped": history.skipped,
        "flow": _flow(series["flow"] if series else Columns(), settings, start),
        "cfd": _cfd(series["flow"] if series else Columns(), settings, start),
        "aging": _aging(series["aging"] if series else Columns(), start),
        "indicators": _indicators(series["indicators"] if series else Columns(), start),
        "latest": {
            kind: latest.get(kind) for kind in ("flow", "aging", "indicators", "forecast", "pull")
        }
        | ({} if settings.show_tickets else {"pull": None}),
        "alerts": {
            "firing": [a.model_dump(mode="json") for a in firing_now(alerts)],
            "timeline": [a.model_dump(mode="json") for a in alerts[::-1][:TIMELINE_SHOWN]],
            "headline": headline_intervals(alerts),
        },
        # ticket.sla records name no scope: they are all's.
        "sla_tickets": history.sla_changes() if settings.show_tickets and scope == ALL else None,
    }


def _column(columns: dict[str, Any], name: str) -> list[Any]:
    return columns.get(name) or [None] * len(columns["t"])


def _flow(columns: Columns, settings: ViewSettings, start: int | None) -> dict[str, Any]:
    held = columns.since(start)
    capacity = _column(held, f"out_{settings.capacity_window}")
    per_day = parse_duration(settings.capacity_window) / DAY

    def band(days: float) -> list[float | None]:
        return [None if not out else round(days * out / per_day, 1) for out in capacity]

    drawn = [w for w in settings.windows if parse_duration(w) >= DAY]  # not the hour's

    return {
        "t": held["t"],
        "open": _column(held, "open"),
        **{
            name: {w: _column(held, f"{prefix}_{w}") for w in drawn}
            for name, prefix in FLOW_PREFIXES.items()
        },
        "band_low": band(settings.band_low_days),
        "band_high": band(settings.band_high_days),
        "days_of_capacity": [
            None if not out else round(level * per_day / out, 2)
            for level, out in zip(_column(held, "open"), capacity, strict=True)
        ],
    }


def _cfd(columns: Columns, settings: ViewSettings, start: int | None) -> dict[str, Any]:
    """Cumulative departures summed over whole-hour (or, thinned, whole-day) boundaries
    from the window as long as their spacing, so each ticket counts once; arrivals are
    departures plus the open level, so the gap between the lines is the backlog.
    Transfers count as a queue's arrivals and departures. Across a gap in what is held
    the departures line stays level."""
    lengths = {parse_duration(w): w for w in settings.windows}
    held = columns.since(start)
    times: list[int] = []
    arrivals: list[int] = []
    departures: list[int] = []
    departed = 0
    for index, at in enumerate(held["t"]):
        if at % 3600:
            continue
        window = lengths.get(at - times[-1]) if times else None
        if window is not None:
            departed += (_column(held, f"out_{window}")[index] or 0) + (
                _column(held, f"tout_{window}")[index] or 0
            )
        times.append(at)
        departures.append(departed)
        arrivals.append(departed + (held["open"][index] or 0))
    return {"t": times, "arrivals": arrivals, "departures": departures}


def _aging(columns: Columns, start: int | None) -> dict[str, Any]:
    held = columns.since(start)
    names = ("oldest_age_seconds", "untouched", "p85_age_seconds", "sla_at_risk", "sla_breached")
    return {
        "t": held["t"],
        "bands": {band: _column(held, band) for band in AGE_BANDS},
        **{name: _column(held, name) for name in names},
    }


def _indicators(columns: Columns, start: int | None) -> dict[str, Any]:
    held = columns.since(start)
    return {"t": held["t"], **{name: _column(held, name) for name in INDICATORS}}
