"""Everything flowgauge keeps per scope, and what it emits at each boundary."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from streams.aging import AgingSnapshot, ScopeAging
from streams.alerts import AlertTransition, CrossingPolicy, InflowAboveOutflow, crossing_applies
from streams.flow import FlowSnapshot, ScopeFlow, Windows
from streams.sla import SlaPolicy
from streams.ticket import FLOW_KINDS, Transition


@dataclass(frozen=True, slots=True)
class Settings:
    """What the scope stage needs to know of the configuration."""

    windows: Windows
    crossing: CrossingPolicy = field(default_factory=CrossingPolicy)
    track_aging: bool = True
    sla: SlaPolicy = field(default_factory=SlaPolicy)


@dataclass(frozen=True, slots=True)
class Emitted:
    flow: FlowSnapshot
    aging: AgingSnapshot | None
    alert: AlertTransition | None


@dataclass(slots=True)
class ScopeState:
    scope: str
    flow: ScopeFlow = field(init=False)
    aging: ScopeAging | None = None
    crossing: InflowAboveOutflow | None = None

    def __post_init__(self) -> None:
        self.flow = ScopeFlow(self.scope)

    @classmethod
    def new(cls, scope: str, settings: Settings, emitted: int | None = None) -> ScopeState:
        """A scope first seen now; ``emitted`` is the last boundary already emitted elsewhere,
        so a late event that reveals the scope cannot add rows to boundaries gone out."""
        state = cls(scope)
        state.flow.emitted = emitted
        if settings.track_aging:
            state.aging = ScopeAging(scope)
        if crossing_applies(scope):
            state.crossing = InflowAboveOutflow(scope)
        return state

    def add(self, transition: Transition, settings: Settings) -> bool:
        """Count one transition; True when it is late for this scope."""
        if self.aging is not None:
            self.aging.add(transition, settings.sla)
        if transition.kind not in FLOW_KINDS:
            return False
        return self.flow.add(transition.kind, transition.at_us, settings.windows)

    def emit_through(self, limit: int, settings: Settings) -> Iterator[Emitted]:
        for snapshot in self.flow.emit_through(limit, settings.windows):
            aging = (
                self.aging.settle(snapshot.as_of_us, settings.sla)
                if self.aging is not None
                else None
            )
            alert = self.crossing.evaluate(snapshot, settings.crossing) if self.crossing else None
            yield Emitted(snapshot, aging, alert)


def scope_order(scope: str) -> tuple[bool, str]:
    """``all`` first, then the rest alphabetically."""
    return (scope != "all", scope)
