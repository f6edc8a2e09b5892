"""The drain forecast: when a scope's backlog is back in its healthy band at this pace, and
what it would take to be there by a target.

The pace is the scope's own recent days. A scope keeps, per day of the team's calendar,
the tickets that came in and went out (transfers counted, so the level follows) and the
level at the day's end (``DayHistory``). At a whole hour the forecast samples the days
after today, each from the same weekday of the last ``weeks`` weeks, inflow and outflow
separately: outflow only from days that ended with tickets open (a quiet day closed what
there was, not what the team could), holidays and other days off from days off. Each of
``paths`` sampled futures gives the first day the backlog is at or under the band's upper
edge (in tickets, from the capacity at ``as_of``, held over the horizon).

The futures depend on the scope, today's date and the history before today only: they
are sampled once a day (seeded from scope and date, so ``report``, the stream and any
replay agree) and each hour reads them against its own level and band. Today's remaining
hours are not sampled: the level at ``as_of`` stands for today's end.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from functools import lru_cache
from itertools import accumulate
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from streams.core.flow import FlowSnapshot
from streams.core.sla import Calendar
from streams.core.timeline import US_PER_SECOND, from_us, to_us

HOUR_US = 3600 * US_PER_SECOND
DAY_US = 24 * HOUR_US
QUANTILES = (0.5, 0.85, 0.95)
TARGET_QUANTILE = 0.85


@dataclass(frozen=True, slots=True)
class Target:
    """Back in band within ``business_days`` business days, or by the end of ``by``."""

    business_days: int | None = 10
    by: date | None = None


@dataclass(frozen=True, slots=True)
class ForecastPolicy:
    weeks: int = 6  # of history sampled
    min_days: int = 14  # fewer whole days seen: insufficient history
    paths: int = 500  # 1000 cost a worker a third of its rate (BENCHMARKS.md, "Planning")
    horizon_days: int = 90  # calendar days; beyond, "not within the horizon"
    reported_days: int = 14  # p_in_band_d1 .. d14, business days
    band_high_days: float = 3.0  # the band's upper edge, in days of capacity
    capacity_window: str = "7d"
    capacity_window_us: int = 7 * DAY_US
    target: Target = Target()
    targets: dict[str, Target] = field(default_factory=dict)  # per queue name
    calendar: Calendar | None = None

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.calendar.timezone if self.calendar else "UTC")

    def business_day(self, day: date) -> bool:
        return self.calendar.is_business_day(day) if self.calendar else True

    def target_of(self, scope: str) -> Target:
        kind, _, name = scope.partition(":")
        return self.targets.get(name, self.target) if kind == "queue" else self.target


@dataclass(slots=True)
class DayHistory:
    """A scope's whole days: date ordinal -> [in, out, level at the day's end]."""

    days: dict[int, list[int]] = field(default_factory=dict)
    day: int | None = None  # the ordinal of the day the last boundary fell in
    day_end_us: int = 0  # that day's end (local midnight, in UTC microseconds)
    first: int | None = None  # the scope's first day when seen only in part: never sampled

    def add(self, snapshot: FlowSnapshot, zone: ZoneInfo, keep_days: int, step_us: int) -> None:
        """Count one boundary's step: it ends in ``(as_of - step, as_of]``, so a boundary at
        midnight closes the day before."""
        if self.day is None or snapshot.as_of_us > self.day_end_us:
            local = from_us(snapshot.as_of_us - 1).astimezone(zone).date()
            if self.day is None and snapshot.as_of_us - step_us > _midnight_after(
                local - timedelta(days=1), zone
            ):
                self.first = local.toordinal()  # the scope's first step began after midnight
            self.day = local.toordinal()
            self.day_end_us = _midnight_after(local, zone)
            for old in [d for d in self.days if d <= self.day - keep_days]:
                del self.days[old]
        counts = self.days.setdefault(self.day, [0, 0, 0])
        counts[0] += snapshot.step_in
        counts[1] += snapshot.step_out
        counts[2] = snapshot.open

    def whole_days(self, today: int, weeks: int) -> dict[int, tuple[int, int, int]]:
        """The whole days of the last ``weeks`` weeks before ``today``, as far as seen."""
        first = today - 7 * weeks
        return {
            d: (c[0], c[1], c[2])
            for d, c in self.days.items()
            if first <= d < today and d != self.first
        }


@dataclass(frozen=True, slots=True)
class Forecast:
    """What ``backlog.forecast`` says of one scope as of one whole hour."""

    as_of_us: int
    scope: str
    open: int
    band_tickets: int
    days_sampled: int
    sufficient: bool
    p_in_band: tuple[float, ...] = ()  # by business day 1, 2, ...
    in_band_by: tuple[date | None, ...] = ()  # per QUANTILES, None: not within the horizon
    closes_needed_per_day: int | None = None  # extra closes per business day, at 85%
    inflow_reduction_per_day: int | None = None  # fewer arrivals per day, at 85%
    target_by: date | None = None
    target_status: str | None = None  # met (in band now), open, missed (no business day left)
    # The assumptions, as the record states them.
    weeks: int = 0
    paths: int = 0
    horizon_days: int = 0
    band_high_days: float = 0.0
    timezone: str = "UTC"  # the team's: the days and dates above are its


def band_tickets(flow: FlowSnapshot, policy: ForecastPolicy) -> int:
    """The band's upper edge in tickets: ``band_high_days`` of the capacity at ``as_of``
    (outflow over the capacity window per day), exactly, rounded down."""
    outflow = flow.outflow.get(policy.capacity_window, 0)
    edge = Fraction(policy.band_high_days) * outflow * DAY_US / policy.capacity_window_us
    return math.floor(edge)


@dataclass(frozen=True, slots=True)
class Horizon:
    """The days after today: their dates, and which of them are business days."""

    dates: tuple[date, ...]
    business: tuple[int, ...]  # calendar day index (1-based) of business day 1, 2, ...


def forecast(flow: FlowSnapshot, history: DayHistory, policy: ForecastPolicy) -> Forecast | None:
    """The forecast at a whole hour of event time; None between whole hours."""
    if flow.as_of_us % HOUR_US:
        return None
    today = from_us(flow.as_of_us).astimezone(policy.timezone).date()
    days = history.whole_days(today.toordinal(), policy.weeks)
    short = Forecast(
        flow.as_of_us, flow.scope, flow.open, band_tickets(flow, policy), len(days), False,
        weeks=policy.weeks, paths=policy.paths, horizon_days=policy.horizon_days,
        band_high_days=policy.band_high_days, timezone=policy.timezone.key,
    )  # fmt: skip
    if len(days) < policy.min_days:
        return short
    # An hour whose inputs are the last hour's (a quiet night, a gap in a replay) has its
    # answer: the same, as of now.
    inputs = (today.toordinal(), flow.open, short.band_tickets, tuple(days.items()))
    known = DRAWN.answers.get(flow.scope)
    if known is not None and known[0] == inputs and known[1] is policy:
        return replace(known[2], as_of_us=flow.as_of_us)
    answer = _sufficient(flow, short, days, today, policy)
    DRAWN.answers[flow.scope] = (inputs, policy, answer)
    return answer


def _sufficient(
    flow: FlowSnapshot,
    short: Forecast,
    days: dict[int, tuple[int, int, int]],
    today: date,
    policy: ForecastPolicy,
) -> Forecast:
    horizon = _horizon(today, policy.horizon_days, policy.calendar)
    target = policy.target_of(flow.scope)
    target_day = _target_day(target, horizon)
    target_by = horizon.dates[target_day - 1] if target_day else target.by
    reported = horizon.business[: policy.reported_days]
    if flow.open <= short.band_tickets:
        return replace(
            short, sufficient=True, p_in_band=(1.0,) * len(reported),
            in_band_by=(today,) * len(QUANTILES), closes_needed_per_day=0,
            inflow_reduction_per_day=0, target_by=target_by, target_status="met",
        )  # fmt: skip
    pools = DRAWN.pools_of(flow.scope, days, horizon, policy)
    drawn = DRAWN.get(flow.scope, today.toordinal(), pools, policy.paths, target_day)
    need = short.band_tickets - flow.open  # in band once a path's net comes down this far
    closes, fewer = _effort(drawn, need, horizon, target_day) if target_day else (None, None)
    shares = drawn.shares_by(need)
    return replace(
        short, sufficient=True,
        p_in_band=tuple(shares[day - 1] for day in reported),
        in_band_by=tuple(_date_at(shares, q, horizon) for q in QUANTILES),
        closes_needed_per_day=closes, inflow_reduction_per_day=fewer, target_by=target_by,
        target_status="open" if target_day else "missed",
    )  # fmt: skip


@lru_cache(maxsize=64)
def _horizon(today: date, days: int, calendar: Calendar | None) -> Horizon:
    dates = tuple(today + timedelta(days=k) for k in range(1, days + 1))
    business = tuple(
        k for k, d in enumerate(dates, 1) if calendar is None or calendar.is_business_day(d)
    )
    return Horizon(dates, business)


def _target_day(target: Target, horizon: Horizon) -> int:
    """The calendar day index of the target's last business day; 0 when none is left."""
    if target.by is None:
        wanted = target.business_days or 0
        return horizon.business[wanted - 1] if 0 < wanted <= len(horizon.business) else 0
    left = [k for k in horizon.business if horizon.dates[k - 1] <= target.by]
    return left[-1] if left else 0


@dataclass(frozen=True, slots=True)
class Pool:
    """What one horizon day may take: every (in, out) pair of the history days it samples
    from, as the net and the inflow of each, so one draw samples both independently."""

    nets: tuple[int, ...]
    ins: tuple[int, ...]


def _pools(
    days: dict[int, tuple[int, int, int]], horizon: Horizon, policy: ForecastPolicy
) -> tuple[Pool, ...]:
    """Per day of the horizon, the pairs it may take."""

    def kind(day: date) -> tuple[bool, int]:
        return policy.business_day(day), day.weekday()

    by_kind: dict[tuple[bool, int], list[int]] = {}
    for ordinal in sorted(days):
        by_kind.setdefault(kind(date.fromordinal(ordinal)), []).append(ordinal)
    business = set(horizon.business)
    made: dict[tuple[bool, int], Pool] = {}
    pools = []
    for index, day in enumerate(horizon.dates, 1):
        wanted = (index in business, day.weekday())
        if wanted not in made:
            chosen = by_kind.get(wanted) or sorted(
                o for k, found in by_kind.items() if k[0] == wanted[0] for o in found
            ) or sorted(days)  # fmt: skip
            ins = [days[o][0] for o in chosen]
            busy = [days[o][1] for o in chosen if days[o][2] > 0]
            outs = busy or [days[o][1] for o in chosen]
            pairs = [(i - o, i) for i in ins for o in outs]
            made[wanted] = Pool(tuple(net for net, _ in pairs), tuple(i for _, i in pairs))
        pools.append(made[wanted])
    return tuple(pools)


Paths = npt.NDArray[np.int64]  # one row per day, one column per path


@dataclass(frozen=True, slots=True)
class Futures:
    """The sampled futures of one scope and day, kept as every hour of the day reads them.

    ``lowest``: per day of the horizon, the lowest cumulative net of every path so far.
    ``early`` and ``arrivals``: per day up to the target, the cumulative net and the day's
    inflow of every path."""

    lowest: Paths
    early: Paths
    arrivals: Paths
    most_arrivals: int = 0  # of any path on any day to the target
    # Where each search starts: its last answer (yesterday's at first, see ``Drawn``).
    _last: dict[tuple[str, tuple[int, ...]], int] = field(default_factory=dict)

    def shares_by(self, need: int) -> list[float]:
        """Per day of the horizon, the share of paths whose net has come down to ``need``
        by its end (first passage: never falling)."""
        paths = self.lowest.shape[1]
        return [int(count) / paths for count in np.count_nonzero(self.lowest <= need, axis=1)]

    def least_effort(self, how: str, pace: tuple[int, ...], need: int) -> int | None:
        """The least whole effort such that at least 85% of the paths, eased by it, come
        down to ``need`` on some day up to the target: ``how`` is "closes" (the effort times
        ``pace[k]``, the business days to day k, off the net by day k) or "arrivals" (up to
        the effort fewer arrivals each day, never more than came). The share grows with the
        effort: gallop from the last answer (the next hour's is close to it), then bisect;
        the answer is the same whichever hour came before. None: no number of fewer
        arrivals is enough (the closes alone would not bring the paths down)."""

        def enough(effort: int) -> bool:
            return self._share_within(how, pace, effort, need) >= TARGET_QUANTILE

        if how == "arrivals" and not enough(self.most_arrivals):
            return None  # even no arrivals at all would not do: only closes can
        low = high = self._last.get((how, pace), 0)  # enough at high, not at low (-1: none)
        step = 1
        if enough(high):
            while (low := high - step) >= 0 and enough(low):
                high, step = low, step * 2
            low = max(low, -1)
        else:
            while not enough(high := low + step):
                low, step = high, step * 2
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if enough(middle) else (middle, high)
        self._last[(how, pace)] = high
        return high

    def _share_within(self, how: str, pace: tuple[int, ...], effort: int, need: int) -> float:
        """The share of paths whose net, eased by ``effort``, comes down to ``need`` on some
        day up to the target. Days off before the first business day ease nothing but
        count: a path in band on such a day needs no effort."""
        if how == "closes":
            eased = self.early - effort * np.array(pace, dtype=np.int64)[:, np.newaxis]
        else:
            eased = self.early - np.cumsum(np.minimum(self.arrivals, effort), axis=0)
        paths: int = eased.shape[1]
        return int(np.count_nonzero(eased.min(axis=0) <= need)) / paths


def futures(scope: str, today: int, pools: tuple[Pool, ...], count: int, early: int) -> Futures:
    """``count`` sampled futures, seeded from scope and date: the same wherever drawn. Each
    day draws one pair for every path: 32 random bits per path scaled to the pool (a bias
    below one in 2**32 / len(pool))."""
    rng = random.Random(f"{scope}|{date.fromordinal(today).isoformat()}")
    nets = np.empty((len(pools), count), dtype=np.int64)
    arrivals = np.empty((min(early, len(pools)), count), dtype=np.int64)
    arrays: dict[int, tuple[Paths, Paths]] = {}  # by pool (days of a kind share one)
    for day, pool in enumerate(pools):
        if id(pool) not in arrays:
            arrays[id(pool)] = (np.array(pool.nets, np.int64), np.array(pool.ins, np.int64))
        pool_nets, pool_ins = arrays[id(pool)]
        if len(set(pool.nets)) == 1 and len(set(pool.ins)) == 1:
            picks = np.zeros(count, dtype=np.int64)  # one outcome (a quiet stretch): no draw
        else:
            bits = np.frombuffer(rng.randbytes(4 * count), dtype="<u4").astype(np.uint64)
            picks = ((bits * np.uint64(len(pool.nets))) >> np.uint64(32)).astype(np.int64)
        nets[day] = pool_nets[picks]
        if day < early:
            arrivals[day] = pool_ins[picks]
    cumulative = np.cumsum(nets, axis=0)
    lowest = np.minimum.accumulate(cumulative, axis=0)
    most = int(arrivals.max()) if arrivals.size else 0
    return Futures(lowest, cumulative[:early].copy(), arrivals, most)


class Drawn:
    """The futures each scope drew last: one day's per scope, so every hour of the day reads
    them (a dict by scope, not a cache shared by all: more scopes than it holds would draw
    every hour). Memory: about 0.5 MB per scope above its band, at 500 paths."""

    def __init__(self) -> None:
        self.by_scope: dict[str, tuple[tuple[int, tuple[Pool, ...], int, int], Futures]] = {}
        self.draws = 0
        # Per scope, the last answer and what it was the answer to.
        self.answers: dict[str, tuple[tuple[object, ...], ForecastPolicy, Forecast]] = {}
        # Per scope, the last pools and what they were made from: the same all day.
        self.pools: dict[str, tuple[tuple[object, ...], ForecastPolicy, tuple[Pool, ...]]] = {}

    def pools_of(
        self,
        scope: str,
        days: dict[int, tuple[int, int, int]],
        horizon: Horizon,
        policy: ForecastPolicy,
    ) -> tuple[Pool, ...]:
        inputs = (horizon, tuple(days.items()))
        known = self.pools.get(scope)
        if known is not None and known[0] == inputs and known[1] is policy:
            return known[2]
        pools = _pools(days, horizon, policy)
        self.pools[scope] = (inputs, policy, pools)
        return pools

    def get(
        self, scope: str, today: int, pools: tuple[Pool, ...], count: int, early: int
    ) -> Futures:
        key = (today, pools, count, early)
        held = self.by_scope.get(scope)
        if held is None or held[0] != key:
            drawn = futures(scope, today, pools, count, early)
            if held is not None:  # the searches start where yesterday's ended: fewer steps
                drawn._last.update(held[1]._last)
            held = self.by_scope[scope] = (key, drawn)
            self.draws += 1
        return held[1]

    def clear(self) -> None:
        self.by_scope.clear()
        self.answers.clear()
        self.pools.clear()


DRAWN = Drawn()


def _date_at(shares: list[float], quantile: float, horizon: Horizon) -> date | None:
    """The first day by which at least ``quantile`` of the paths are in band (``shares``
    per day of the horizon, never falling)."""
    day = bisect_left(shares, quantile)
    return horizon.dates[day] if day < len(horizon.dates) else None


def _effort(
    drawn: Futures, need: int, horizon: Horizon, target_day: int
) -> tuple[int | None, int | None]:
    """Extra closes per business day, and fewer arrivals per day, that put 85% of the paths
    in band by the target day."""
    business = set(horizon.business)
    worked = tuple(accumulate(int(k in business) for k in range(1, target_day + 1)))
    return drawn.least_effort("closes", worked, need), drawn.least_effort("arrivals", (), need)


def day_end_seconds(day: date, timezone: str) -> float:
    """The end of ``day`` in ``timezone``, in Unix seconds: when a date is reached."""
    return _midnight_after(day, ZoneInfo(timezone)) / US_PER_SECOND


def _midnight_after(day: date, zone: ZoneInfo) -> int:
    """The end of ``day`` in ``zone`` (its next midnight), in UTC microseconds."""
    return to_us(datetime.combine(day + timedelta(days=1), time(), zone))
