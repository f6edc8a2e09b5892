"""Leading indicators and their rules, on small logs worked by hand."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from itertools import count
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.commands.report import run
from streams.config import FlowgaugeConfig
from streams.core.alerts import (
    ARRIVALS_READING,
    BACKLOG_ABOVE_BAND,
    DRIVER_SPIKE,
    INDICATOR_RULES,
    INFLOW_ABOVE_OUTFLOW,
    SLA_BREACH_WAVE,
    TTFMR_RISING,
    AlertState,
    AlertTransition,
    Hysteresis,
    IndicatorRules,
    capacity_days,
    describe,
)
from streams.core.flow import FlowSnapshot
from streams.core.indicators import (
    Driver,
    Effort,
    IndicatorSnapshot,
    IndicatorWindows,
    ScopeIndicators,
)
from streams.core.scope import Emitted
from streams.core.timeline import from_us, iso, to_us

GRACE_US = 600 * 1_000_000
START = datetime.fromisoformat("2026-03-02T00:00:00+00:00")
_ids = count()


def at(hours: float) -> str:
    return iso(to_us(START + timedelta(hours=hours)))


def event(kind: str, hours: float, ticket: str, **fields: object) -> bytes:
    body = {"event_id": f"E{next(_ids)}", "type": kind, "ticket_id": ticket}
    return json.dumps(body | {"occurred_at": at(hours)} | fields).encode()


def emitted(lines: list[bytes], **rules: object) -> list[Emitted]:
    config = {"step": "1h", "alerts": {"rules": rules}}
    result, _ = run(lines, FlowgaugeConfig.model_validate(config).core(), GRACE_US)
    return result


def indicators_at(lines: list[bytes], hours: float, scope: str = "all") -> IndicatorSnapshot:
    wanted = to_us(START + timedelta(hours=hours))
    for item in emitted(lines):
        if item.flow.scope == scope and item.flow.as_of_us == wanted:
            assert item.indicators is not None
            return item.indicators
    raise AssertionError(f"no row for {scope} at {hours}h")


def test_reopen_rate_and_effort_per_resolved_ticket() -> None:
    lines = [
        event("created", 0, "T1", queue="a"),
        event("customer_replied", 1, "T1"),
        event("agent_replied", 2, "T1"),  # answers the customer: one turn
        event("transferred", 3, "T1", queue="b"),  # one transfer
        event("resolved", 4, "T1"),
        event("created", 0, "T2"),
        event("resolved", 5, "T2"),
        event("reopened", 6, "T2"),  # within 7 days of its resolution
        event("resolved", 7, "T2"),
        event("created", 0, "T3"),
        event("resolved", 1, "T3"),
    ]
    shown = indicators_at(lines, 7)
    assert shown.resolutions == 4
    assert shown.reopen_rate == 1 / 4
    assert shown.transfers_per_resolved == 1 / 4
    assert shown.turns_per_resolved == 1 / 4
    # The transfer counts where the ticket was resolved, in queue b.
    assert indicators_at(lines, 7, "queue:b").transfers_per_resolved == 1.0


def test_a_reopen_after_the_horizon_is_not_counted() -> None:
    lines = [
        event("created", 0, "T1"),
        event("resolved", 1, "T1"),
        event("reopened", 1 + 7 * 24 + 1, "T1"),  # eight days later
        event("resolved", 1 + 7 * 24 + 2, "T1"),
    ]
    assert indicators_at(lines, 1 + 7 * 24 + 2).reopen_rate == 0.0


def test_first_response_percentiles_are_nearest_rank_over_the_window() -> None:
    lines = []
    for minutes in range(10, 101, 10):  # ten tickets answered after 10, 20, ... 100 minutes
        ticket = f"T{minutes}"
        lines += [event("created", 0, ticket), event("agent_replied", minutes / 60, ticket)]
    lines.append(event("agent_replied", 0.5, "T10", meaningful=False))  # not meaningful
    shown = indicators_at(lines, 2)
    assert shown.responses == 10
    assert shown.first_response_p50_seconds == 50 * 60
    assert shown.first_response_p90_seconds == 90 * 60
    # Eight days on, every response has left the 7-day window.
    later = [*lines, event("created", 8 * 24, "T-late")]
    assert indicators_at(later, 8 * 24).responses == 0


def spike_log() -> list[bytes]:
    lines = []
    for day in range(6):  # a quiet baseline: 30 "misc" and one "refund" a day, at 00:30
        for n in range(31):
            tag = "refund" if n == 0 else "misc"
            lines.append(event("created", day * 24 + 0.5, f"D{day}-{n}", tags=[tag]))
    for n in range(10):
        lines.append(event("created", 6 * 24 + 0.1, f"M{n}", tags=["misc"]))
    for n in range(12):
        lines.append(event("created", 6 * 24 + 0.2 + n / 100, f"R{n}", tags=["refund"]))
    lines.append(event("customer_replied", 6 * 24 + 8, "R0"))  # keeps the log running
    return lines


def test_a_tag_taking_three_times_its_usual_share_is_a_spike() -> None:
    shown = indicators_at(spike_log(), 6 * 24 + 1)
    refund, misc = shown.drivers
    assert (refund.tag, refund.recent, misc.tag, misc.recent) == ("refund", 12, "misc", 10)
    assert refund.recent_share == 12 / 22
    # Its usual share: 6 refunds among the 6 * 31 tickets of the week before the last day
    # (the whole week's, 18 / 208, would take the spike in).
    assert refund.baseline_share == 6 / 186
    assert refund.spike
    assert not misc.spike  # under three times its usual share


def spike_alerts(**rules: object) -> list[tuple[str, str]]:
    return [
        (iso(alert.at_us), alert.state.value)
        for item in emitted(spike_log(), **rules)
        for alert in item.alerts
        if alert.rule == DRIVER_SPIKE and alert.scope == "all"
    ]


def test_the_driver_spike_rule_fires_once_the_spike_has_held_for_sustain() -> None:
    """At a 1-hour step, the default half hour is the spike's first boundary; six hours,
    its sixth."""
    assert spike_alerts(warm_up="1d") == [(at(6 * 24 + 1), "firing")]
    assert spike_alerts(warm_up="1d", sustain="6h") == [(at(6 * 24 + 6), "firing")]


def test_no_indicator_rule_decides_in_a_scope_s_first_week() -> None:
    """The spike comes on day 6: within the week the windows take to fill, by default."""
    assert spike_alerts() == []


def test_days_of_capacity_is_open_over_daily_outflow() -> None:
    flow = FlowSnapshot(0, "all", 30, {"7d": 0}, {"7d": 70}, {"7d": 0}, {"7d": 0})
    assert capacity_days(flow, "7d") == 3.0
    idle = FlowSnapshot(0, "all", 30, {"7d": 0}, {"7d": 0}, {"7d": 0}, {"7d": 0})
    assert capacity_days(idle, "7d") is None


def test_a_firing_stands_for_its_hold_so_it_never_flaps() -> None:
    hour = 3600 * 1_000_000
    machine = Hysteresis(SLA_BREACH_WAVE, "all")

    def step(hours: int, fires: bool) -> str | None:
        alert = machine.evaluate(fires, not fires, hours * hour, 0.0, 0.0, 1, 1, 3 * hour)
        return None if alert is None else alert.state.value

    assert step(0, True) == "firing"
    assert [step(h, False) for h in (1, 2, 3)] == [None, None, None]  # calm, but held
    assert step(4, False) == "resolved"
    assert step(5, True) == "firing"


def band_firing_hour(step_seconds: int, above_hours: int) -> float | None:
    """Hours after the warm-up at which ``backlog_above_band`` fires when the backlog sits
    at 4 days of capacity for ``above_hours``, then back at 2; None if it never fires."""
    settings = FlowgaugeConfig(step=f"{step_seconds}s", windows="1h,24h,7d").core()
    rules = IndicatorRules("all")
    step_us = step_seconds * 1_000_000
    warm_up = settings.rules.warm_up_seconds * 1_000_000
    quiet = IndicatorSnapshot(0, "all", 0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, ())
    for index in range((warm_up + 30 * 3600 * 1_000_000) // step_us + 1):
        at = index * step_us
        above = warm_up <= at < warm_up + above_hours * 3600 * 1_000_000
        flow = FlowSnapshot(at, "all", 400 if above else 200, {}, {"7d": 700}, {}, {})
        for alert in rules.evaluate(flow, quiet, None, settings.rules, settings.rule_spans):
            if alert.rule == BACKLOG_ABOVE_BAND and alert.state.value == "firing":
                return (at - warm_up) / (3600 * 1_000_000)
    return None


def test_the_band_rules_wait_for_the_backlog_to_stay_out_for_band_for_at_any_step() -> None:
    """A Monday morning's few hours above the band fire nothing; twelve hours do, at a
    5-minute and at a 1-hour step alike (band_for is a duration): each fires at the boundary
    whose step completes twelve hours out of the band."""
    assert band_firing_hour(300, above_hours=8) is None
    assert band_firing_hour(3600, above_hours=8) is None
    assert band_firing_hour(300, above_hours=20) == 12 - 5 / 60
    assert band_firing_hour(3600, above_hours=20) == 12 - 1


def wave_firings(step_seconds: int) -> list[float]:
    """Days (from the first boundary) at which ``sla_breach_wave`` fires in four weeks
    where every Sunday from 10:00 to 14:00 holds 15 more tickets past SLA, and one Tuesday
    of the fourth week does too."""
    settings = FlowgaugeConfig(step=f"{step_seconds}s").core()
    rules = IndicatorRules("all")
    quiet = IndicatorSnapshot(0, "all", 0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, ())
    start = to_us(datetime(2026, 3, 1, tzinfo=UTC))  # a Sunday, midnight
    day_us, hour_us = 86_400_000_000, 3_600_000_000
    fired = []
    for index in range(28 * 86400 // step_seconds):
        at = start + index * step_seconds * 1_000_000
        day, hour = divmod((at - start) // hour_us, 24)
        waved = day % 7 == 0 or day == 23  # Sundays, and the fourth week's Tuesday
        breached = 15 if waved and 10 <= hour < 14 else 0
        flow = FlowSnapshot(at, "all", 100, {}, {"7d": 700}, {}, {})
        for alert in rules.evaluate(flow, quiet, breached, settings.rules, settings.rule_spans):
            if alert.rule == SLA_BREACH_WAVE and alert.state.value == "firing":
                fired.append((at - start) / day_us)
    return fired


def test_the_breach_wave_is_measured_against_the_same_hour_of_earlier_weeks() -> None:
    """Sundays' breaches are the rhythm of a team that works no weekends: after the first
    week (the warm-up) they fire nothing; the Tuesday's, which no earlier week had, fires.
    The same at a 5-minute and at a 1-hour step."""
    tuesday = 23 + 10 / 24
    assert wave_firings(3600) == [tuesday]  # one boundary stands for its hour
    assert wave_firings(300) == [tuesday + 25 / (24 * 60)]  # six boundaries: half an hour


def monday_wave_firings(step_seconds: int, zone: str) -> list[str]:
    """When ``sla_breach_wave`` fires over six weeks from Monday 2 March 2026 in which every
    Monday from 09:30 to 12:00 on the team's clock (its SLA calendar's ``zone``) holds 23
    more tickets past SLA: the weekend's tickets breaching at once, the same every week."""
    calendar = {"timezone": zone}
    settings = FlowgaugeConfig(step=f"{step_seconds}s", sla={"calendar": calendar}).core()
    rules = IndicatorRules("all")
    quiet = IndicatorSnapshot(0, "all", 0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, ())
    start = to_us(datetime(2026, 3, 2, tzinfo=UTC))
    fired = []
    for index in range(42 * 86400 // step_seconds):
        at = start + index * step_seconds * 1_000_000
        local = from_us(at).astimezone(ZoneInfo(zone))
        breached = 23 if local.weekday() == 0 and time(9, 30) <= local.time() < time(12) else 0
        flow = FlowSnapshot(at, "all", 100, {}, {"7d": 700}, {}, {})
        for alert in rules.evaluate(flow, quiet, breached, settings.rules, settings.rule_spans):
            if alert.rule == SLA_BREACH_WAVE and alert.state.value == "firing":
                fired.append(iso(at))
    return fired


@pytest.mark.parametrize("step_seconds", [300, 3600])
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York"])
def test_a_monday_s_usual_breaches_fire_nothing_at_any_step_nor_across_a_clock_change(
    step_seconds: int, zone: str
) -> None:
    """The breaches come within the hour (09:30), and Berlin's clocks go forward on 29
    March, New York's on 8 March: the usual rise is that of the same hour of the week on
    the team's clock, read at whole hours. It fired every Monday at 09:55 at a 5-minute
    step (compared with the hour before), and on the two Mondays after a clock change."""
    assert monday_wave_firings(step_seconds, zone) == []


def response_firings(step_seconds: int) -> list[float]:
    """Days (from the first boundary) at which ``ttfmr_rising`` fires over five weeks in
    which the first replies' p90 climbs through the first eight days (a queue filling from
    empty, its weekend's slow replies not in yet), settles at 25 hours, and from day 25 is
    40 hours: a real slowdown."""
    settings = FlowgaugeConfig(step=f"{step_seconds}s").core()
    rules = IndicatorRules("all")
    day_us = 86_400_000_000
    fired = []
    for index in range(35 * 86400 // step_seconds):
        at = index * step_seconds * 1_000_000
        day = at / day_us
        p90 = 5_000 * day if day < 8 else 90_000 if day < 25 else 144_000
        flow = FlowSnapshot(at, "all", 100, {}, {"7d": 700}, {}, {})
        quiet = IndicatorSnapshot(at, "all", 0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, ())
        replied = replace(quiet, first_response_p90_seconds=p90, responses=50)
        for alert in rules.evaluate(flow, replied, None, settings.rules, settings.rule_spans):
            if alert.rule == TTFMR_RISING and alert.state.value == "firing":
                fired.append(day)
    return fired


def test_first_replies_are_compared_only_with_a_week_past_the_first() -> None:
    """The p90 of a scope's first week is no baseline: compared with it, the settled 25
    hours look 50% slower on day 14 (where the rule fired in every scope of a steady team).
    The slowdown of day 25 fires, at a 1-hour step and at a 5-minute one (six boundaries:
    half an hour)."""
    assert response_firings(3600) == [25.0]
    assert response_firings(300) == [25 + 25 / (24 * 60)]


def spike_transitions() -> list[tuple[str, float]]:
    """``driver_spike`` over 16 days in which "outage" is 7% of new tickets, but 42% on days
    10 to 13: its week's share, which takes in the spike, climbs so that it is 3 times that
    share only through day 10's first hours."""
    settings = FlowgaugeConfig(step="1h").core()
    rules = IndicatorRules("all")
    quiet = IndicatorSnapshot(0, "all", 0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, ())
    found = []
    for hour in range(16 * 24):
        at, day = hour * 3_600_000_000, hour / 24
        during = 10 <= day < 13
        share, usual = (0.42, 0.07 + 0.1 * (day - 10)) if during else (0.07, 0.07)
        drivers = (Driver("outage", 50, share, usual, share >= 3 * usual),)
        flow = FlowSnapshot(at, "all", 100, {}, {"7d": 700}, {}, {})
        indicators = replace(quiet, as_of_us=at, drivers=drivers)
        for alert in rules.evaluate(flow, indicators, None, settings.rules, settings.rule_spans):
            if alert.rule == DRIVER_SPIKE:
                found.append((alert.state.value, day))
    return found


def test_a_driver_spike_holds_while_the_tag_stays_above_its_share_before() -> None:
    """It fires on the spike, and stands while the tag stays at three times the share it
    had when it fired, though the week's share has taken the spike in (it resolved on day
    10 at 17:00 before, while the outage went on)."""
    assert spike_transitions() == [("firing", 10.0), ("resolved", 13.0)]


def test_a_driver_spike_resolving_with_no_tag_spiking_says_so() -> None:
    """The resolution's text when nothing spikes any more (it raised before: max() of no
    spiking driver, in the worker's publisher)."""
    flow = FlowSnapshot(0, "queue:tech", 12, {}, {}, {}, {})
    calm = IndicatorSnapshot(0, "queue:tech", 0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, ())
    alert = AlertTransition(DRIVER_SPIKE, "queue:tech", AlertState.RESOLVED, 0, 0.0, 0.0, 0)
    text = describe(alert, flow, None, calm)
    assert text.startswith("tech: no tag's share of inflow is spiking any more; 12 open")


_COUNTS = st.dictionaries(st.sampled_from(["1h", "24h", "7d"]), st.integers(0, 10_000))
_SHARE = st.floats(0, 1)
_DRIVERS = st.lists(
    st.builds(
        Driver, st.sampled_from(["a", "b"]), st.integers(0, 99), _SHARE, _SHARE, st.booleans()
    )
)


@given(
    rule=st.sampled_from([INFLOW_ABOVE_OUTFLOW, *INDICATOR_RULES]),
    state=st.sampled_from(AlertState),
    value=st.floats(-1e6, 1e6),
    threshold=st.floats(-1e6, 1e6),
    reading=st.sampled_from(["", ARRIVALS_READING]),
    flow=st.builds(
        FlowSnapshot,
        st.integers(0, 2**50),
        st.just("queue:tech"),
        st.integers(0, 10_000),
        _COUNTS,
        _COUNTS,
        _COUNTS,
        _COUNTS,
    ),
    drivers=st.none() | _DRIVERS,
    earlier_rule=st.booleans(),
)
def test_every_alert_has_a_text_whatever_the_snapshots_hold(
    rule: str,
    state: AlertState,
    value: float,
    threshold: float,
    reading: str,
    flow: FlowSnapshot,
    drivers: list[Driver] | None,
    earlier_rule: bool,
) -> None:
    """The worker's publisher describes every transition: no reading of the snapshots may
    raise (one did: a driver_spike resolution with nothing spiking)."""
    alert = AlertTransition(rule, "queue:tech", state, 0, value, threshold, 0, reading)
    calm = IndicatorSnapshot(0, "queue:tech", 0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, ())
    indicators = None if drivers is None else replace(calm, drivers=tuple(drivers))
    text = describe(alert, flow, "http://dash", indicators, earlier_rule)
    assert text.startswith("tech: ")
    assert text.endswith(" (http://dash)")


STEP_US = 3_600_000_000
WINDOWS = IndicatorWindows(baseline=6, recent=2, settle=3)
# (what happened, in which step; a response waits minutes as many as the step) or a read
_counted = st.tuples(st.sampled_from(["opened", "resolved", "responded"]), st.integers(0, 30))
_operation = st.one_of(_counted, st.just(("read", 0)))


@given(st.lists(_operation, max_size=60))
def test_a_quiet_boundary_reads_what_a_fresh_read_would(operations: list[tuple[str, int]]) -> None:
    """A scope whose windows did not move since its last read reuses it at the new instant:
    late counts, entering and leaving buckets must each make it read afresh."""
    reused, fresh = ScopeIndicators("all"), ScopeIndicators("all")
    boundary = 0
    for name, step in operations:
        if name == "read":
            boundary += 1
            fresh.last = None
            got = reused.snapshot(boundary, STEP_US, WINDOWS)
            assert got == fresh.snapshot(boundary, STEP_US, WINDOWS)
            continue
        at_us = step * STEP_US - 1  # within the step that ends at boundary ``step``
        for state in (reused, fresh):
            if name == "opened":
                state.opened(at_us, Effort(tags=("billing",)), STEP_US, WINDOWS)
            elif name == "resolved":
                state.resolved(at_us, Effort(transfers=1), STEP_US, WINDOWS)
            else:
                state.responded(at_us, step * 60_000_000, STEP_US, WINDOWS)
