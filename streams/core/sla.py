"""SLA clocks: targets per priority (and queue), business hours, pauses, and their states.

A ticket has two clocks, first response and resolution. Each accrues business time
while it runs and is compared with its target: ``at_risk`` once no more than the
at-risk share of the target remains, ``breached`` once the target is used up, ``met``
when the reply (first response) or the resolution comes before that. A state is a
pure function of the elapsed business time, so it can be computed at any instant.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from streams.core.timeline import US_PER_SECOND, from_us, to_us

HOUR_US = 3600 * US_PER_SECOND
DAY_US = 24 * HOUR_US


class Target(StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


TARGETS = tuple(Target)  # iterating an enum class is slow, and these loops are hot


class SlaState(StrEnum):
    AT_RISK = "at_risk"
    BREACHED = "breached"
    MET = "met"


@dataclass(frozen=True, slots=True)
class Calendar:
    """Working hours [start, end) on some weekdays (0 = Monday) in one time zone.

    ``holidays`` are dates in the calendar's own time zone on which no hour is worked,
    whatever their weekday (config.py fills them from dates and a country's holidays).
    """

    timezone: str = "UTC"
    weekdays: frozenset[int] = frozenset(range(5))
    start: time = time(9)
    end: time = time(17)
    holidays: frozenset[date] = frozenset()

    def is_business_day(self, day: date) -> bool:
        """Whether ``day`` (a date in the calendar's time zone) has working hours."""
        return day.weekday() in self.weekdays and day not in self.holidays

    @property
    def day_us(self) -> int:
        """One business day: the working hours of one calendar day."""
        span = datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)
        return span // timedelta(microseconds=1)

    def working_us(self, start_us: int, end_us: int) -> int:
        """Business time in [start_us, end_us)."""
        total = 0
        for open_us, close_us in self._shifts(start_us):
            if open_us >= end_us:
                break
            total += max(0, min(close_us, end_us) - max(open_us, start_us))
        return total

    def advance(self, start_us: int, business_us: int) -> int:
        """The first instant by which ``business_us`` of business time is used from ``start_us``."""
        if business_us <= 0:
            return start_us
        left = business_us
        for open_us, close_us in self._shifts(start_us):
            begin = max(open_us, start_us)
            if begin + left <= close_us:
                return begin + left
            left -= max(0, close_us - begin)
        raise AssertionError("unreachable: shifts never end")

    def _shifts(self, start_us: int) -> Iterator[tuple[int, int]]:
        """Working intervals in UTC microseconds, from the day holding ``start_us`` on."""
        zone = ZoneInfo(self.timezone)
        day = from_us(start_us).astimezone(zone).date()
        if not self.weekdays:
            raise ValueError("a calendar needs at least one working weekday")
        while True:
            if self.is_business_day(day):
                opens = to_us(datetime.combine(day, self.start, zone))
                closes = to_us(datetime.combine(day, self.end, zone))
                if closes > start_us:
                    yield opens, closes
            day += timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Targets:
    first_response_us: int
    resolution_us: int

    def of(self, target: Target) -> int:
        return self.first_response_us if target is Target.FIRST_RESPONSE else self.resolution_us


def _targets(first_response_h: float, resolution_days: float) -> Targets:
    return Targets(int(first_response_h * HOUR_US), int(resolution_days * DAY_US))


# Resolution targets are in business days: 24 h without a calendar (see SlaPolicy).
DEFAULT_TARGETS = {
    "P0": Targets(10 * 60 * US_PER_SECOND, 2 * HOUR_US),
    "P1": _targets(0.5, 1),
    "P2": _targets(4, 3),
    "P3": _targets(24, 5),
}


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """Targets per priority, optional per-queue overrides, a calendar and pausing statuses.

    Durations are business time. Without a calendar every hour counts and a business
    day is 24 h; with one, only working hours count and a day in a target (``DAY_US``)
    stands for one calendar day's working hours.
    """

    by_priority: dict[str, Targets] = field(default_factory=lambda: dict(DEFAULT_TARGETS))
    by_queue: dict[str, dict[str, Targets]] = field(default_factory=dict)
    at_risk_share: float = 0.25
    calendar: Calendar | None = None
    pause_statuses: frozenset[str] = frozenset({"pending", "on_hold"})

    def targets(self, queue: str, priority: str) -> Targets:
        chosen = self.by_queue.get(queue, {}).get(priority) or self.by_priority.get(priority)
        return self._in_business_time(chosen or DEFAULT_TARGETS["P3"])

    def working_us(self, start_us: int, end_us: int) -> int:
        if end_us <= start_us:
            return 0
        return self.calendar.working_us(start_us, end_us) if self.calendar else end_us - start_us

    def advance(self, start_us: int, business_us: int) -> int:
        if self.calendar is None:
            return start_us + business_us
        return self.calendar.advance(start_us, business_us)

    def _in_business_time(self, targets: Targets) -> Targets:
        if self.calendar is None:
            return targets
        scale = self.calendar.day_us
        return Targets(
            _scale_days(targets.first_response_us, scale), _scale_days(targets.resolution_us, scale)
        )


def _scale_days(duration_us: int, day_us: int) -> int:
    """Whole days become business days; the rest stays as hours of work."""
    days, rest = divmod(duration_us, DAY_US)
    return days * day_us + rest


@dataclass(frozen=True, slots=True)
class TargetClock:
    """One clock as of an instant: business time used, whether it runs, a final state."""

    elapsed_us: int = 0
    running: bool = False
    final: SlaState | None = None

    def state(self, target_us: int, at_risk_share: float) -> SlaState | None:
        if self.final is not None:
            return self.final
        if self.elapsed_us >= target_us:
            return SlaState.BREACHED
        if self.elapsed_us >= at_risk_threshold(target_us, at_risk_share):
            return SlaState.AT_RISK
        return None


def at_risk_threshold(target_us: int, share: float) -> int:
    return target_us - int(target_us * share)


FlatTargetClock = tuple[int, bool, SlaState | None]
FlatClock = tuple[int, Targets, FlatTargetClock, FlatTargetClock]
# Every field of a TargetClock, in order, as a tuple: one C call, and no field left out.
_target_clock_values = operator.attrgetter(*(f.name for f in fields(TargetClock)))


@dataclass(frozen=True, slots=True)
class Clock:
    """Both clocks of a ticket as of ``at_us``, with the targets that apply then."""

    at_us: int
    targets: Targets
    response: TargetClock = TargetClock()
    resolution: TargetClock = TargetClock()

    def flat(self) -> FlatClock:
        """The clock as plain values: every open ticket of every scope holds one, and
        writing a scope's state costs per object (see ``codec`` and ``aging``)."""
        response = _target_clock_values(self.response)
        return self.at_us, self.targets, response, _target_clock_values(self.resolution)

    @classmethod
    def of_flat(
        cls, at_us: int, targets: Targets, response: FlatTargetClock, resolution: FlatTargetClock
    ) -> Clock:
        return cls(at_us, targets, TargetClock(*response), TargetClock(*resolution))

    def of(self, target: Target) -> TargetClock:
        return self.response if target is Target.FIRST_RESPONSE else self.resolution

    def advanced(self, to_us: int, policy: SlaPolicy) -> Clock:
        """The same clocks later, with no event in between (never earlier)."""
        if to_us <= self.at_us:
            return self
        return Clock(
            to_us,
            self.targets,
            _accrue(self.response, self.at_us, to_us, policy),
            _accrue(self.resolution, self.at_us, to_us, policy),
        )

    def states(self, policy: SlaPolicy) -> dict[Target, SlaState | None]:
        share = policy.at_risk_share
        return {t: self.of(t).state(self.targets.of(t), share) for t in TARGETS}

    def due_us(self, target: Target, policy: SlaPolicy) -> int:
        """When the target is (or was, had it kept running) used up; now if already past."""
        left = self.targets.of(target) - self.of(target).elapsed_us
        return policy.advance(self.at_us, left) if left > 0 else self.at_us

    def next_crossing(self, target: Target, policy: SlaPolicy) -> int | None:
        """The instant the running clock reaches its next state, if it runs."""
        clock = self.of(target)
        if not clock.running or clock.final is not None:
            return None
        goal = self.targets.of(target)
        risk = at_risk_threshold(goal, policy.at_risk_share)
        threshold = risk if clock.elapsed_us < risk else goal
        if clock.elapsed_us >= goal:
            return None
        return policy.advance(self.at_us, threshold - clock.elapsed_us)


@dataclass(frozen=True, slots=True)
class Reading:
    """A clock as of an instant: its states, and when each running clock next changes one."""

    clock: Clock  # advanced to the instant
    states: dict[Target, SlaState | None]
    crossings: tuple[int, ...]


def read(clock: Clock, at_us: int, policy: SlaPolicy) -> Reading:
    advanced = clock.advanced(at_us, policy)
    crossings = (advanced.next_crossing(target, policy) for target in TARGETS)
    return Reading(advanced, advanced.states(policy), tuple(c for c in crossings if c is not None))


def as_flat(clock: Clock | FlatClock | None) -> FlatClock | None:
    """A transition's clock as the plain values it carries; a Clock object where it was
    written before transitions carried them (held-back state, scope deltas in flight)."""
    return clock.flat() if isinstance(clock, Clock) else clock


def _accrue(clock: TargetClock, start_us: int, end_us: int, policy: SlaPolicy) -> TargetClock:
    if not clock.running or clock.final is not None:
        return clock
    elapsed = clock.elapsed_us + policy.working_us(start_us, end_us)
    return TargetClock(elapsed, clock.running, clock.final)  # not replace(): twice as slow


def settle_clock(
    clock: Clock,
    policy: SlaPolicy,
    *,
    open_: bool,
    paused: bool,
    replied: bool,
    targets: Targets,
) -> Clock:
    """The clocks right after an event, given the ticket's state after it.

    The first-response clock stops for good at the first meaningful reply; the
    resolution clock stops while the ticket is done and resumes on a reopen; both
    stand still while paused. A stopped clock keeps the state it stopped in; a
    re-target (priority or queue change) keeps the time used and moves the goal.
    """
    response, resolution = clock.response, clock.resolution
    if replied and response.final is None:
        response = _stopped(response, targets.first_response_us, policy)
    if not open_ and resolution.final is None:
        resolution = _stopped(resolution, targets.resolution_us, policy)
    elif open_ and resolution.final is not None:
        resolution = TargetClock(resolution.elapsed_us, resolution.running)
    running = open_ and not paused
    return Clock(
        clock.at_us,
        targets,
        response=TargetClock(
            response.elapsed_us, running and response.final is None, response.final
        ),
        resolution=TargetClock(resolution.elapsed_us, running, resolution.final),
    )


def _stopped(clock: TargetClock, target_us: int, policy: SlaPolicy) -> TargetClock:
    breached = clock.state(target_us, policy.at_risk_share) is SlaState.BREACHED
    return TargetClock(clock.elapsed_us, False, SlaState.BREACHED if breached else SlaState.MET)


@dataclass(frozen=True, slots=True)
class SlaChange:
    """One ``ticket.sla`` record: a clock entered ``state`` at ``as_of_us``."""

    ticket_id: str
    target: Target
    state: SlaState
    due_us: int
    as_of_us: int
