"""Alert rules as small state machines per (rule, scope), evaluated at each boundary."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from streams.flow import FlowSnapshot
from streams.timeline import iso

INFLOW_ABOVE_OUTFLOW = "inflow_above_outflow"


class AlertState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class AlertTransition:
    rule: str
    scope: str
    state: AlertState
    at_us: int
    value: float
    threshold: float
    fired_at_us: int

    @property
    def incident_id(self) -> str:
        """Shared by a firing and its resolution; stable across replays."""
        return f"{self.rule}:{self.scope}:{iso(self.fired_at_us)}"

    @property
    def alert_id(self) -> str:
        return f"{self.incident_id}:{self.state.value}"


@dataclass(frozen=True, slots=True)
class CrossingPolicy:
    window: str = "24h"
    min_volume: int = 10
    sustain: int = 3
    clear: int = 3


@dataclass(slots=True)
class InflowAboveOutflow:
    """Fires after ``sustain`` boundaries of inflow > outflow; resolves after ``clear`` reversed."""

    scope: str
    firing: bool = False
    streak: int = 0
    fired_at_us: int = 0

    def evaluate(self, snapshot: FlowSnapshot, policy: CrossingPolicy) -> AlertTransition | None:
        inflow = snapshot.inflow[policy.window]
        outflow = snapshot.outflow[policy.window]
        holds = (
            outflow >= inflow if self.firing else inflow > outflow and inflow >= policy.min_volume
        )
        self.streak = self.streak + 1 if holds else 0
        if self.streak < (policy.clear if self.firing else policy.sustain):
            return None
        self.firing = not self.firing
        self.streak = 0
        if self.firing:
            self.fired_at_us = snapshot.as_of_us
        state = AlertState.FIRING if self.firing else AlertState.RESOLVED
        return AlertTransition(
            INFLOW_ABOVE_OUTFLOW,
            self.scope,
            state,
            snapshot.as_of_us,
            float(inflow - outflow),
            0.0,
            self.fired_at_us,
        )


def crossing_applies(scope: str) -> bool:
    """The headline rule runs for the whole backlog and for every queue."""
    return scope == "all" or scope.startswith("queue:")


def describe(alert: AlertTransition, snapshot: FlowSnapshot, dashboard_url: str | None) -> str:
    """The alert in the team's terms, per day, as the chat message and the topic carry it."""
    window = snapshot.inflow
    name = "Whole backlog" if alert.scope == "all" else alert.scope.split(":", 1)[1]
    inflow = next(iter(window.values())) if window else 0
    daily_in = snapshot.inflow.get("24h", inflow)
    daily_out = snapshot.outflow.get("24h", 0)
    weekly_out = snapshot.outflow.get("7d")
    capacity = (
        f"; backlog {snapshot.open / (weekly_out / 7):.1f} days of capacity" if weekly_out else ""
    )
    if alert.state is AlertState.FIRING:
        text = (
            f"{name}: inflow {daily_in}/day now exceeds outflow {daily_out}/day"
            f"{capacity} and growing {daily_in - daily_out}/day"
        )
    else:
        text = f"{name}: outflow {daily_out}/day has caught up with inflow {daily_in}/day{capacity}"
    link = f" ({dashboard_url})" if dashboard_url else ""
    return f"{text}; {snapshot.open} open as of {iso(snapshot.as_of_us)}{link}"
