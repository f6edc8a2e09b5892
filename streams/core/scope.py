"""Everything flowgauge keeps per scope, and what it emits at each boundary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from streams.core.aging import AgingSnapshot, ScopeAging
from streams.core.alerts import (
    INFLOW_ABOVE_OUTFLOW,
    AlertState,
    AlertTransition,
    CrossingPolicy,
    IndicatorRules,
    InflowAboveOutflow,
    RuleSpans,
    RulesPolicy,
    crossing_applies,
)
from streams.core.crossing import Crossing, CrossingRule
from streams.core.flow import FlowSnapshot, ScopeFlow, Windows
from streams.core.forecast import (
    DRAWN,
    HOUR_US,
    DayHistory,
    Forecast,
    ForecastPolicy,
    forecast,
)
from streams.core.indicators import (
    DEFLECTION_HORIZON_US,
    NO_EFFORT,
    IndicatorSnapshot,
    IndicatorWindows,
    ScopeIndicators,
)
from streams.core.pull import RANKINGS, PullList, PullPolicy, pull_list
from streams.core.sla import SlaPolicy, SlaState
from streams.core.ticket import FINDING_KINDS, FLOW_KINDS, Kind, Transition
from streams.core.timeline import US_PER_SECOND


@dataclass(frozen=True, slots=True)
class Settings:
    """What the scope stage needs to know of the configuration."""

    windows: Windows
    crossing: CrossingPolicy | CrossingRule = field(default_factory=CrossingRule)
    track_aging: bool = True
    sla: SlaPolicy = field(default_factory=SlaPolicy)
    rules: RulesPolicy = field(default_factory=RulesPolicy)
    indicator_seconds: tuple[int, int] = (7 * 86400, 86400)  # baseline and recent windows
    scope_cap: int = 200  # values per dimension that are scopes (streams/core/catalog.py)
    forecast: ForecastPolicy | None = field(default_factory=ForecastPolicy)
    pull: PullPolicy | None = field(default_factory=PullPolicy)
    # Worked out once: every transition and every snapshot reads them.
    indicator_windows: IndicatorWindows = field(init=False, repr=False, compare=False)
    rule_spans: RuleSpans = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        wanted = (
            (self.crossing.span, self.crossing.capacity_window, self.crossing.hour_window)
            if isinstance(self.crossing, CrossingRule)
            else (self.crossing.window,)
        )
        for window in wanted:
            if window not in self.windows.steps:
                raise ValueError(f"alert window {window} is not one of {list(self.windows.steps)}")
        step = self.windows.step_us
        baseline, recent = (s * US_PER_SECOND // step for s in self.indicator_seconds)
        windows = IndicatorWindows(baseline, recent, -(-DEFLECTION_HORIZON_US // step))
        object.__setattr__(self, "indicator_windows", windows)
        object.__setattr__(self, "rule_spans", RuleSpans.of(self.rules, baseline, step))


@dataclass(frozen=True, slots=True)
class Emitted:
    flow: FlowSnapshot
    aging: AgingSnapshot | None
    alert: AlertTransition | None  # the headline rule, inflow_above_outflow
    indicators: IndicatorSnapshot | None = None
    rule_alerts: tuple[AlertTransition, ...] = ()  # the indicator rules
    forecast: Forecast | None = None  # at whole hours
    plan: Forecast | None = None  # the latest forecast, what the alerts' texts quote
    pull: PullList | None = None  # a queue's, at whole hours

    @property
    def alerts(self) -> tuple[AlertTransition, ...]:
        return (self.alert, *self.rule_alerts) if self.alert else self.rule_alerts


@dataclass(slots=True)
class ScopeState:
    scope: str
    flow: ScopeFlow = field(init=False)
    aging: ScopeAging | None = None
    crossing: Crossing | InflowAboveOutflow | None = None
    indicators: ScopeIndicators = field(init=False)
    rules: IndicatorRules | None = None
    days: DayHistory = field(default_factory=DayHistory)
    plan: Forecast | None = None  # the latest forecast

    def __post_init__(self) -> None:
        self.flow = ScopeFlow(self.scope)
        self.indicators = ScopeIndicators(self.scope)

    @classmethod
    def new(cls, scope: str, settings: Settings, emitted: int | None = None) -> ScopeState:
        """A scope first seen now; ``emitted`` is the last boundary already emitted elsewhere,
        so a late event that reveals the scope cannot add rows to boundaries gone out."""
        state = cls(scope)
        state.flow.emitted = emitted
        if settings.track_aging:
            state.aging = ScopeAging(scope)
        if crossing_applies(scope):
            state.crossing = _headline(scope, settings.crossing)
            state.rules = IndicatorRules(scope)
        return state

    def add(self, transition: Transition, settings: Settings) -> bool:
        """Count one transition; True when it is late for this scope."""
        if transition.kind in FINDING_KINDS:
            self._indicate(transition, settings)
            return False
        if self.aging is not None:
            self.aging.add(transition, settings.sla)
        self._indicate(transition, settings)
        if transition.kind not in FLOW_KINDS:
            return False
        return self.flow.add(transition.kind, transition.at_us, settings.windows)

    def _indicate(self, transition: Transition, settings: Settings) -> None:
        step, windows = settings.windows.step_us, settings.indicator_windows
        at = transition.at_us
        if transition.kind is Kind.INFLOW:
            self.indicators.opened(at, transition.effort or NO_EFFORT, step, windows)
        elif transition.kind is Kind.OUTFLOW:
            self.indicators.resolved(at, transition.effort or NO_EFFORT, step, windows)
        elif transition.kind is Kind.REPLIED:
            self.indicators.responded(at, at - transition.first_open_us, step, windows)
        elif transition.kind is Kind.RECONTACT:
            self.indicators.recontacted(at, step, windows)
        elif transition.kind is Kind.UNDEFLECTED:
            self.indicators.undeflected(at, step, windows)

    def _crossing(
        self, snapshot: FlowSnapshot, policy: CrossingPolicy | CrossingRule
    ) -> AlertTransition | None:
        match self.crossing, policy:
            case None, _:
                return None
            case Crossing() as state, CrossingRule() as rule:
                return state.evaluate(snapshot, rule)
            case InflowAboveOutflow() as state, CrossingPolicy() as earlier:
                return state.evaluate(snapshot, earlier)
        # The other rule's state (an earlier version's, or the settings changed): it starts
        # afresh, and an incident it had firing is closed, not left open.
        ended, self.crossing = self.crossing, _headline(self.scope, policy)
        if ended is None or not ended.firing:
            return None
        return AlertTransition(
            INFLOW_ABOVE_OUTFLOW, self.scope, AlertState.RESOLVED, snapshot.as_of_us, 0.0, 0.0,
            ended.fired_at_us,
        )  # fmt: skip

    def emit_through(self, limit: int, settings: Settings) -> Iterator[Emitted]:
        step = settings.windows.step_us
        for snapshot in self.flow.emit_through(limit, settings.windows):
            as_of = snapshot.as_of_us
            aging = self.aging.settle(as_of, settings.sla) if self.aging is not None else None
            alert = self._crossing(snapshot, settings.crossing)
            indicators = self.indicators.snapshot(as_of // step, step, settings.indicator_windows)
            rule_alerts: tuple[AlertTransition, ...] = ()
            if self.rules is not None:
                breached = sum(c[SlaState.BREACHED] for c in aging.sla.values()) if aging else None
                rule_alerts = tuple(
                    self.rules.evaluate(
                        snapshot, indicators, breached, settings.rules, settings.rule_spans
                    )
                )
            forecast = self._forecast(snapshot, settings)
            self.plan = forecast or self.plan
            pull = self._pull(as_of, settings)
            yield Emitted(
                snapshot, aging, alert, indicators, rule_alerts, forecast, self.plan, pull
            )

    def _pull(self, as_of_us: int, settings: Settings) -> PullList | None:
        """A queue's pull list at whole hours, from its aging index as of then."""
        if (
            settings.pull is None
            or self.aging is None
            or as_of_us % HOUR_US
            or not self.scope.startswith("queue:")
        ):
            return None
        return pull_list(self.scope, self.aging, as_of_us, settings.pull, settings.sla)

    def _forecast(self, snapshot: FlowSnapshot, settings: Settings) -> Forecast | None:
        policy = settings.forecast
        if policy is None:
            self.plan = None  # turned off: nothing quotes the plan of before
            return None
        self.days.add(snapshot, policy.timezone, 7 * policy.weeks + 1, settings.windows.step_us)
        return forecast(snapshot, self.days, policy)


def _headline(scope: str, policy: CrossingPolicy | CrossingRule) -> Crossing | InflowAboveOutflow:
    return Crossing(scope) if isinstance(policy, CrossingRule) else InflowAboveOutflow(scope)


def forget_caches(gone: Callable[[str], bool]) -> None:
    """Drop what the pull lists and the forecasts keep per scope between whole hours (a
    queue's ranking of its tickets; the futures drawn, the last answer and pools), for the scopes
    ``gone`` says (those a worker no longer owns)."""
    for held in (RANKINGS.by_scope, DRAWN.by_scope, DRAWN.answers, DRAWN.pools):
        for scope in [scope for scope in held if gone(scope)]:
            del held[scope]


def scope_order(scope: str) -> tuple[bool, str]:
    """``all`` first, then the rest alphabetically."""
    return (scope != "all", scope)
