"""The headline rule, ``inflow_above_outflow``: it fires once per structural imbalance, when
arrivals outrun what the team closes, and not with the weekly rhythm of a team that keeps up.

Three readings, taken at whole hours of event time from the flow snapshots (the same at any
step), each in tickets per ``span`` (24 h by default):

- **now**: the net inflow of the last ``span`` (inflow minus outflow, transfers counted)
  against the same hours of the week in up to ``history`` earlier weeks. Each earlier week
  has its own mean daily net removed first, so what it contributes is the shape of a
  balanced week (Mondays heavy, weekends unworked); the median over the weeks leaves out one
  that was itself disturbed. A week in which an incident fired and resolved is passed over
  (looking back up to twice ``history``): a surge of a few days raises its week's mean, and
  the rest of that week would read as a rhythm quieter than the team's. What remains is the
  imbalance of the last ``span``.
- **arrivals**: the evidence, hour by hour, that more tickets arrive than usual (a CUSUM
  of the log-likelihood ratio of a surge of ``surge_size`` against the usual, Poisson
  arrivals). The usual arrivals of an hour are the same weekday's arrivals in up to
  ``history`` earlier weeks, shared out over the day as the hours of the day shared the
  arrivals of those weeks. A surge shows here first: arrivals alone carry half the Poisson
  noise of arrivals and closures together, a team with room closes more while it lasts,
  which hides part of it from the net, and the evidence of each hour adds up from the
  first hour of the surge, where a day's window dilutes it with the hours before. It fires
  at ``surge_evidence`` (``e`` to that power times likelier a surge than the usual), and
  only while the imbalance now is above ``clear_share`` of capacity: more arrivals that the
  team absorbs are no imbalance (while the rhythm is still a first week's, a backlog that
  grows at all by as much counts too).
- **week**: the net inflow of the capacity window (7 d) scaled to ``span``: slow, but it
  sees a small imbalance that lasts (one percent more a week adds up).

The two net readings fire at the larger of an effect size (a share of the team's capacity:
its outflow over the capacity window) and a multiple of their Poisson noise (the square
root of the tickets that came and went; more of it for the last span alone, the reading
looked at most often), so a small queue needs a clearer signal than the whole backlog;
the evidence of the arrivals needs more hours of a small queue too. The rule fires once
one has fired at ``confirm`` whole hours in a row, and resolves once the imbalance now has
stayed at or below ``clear_share`` of capacity for ``clear_after``. It decides nothing until
``warm_up`` after the scope's first hour.

Every decision is a function of the emitted snapshots: ``report`` and the stream agree.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from streams.core.alerts import ARRIVALS_READING, INFLOW_ABOVE_OUTFLOW, AlertState, AlertTransition
from streams.core.flow import FlowSnapshot
from streams.core.timeline import forget_before

HOUR_US = 3_600_000_000
NET, ARRIVALS, WEEK = "net", ARRIVALS_READING, "week"  # the readings
DAY_HOURS = 24
WEEK_HOURS = 7 * DAY_HOURS


@dataclass(frozen=True, slots=True)
class CrossingRule:
    """The settings of the rule; durations in hours."""

    span: str = "24h"  # a configured window: the imbalance now
    capacity_window: str = "7d"  # a configured window: capacity and the imbalance of the week
    span_hours: int = 24
    capacity_hours: int = WEEK_HOURS
    history_weeks: int = 3
    spans: int = 3  # the imbalance now is read over the last one, two and three spans
    fire_share: float = 0.25  # of capacity per span, the least imbalance now that fires
    fire_z: float = 3.0
    # The last span alone: read every hour, it is looked at most often and is the noisiest
    # against its effect (a busy day of a queue at its capacity reached 3 of them).
    span_z: float = 4.0
    hour_window: str = "1h"  # a configured window: the arrivals of each hour
    surge_size: float = 0.5  # of the usual arrivals: the surge the arrivals reading looks for
    surge_evidence: float = 10.0  # its log-likelihood ratio at which it fires
    week_share: float = 0.10  # of capacity, the least imbalance over the week that fires
    week_z: float = 3.0
    clear_share: float = 0.05  # of capacity: at or below, the imbalance is over
    confirm_hours: int = 2
    clear_hours: int = 3
    warm_up_hours: int = WEEK_HOURS
    min_volume: int = 10  # tickets per span, in and out, below which nothing is decided


@dataclass(frozen=True, slots=True)
class Reading:
    """What the rule sees at one whole hour, in tickets per span."""

    now: float | None  # None until a week of history
    arrivals: float | None  # per span, the arrivals beyond the usual since they rose, read
    # while the imbalance now grows (None otherwise, or while they have not risen)
    week: float
    capacity: float
    fires_now: bool
    fires_arrivals: bool
    fires_week: bool
    week_above: bool  # the week beyond its level, counted or not yet (its first two weeks)
    unsettled: bool  # the backlog grows while the rhythm is a first week's

    @property
    def fired_by(self) -> str:
        """The reading that fires, the fastest first: the one a firing reports."""
        if self.fires_now:
            return NET
        return ARRIVALS if self.fires_arrivals else WEEK


@dataclass(slots=True)
class Crossing:
    """The rule's state for one scope: what it remembers of each past hour, and where the
    alert stands."""

    scope: str
    first_hour: int | None = None
    # hour: the net inflow of the span and of the week, and the tickets that came and went
    nets: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    firing: bool = False
    fired_at_us: int = 0
    fire_streak: int = 0
    clear_streak: int = 0
    # Which reading fired: the one that says when it is over. After an imbalance of the
    # last day is over, the week still holds it for days: the week may fire again only once
    # its reading has been below its level.
    slow: bool = False
    week_armed: bool = True
    resolved_hour: int | None = None  # the imbalance now is read over spans since then
    # hour: the arrivals of the hour that ended then, from ``counted_since`` on (state
    # written before held the arrivals of the span here: those hours are not read).
    arrived: dict[int, int] = field(default_factory=dict)
    counted_since: int | None = None
    surge: float = 0.0  # the arrivals reading's evidence of a surge, in nats
    day_usual: tuple[int, tuple[float, ...]] | None = None  # a day, its hours' usual arrivals
    # Since the evidence was last at zero (where a surge began, if one did): the hours, their
    # arrivals and their usual arrivals.
    surge_run: tuple[int, int, float] = (0, 0, 0.0)
    # The hours it fired and resolved, of the incidents still within the weeks read: a week
    # it found out of balance shows no rhythm.
    incidents: list[tuple[int, int]] = field(default_factory=list)

    def evaluate(self, snapshot: FlowSnapshot, rule: CrossingRule) -> AlertTransition | None:
        if snapshot.as_of_us % HOUR_US:
            return None
        hour = snapshot.as_of_us // HOUR_US
        if self.first_hour is None:
            self.first_hour = hour
        if self.counted_since is None:
            self.counted_since = hour
        reading = self._read(hour, snapshot, rule)
        if hour - self.first_hour < rule.warm_up_hours:
            return None
        return self._decide(snapshot.as_of_us, reading, rule)

    def _read(self, hour: int, snapshot: FlowSnapshot, rule: CrossingRule) -> Reading:
        """Remember this hour's nets; the reading they give with the earlier weeks."""
        span, week = _net(snapshot, rule.span), _net(snapshot, rule.capacity_window)
        moved = snapshot.inflow[rule.span] + snapshot.outflow[rule.span]
        self.nets[hour] = (span, week, moved)
        # The oldest span read (spans back) needs its weeks too.
        oldest = hour - 2 * rule.history_weeks * WEEK_HOURS - (rule.spans - 1) * rule.span_hours
        forget_before(self.nets, oldest)
        while self.incidents and self.incidents[0][1] < oldest - WEEK_HOURS // 2:
            del self.incidents[0]
        self._count_arrivals(hour, snapshot.inflow[rule.hour_window], rule)
        scale = rule.span_hours / rule.capacity_hours
        capacity = snapshot.outflow[rule.capacity_window] * scale
        week_moved = snapshot.inflow[rule.capacity_window] + snapshot.outflow[rule.capacity_window]
        enough = moved >= rule.min_volume
        excesses = self._excesses(hour, rule)
        now = excesses[0][0] if excesses else None
        # A first week shows arrivals without the closures of tickets opened before the first
        # event (or began with an empty queue): no rhythm to read a backlog's growth against.
        seen = hour - (hour if self.first_hour is None else self.first_hour)
        floor = rule.clear_share * capacity
        growing = enough and now is not None and now > floor
        # Until the week centred on an hour a week back has been seen whole (``_usual_net``),
        # the imbalance now is read against that first week: the backlog growing at all counts
        # as growing too, and keeps what fired from resolving.
        unsettled = enough and seen < WEEK_HOURS // 2 + rule.capacity_hours and span > floor
        # More arrivals than usual matter only while the backlog grows beyond its rhythm.
        rates = self._surge_rates(rule) if growing or unsettled else None
        arrivals = rates[0] if rates is not None else None
        fires_now = growing and _beyond(excesses, rule.fire_share * capacity, rule)
        fires_arrivals = arrivals is not None and self.surge >= rule.surge_evidence
        week_net = week * scale
        level = max(rule.week_share * capacity, rule.week_z * math.sqrt(week_moved) * scale)
        week_above = enough and week_net >= level
        # The week reading waits until its window has passed the first week.
        fires_week = week_above and seen >= 2 * rule.capacity_hours
        return Reading(
            now, arrivals, week_net, capacity, fires_now, fires_arrivals, fires_week, week_above,
            unsettled,
        )  # fmt: skip

    def _count_arrivals(self, hour: int, arrived: int, rule: CrossingRule) -> None:
        """Keep the hour's arrivals and add its evidence of a surge against its usual."""
        self.arrived[hour] = arrived
        forget_before(self.arrived, hour - rule.history_weeks * WEEK_HOURS - DAY_HOURS)
        usual = self._usual_arrivals(hour, rule)
        if usual is None:
            return
        surge = 1.0 + rule.surge_size
        self.surge = max(0.0, self.surge + arrived * math.log(surge) - (surge - 1.0) * usual)
        if self.surge:
            hours, came, expected = self.surge_run
            self.surge_run = (hours + 1, came + arrived, expected + usual)
        else:
            self.surge_run = (0, 0, 0.0)

    def _usual_arrivals(self, hour: int, rule: CrossingRule) -> float | None:
        """The arrivals usual for the hour ending at ``hour`` (hours are named by their end:
        day ``d`` holds hours ``24 d + 1 .. 24 d + 24``). None until a week of whole days has
        been counted."""
        today, offset = divmod(hour - 1, DAY_HOURS)
        if self.day_usual is None or self.day_usual[0] != today:
            self.day_usual = (today, self._usual_day(today, rule))
        usual = self.day_usual[1]
        return usual[offset] if usual else None

    def _usual_day(self, today: int, rule: CrossingRule) -> tuple[float, ...]:
        """Each hour's usual arrivals on ``today``: the same weekday's arrivals in the earlier
        weeks counted (up to ``history``), shared out as the hours of the day shared the
        arrivals of those weeks. Empty until a week of whole days has been counted."""
        assert self.counted_since is not None
        first_day = -(-(self.counted_since - 1) // DAY_HOURS)
        weeks = min(rule.history_weeks, (today - first_day) // 7)
        days = range(today - 7 * weeks, today)
        counts = [[self.arrived.get(d * DAY_HOURS + h, 0) for h in range(1, 25)] for d in days]
        by_hour = [sum(hour) for hour in zip(*counts, strict=True)]
        counted = sum(by_hour)
        if weeks < 1 or not counted:
            return ()
        same_day = sum(sum(day) for day in counts[::7]) / weeks  # today's weekday, weeks back
        # At least a tenth of the mean hour: one ticket in an hour that had none is no surge.
        least = counted / len(days) / DAY_HOURS / 10
        # The usual is itself counted from few days: taken one standard deviation high, a
        # small queue in its second week does not read its own noise as a surge.
        same_day += math.sqrt(same_day / weeks)
        return tuple(max(same_day * count / counted, least) for count in by_hour)

    def _surge_rates(self, rule: CrossingRule) -> tuple[float, float] | None:
        """Per span, over the hours since the evidence was last at zero (where a surge began,
        if one did): the arrivals beyond their usual, and the usual. None without such hours."""
        hours, came, usual = self.surge_run
        if not hours:
            return None
        per_span = rule.span_hours / hours
        return (came - usual) * per_span, usual * per_span

    def _excesses(self, hour: int, rule: CrossingRule) -> list[tuple[float, float]]:
        """The net inflow of the last one, two and three spans beyond their usual, each with
        its variance (Poisson: the tickets that came and went, once for now and once over
        the number of weeks the usual is the median of)."""
        excesses: list[tuple[float, float]] = []
        excess = variance = 0.0
        for back in range(rule.spans):
            then = hour - back * rule.span_hours
            if (
                back
                and self.resolved_hour is not None
                and then - rule.span_hours < self.resolved_hour
            ):
                break  # what was over stays over
            known, shapes = self.nets.get(then), self._shapes(then, rule)
            if known is None or not shapes:
                break
            excess += known[0] - statistics.median(shapes)
            variance += known[2] * (1 + 1 / len(shapes))
            excesses.append((excess, variance))
        return excesses

    def _shapes(self, hour: int, rule: CrossingRule) -> list[float]:
        """The same hours of the week in the latest ``history`` earlier weeks without an
        incident (up to twice as many weeks back), only where a whole span had been seen."""
        first = hour if self.first_hour is None else self.first_hour
        shapes = []
        for weeks in range(1, 2 * rule.history_weeks + 1):
            then = hour - weeks * WEEK_HOURS
            usual = self._usual_net(then, first, rule)
            if usual is not None and then - first >= rule.span_hours and self._calm(then):
                shapes.append(usual)
            if len(shapes) == rule.history_weeks:
                break
        return shapes

    def _calm(self, hour: int) -> bool:
        """Whether no resolved incident overlaps the week centred on ``hour`` (the week whose
        mean ``_usual_net`` removes): an imbalance of a few days, spread over its week by that
        mean, would make the rest of the week look quieter than its rhythm."""
        start, end = hour - WEEK_HOURS // 2, hour + WEEK_HOURS // 2
        return all(resolved < start or fired > end for fired, resolved in self.incidents)

    def _usual_net(self, hour: int, first: int, rule: CrossingRule) -> float | None:
        """What the span ending at ``hour`` of an earlier week adds to the usual: its net
        with its week's mean removed (the mean over what had been seen of the week centred
        there, known half a week later)."""
        then, around = self.nets.get(hour), self.nets.get(hour + WEEK_HOURS // 2)
        if then is None or around is None:
            return None
        seen = min(rule.capacity_hours, hour + WEEK_HOURS // 2 - first)
        return then[0] - around[1] * rule.span_hours / seen

    def _decide(self, at_us: int, reading: Reading, rule: CrossingRule) -> AlertTransition | None:
        if not reading.week_above:
            self.week_armed = True
        if not self.firing:
            week = reading.fires_week and self.week_armed
            self.fire_streak = (
                self.fire_streak + 1 if reading.fires_now or reading.fires_arrivals or week else 0
            )
            if self.fire_streak < rule.confirm_hours:
                return None
            self.firing, self.fired_at_us, self.fire_streak = True, at_us, 0
            fired_by = reading.fired_by
            self.slow = fired_by == WEEK
            value = {NET: reading.now, ARRIVALS: reading.arrivals}.get(fired_by, reading.week)
            return self._transition(AlertState.FIRING, at_us, value or 0.0, reading, rule, fired_by)
        now = reading.now if reading.now is not None and not self.slow else reading.week
        # While the week still grows past its level, a burst is over only once the backlog
        # drains: a lasting imbalance hovers around its level and would resolve and fire
        # again with the noise.
        ceiling = 0.0 if reading.fires_week and not self.slow else rule.clear_share
        calm = now <= ceiling * reading.capacity and not reading.unsettled
        self.clear_streak = self.clear_streak + 1 if calm else 0
        if self.clear_streak < rule.clear_hours:
            return None
        self.firing, self.clear_streak = False, 0
        self.week_armed = not reading.week_above
        self.resolved_hour = at_us // HOUR_US
        self.incidents.append((self.fired_at_us // HOUR_US, self.resolved_hour))
        self.surge, self.surge_run = 0.0, (0, 0, 0.0)  # what was over stays over
        return self._transition(AlertState.RESOLVED, at_us, now, reading, rule)

    def _transition(
        self,
        state: AlertState,
        at_us: int,
        value: float,
        reading: Reading,
        rule: CrossingRule,
        fired_by: str = NET,
    ) -> AlertTransition:
        if fired_by == ARRIVALS:  # the surge it looks for
            rates = self._surge_rates(rule)
            threshold = rule.surge_size * rates[1] if rates is not None else 0.0
        else:
            share = rule.fire_share if state is AlertState.FIRING else rule.clear_share
            threshold = share * reading.capacity
        per_day = DAY_HOURS / rule.span_hours  # what the message and the topic say
        return AlertTransition(
            INFLOW_ABOVE_OUTFLOW,
            self.scope,
            state,
            at_us,
            value * per_day,
            threshold * per_day,
            self.fired_at_us,
            fired_by if fired_by == ARRIVALS else "",
        )


def _beyond(excesses: list[tuple[float, float]], share: float, rule: CrossingRule) -> bool:
    """The last span, the last two, the last three: an imbalance that lasts stands out of
    the noise over more of them; one that is over (the last span calm) does not."""
    for spans, (excess, variance) in enumerate(excesses, 1):
        z = rule.span_z if spans == 1 else rule.fire_z
        if excess >= max(share * spans, z * math.sqrt(variance)):
            return True
    return False


def _net(snapshot: FlowSnapshot, window: str) -> int:
    return (
        snapshot.inflow[window]
        - snapshot.outflow[window]
        + snapshot.transfers_in.get(window, 0)
        - snapshot.transfers_out.get(window, 0)
    )
