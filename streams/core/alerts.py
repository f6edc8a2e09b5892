"""Alert rules as small state machines per (rule, scope), evaluated at each boundary."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from streams.core.flow import FlowSnapshot
from streams.core.forecast import QUANTILES, TARGET_QUANTILE, Forecast
from streams.core.indicators import SPIKE_FACTOR, SPIKE_MIN_TICKETS, Driver, IndicatorSnapshot
from streams.core.timeline import US_PER_SECOND, forget_before, from_us, iso, parse_duration, to_us

INFLOW_ABOVE_OUTFLOW = "inflow_above_outflow"
ARRIVALS_READING = "arrivals"  # the headline fired by its arrivals (crossing.py)


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
    # What fired the headline when not its usual reading: ARRIVALS_READING (crossing.py).
    reading: str = ""

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
class Hysteresis:
    """One rule for one scope: fires after ``sustain`` boundaries in a row where its firing
    condition holds, resolves after ``clear`` in a row where its clearing condition holds."""

    rule: str
    scope: str
    firing: bool = False
    streak: int = 0
    fired_at_us: int = 0

    def evaluate(
        self,
        fires: bool,
        clears: bool,
        at_us: int,
        value: float,
        threshold: float,
        sustain: int,
        clear: int,
        hold_us: int = 0,
    ) -> AlertTransition | None:
        """``hold_us``: a firing does not resolve within this long, so it never flaps."""
        holds = clears if self.firing else fires
        if self.firing and at_us - self.fired_at_us <= hold_us:
            holds = False
        self.streak = self.streak + 1 if holds else 0
        if self.streak < (clear if self.firing else sustain):
            return None
        self.firing = not self.firing
        self.streak = 0
        if self.firing:
            self.fired_at_us = at_us
        state = AlertState.FIRING if self.firing else AlertState.RESOLVED
        return AlertTransition(
            self.rule, self.scope, state, at_us, value, threshold, self.fired_at_us
        )


@dataclass(slots=True)
class InflowAboveOutflow:
    """Fires after ``sustain`` boundaries of inflow > outflow; resolves after ``clear`` reversed."""

    scope: str
    machine: Hysteresis = field(init=False)

    def __post_init__(self) -> None:
        self.machine = Hysteresis(INFLOW_ABOVE_OUTFLOW, self.scope)

    @property
    def firing(self) -> bool:
        return self.machine.firing

    @property
    def fired_at_us(self) -> int:
        return self.machine.fired_at_us

    def evaluate(self, snapshot: FlowSnapshot, policy: CrossingPolicy) -> AlertTransition | None:
        inflow = snapshot.inflow[policy.window]
        outflow = snapshot.outflow[policy.window]
        fires = inflow > outflow and inflow >= policy.min_volume
        return self.machine.evaluate(
            fires,
            outflow >= inflow,
            snapshot.as_of_us,
            float(inflow - outflow),
            0.0,
            policy.sustain,
            policy.clear,
        )


def crossing_applies(scope: str) -> bool:
    """The headline rule runs for the whole backlog and for every queue."""
    return scope == "all" or scope.startswith("queue:")


def describe(
    alert: AlertTransition,
    snapshot: FlowSnapshot,
    dashboard_url: str | None,
    indicators: IndicatorSnapshot | None = None,
    earlier_rule: bool = False,
    plan: Forecast | None = None,
) -> str:
    """The alert in the team's terms, as the chat message and the topic carry it, with why
    it fired; ``earlier_rule``: the headline is the rule of earlier versions; ``plan``: the
    latest forecast, which a firing of the backlog's rules quotes."""
    name = "Whole backlog" if alert.scope == "all" else alert.scope.split(":", 1)[1]
    if alert.rule == INFLOW_ABOVE_OUTFLOW and earlier_rule:
        text = _crossing_text(alert, snapshot, name)
    elif alert.rule == INFLOW_ABOVE_OUTFLOW:
        text = _imbalance_text(alert, snapshot, name)
    else:
        text = f"{name}: {_rule_text(alert, indicators)}"
    if alert.state is AlertState.FIRING and alert.rule in PLANNED and plan is not None:
        text += plan_text(plan)
    link = f" ({dashboard_url})" if dashboard_url else ""
    return f"{text}; {snapshot.open} open as of {iso(snapshot.as_of_us)}{link}"


def plan_text(plan: Forecast) -> str:
    """ "; at this pace back in band by 14 Mar (85%); 12 more closes a business day would
    make it 6 Mar", or nothing while the forecast has no numbers or the backlog is in band."""
    if not plan.sufficient or plan.target_status == "met":
        return ""
    by = plan.in_band_by[QUANTILES.index(TARGET_QUANTILE)]
    pace = (
        f"at this pace back in band by {_day(by)} (85%)"
        if by is not None
        else f"at this pace not back in band within {plan.horizon_days} days (85%)"
    )
    closes = plan.closes_needed_per_day
    if not closes or plan.target_by is None:
        return f"; {pace}"
    return f"; {pace}; {closes} more closes a business day would make it {_day(plan.target_by)}"


def _day(day: date) -> str:
    return f"{day.day} {day:%b}"  # 6 Mar


def _imbalance_text(alert: AlertTransition, snapshot: FlowSnapshot, name: str) -> str:
    """The headline of streams/core/crossing.py: its value is the net inflow beyond the
    usual week, per day, and its threshold the level it fired or resolved at."""
    weekly_out = snapshot.outflow.get("7d")
    closing = f"; the team closes {weekly_out / 7:.0f}/day" if weekly_out else ""
    if alert.state is AlertState.FIRING and alert.reading == ARRIVALS_READING:
        return (
            f"{name}: {alert.value:.0f} more tickets a day arrive than usual for these hours"
            f" of the week since they rose (it looks for {alert.threshold:.0f} more){closing};"
            " the backlog keeps growing beyond the usual week"
        )
    if alert.state is AlertState.FIRING:
        return (
            f"{name}: {alert.value:.0f} more tickets a day arrive than are closed, beyond the"
            f" usual week (fires at {alert.threshold:.0f}){closing}; the backlog keeps growing"
        )
    return (
        f"{name}: arrivals are back within what the team closes ({alert.value:+.0f} a day"
        f" beyond the usual week, at most {alert.threshold:.0f}){closing}"
    )


def _crossing_text(alert: AlertTransition, snapshot: FlowSnapshot, name: str) -> str:
    window = snapshot.inflow
    inflow = next(iter(window.values())) if window else 0
    daily_in = snapshot.inflow.get("24h", inflow)
    daily_out = snapshot.outflow.get("24h", 0)
    weekly_out = snapshot.outflow.get("7d")
    capacity = (
        f"; backlog {snapshot.open / (weekly_out / 7):.1f} days of capacity" if weekly_out else ""
    )
    if alert.state is AlertState.FIRING:
        return (
            f"{name}: inflow {daily_in}/day now exceeds outflow {daily_out}/day"
            f"{capacity} and growing {daily_in - daily_out}/day"
        )
    return f"{name}: outflow {daily_out}/day has caught up with inflow {daily_in}/day{capacity}"


def _rule_text(alert: AlertTransition, indicators: IndicatorSnapshot | None) -> str:
    value, threshold = alert.value, alert.threshold
    firing = alert.state is AlertState.FIRING
    if alert.rule == DRIVER_SPIKE:
        top = _top_spike(indicators) if indicators else None
        if firing and top is not None:
            return (
                f'tag "{top.tag}" is {top.recent_share:.0%} of inflow in the last day,'
                f" against {top.baseline_share:.0%} in the rest of the week"
            )
        return "no tag's share of inflow is spiking any more"
    capacity = f"backlog is {value:.1f} days of capacity"
    texts = {
        REOPEN_RATE_HIGH: (
            f"{value:.0%} of resolutions were reopened within 7 days",
            f"{threshold:.0%}",
        ),
        RECONTACT_RATE_HIGH: (
            f"new tickets from requesters resolved in the last 7 days are {value:.0%} of "
            "resolutions",
            f"{threshold:.0%}",
        ),
        TTFMR_RISING: (
            f"time to first meaningful response p90 is {_duration(value)}",
            _duration(threshold),
        ),
        BACKLOG_ABOVE_BAND: (capacity, f"{threshold:g} days"),
        BACKLOG_BELOW_BAND: (capacity, f"{threshold:g} days"),
        SLA_BREACH_WAVE: (
            f"{value:.0f} more open tickets past an SLA target than an hour ago",
            f"{threshold:g}",
        ),
    }
    reading, limit = texts[alert.rule]
    return f"{reading} (limit {limit})" if firing else f"back within limits: {reading}"


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


REOPEN_RATE_HIGH = "reopen_rate_high"
RECONTACT_RATE_HIGH = "recontact_rate_high"
TTFMR_RISING = "ttfmr_rising"
DRIVER_SPIKE = "driver_spike"
BACKLOG_ABOVE_BAND = "backlog_above_band"
BACKLOG_BELOW_BAND = "backlog_below_band"
SLA_BREACH_WAVE = "sla_breach_wave"
WAVE_WEEKS = 3  # earlier weeks the breach wave's usual rise is the median of
HOUR_US = 3_600_000_000
WEEK_HOURS = 7 * 24
PLANNED = frozenset({INFLOW_ABOVE_OUTFLOW, BACKLOG_ABOVE_BAND})  # their firing quotes the plan
INDICATOR_RULES = (
    REOPEN_RATE_HIGH,
    RECONTACT_RATE_HIGH,
    TTFMR_RISING,
    DRIVER_SPIKE,
    BACKLOG_ABOVE_BAND,
    BACKLOG_BELOW_BAND,
    SLA_BREACH_WAVE,
)


@dataclass(frozen=True, slots=True)
class RulesPolicy:
    """Thresholds of the indicator rules; durations in seconds (``RuleSpans`` counts them in
    boundaries of the step)."""

    reopen_rate: float = 0.15
    recontact_rate: float = 0.20  # the simulator's normal week runs at 7-17%
    ttfmr_rise: float = 0.5  # p90 up by this share against the previous window
    band_low_days: float = 0.5
    band_high_days: float = 3.0
    breach_wave: int = 10  # more open tickets past an SLA target than ``wave_steps`` ago
    min_volume: int = 10
    # Indicators move slowly and hover near their thresholds: a longer run in each
    # direction keeps a team's chat from flapping. Durations, so any step behaves alike.
    sustain_seconds: int = 1800
    clear_seconds: int = 3600
    wave_seconds: int = 3600
    capacity_window: str = "7d"  # the flow window whose outflow measures capacity
    # Nothing decided while the scope's first week fills the windows; a firing stands for
    # longer than a flap (2 hours).
    warm_up_seconds: int = 7 * 86400
    hold_seconds: int = 3 * 3600
    # A backlog outside its band for hours is the weekly rhythm (Monday mornings hold the
    # weekend's arrivals): the band rules wait until it has stayed out this long.
    band_for_seconds: int = 12 * 3600
    # The team's (its SLA calendar's): the breach wave's "same hour of the week" is on its
    # wall clock, which moves an hour against UTC twice a year.
    timezone: str = "UTC"


class RuleSpans(NamedTuple):
    """The rules' durations in boundaries of the step. What a boundary reads stands for
    the step that ends there, so a condition holds for a duration once it has held at as
    many boundaries in a row as that duration has steps (at least one): 30 minutes is six
    boundaries at a 5-minute step and one at an hour's."""

    baseline: int  # the indicator window
    wave: int  # the breach wave's span
    band: int  # outside the band before a band rule fires
    sustain: int
    clear: int
    baseline_us: int  # the indicator window, in microseconds

    @classmethod
    def of(cls, policy: RulesPolicy, baseline: int, step_us: int) -> RuleSpans:
        def held(seconds: int) -> int:
            return max(1, -(-seconds * US_PER_SECOND // step_us))

        wave = max(1, policy.wave_seconds * US_PER_SECOND // step_us)
        band, sustain = held(policy.band_for_seconds), held(policy.sustain_seconds)
        clear = held(policy.clear_seconds)
        return cls(baseline, wave, band, sustain, clear, baseline * step_us)


@dataclass(frozen=True, slots=True)
class Reading:
    """What one rule sees at a boundary."""

    fires: bool
    value: float
    threshold: float


@dataclass(slots=True)
class IndicatorRules:
    """The indicator rules of one scope, with the little history two of them compare with."""

    scope: str
    machines: dict[str, Hysteresis] = field(default_factory=dict)
    p90_history: deque[float | None] = field(default_factory=deque)
    breached_history: deque[int] = field(default_factory=deque)
    first_us: int | None = None  # the scope's first boundary evaluated
    # Tickets past an SLA target at each whole hour of the last weeks: how many more an
    # hour brings is compared with what the same hour of the week usually brings.
    breached_hours: dict[int, int] = field(default_factory=dict)
    # The tag driver_spike fired on and its usual share then: a spike that lasts days enters
    # the week's share it is compared with, and the rule resolved within a day while the
    # outage went on; it now holds while the tag stays above the share it had before.
    spike_tag: str = ""
    spike_usual: float = 0.0
    # The breach wave read at the last whole hour (fires, rise, limit): it is decided at
    # whole hours only, where its usual is known, and stands until the next.
    wave: tuple[bool, float, float] | None = None

    def __post_init__(self) -> None:
        self.machines = {rule: Hysteresis(rule, self.scope) for rule in INDICATOR_RULES}

    def evaluate(
        self,
        flow: FlowSnapshot,
        indicators: IndicatorSnapshot,
        breached: int | None,
        policy: RulesPolicy,
        spans: RuleSpans,
    ) -> list[AlertTransition]:
        baseline_steps, wave_steps = spans.baseline, spans.wave
        if self.first_us is None:
            self.first_us = flow.as_of_us
        # A p90 over a window that holds any of the scope's first window is no baseline:
        # then the slowest first replies (a weekend's) had not come yet, and the rule fired
        # a week later in every scope of a steady team (BENCHMARKS.md, "Alert quality").
        settled = flow.as_of_us - self.first_us >= 2 * spans.baseline_us
        p90 = indicators.first_response_p90_seconds if settled else None
        previous_p90 = _remember(self.p90_history, p90, baseline_steps)
        days = capacity_days(flow, policy.capacity_window)
        outflow = flow.outflow.get(policy.capacity_window, 0)
        readings = {
            REOPEN_RATE_HIGH: Reading(
                indicators.resolutions >= policy.min_volume
                and indicators.reopen_rate > policy.reopen_rate,
                indicators.reopen_rate,
                policy.reopen_rate,
            ),
            RECONTACT_RATE_HIGH: Reading(
                indicators.resolutions >= policy.min_volume
                and indicators.recontact_rate > policy.recontact_rate,
                indicators.recontact_rate,
                policy.recontact_rate,
            ),
            TTFMR_RISING: _rising(indicators, previous_p90, policy),
            DRIVER_SPIKE: self._spike(indicators),
            BACKLOG_ABOVE_BAND: Reading(
                days is not None
                and days > policy.band_high_days
                and flow.open >= policy.min_volume,
                days or 0.0,
                policy.band_high_days,
            ),
            BACKLOG_BELOW_BAND: Reading(
                days is not None and days < policy.band_low_days and outflow >= policy.min_volume,
                days or 0.0,
                policy.band_low_days,
            ),
        }
        if breached is not None:
            earlier = _remember(self.breached_history, breached, wave_steps)
            if not flow.as_of_us % HOUR_US:
                rise = breached - earlier if earlier is not None else 0
                limit = policy.breach_wave + self._usual_rise(flow.as_of_us, breached, policy)
                self.wave = (rise >= limit, float(rise), float(limit))
            if self.wave is not None:
                readings[SLA_BREACH_WAVE] = Reading(*self.wave)
        if flow.as_of_us - self.first_us < policy.warm_up_seconds * US_PER_SECOND:
            return []
        alerts = self._step(readings, flow.as_of_us, policy, spans)
        for alert in alerts:
            if alert.rule == DRIVER_SPIKE and alert.state is AlertState.FIRING:
                top = _top_spike(indicators)
                self.spike_tag, self.spike_usual = (top.tag, top.baseline_share) if top else ("", 0)
        return alerts

    def _spike(self, indicators: IndicatorSnapshot) -> Reading:
        """A tag at ``SPIKE_FACTOR`` times its usual share; once fired, the same tag at that
        factor times the usual share it had when it fired, with as many tickets as a spike
        needs (a tag usually absent would otherwise hold it for good)."""
        if not self.machines[DRIVER_SPIKE].firing:
            top = _top_spike(indicators)
            if top is None:
                return Reading(False, 0.0, 0.0)
            return Reading(True, top.recent_share, top.baseline_share * SPIKE_FACTOR)
        tag = next((d for d in indicators.drivers if d.tag == self.spike_tag), None)
        limit = self.spike_usual * SPIKE_FACTOR
        if tag is None:
            return Reading(False, 0.0, limit)
        holds = tag.recent >= SPIKE_MIN_TICKETS and tag.recent_share >= limit
        return Reading(holds, tag.recent_share, limit)

    def _usual_rise(self, at_us: int, breached: int, policy: RulesPolicy) -> int:
        """The median rise of tickets past an SLA over the same hour of the week, on the
        team's clock, in the last ``WAVE_WEEKS`` weeks (0 where none rose, or before a week
        is known): a team that works no weekends breaches every Monday morning, and that
        is its rhythm, not a wave. At a whole hour."""
        hour = at_us // HOUR_US
        span = max(1, policy.wave_seconds // 3600)
        self.breached_hours[hour] = breached
        forget_before(self.breached_hours, hour - WAVE_WEEKS * WEEK_HOURS - span - 1)
        rises = [
            self.breached_hours[then] - self.breached_hours[then - span]
            for weeks in range(1, WAVE_WEEKS + 1)
            if (then := _weeks_back(hour, weeks, policy.timezone)) in self.breached_hours
            and then - span in self.breached_hours
        ]
        return max(0, int(statistics.median(rises))) if rises else 0

    def _step(
        self, readings: dict[str, Reading], at_us: int, policy: RulesPolicy, spans: RuleSpans
    ) -> list[AlertTransition]:
        """Advance each rule's state machine by its reading; the transitions it makes."""
        alerts = []
        for rule, reading in readings.items():
            band = rule in (BACKLOG_ABOVE_BAND, BACKLOG_BELOW_BAND)
            alert = self.machines[rule].evaluate(
                reading.fires,
                not reading.fires,
                at_us,
                reading.value,
                reading.threshold,
                max(spans.sustain, spans.band) if band else spans.sustain,
                spans.clear,
                policy.hold_seconds * US_PER_SECOND,
            )
            if alert is not None:
                alerts.append(alert)
        return alerts


def _top_spike(indicators: IndicatorSnapshot) -> Driver | None:
    return max(indicators.spiking, key=lambda d: d.recent_share, default=None)


def _remember(history: deque[Any], value: Any, span: int) -> Any:
    """Append ``value``; the value ``span`` boundaries ago, once the history reaches it."""
    history.append(value)
    while len(history) > span + 1:
        history.popleft()
    return history[0] if len(history) == span + 1 else None


def _rising(indicators: IndicatorSnapshot, previous: float | None, policy: RulesPolicy) -> Reading:
    p90 = indicators.first_response_p90_seconds
    if not previous:
        return Reading(False, p90, 0.0)
    limit = previous * (1 + policy.ttfmr_rise)
    return Reading(indicators.responses >= policy.min_volume and p90 > limit, p90, limit)


def capacity_days(flow: FlowSnapshot, window: str) -> float | None:
    """Open tickets in days of recent outflow: open / (outflow over the window per day)."""
    outflow = flow.outflow.get(window, 0)
    days = parse_duration(window) / 86400
    return flow.open / (outflow / days) if outflow else None


@lru_cache(maxsize=4096)
def _weeks_back(hour: int, weeks: int, timezone: str) -> int:
    """The hour (since the epoch) that shows the same wall-clock time ``weeks`` weeks
    before ``hour`` in ``timezone``: 168 hours back but where a clock change lies between."""
    local = from_us(hour * HOUR_US).astimezone(ZoneInfo(timezone))
    return to_us((local - timedelta(weeks=weeks)).astimezone(UTC)) // HOUR_US
