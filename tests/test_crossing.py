"""The headline rule (streams/core/crossing.py) on hand-made flows with a weekly rhythm, its
configuration, and scored on a simulated surge against the scenario's ground truth."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.config import FlowgaugeConfig
from streams.core.alerts import (
    INFLOW_ABOVE_OUTFLOW,
    AlertState,
    AlertTransition,
    CrossingPolicy,
    describe,
)
from streams.core.crossing import HOUR_US, Crossing, CrossingRule
from streams.core.flow import FlowSnapshot, Windows
from streams.core.scope import ScopeState, Settings
from streams.core.timeline import iso

DAY_HOURS = 24
# Arrivals and closures per hour of the week: weekdays heavy, weekends barely worked, and
# each week balanced (as many closed as arrived).
ARRIVALS = [120 if day < 5 else 60 for day in range(7) for _ in range(DAY_HOURS)]
CLOSURES = [(120 * 5 + 60 * 2) / 5 if day < 5 else 0 for day in range(7) for _ in range(DAY_HOURS)]
Factor = Callable[[int], float]


def _one(_: int) -> float:
    return 1.0


def flows(
    weeks: int, arrivals: Factor = _one, closures: Factor = _one, every_minutes: int = 60
) -> Iterator[FlowSnapshot]:
    """Snapshots of one scope from hour 0, with the windows' counts exact; ``arrivals`` and
    ``closures`` scale the hour's rates by the hour since the start."""
    came: list[float] = []
    went: list[float] = []
    for hour in range(weeks * 7 * DAY_HOURS):
        came.append(ARRIVALS[hour % len(ARRIVALS)] * arrivals(hour))
        went.append(CLOSURES[hour % len(CLOSURES)] * closures(hour))
        for minute in range(0, 60, every_minutes):
            if minute:  # between whole hours: what the rule must not read
                yield _snapshot((hour * 60 + minute) * 60_000_000, [999.0], [0.0])
        yield _snapshot((hour + 1) * HOUR_US, came, went)


def _snapshot(at_us: int, came: list[float], went: list[float]) -> FlowSnapshot:
    def window(series: list[float], hours: int) -> int:
        return round(sum(series[-hours:]))

    counts = {"1h": 1, "24h": DAY_HOURS, "7d": 7 * DAY_HOURS}
    return FlowSnapshot(
        at_us,
        "all",
        round(sum(came) - sum(went)),
        {name: window(came, hours) for name, hours in counts.items()},
        {name: window(went, hours) for name, hours in counts.items()},
        {},
        {},
    )


def transitions(snapshots: Iterator[FlowSnapshot]) -> list[AlertTransition]:
    rule, crossing = CrossingRule(), Crossing("all")
    return [a for s in snapshots if (a := crossing.evaluate(s, rule)) is not None]


def hours_of(alerts: list[AlertTransition]) -> list[tuple[AlertState, float]]:
    return [(a.state, a.at_us / HOUR_US) for a in alerts]


def test_a_balanced_weekly_rhythm_never_fires() -> None:
    assert transitions(flows(weeks=8)) == []


def test_fewer_closures_fire_within_a_day_and_resolve_once_they_are_back() -> None:
    """For a working week from day 21 the team closes 40% less: the backlog grows beyond its
    rhythm."""
    start, end = 21 * DAY_HOURS, 26 * DAY_HOURS
    alerts = transitions(flows(weeks=6, closures=lambda h: 0.6 if start <= h < end else 1.0))
    (firing, fired_hour), (resolved, resolved_hour) = hours_of(alerts)
    assert (firing, resolved) == (AlertState.FIRING, AlertState.RESOLVED)
    assert start < fired_hour <= start + DAY_HOURS
    assert end < resolved_hour <= end + DAY_HOURS + CrossingRule().clear_hours
    assert resolved_hour - fired_hour > 2  # no flap: at least clear_hours after firing


def _surge(
    arrivals: float, closures: float, day: int = 21, days: int = 3, weeks: int = 6
) -> Iterator[FlowSnapshot]:
    """For ``days`` from ``day`` arrivals and closures scaled."""
    start, end = day * DAY_HOURS, (day + days) * DAY_HOURS

    def during(factor: float) -> Factor:
        return lambda h: factor if start <= h < end else 1.0

    return flows(weeks=weeks, arrivals=during(arrivals), closures=during(closures))


def test_a_surge_the_team_partly_absorbs_fires_from_the_arrivals() -> None:
    """60% more arrivals on a Monday (72 an hour); the team has room and closes 40% more.
    What it leaves open (346 tickets a weekday) stays below a quarter of its capacity (about
    620), so the net alone never fires. The evidence of the arrivals passes its bar in the
    surge's first hour; the rule fires once the backlog has grown beyond its rhythm by 5% of
    capacity (nine hours in) for two hours, and says it was the arrivals, at what pace and
    against what usual: the same weekday (2,880) taken one standard deviation high."""
    alerts = transitions(_surge(arrivals=1.6, closures=1.4))
    (firing, fired_hour), (resolved, resolved_hour) = hours_of(alerts)
    assert (firing, resolved) == (AlertState.FIRING, AlertState.RESOLVED)
    assert fired_hour == 21 * DAY_HOURS + 10
    assert resolved_hour > 24 * DAY_HOURS
    usual = (2880 + math.sqrt(2880 / 3)) / DAY_HOURS  # an hour of a Monday
    assert alerts[0].reading == "arrivals"
    assert alerts[0].value == pytest.approx((192 - usual) * DAY_HOURS)
    assert alerts[0].threshold == pytest.approx(CrossingRule().surge_size * usual * DAY_HOURS)
    # Closing no more, the team's backlog grows beyond its rhythm five times as fast.
    sooner = transitions(_surge(arrivals=1.6, closures=1.0))
    assert (sooner[0].reading, sooner[0].at_us / HOUR_US) == ("arrivals", 21 * DAY_HOURS + 3)


def test_a_surge_in_the_second_week_fires_once_the_backlog_grows_at_all() -> None:
    """The team closes half as much on its first two days, as when tickets opened before
    the first event cannot close: the first week, the only rhythm known in the second, reads
    the second week's Tuesday 1,469 to 748 tickets a day quieter than it is. 60% more
    arrivals from day 8: their evidence passes its bar in the first hour, and the rule fires
    once the backlog has grown at all by 5% of capacity (ten hours in) for two hours, not once
    it grows beyond that first week (a day in, before). It resolves once, after the surge."""
    alerts = transitions(
        flows(
            weeks=3,
            arrivals=lambda h: 1.6 if 8 * DAY_HOURS <= h < 11 * DAY_HOURS else 1.0,
            closures=lambda h: 0.5 if h < 2 * DAY_HOURS else 1.0,
        )
    )
    (firing, fired_hour), (resolved, resolved_hour) = hours_of(alerts)
    assert (firing, resolved) == (AlertState.FIRING, AlertState.RESOLVED)
    assert (alerts[0].reading, fired_hour) == ("arrivals", 8 * DAY_HOURS + 11)
    assert resolved_hour > 11 * DAY_HOURS


def test_state_of_an_earlier_version_is_not_read_as_hourly_arrivals() -> None:
    """An earlier version kept the arrivals of the last day, not of the hour, in ``arrived``.
    Loaded without ``counted_since``, the hours count from the first one this version reads:
    no usual until a week of whole days has been counted, then the usual of what was."""
    rule, crossing = CrossingRule(), Crossing("all")
    snapshots = list(flows(weeks=3))
    for snapshot in snapshots[: 7 * DAY_HOURS]:  # a week under the earlier version
        crossing.evaluate(snapshot, rule)
    crossing.arrived = dict.fromkeys(crossing.arrived, 2880)  # as it kept them
    crossing.counted_since, crossing.day_usual = None, None
    counted_since = 7 * DAY_HOURS + 1  # snapshots[i] ends hour i + 1
    first_day = 7  # the first whole day counted: hours 7 * 24 + 1 ..
    for snapshot in snapshots[7 * DAY_HOURS : (first_day + 7) * DAY_HOURS]:
        crossing.evaluate(snapshot, rule)
        assert crossing.day_usual is not None
        assert crossing.day_usual[1] == ()
    assert (crossing.counted_since, crossing.surge, crossing.surge_run) == (
        counted_since,
        0.0,
        (0, 0, 0.0),
    )
    crossing.evaluate(snapshots[(first_day + 7) * DAY_HOURS], rule)  # day 14: a weekday
    assert crossing.day_usual is not None
    day, usual = crossing.day_usual
    assert day == first_day + 7
    assert usual == pytest.approx([(2880 + math.sqrt(2880)) / DAY_HOURS] * DAY_HOURS)


def test_a_week_with_an_incident_teaches_no_rhythm() -> None:
    """Twice the arrivals on Wednesday and Thursday of the second week, closures unchanged.
    That week's mean net, removed to read its shape, is raised by the two days: read as the
    usual, the rest of it made the next Monday look a quarter of capacity beyond its rhythm
    (617-720 tickets a day, against 617), and the rule fired again at day 14. Left out, no
    earlier week remains to read the imbalance now against (the first has no whole day
    before it), and the week reading, which still holds the surge, stays disarmed."""
    alerts = transitions(_surge(arrivals=2.0, closures=1.0, day=9, days=2, weeks=4))
    assert [state for state, _ in hours_of(alerts)] == [AlertState.FIRING, AlertState.RESOLVED]
    assert 9 * DAY_HOURS < hours_of(alerts)[0][1] <= 10 * DAY_HOURS


def test_the_week_reading_does_not_fire_again_for_an_incident_resolved_before_it_counts() -> None:
    """A surge in the second week resolves before the week reading counts (from day 14):
    the week still holds the surge then, which must not fire it afresh."""
    alerts = transitions(_surge(arrivals=1.6, closures=1.2, day=8, days=3, weeks=4))
    assert [state for state, _ in hours_of(alerts)] == [AlertState.FIRING, AlertState.RESOLVED]
    assert hours_of(alerts)[1][1] < 14 * DAY_HOURS


def test_one_short_day_of_a_small_queue_is_its_noise_two_are_an_imbalance() -> None:
    """A queue of about 125 tickets a day closes 40% less on a Tuesday: about 70 tickets
    beyond its rhythm, between 3 and 4 standard deviations of a day's Poisson noise. A queue
    at its capacity has such days, and the last day alone is read every hour: it fires only
    beyond 4. Two such days fire within the second; half the closures within the first."""

    def short(cut: float, days: int) -> list[tuple[AlertState, float]]:
        start, end = 22 * DAY_HOURS, (22 + days) * DAY_HOURS
        small = 0.05  # of the hand-made team

        def closures(hour: int) -> float:
            return small * (cut if start <= hour < end else 1.0)

        return hours_of(transitions(flows(weeks=5, arrivals=lambda h: small, closures=closures)))

    assert short(cut=0.6, days=1) == []
    two_days = short(cut=0.6, days=2)
    assert [state for state, _ in two_days] == [AlertState.FIRING, AlertState.RESOLVED]
    assert 23 * DAY_HOURS < two_days[0][1] <= 24 * DAY_HOURS
    half = short(cut=0.5, days=1)
    assert [state for state, _ in half] == [AlertState.FIRING, AlertState.RESOLVED]
    assert 22 * DAY_HOURS < half[0][1] <= 23 * DAY_HOURS


def test_more_arrivals_the_team_absorbs_are_no_imbalance() -> None:
    assert transitions(_surge(arrivals=1.6, closures=1.6)) == []


def test_a_small_imbalance_that_lasts_fires_from_the_week() -> None:
    """12% more arrivals from day 21 on: too small for a day, clear over the week."""
    alerts = transitions(flows(weeks=6, arrivals=lambda h: 1.12 if h >= 21 * DAY_HOURS else 1.0))
    assert [state for state, _ in hours_of(alerts)] == [AlertState.FIRING]
    assert alerts[0].at_us / HOUR_US <= 28 * DAY_HOURS


def test_nothing_is_decided_during_the_warm_up() -> None:
    alerts = transitions(flows(weeks=1, closures=lambda h: 0.2))
    assert alerts == []
    later = transitions(flows(weeks=3, closures=lambda h: 0.2 if h < 9 * DAY_HOURS else 1.0))
    assert later
    assert later[0].at_us >= CrossingRule().warm_up_hours * HOUR_US


def test_the_rule_decides_the_same_at_any_step() -> None:
    """Decisions are taken at whole hours: 5-minute snapshots in between change nothing."""

    def closures(h: int) -> float:
        return 0.5 if 14 * DAY_HOURS <= h < 17 * DAY_HOURS else 1.0

    hourly = transitions(flows(weeks=4, closures=closures))
    five_minutes = transitions(flows(weeks=4, closures=closures, every_minutes=5))
    assert hourly
    assert five_minutes == hourly


def test_the_earlier_rule_runs_when_its_sustain_or_clear_is_set() -> None:
    def crossing(settings: dict[str, object]) -> object:
        config = FlowgaugeConfig.model_validate({"alerts": {"inflow_above_outflow": settings}})
        return config.core().crossing

    assert crossing({}) == CrossingRule()
    assert crossing({"sustain": 3, "clear": 3}) == CrossingPolicy("24h", 10, 3, 3)
    assert crossing({"clear": 5, "window": "1h"}) == CrossingPolicy("1h", 10, 3, 5)
    assert crossing({"fire_z": 2.5, "confirm": "3h"}) == CrossingRule(fire_z=2.5, confirm_hours=3)
    assert crossing({"surge_evidence": 8}) == CrossingRule(surge_evidence=8.0)
    assert crossing({"span_z": 3.5}) == CrossingRule(span_z=3.5)
    with pytest.raises(ValidationError, match="arrivals_z"):
        crossing({"arrivals_z": 4})  # the 24-hour arrivals reading it set is gone
    with pytest.raises(ValidationError, match="belong to the earlier rule"):
        crossing({"window": "1h"})
    with pytest.raises(ValidationError, match="do not apply to the earlier rule"):
        crossing({"sustain": 3, "fire_z": 2.5})
    with pytest.raises(ValueError, match="whole hours"):
        crossing({"confirm": "90m"})


def test_a_simulated_surge_is_detected_once_resolved_within_a_day_without_flaps(
    tmp_path: Path,
) -> None:
    """Three weeks, seed 1: arrivals +60% for three days from day 8 in every queue.

    Asserted: the whole backlog's imbalance is detected within a day of its start (from its
    arrivals) and resolved within 24 hours of its end; no firing flaps or comes at cold
    start, in any scope. Not asserted, because it is not met (BENCHMARKS.md, "Alert
    quality"): detection within 12 hours. The surge starts at midnight, and the night is
    quiet: this run's arrivals add up to the evidence of a surge at 14:00, while the backlog
    grows (from 13:00), and the rule fires at 15:00. A detector that knew the exact rates of
    new tickets and the surge's size would have needed 12 hours here (BENCHMARKS.md, "What
    the events allow").
    """
    events = tmp_path / "surge.jsonl"
    cli = [sys.executable, "-m", "streams.commands.cli"]
    simulate = ["simulate", "--scenario", "surge", "--seed", "1", "--flat-out"]
    subprocess.run([*cli, *simulate, "--output", str(events)], check=True, capture_output=True)
    truth = Path(f"{events}.truth.json")
    done = subprocess.run(
        [*cli, "evaluate", str(events), str(truth), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    scores = {
        s["scope"]: s
        for s in json.loads(done.stdout)["scores"]
        if s["rule"] == "inflow_above_outflow"
    }
    (surge,) = scores["all"]["intervals"]
    assert surge["detected"]
    assert 0 <= surge["fire_delay_hours"] <= 24
    assert surge["resolve_delay_hours"] is not None
    assert 0 <= surge["resolve_delay_hours"] <= 24
    assert {
        scope: (s["flaps"], s["cold_start_firings"]) for scope, s in scores.items()
    } == dict.fromkeys(scores, (0, 0))


def test_the_message_says_why_it_fired_in_a_day_s_tickets() -> None:
    at = 30 * DAY_HOURS * HOUR_US
    snapshot = FlowSnapshot(at, "queue:billing", 412, {"7d": 1400}, {"7d": 1330}, {}, {})
    firing = AlertTransition(
        INFLOW_ABOVE_OUTFLOW, "queue:billing", AlertState.FIRING, at, 57.4, 47.5, at
    )
    resolved = replace(firing, state=AlertState.RESOLVED, value=-3.2, threshold=9.5)
    when = iso(at)
    assert describe(firing, snapshot, None) == (
        "billing: 57 more tickets a day arrive than are closed, beyond the usual week (fires at"
        f" 48); the team closes 190/day; the backlog keeps growing; 412 open as of {when}"
    )
    assert describe(resolved, snapshot, None) == (
        "billing: arrivals are back within what the team closes (-3 a day beyond the usual"
        f" week, at most 10); the team closes 190/day; 412 open as of {when}"
    )
    by_arrivals = replace(firing, reading="arrivals")
    assert describe(by_arrivals, snapshot, None) == (
        "billing: 57 more tickets a day arrive than usual for these hours of the week since they"
        " rose (it looks for 48 more); the team closes 190/day; the backlog keeps growing"
        f" beyond the usual week; 412 open as of {when}"
    )
    earlier = describe(firing, snapshot, None, earlier_rule=True)
    assert "/day now exceeds outflow" in earlier  # the earlier rule keeps its words


def test_an_incident_of_the_earlier_rule_is_closed_when_the_rule_changes() -> None:
    """State kept with the earlier rule firing, read under this version's rule: the open
    incident is resolved at the next boundary, and the new rule starts its warm-up."""
    windows = Windows.of(3600, {"1h": 3600, "24h": 86400, "7d": 604800})
    earlier = Settings(windows, crossing=CrossingPolicy(sustain=1, clear=1))
    state = ScopeState.new("all", earlier)
    snapshots = list(flows(weeks=1, closures=lambda h: 0.0))
    fired = [a for s in snapshots[:30] if (a := state._crossing(s, earlier.crossing))]
    assert [a.state for a in fired] == [AlertState.FIRING]
    now = Settings(windows)
    closed = state._crossing(snapshots[30], now.crossing)
    assert closed is not None
    assert (closed.state, closed.incident_id) == (AlertState.RESOLVED, fired[0].incident_id)
    assert isinstance(state.crossing, Crossing)
    assert [s for s in snapshots[31:] if state._crossing(s, now.crossing)] == []
