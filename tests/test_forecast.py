"""The drain forecast (streams/core/forecast.py) on hand-made histories whose answers are
worked out by hand, and, for small random histories, against an exact oracle written from
the spec: first-passage probabilities by dynamic programming over the backlog level, and
the capacity needed by a brute force over the module's own sampled futures.

Histories are fed to ``DayHistory.add`` as the scope does: one boundary per day at
midnight UTC (a boundary at midnight closes the day before), or one per hour. The
forecast's snapshot carries the open level at ``as_of`` and the 7-day outflow that sets
the band (``3 * outflow_7d / 7`` tickets, rounded down, with the default policy).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.config import FlowgaugeConfig
from streams.core.alerts import (
    BACKLOG_ABOVE_BAND,
    INFLOW_ABOVE_OUTFLOW,
    REOPEN_RATE_HIGH,
    AlertState,
    AlertTransition,
    describe,
)
from streams.core.flow import FlowSnapshot
from streams.core.forecast import (
    DAY_US,
    DRAWN,
    HOUR_US,
    DayHistory,
    Forecast,
    ForecastPolicy,
    Futures,
    Pool,
    Target,
    band_tickets,
    forecast,
)
from streams.core.sla import Calendar
from streams.core.timeline import to_us

UTC_ZONE = ZoneInfo("UTC")
ONE_DAY = timedelta(days=1)
KEEP_DAYS = 7 * 6 + 1  # as the scope keeps them (7 * weeks + 1)
MON_FRI = Calendar()  # UTC, Monday to Friday
DayCounts = tuple[int, int, int]  # in, out, level at the day's end


def midnight_us(day: date) -> int:
    return to_us(datetime.combine(day, time(), UTC))


def snapshot(
    at_us: int, open_: int, *, outflow_7d: int = 0, step_in: int = 0, step_out: int = 0,
    scope: str = "all",
) -> FlowSnapshot:  # fmt: skip
    return FlowSnapshot(
        at_us, scope, open_, {"7d": 0}, {"7d": outflow_7d}, {}, {}, step_in, step_out
    )


def daily_history(today: date, days: int, per_day: Callable[[date], DayCounts]) -> DayHistory:
    """``days`` whole days before ``today``, one boundary at each following midnight (a
    step of a day)."""
    history = DayHistory()
    for back in range(days, 0, -1):
        day = today - back * ONE_DAY
        came, went, level = per_day(day)
        at = midnight_us(day + ONE_DAY)  # closes ``day``
        day = snapshot(at, level, step_in=came, step_out=went)
        history.add(day, UTC_ZONE, KEEP_DAYS, DAY_US)
    return history


def constant(came: int, went: int, level: int = 100) -> Callable[[date], DayCounts]:
    return lambda _: (came, went, level)


TODAY = date(2024, 5, 1)  # a Wednesday
AS_OF = midnight_us(TODAY)


# --- 1. constant flow: every path the same --------------------------------------------


def test_constant_flow_is_deterministic_and_worked_out_by_hand() -> None:
    # 20 in, 30 out every day: every future path has net -10 a day, so cum_k = -10k.
    # Band: 3 days of capacity, outflow_7d 210 -> 3 * 210 / 7 = 90 tickets. Open 215, so a
    # path is in band once cum_k <= 90 - 215 = -125: first at k = 13 (-130), 2024-05-14.
    history = daily_history(TODAY, 42, constant(20, 30))
    got = forecast(snapshot(AS_OF, 215, outflow_7d=210), history, ForecastPolicy())
    assert got is not None
    assert got.sufficient
    assert got.days_sampled == 42
    assert got.band_tickets == 90
    assert got.p_in_band == (0.0,) * 12 + (1.0, 1.0)
    assert got.in_band_by == (date(2024, 5, 14),) * 3
    # Default target: 10 business days, no calendar: day 10 = 2024-05-11. Extra closes c a
    # day: min_k (-10k - c*k) = -100 - 10c <= -125 -> c >= 2.5 -> 3. Without a calendar the
    # inflow reduction has the same pace (every day counts): also 3.
    assert got.target_by == date(2024, 5, 11)
    assert got.target_status == "open"
    assert got.closes_needed_per_day == 3
    assert got.inflow_reduction_per_day == 3


def test_band_tickets_is_the_capacity_rounded_down() -> None:
    # 3 * 200 / 7 = 85.7 -> 85.
    assert band_tickets(snapshot(AS_OF, 0, outflow_7d=200), ForecastPolicy()) == 85
    # 2.5 days of a 24h window's 33 closes: 82.5 -> 82.
    policy = ForecastPolicy(band_high_days=2.5, capacity_window="24h", capacity_window_us=DAY_US)
    flow = FlowSnapshot(AS_OF, "all", 0, {}, {"24h": 33, "7d": 500}, {}, {})
    assert band_tickets(flow, policy) == 82


# --- 2. zero net flow above the band: never -------------------------------------------


def test_zero_net_flow_above_the_band_never_drains() -> None:
    # 25 in, 25 out: cum_k = 0 forever. Band 3 * 175 / 7 = 75, open 200: need -125.
    history = daily_history(TODAY, 42, constant(25, 25))
    got = forecast(snapshot(AS_OF, 200, outflow_7d=175), history, ForecastPolicy())
    assert got is not None
    assert got.band_tickets == 75
    assert got.p_in_band == (0.0,) * 14
    assert got.in_band_by == (None, None, None)
    # The excess 125 spread over the target's 10 business days: ceil(12.5) = 13, both ways.
    assert got.closes_needed_per_day == 13
    assert got.inflow_reduction_per_day == 13
    assert got.target_status == "open"


# --- 3. already in band ---------------------------------------------------------------


@pytest.mark.parametrize("open_", [0, 50, 75])
def test_already_in_band(open_: int) -> None:
    history = daily_history(TODAY, 42, constant(25, 20))  # even with a growing backlog
    got = forecast(snapshot(AS_OF, open_, outflow_7d=175), history, ForecastPolicy())
    assert got is not None
    assert got.band_tickets == 75
    assert got.sufficient
    assert got.p_in_band == (1.0,) * 14
    assert got.in_band_by == (TODAY,) * 3
    assert (got.closes_needed_per_day, got.inflow_reduction_per_day) == (0, 0)
    assert got.target_status == "met"
    assert got.target_by == TODAY + 10 * ONE_DAY


# --- 4. insufficient history, and how days are counted --------------------------------


def hourly_history(first: datetime, last: datetime, came: int = 2, went: int = 1) -> DayHistory:
    history = DayHistory()
    at, end = to_us(first), to_us(last)
    while at <= end:
        history.add(snapshot(at, 5, step_in=came, step_out=went), UTC_ZONE, KEEP_DAYS, HOUR_US)
        at += HOUR_US
    return history


def test_hourly_boundaries_fill_whole_days() -> None:
    # Boundaries 01:00 .. 24:00 of April 29 and 30: the one at midnight closes the day before.
    history = hourly_history(datetime(2024, 4, 29, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC))
    assert history.days == {
        date(2024, 4, 29).toordinal(): [48, 24, 5],
        date(2024, 4, 30).toordinal(): [48, 24, 5],
    }


@pytest.mark.parametrize(("first_day", "sufficient"), [(18, False), (17, True)])
def test_fewer_than_fourteen_whole_days_is_insufficient(first_day: int, sufficient: bool) -> None:
    # Whole days April first_day .. 30: 13 days (insufficient), then 14.
    history = hourly_history(
        datetime(2024, 4, first_day, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC)
    )
    got = forecast(snapshot(AS_OF, 500, outflow_7d=70), history, ForecastPolicy())
    assert got is not None
    assert got.days_sampled == 31 - first_day
    assert got.sufficient is sufficient
    assert got.band_tickets == 30
    if not sufficient:
        assert got.p_in_band == ()
        assert got.in_band_by == ()
        assert got.closes_needed_per_day is None
        assert got.inflow_reduction_per_day is None
        assert got.target_status is None
    else:
        assert len(got.p_in_band) == 14


def test_a_partial_first_day_is_not_a_whole_day() -> None:
    # The first boundary at midnight April 18 covers only the last hour of April 17; then
    # whole days April 18 .. 30: 13 whole days and one hour, less than two weeks.
    history = hourly_history(datetime(2024, 4, 18, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC))
    got = forecast(snapshot(AS_OF, 500, outflow_7d=70), history, ForecastPolicy())
    assert got is not None
    assert not got.sufficient, "13 whole days and one hour counted as two weeks"


def test_no_forecast_between_whole_hours() -> None:
    history = daily_history(TODAY, 42, constant(20, 30))
    assert forecast(snapshot(AS_OF + 60_000_000, 215), history, ForecastPolicy()) is None


# --- 5. a calendar with holidays ------------------------------------------------------

# Business days: 20 in, 30 out (net -10); days off (weekends, holidays): 5 in, 0 out (+5).
# A past holiday on Thursday 2024-04-11 and one ahead on Thursday 2024-05-09.
HOLIDAYS = Calendar(holidays=frozenset({date(2024, 4, 11), date(2024, 5, 9)}))


def calendar_days(day: date) -> DayCounts:
    return (20, 30, 100) if HOLIDAYS.is_business_day(day) else (5, 0, 100)


def holiday_forecast(target: Target) -> Forecast:
    # Band 3 * 150 / 7 = 64.3 -> 64; open 124: need -60.
    history = daily_history(TODAY, 42, calendar_days)
    policy = ForecastPolicy(calendar=HOLIDAYS, target=target)
    got = forecast(snapshot(AS_OF, 124, outflow_7d=150), history, policy)
    assert got is not None
    assert got.band_tickets == 64
    return got


def test_business_days_skip_weekends_and_holidays() -> None:
    # Today Wed 2024-05-01. Day k, its net, cum_k and business day number:
    #  1 Thu 05-02 -10  -10 b1 |  6 Tue 05-07 -10 -30 b4 | 11 Sun 05-12 +5 -35
    #  2 Fri 05-03 -10  -20 b2 |  7 Wed 05-08 -10 -40 b5 | 12 Mon 05-13 -10 -45 b7
    #  3 Sat 05-04  +5  -15    |  8 Thu 05-09 +5 -35 (holiday, from days off)
    #  4 Sun 05-05  +5  -10    |  9 Fri 05-10 -10 -45 b6 | 13 Tue 05-14 -10 -55 b8
    #  5 Mon 05-06 -10  -20 b3 | 10 Sat 05-11 +5 -40     | 14 Wed 05-15 -10 -65 b9
    # First at or under -60 on day 14, business day 9. (Sampled as a business Thursday the
    # holiday would give 05-10; sampled at net 0, 05-14; counted as business days, d9 and
    # the rest would shift.)
    got = holiday_forecast(Target())
    assert got.p_in_band == (0.0,) * 8 + (1.0,) * 6
    assert got.in_band_by == (date(2024, 5, 15),) * 3
    # 10 business days: b10 = Thu 05-16.
    assert got.target_by == date(2024, 5, 16)
    assert got.target_status == "open"


def test_a_dated_target_ahead_ends_on_its_last_business_day() -> None:
    # By Sunday 05-12: the last business day is Fri 05-10, day 9 (cum -45). Business days by
    # day k: 1,2,2,2,3,4,5,5,6. Extra closes c: day 9 gives -45 - 6c <= -60 -> c >= 2.5;
    # day 7 gives -40 - 5c -> c >= 4; other days need more: so 3. Fewer arrivals a day (every
    # day counts): day 9, -45 - 9c <= -60 -> c >= 1.67 -> 2.
    got = holiday_forecast(Target(None, date(2024, 5, 12)))
    assert got.target_by == date(2024, 5, 10)
    assert got.target_status == "open"
    assert got.closes_needed_per_day == 3
    assert got.inflow_reduction_per_day == 2
    # By the holiday itself: its last business day is the day before.
    assert holiday_forecast(Target(None, date(2024, 5, 9))).target_by == date(2024, 5, 8)


def test_a_dated_target_past_is_missed() -> None:
    got = holiday_forecast(Target(None, date(2024, 4, 30)))
    assert got.target_status == "missed"
    assert got.closes_needed_per_day is None
    assert got.inflow_reduction_per_day is None
    assert got.target_by == date(2024, 4, 30)
    assert got.p_in_band == (0.0,) * 8 + (1.0,) * 6  # the forecast itself still stands


def test_effort_counts_days_off_before_the_first_business_day() -> None:
    # Today Friday 2024-05-03; business days 15 in, 10 out (+5), weekends 0 in, 10 out
    # (-10, as auto-closures do). Open 20, band 0 (no outflow in the window): need -20.
    # cum: Sat -10, Sun -20 (in band), Mon -15, Tue -10. Every path is in band on Sunday,
    # before any business day: the forecast says p_in_band_d1 = 1, and no extra close is
    # needed to be in band by Tuesday: min_k (cum_k - c * worked_k) = -20 at c = 0.
    today = date(2024, 5, 3)
    history = daily_history(
        today, 42, lambda d: (15, 10, 50) if MON_FRI.is_business_day(d) else (0, 10, 50)
    )
    policy = ForecastPolicy(calendar=MON_FRI, target=Target(None, date(2024, 5, 7)))
    got = forecast(snapshot(midnight_us(today), 20), history, policy)
    assert got is not None
    assert got.p_in_band[0] == 1.0
    assert got.in_band_by == (date(2024, 5, 5),) * 3
    assert got.inflow_reduction_per_day == 0
    assert got.closes_needed_per_day == 0


@pytest.mark.parametrize(
    ("target", "calendar"),
    [(Target(1), None), (Target(None, TODAY + ONE_DAY), None), (Target(1), MON_FRI)],
)
def test_a_target_one_business_day_ahead(target: Target, calendar: Calendar | None) -> None:
    # 20 in, 30 out (-10 a day), open 215, band 90: need -125. In band by the first business
    # day (Thu 05-02): -10 - c <= -125 -> c = 115 more closes. Fewer arrivals cannot do it:
    # with none of the day's 20 arriving the net is -30, still above -125: None.
    history = daily_history(TODAY, 42, constant(20, 30))
    policy = ForecastPolicy(calendar=calendar, target=target)
    got = forecast(snapshot(AS_OF, 215, outflow_7d=210), history, policy)
    assert got is not None
    assert got.target_by == date(2024, 5, 2)
    assert (got.closes_needed_per_day, got.inflow_reduction_per_day) == (115, None)


# --- 6. determinism -------------------------------------------------------------------


def noisy(day: date) -> DayCounts:
    # A fixed pseudo-random history from the date alone: in 10..29, out 8..31, some days
    # ending empty.
    n = day.toordinal()
    return 10 + (n * 7919) % 20, 8 + (n * 104729) % 24, 0 if n % 5 == 0 else 40


def test_same_inputs_same_forecast() -> None:
    history = daily_history(TODAY, 42, noisy)
    flow = snapshot(AS_OF, 70, outflow_7d=140)
    first = forecast(flow, history, ForecastPolicy())
    assert first is not None
    assert 0.0 < first.p_in_band[-1] < 1.0  # not a trivially deterministic case
    assert forecast(flow, history, ForecastPolicy()) == first
    DRAWN.clear()
    again = forecast(flow, history, ForecastPolicy())
    assert again == first
    assert list(again.p_in_band) == sorted(again.p_in_band)  # first passage: never falls
    # Seeded from the scope: another scope with the same history draws other futures.
    other = forecast(
        snapshot(AS_OF, 70, outflow_7d=140, scope="queue:b"), history, ForecastPolicy()
    )
    assert other is not None
    assert other.p_in_band != first.p_in_band


def test_every_hour_of_a_day_reads_the_same_futures() -> None:
    # The futures depend on the scope, the date and the days before it: every whole hour of
    # today reads one draw (a cache hit), and the answer does not depend on what the hours
    # before computed (least_effort gallops from the last answer).
    history = daily_history(TODAY, 42, noisy)
    policy = ForecastPolicy()
    DRAWN.clear()
    draws = DRAWN.draws
    hours = [forecast(snapshot(AS_OF, 70, outflow_7d=140), history, policy)]
    for hour in range(1, 24):
        flow = snapshot(AS_OF + hour * HOUR_US, 70 + hour, outflow_7d=140, step_in=9)
        history.add(flow, UTC_ZONE, KEEP_DAYS, HOUR_US)
        hours.append(forecast(flow, history, policy))
    assert DRAWN.draws == draws + 1
    for got in hours:
        assert got is not None
        assert got.sufficient
        assert list(got.p_in_band) == sorted(got.p_in_band)
    # A fresh draw answers each hour alone as the sequence did.
    for hour in (23, 5, 17):
        DRAWN.clear()
        flow = snapshot(AS_OF + hour * HOUR_US, 70 + hour, outflow_7d=140)
        assert forecast(flow, history, policy) == hours[hour]


# --- 7. against an exact oracle -------------------------------------------------------
#
# The oracle is written from the spec: each day after today samples inflow and outflow
# separately from the days of the last 6 weeks of its own kind (same weekday and, with a
# calendar, same business-ness: days off from days off, falling back to any day off, then
# any day); outflow only from days that ended with open > 0, or all of them when none did.
# A day's net is then uniform over every (in_i, out_j) pair. The first-passage probability
# by day k is the mass absorbed at or under ``need`` = band - open, propagated exactly.

PATHS = 4000
# A share of PATHS independent paths is binomial: standard error sqrt(p(1-p)/PATHS). We
# allow 5 standard errors, plus 5 paths' worth (5 / PATHS) for small p, where the normal
# approximation fails (np < 1: one stray path is already many "standard errors").
SIGMAS = 5


def tolerance(p: float) -> float:
    p = min(max(p, 0.0), 1.0)  # the oracle's float sums may stray past 1 by an ulp
    return SIGMAS * math.sqrt(p * (1 - p) / PATHS) + SIGMAS / PATHS


@dataclass(frozen=True)
class Scenario:
    today: date
    days: dict[date, DayCounts]  # every day fed to the history, older than 6 weeks too
    calendar: Calendar | None
    open_: int
    outflow_7d: int
    scope: str

    @property
    def band(self) -> int:
        return 3 * self.outflow_7d // 7  # 3 days of 7-day capacity, rounded down

    def business(self, day: date) -> bool:
        return self.calendar is None or self.calendar.is_business_day(day)

    def horizon(self) -> list[date]:
        return [self.today + k * ONE_DAY for k in range(1, 91)]

    def history(self) -> DayHistory:
        return daily_history(self.today, len(self.days), lambda d: self.days[d])

    def policy(self, paths: int) -> ForecastPolicy:
        return ForecastPolicy(paths=paths, calendar=self.calendar)

    def flow(self) -> FlowSnapshot:
        return snapshot(
            midnight_us(self.today), self.open_, outflow_7d=self.outflow_7d, scope=self.scope
        )

    def sampled_from(self, day: date) -> list[date]:
        recent = [d for d in sorted(self.days) if 0 < (self.today - d).days <= 42]
        same = (self.business(day), day.weekday())
        kind = [d for d in recent if (self.business(d), d.weekday()) == same]
        return kind or [d for d in recent if self.business(d) == self.business(day)] or recent

    def ins_outs(self, day: date) -> tuple[list[int], list[int]]:
        chosen = self.sampled_from(day)
        ins = [self.days[d][0] for d in chosen]
        outs = [self.days[d][1] for d in chosen if self.days[d][2] > 0]
        return ins, outs or [self.days[d][1] for d in chosen]

    def pool(self, day: date) -> Pool:
        """Every (in_i, out_j) pair, inflow-major over the days in date order: the order
        the module lays them out in, so that ``futures`` reads the very same draws."""
        ins, outs = self.ins_outs(day)
        return Pool(tuple(i - o for i in ins for o in outs), tuple(i for i in ins for _ in outs))

    def exact_first_passage(self) -> list[float]:
        """P(in band on or before day k), k = 1 .. 90, by dynamic programming."""
        need = self.band - self.open_
        alive: dict[int, float] = {0: 1.0}
        absorbed, by_day = 0.0, []
        for day in self.horizon():
            ins, outs = self.ins_outs(day)
            nets = Counter(i - o for i in ins for o in outs)
            pairs = len(ins) * len(outs)
            moved: dict[int, float] = defaultdict(float)
            for level, mass in alive.items():
                for net, count in nets.items():
                    moved[level + net] += mass * count / pairs
            absorbed += sum(m for level, m in moved.items() if level <= need)
            alive = {level: m for level, m in moved.items() if level > need}
            by_day.append(absorbed)
        return by_day


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    today = date(2024, 1, 1) + draw(st.integers(0, 730)) * ONE_DAY
    counts = draw(
        st.lists(
            st.tuples(st.integers(0, 4), st.integers(0, 4), st.sampled_from([0, 3, 3, 3])),
            min_size=14,
            max_size=49,  # older than 6 weeks: fed, but not sampled
        )
    )
    days = {today - (len(counts) - k) * ONE_DAY: c for k, c in enumerate(counts)}
    calendar = None
    if draw(st.booleans()):
        offsets = draw(st.sets(st.integers(-49, 20).filter(bool), max_size=3))
        calendar = Calendar(holidays=frozenset(today + k * ONE_DAY for k in offsets))
    outflow_7d = draw(st.integers(0, 40))
    open_ = 3 * outflow_7d // 7 + draw(st.integers(1, 12))
    scope = draw(st.sampled_from(["all", "queue:billing"]))
    return Scenario(today, days, calendar, open_, outflow_7d, scope)


ORACLE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@ORACLE
@given(scenarios())
def test_p_in_band_matches_the_exact_first_passage(sc: Scenario) -> None:
    got = forecast(sc.flow(), sc.history(), sc.policy(PATHS))
    assert got is not None
    assert got.sufficient
    assert got.days_sampled == len([d for d in sc.days if (sc.today - d).days <= 42])
    exact = sc.exact_first_passage()
    business = [k for k, day in enumerate(sc.horizon(), 1) if sc.business(day)][:14]
    note(f"exact by business day: {[round(exact[k - 1], 4) for k in business]}")
    note(f"forecast:              {got.p_in_band}")
    assert len(got.p_in_band) == 14
    for n, (k, p) in enumerate(zip(business, got.p_in_band, strict=True), 1):
        assert abs(p - exact[k - 1]) <= tolerance(exact[k - 1]), f"business day {n}"
    # in_band_by: the first date by which a quantile of the paths are in band, None when
    # not within the 90 days. Exact shares around the Monte Carlo's date must agree.
    for q, when in zip((0.5, 0.85, 0.95), got.in_band_by, strict=True):
        if when is None:
            assert exact[-1] < q + tolerance(exact[-1]), q
            continue
        k = (when - sc.today).days
        assert 1 <= k <= 90
        assert exact[k - 1] >= q - tolerance(exact[k - 1]), q
        if k > 1:
            assert exact[k - 2] < q + tolerance(exact[k - 2]), q


EFFORT_PATHS = 600


def least_effort(cums: list[int], pace: list[int], need: int) -> int:
    """The least whole c with min_k (cum_k - c * pace_k) <= need, counting up from 0."""
    c = 0
    while min(cum - c * share for cum, share in zip(cums, pace, strict=True)) > need:
        c += 1
    return c


def least_fewer(cums: list[int], ins: list[int], need: int) -> int | None:
    """The least whole c with min_k (cum_k - sum of min(c, in_j) for j <= k) <= need: up to
    c fewer arrivals a day, never more than came; None when even none at all would not do."""
    c, most = 0, max(ins)
    while c <= most:
        fewer = list(accumulate(min(c, came) for came in ins))
        if min(cum - f for cum, f in zip(cums, fewer, strict=True)) <= need:
            return c
        c += 1
    return None


def nearest_rank_85_or_none(values: list[int | None]) -> int | None:
    """The 85th percentile, None (never) ranking above every number."""
    ordered = sorted(values, key=lambda v: (v is None, v or 0))
    return ordered[(85 * len(ordered) + 99) // 100 - 1]


def nearest_rank_85(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[(85 * len(ordered) + 99) // 100 - 1]  # rank ceil(0.85 n), 1-based


def test_the_effort_is_what_85_percent_of_the_paths_need_not_a_neighbour() -> None:
    """Every path needs another effort (path p: 100 + p closes, or fewer arrivals, a day):
    the answer is the 425th least of 500 exactly (the oracle below draws paths that tie
    too often to tell a neighbour). A day off first eases nothing."""
    order = np.random.default_rng(7).permutation(500)  # the paths in no particular order
    early = np.array([[50] * 500, 100 + order, 200 + 2 * order], dtype=np.int64)
    arrivals = np.array([[0] * 500, [1000] * 500, [1000] * 500], dtype=np.int64)
    futures = Futures(early, early, arrivals, most_arrivals=1000)
    assert futures.least_effort("closes", (0, 1, 2), need=0) == 524
    assert futures.least_effort("arrivals", (), need=0) == 524  # none to take off on day 1
    assert futures.least_effort("arrivals", (), need=0) == 524  # from the last answer too
    assert futures.least_effort("closes", (0, 1, 2), need=10) == 514


@ORACLE
@given(scenarios())
def test_capacity_needed_matches_a_brute_force(sc: Scenario) -> None:
    # Leading days off before the first business day are the focused test above
    # (test_effort_counts_days_off_before_the_first_business_day).
    assume(sc.business(sc.today + ONE_DAY))
    got = forecast(sc.flow(), sc.history(), sc.policy(EFFORT_PATHS))
    assert got is not None
    assert got.target_status == "open"
    horizon = sc.horizon()
    business = [k for k, day in enumerate(horizon, 1) if sc.business(day)]
    target_day = business[9]  # the default target: 10 business days
    assert got.target_by == horizon[target_day - 1]
    pools = tuple(sc.pool(day) for day in horizon)
    before = DRAWN.draws
    drawn = DRAWN.get(sc.scope, sc.today.toordinal(), pools, EFFORT_PATHS, target_day)
    # Held, not drawn again: the oracle's pools are exactly those the forecast drew from.
    assert DRAWN.draws == before
    need = sc.band - sc.open_
    worked = [sum(1 for j in business if j <= k) for k in range(1, target_day + 1)]
    paths = [[drawn.early[k][p] for k in range(target_day)] for p in range(EFFORT_PATHS)]
    came = [[drawn.arrivals[k][p] for k in range(target_day)] for p in range(EFFORT_PATHS)]
    closes = nearest_rank_85([least_effort(cums, worked, need) for cums in paths])
    fewer = nearest_rank_85_or_none(
        [least_fewer(cums, ins, need) for cums, ins in zip(paths, came, strict=True)]
    )
    assert got.closes_needed_per_day == closes
    assert got.inflow_reduction_per_day == fewer


# --- the plan in the alerts' texts -------------------------------------------------------


def _plan(**changes: object) -> Forecast:
    base = Forecast(
        AS_OF, "queue:billing", 412, 180, 42, True, (0.1,) * 14,
        (date(2026, 3, 11), date(2026, 3, 16), date(2026, 3, 19)), 9, 7, date(2026, 3, 13),
        "open", horizon_days=90,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def _firing(rule: str, state: AlertState = AlertState.FIRING) -> AlertTransition:
    return AlertTransition(rule, "queue:billing", state, AS_OF, 3.4, 3.0, AS_OF)


def test_a_firing_of_the_backlog_rules_quotes_the_plan() -> None:
    flow = snapshot(AS_OF, 412, outflow_7d=420, scope="queue:billing")
    text = describe(_firing(BACKLOG_ABOVE_BAND), flow, None, plan=_plan())
    assert "; at this pace back in band by 16 Mar (85%); 9 more closes a business day would" in text
    assert "make it 13 Mar; 412 open as of" in text
    never = _plan(in_band_by=(None, None, None))
    text = describe(_firing(INFLOW_ABOVE_OUTFLOW), flow, None, plan=never)
    assert "at this pace not back in band within 90 days (85%); 9 more closes" in text


def test_the_plan_is_left_out_where_it_says_nothing() -> None:
    flow = snapshot(AS_OF, 412, outflow_7d=420, scope="queue:billing")
    resolved = describe(_firing(BACKLOG_ABOVE_BAND, AlertState.RESOLVED), flow, None, plan=_plan())
    other_rule = describe(_firing(REOPEN_RATE_HIGH), flow, None, plan=_plan())
    short = describe(_firing(BACKLOG_ABOVE_BAND), flow, None, plan=_plan(sufficient=False))
    met = describe(_firing(BACKLOG_ABOVE_BAND), flow, None, plan=_plan(target_status="met"))
    for text in (resolved, other_rule, short, met):
        assert "at this pace" not in text
    no_effort = describe(
        _firing(BACKLOG_ABOVE_BAND), flow, None, plan=_plan(closes_needed_per_day=0)
    )
    assert "back in band by 16 Mar (85%); 412 open" in no_effort


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('target = "ten days"', "forecast.target"),
        ('target = "0d"', "forecast.target"),
        ('targets = { billing = "2026-02-30" }', "forecast.targets.billing"),
        ("paths = 10", "forecast.paths"),
        ("weeks = 1", "forecast.weeks"),
        ('horizon = "36h"', "forecast.horizon"),
        ('horizn = "90d"', "forecast.horizn"),
    ],
)
def test_a_bad_forecast_setting_is_refused_naming_its_key(
    table: str, key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tmp_path / "flowgauge.toml"
    settings.write_text(f"[forecast]\n{table}\n")
    monkeypatch.setenv("FLOWGAUGE_CONFIG", str(settings))
    with pytest.raises(ValidationError) as refused:
        FlowgaugeConfig()
    assert [".".join(map(str, e["loc"])) for e in refused.value.errors()] == [key]


def test_targets_reach_the_core_by_queue() -> None:
    config = FlowgaugeConfig(forecast={"target": "5d", "targets": {"billing": date(2026, 3, 14)}})
    policy = config.core().forecast
    assert policy is not None
    assert policy.target_of("queue:billing") == Target(business_days=None, by=date(2026, 3, 14))
    assert policy.target_of("queue:tech") == Target(business_days=5)
    assert policy.target_of("all") == Target(business_days=5)
    assert FlowgaugeConfig(forecast={"enabled": False}).core().forecast is None
