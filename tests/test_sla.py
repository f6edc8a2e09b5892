"""SLA clocks: business hours, pauses, re-targets, reopens and transfers, worked by hand."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, time
from itertools import count
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from streams.commands.report import SLA_EVENTS, LocalPipeline, run, write_csv
from streams.config import FlowgaugeConfig
from streams.core.aging import SharedReadings
from streams.core.events import parse_event
from streams.core.scope import Settings
from streams.core.sla import (
    HOUR_US,
    Calendar,
    Clock,
    SlaPolicy,
    SlaState,
    Target,
    TargetClock,
    Targets,
    read,
)
from streams.core.timeline import to_us
from tests.conftest import core_settings

GRACE_US = 600 * 1_000_000
MINUTE_US = 60 * 1_000_000
BERLIN = Calendar("Europe/Berlin", frozenset(range(5)), time(9), time(17))
BERLIN_ZONE = ZoneInfo("Europe/Berlin")
_ids = count()


def event(kind: str, at: str, ticket: str = "T1", **fields: object) -> bytes:
    body = {"event_id": f"E{next(_ids)}", "type": kind, "ticket_id": ticket, "occurred_at": at}
    return json.dumps(body | fields).encode()


def sla_rows(lines: list[bytes], policy: SlaPolicy) -> list[list[str]]:
    settings = Settings(core_settings(3600).windows, sla=policy)
    emitted, _ = run(lines, settings, GRACE_US)
    out = io.StringIO()
    write_csv([(out, SLA_EVENTS)], emitted)
    rows = [line.split(",") for line in out.getvalue().splitlines()]
    assert rows[0] == ["ticket_id", "target", "state", "due_at", "as_of"]
    return rows[1:]


def aging_sla(lines: list[bytes], policy: SlaPolicy, scope: str, as_of: str) -> dict:
    settings = Settings(core_settings(3600).windows, sla=policy)
    emitted, _ = run(lines, settings, GRACE_US)
    wanted = to_us(datetime.fromisoformat(as_of))
    for item in emitted:
        if item.aging is not None and item.flow.scope == scope and item.flow.as_of_us == wanted:
            return {t.value: {s.value: n for s, n in c.items()} for t, c in item.aging.sla.items()}
    raise AssertionError(f"no aging row for {scope} at {as_of}")


def test_a_late_reply_stays_breached_and_a_timely_resolution_is_met() -> None:
    lines = [
        event("created", "2026-03-02T08:00:00Z", priority="P1"),
        event("agent_replied", "2026-03-02T08:40:00Z"),
        event("resolved", "2026-03-02T12:00:00Z"),
    ]
    # P1: first response 30 min (at risk after 22.5 min), resolution one day.
    assert sla_rows(lines, SlaPolicy()) == [
        ["T1", "first_response", "at_risk", "2026-03-02T08:30:00Z", "2026-03-02T08:22:30Z"],
        ["T1", "first_response", "breached", "2026-03-02T08:30:00Z", "2026-03-02T08:30:00Z"],
        ["T1", "resolution", "met", "2026-03-03T08:00:00Z", "2026-03-02T12:00:00Z"],
    ]


def test_business_hours_carry_the_clock_across_a_weekend() -> None:
    policy = SlaPolicy(calendar=Calendar())  # Monday to Friday, 09:00-17:00 UTC
    lines = [
        event("created", "2026-03-06T16:00:00Z", priority="P2"),  # a Friday
        event("customer_replied", "2026-03-11T17:30:00Z"),  # keeps the log running
    ]
    # First response 4 business hours: 1 h on Friday, 3 on Monday; at risk after 3 h.
    # Resolution 3 business days = 24 working hours: Fri 1 + Mon 8 + Tue 8 + Wed 7.
    assert sla_rows(lines, policy) == [
        ["T1", "first_response", "at_risk", "2026-03-09T12:00:00Z", "2026-03-09T11:00:00Z"],
        ["T1", "first_response", "breached", "2026-03-09T12:00:00Z", "2026-03-09T12:00:00Z"],
        ["T1", "resolution", "at_risk", "2026-03-11T16:00:00Z", "2026-03-11T10:00:00Z"],
        ["T1", "resolution", "breached", "2026-03-11T16:00:00Z", "2026-03-11T16:00:00Z"],
    ]


def test_pending_and_on_hold_pause_both_clocks() -> None:
    lines = [
        event("created", "2026-03-02T10:00:00Z", priority="P0"),
        event("status_changed", "2026-03-02T10:05:00Z", status="pending"),
        event("status_changed", "2026-03-02T11:00:00Z", status="open"),
        event("status_changed", "2026-03-02T11:01:00Z", status="on_hold"),
        event("status_changed", "2026-03-02T12:00:00Z", status="open"),
        event("resolved", "2026-03-02T13:30:00Z"),
    ]
    # P0: 10 min / 2 h. Running 10:00-10:05, 11:00-11:01, then from 12:00 (6 min used);
    # resolution at risk after 90 min used, so 84 min after 12:00.
    assert sla_rows(lines, SlaPolicy()) == [
        ["T1", "first_response", "at_risk", "2026-03-02T12:04:00Z", "2026-03-02T12:01:30Z"],
        ["T1", "first_response", "breached", "2026-03-02T12:04:00Z", "2026-03-02T12:04:00Z"],
        ["T1", "resolution", "at_risk", "2026-03-02T13:54:00Z", "2026-03-02T13:24:00Z"],
        ["T1", "resolution", "met", "2026-03-02T13:54:00Z", "2026-03-02T13:30:00Z"],
    ]


def test_a_priority_change_keeps_the_time_used_and_moves_the_target() -> None:
    lines = [
        event("created", "2026-03-02T00:00:00Z", priority="P3"),
        event("priority_changed", "2026-03-02T01:00:00Z", priority="P0"),
        event("resolved", "2026-03-02T03:00:00Z"),
    ]
    # One hour used against P0's 10 minutes: breached at the change; resolution 2 h.
    assert sla_rows(lines, SlaPolicy()) == [
        ["T1", "first_response", "breached", "2026-03-02T01:00:00Z", "2026-03-02T01:00:00Z"],
        ["T1", "resolution", "at_risk", "2026-03-02T02:00:00Z", "2026-03-02T01:30:00Z"],
        ["T1", "resolution", "breached", "2026-03-02T02:00:00Z", "2026-03-02T02:00:00Z"],
    ]


def test_a_reopen_after_a_breach_does_not_report_it_again() -> None:
    lines = [
        event("created", "2026-03-02T00:00:00Z", priority="P0"),
        event("agent_replied", "2026-03-02T00:05:00Z"),
        event("resolved", "2026-03-02T03:00:00Z"),
        event("reopened", "2026-03-02T04:00:00Z"),
        event("resolved", "2026-03-02T05:00:00Z"),
    ]
    assert sla_rows(lines, SlaPolicy()) == [
        ["T1", "first_response", "met", "2026-03-02T00:10:00Z", "2026-03-02T00:05:00Z"],
        ["T1", "resolution", "at_risk", "2026-03-02T02:00:00Z", "2026-03-02T01:30:00Z"],
        ["T1", "resolution", "breached", "2026-03-02T02:00:00Z", "2026-03-02T02:00:00Z"],
    ]


def test_a_reopen_after_a_met_resolution_resumes_its_clock() -> None:
    lines = [
        event("created", "2026-03-02T00:00:00Z", priority="P0"),
        event("resolved", "2026-03-02T01:00:00Z"),
        event("reopened", "2026-03-02T02:00:00Z"),
        event("resolved", "2026-03-02T04:00:00Z"),
    ]
    # The hour while resolved does not count: 1 h used at the reopen, 30 min to risk.
    rows = sla_rows(lines, SlaPolicy())
    resolution = [row for row in rows if row[1] == "resolution"]
    assert resolution == [
        ["T1", "resolution", "met", "2026-03-02T02:00:00Z", "2026-03-02T01:00:00Z"],
        ["T1", "resolution", "at_risk", "2026-03-02T03:00:00Z", "2026-03-02T02:30:00Z"],
        ["T1", "resolution", "breached", "2026-03-02T03:00:00Z", "2026-03-02T03:00:00Z"],
    ]


def test_a_transfer_to_a_queue_with_its_own_policy_re_targets_the_clock() -> None:
    vip = {"P3": Targets(HOUR_US, 4 * HOUR_US)}
    policy = SlaPolicy(by_queue={"vip": vip})
    lines = [
        event("created", "2026-03-02T00:00:00Z", priority="P3", queue="general"),
        event("transferred", "2026-03-02T00:30:00Z", queue="vip"),
        event("customer_replied", "2026-03-02T02:00:00Z"),
    ]
    assert sla_rows(lines, policy)[:2] == [
        ["T1", "first_response", "at_risk", "2026-03-02T01:00:00Z", "2026-03-02T00:45:00Z"],
        ["T1", "first_response", "breached", "2026-03-02T01:00:00Z", "2026-03-02T01:00:00Z"],
    ]
    at_two = "2026-03-02T02:00:00+00:00"
    assert aging_sla(lines, policy, "queue:vip", at_two)["first_response"]["breached"] == 1
    assert aging_sla(lines, policy, "queue:general", at_two)["first_response"]["breached"] == 0
    assert aging_sla(lines, policy, "all", at_two) == {
        "first_response": {"at_risk": 0, "breached": 1},
        "resolution": {"at_risk": 0, "breached": 0},
    }


def test_the_configured_policy_reaches_the_core() -> None:
    config = FlowgaugeConfig.model_validate(
        {
            "sla": {
                "priorities": {"P2": {"first_response": "2h", "resolution": "1d"}},
                "queues": {"vip": {"P1": {"first_response": "5m", "resolution": "2d"}}},
                "calendar": {"timezone": "Europe/Berlin", "weekdays": ["mon", "tue"]},
                "at_risk_share": 0.5,
            }
        }
    )
    policy = config.core().sla
    assert policy.calendar == Calendar("Europe/Berlin", frozenset({0, 1}), time(9), time(17))
    # Two business days of a 09:00-17:00 calendar are 16 working hours.
    assert policy.targets("vip", "P1") == Targets(5 * MINUTE_US, 16 * HOUR_US)
    assert policy.targets("general", "P2") == Targets(2 * HOUR_US, 8 * HOUR_US)
    # Priorities the file does not name keep their defaults.
    assert policy.targets("general", "P0") == Targets(10 * MINUTE_US, 2 * HOUR_US)
    assert policy.at_risk_share == 0.5


instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
).map(to_us)


@given(instants, st.integers(min_value=0, max_value=40 * HOUR_US))
def test_advance_uses_up_exactly_the_business_time_asked_for(start: int, business: int) -> None:
    end = BERLIN.advance(start, business)
    assert BERLIN.working_us(start, end) == business
    assert end == start or BERLIN.working_us(start, end - 1) < business


@given(instants, st.integers(min_value=0, max_value=10 * 24 * 60))
def test_working_time_equals_a_minute_by_minute_count(start: int, minutes: int) -> None:
    start = start // MINUTE_US * MINUTE_US
    end = start + minutes * MINUTE_US
    counted = sum(MINUTE_US for m in range(minutes) if _is_working_minute(start + m * MINUTE_US))
    assert BERLIN.working_us(start, end) == counted


def _is_working_minute(us: int) -> bool:
    local = datetime.fromtimestamp(us / 1_000_000, UTC).astimezone(BERLIN_ZONE)
    return local.weekday() < 5 and time(9) <= local.time() < time(17)


def test_crossings_left_stale_by_updates_are_dropped_and_change_nothing() -> None:
    """Each priority change of a long-open ticket schedules its next crossings anew and leaves
    the earlier ones stale in the heap: they must not pile up, and dropping them must not
    move an SLA record."""
    lines = [event("created", "2026-03-02T00:00:00Z", priority="P3")]
    lines += [
        event("priority_changed", f"2026-03-02T00:{minute:02d}:00Z", priority=f"P{3 - minute % 2}")
        for minute in range(1, 60)
    ]
    lines.append(event("created", "2026-03-02T06:00:00Z", ticket="T2"))  # moves time on
    pipeline = LocalPipeline(Settings(core_settings(3600).windows, sla=SlaPolicy()), GRACE_US)
    for line in lines:
        list(pipeline.ingest(parse_event(line)))
    aging = pipeline.scopes["all"].aging
    assert aging is not None
    # Two crossings were scheduled per update; two open tickets keep at most four live.
    assert aging.scheduled > 100
    assert len(aging.crossings) <= 2 * 2 * 2 + 64
    # Ending at P2 (4 h to first response, at risk after 3 h), counted from the creation.
    assert sla_rows(lines, SlaPolicy()) == [
        ["T1", "first_response", "at_risk", "2026-03-02T04:00:00Z", "2026-03-02T03:00:00Z"],
        ["T1", "first_response", "breached", "2026-03-02T04:00:00Z", "2026-03-02T04:00:00Z"],
    ]


def test_a_shared_reading_is_the_policys_own_and_the_same_clock_for_every_scope() -> None:
    """Readings are shared between the scopes of a ticket, kept by clock and instant: a clock
    read under another policy is read again, and a full store starts afresh."""
    readings = SharedReadings(limit=2)
    strict, lenient = SlaPolicy(at_risk_share=0.5), SlaPolicy(at_risk_share=0.1)
    start = to_us(datetime(2026, 3, 2, tzinfo=UTC))
    targets = Targets(4 * HOUR_US, 24 * HOUR_US)
    flat = Clock(start, targets, TargetClock(3 * HOUR_US, True), TargetClock(0, True)).flat()
    clock, reading = readings.of(flat, start, strict)
    assert reading.states[Target.FIRST_RESPONSE] is SlaState.AT_RISK
    assert readings.of(flat, start, strict) == (clock, reading)
    assert readings.of(flat, start, strict)[0] is clock  # one object for every scope
    # Under the lenient policy the same clock is not at risk yet: its own reading.
    assert readings.of(flat, start, lenient)[1].states[Target.FIRST_RESPONSE] is None
    assert readings.of(flat, start, lenient)[1] == read(clock, start, lenient)
    # Later, the first response is breached in one more hour of the clock.
    later = readings.of(flat, start + HOUR_US, strict)[1]
    assert later.states[Target.FIRST_RESPONSE] is SlaState.BREACHED
    assert len(readings.kept) <= 2
    # A crossing falling due reads the ticket's clock object, kept by it and the policy.
    assert readings.at(clock, start, strict).states[Target.FIRST_RESPONSE] is SlaState.AT_RISK
    assert readings.at(clock, start, lenient).states[Target.FIRST_RESPONSE] is None
    assert readings.at(clock, start + HOUR_US, strict) == later
