"""Alert rules scored against ground truth: what ``flowgauge evaluate`` prints.

Plain functions over the alert transitions of one (rule, scope), in event-time microseconds.
An alert is firing from a firing transition (included) to its resolution (excluded), as
the rule's state machine is at the boundaries in between. A true interval is half-open too:
``[start, end)``.

Definitions:

- an interval is **detected** when the alert is firing at some moment inside it;
- **delay to fire**: from the interval's start to the firing of the first episode that
  overlaps it, *signed*. It is negative when the alert was already firing when the interval
  began: it fired that long before, when nothing was true yet (unless it was inside an
  earlier interval), so that firing is also counted as a false alarm. Clamping it to 0 would
  credit a stale or noisy alert with a perfect detection;
- **delay to resolve**: from the interval's end to the resolution of the last episode that
  overlaps it, signed: negative when the alert resolved while the imbalance was still on
  (it missed the tail); None when that episode is still firing at the end of the run;
- **covered share**: the share of the interval during which the alert was firing;
- **false alarm**: a firing whose moment lies outside every true interval;
- **flap**: a firing resolved within ``flap_us`` (2 hours) of firing;
- **notifications per week**: transitions (firings and resolutions: a team hears of both)
  per week of the run;
- **cold-start firing**: a firing within ``cold_start_us`` (24 hours) of the run's start,
  when the rolling windows are not full yet.

Without truth for a rule and scope only the last four apply (and the firings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streams.core.alerts import AlertState, AlertTransition
from streams.core.timeline import US_PER_SECOND

US_PER_HOUR = 3600 * US_PER_SECOND
US_PER_WEEK = 7 * 24 * US_PER_HOUR


@dataclass(frozen=True, slots=True)
class Interval:
    """A true interval, ``[start_us, end_us)``."""

    start_us: int
    end_us: int


@dataclass(frozen=True, slots=True)
class Episode:
    """One firing and its resolution; ``resolved_us`` None: still firing when the run ended."""

    fired_us: int
    resolved_us: int | None

    def overlaps(self, interval: Interval) -> bool:
        return self.fired_us < interval.end_us and (
            self.resolved_us is None or self.resolved_us > interval.start_us
        )

    def overlap_us(self, interval: Interval) -> int:
        """How long inside ``interval`` the alert was firing."""
        end = (
            interval.end_us if self.resolved_us is None else min(self.resolved_us, interval.end_us)
        )
        return max(0, end - max(self.fired_us, interval.start_us))


@dataclass(frozen=True, slots=True)
class ScoringPolicy:
    flap_us: int = 2 * US_PER_HOUR
    cold_start_us: int = 24 * US_PER_HOUR


@dataclass(frozen=True, slots=True)
class IntervalScore:
    interval: Interval
    fired_us: int | None  # the firing of the first episode overlapping it; None: missed
    resolved_us: int | None  # the resolution of the last one; None: missed or still firing
    covered_us: int  # time inside the interval during which the alert was firing

    @property
    def detected(self) -> bool:
        return self.fired_us is not None

    @property
    def fire_delay_us(self) -> int | None:
        """Signed: negative when the alert was already firing at the interval's start."""
        return None if self.fired_us is None else self.fired_us - self.interval.start_us

    @property
    def resolve_delay_us(self) -> int | None:
        """Signed: negative when the alert resolved before the interval's end."""
        return None if self.resolved_us is None else self.resolved_us - self.interval.end_us

    @property
    def still_firing(self) -> bool:
        """Detected, and the alert that covered it was still firing at the end of the run."""
        return self.detected and self.resolved_us is None

    @property
    def covered_share(self) -> float:
        return self.covered_us / (self.interval.end_us - self.interval.start_us)


@dataclass(frozen=True, slots=True)
class RuleScore:
    """The score of one rule on one scope over a run."""

    transitions: int
    episodes: tuple[Episode, ...]
    flaps: int
    cold_start_firings: int
    notifications_per_week: float
    intervals: tuple[IntervalScore, ...] | None  # None: no truth for this rule and scope
    false_alarms: int | None

    @property
    def firings(self) -> int:
        return len(self.episodes)

    @property
    def detected(self) -> int | None:
        if self.intervals is None:
            return None
        return sum(1 for score in self.intervals if score.detected)


def episodes_of(transitions: Sequence[AlertTransition]) -> list[Episode]:
    """The firing episodes of one rule and scope; its transitions alternate, firing first,
    in time order."""
    episodes: list[Episode] = []
    fired: int | None = None
    previous: AlertTransition | None = None
    for transition in transitions:
        if previous is not None:
            if (transition.rule, transition.scope) != (previous.rule, previous.scope):
                raise ValueError("transitions of more than one rule and scope")
            if transition.at_us < previous.at_us:
                raise ValueError("transitions out of time order")
        previous = transition
        if transition.state is AlertState.FIRING:
            if fired is not None:
                raise ValueError(f"a second firing at {transition.at_us} without a resolution")
            fired = transition.at_us
        else:
            if fired is None:
                raise ValueError(f"a resolution at {transition.at_us} without a firing")
            episodes.append(Episode(fired, transition.at_us))
            fired = None
    if fired is not None:
        episodes.append(Episode(fired, None))
    return episodes


def check_intervals(intervals: Sequence[Interval], start_us: int, end_us: int) -> None:
    """Raise ValueError unless the intervals are non-empty, in order, disjoint and in the run."""
    previous_end = start_us
    for interval in intervals:
        if interval.end_us <= interval.start_us:
            raise ValueError(f"an interval that ends at or before its start: {interval}")
        if interval.start_us < previous_end:
            raise ValueError(f"an interval out of order, overlapping or before the run: {interval}")
        previous_end = interval.end_us
    if previous_end > end_us:
        raise ValueError("an interval ends after the run")


def score_interval(interval: Interval, episodes: Sequence[Episode]) -> IntervalScore:
    covering = [episode for episode in episodes if episode.overlaps(interval)]
    if not covering:
        return IntervalScore(interval, None, None, 0)
    return IntervalScore(
        interval,
        covering[0].fired_us,
        covering[-1].resolved_us,
        sum(episode.overlap_us(interval) for episode in covering),
    )


def score(
    transitions: Sequence[AlertTransition],
    start_us: int,
    end_us: int,
    truth: Sequence[Interval] | None,
    policy: ScoringPolicy | None = None,
) -> RuleScore:
    """Score one rule on one scope over the run ``[start_us, end_us)``; ``truth`` None: no
    ground truth for it (only flaps, firings and notifications apply)."""
    if end_us <= start_us:
        raise ValueError("a run that ends at or before its start")
    policy = policy or ScoringPolicy()
    episodes = episodes_of(transitions)
    flaps = sum(
        1
        for e in episodes
        if e.resolved_us is not None and e.resolved_us - e.fired_us <= policy.flap_us
    )
    cold = sum(1 for e in episodes if e.fired_us < start_us + policy.cold_start_us)
    per_week = len(transitions) / ((end_us - start_us) / US_PER_WEEK)
    if truth is None:
        return RuleScore(len(transitions), tuple(episodes), flaps, cold, per_week, None, None)
    check_intervals(truth, start_us, end_us)
    scores = tuple(score_interval(interval, episodes) for interval in truth)
    false_alarms = sum(
        1 for e in episodes if not any(i.start_us <= e.fired_us < i.end_us for i in truth)
    )
    return RuleScore(len(transitions), tuple(episodes), flaps, cold, per_week, scores, false_alarms)
