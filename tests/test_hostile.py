"""Valid but hostile input: an event dated ahead of the clock, and a partition whose clock
runs ahead of the others. Through the core, ``report`` and the real worker on the embedded
broker (one broker and one worker for the module)."""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.commands.broker import EmbeddedBroker
from streams.commands.cli import main
from streams.commands.replay import message_key
from streams.commands.report import LocalPipeline, in_order, run
from streams.commands.simulate import Scenario, encode, generate_events
from streams.core.events import AheadOfClock, parse_event
from streams.core.indicators import TAGS_PER_STEP
from streams.core.recontact import CONTACTS_KEPT
from streams.core.timeline import US_PER_SECOND, WallClock, boundary_index, iso, to_us
from streams.core.topics import DEAD_LETTERS, FLOW, INPUT
from streams.core.watermark import Watermarks
from tests.cluster import NO_PLANNING, Worker, produce, read_topic, start_worker
from tests.conftest import core_settings
from tests.test_pipeline import assert_snapshots, expected_from_report, gauge, wait_caught_up
from tests.test_properties import LIGHT, Ev, core_alerts, core_rows, event_strategy, scenarios
from tests.test_properties import Scenario as Log

US = US_PER_SECOND
HOUR_US = 3600 * US
GRACE_US = 600 * US
BAD_CLOCK = json.dumps(
    {
        "event_id": "E1",
        "ticket_id": "T-BAD-CLOCK",
        "type": "created",
        "occurred_at": "2099-01-01T00:00:00Z",
        "queue": "billing",
    }
).encode()
AHEAD = "occurred_at ahead of the clock"


def created(ticket: str, at_us: int, event: str = "created") -> bytes:
    body = {"event_id": event, "ticket_id": ticket, "type": event, "occurred_at": iso(at_us)}
    return json.dumps(body).encode()


@pytest.fixture(scope="module")
def team() -> list[bytes]:
    """2,000 events of the simulated team, one from a clock in 2099, then 1,000 more."""
    events = [encode(event) for event in itertools.islice(generate_events(Scenario()), 3000)]
    return [*events[:2000], BAD_CLOCK, *events[2000:]]


# --- the rule, in the core --------------------------------------------------------------


def test_an_event_dated_past_the_clock_plus_the_tolerance_is_invalid() -> None:
    now = to_us(datetime(2026, 12, 6, 12, tzinfo=UTC))
    clock = WallClock(now, HOUR_US)
    assert parse_event(created("T1", now + HOUR_US), clock).occurred_us == clock.not_after_us
    with pytest.raises(AheadOfClock, match=f"^{AHEAD}: 2026-12-06T13:00:00.000001Z is later"):
        parse_event(created("T1", now + HOUR_US + 1), clock)
    # Without a clock (history already checked) only the fixed range applies.
    assert parse_event(BAD_CLOCK).occurred_at.year == 2099


def test_no_boundary_passes_the_clock_plus_the_tolerance_whatever_the_state_says() -> None:
    step = HOUR_US
    marks = Watermarks()
    # Progress kept from before the rule: a partition whose newest event is in 2099.
    marks.observe(0, to_us(datetime(2099, 1, 1, tzinfo=UTC)), next_offset=9, idle=True)
    clock = WallClock(to_us(datetime(2026, 12, 6, 12, 30, tzinfo=UTC)), HOUR_US)
    unbounded = marks.emit_limit(step, GRACE_US)
    assert unbounded is not None
    assert unbounded * step == to_us(datetime(2099, 1, 1, tzinfo=UTC))
    limit = marks.emit_limit(step, GRACE_US, ceiling_us=clock.not_after_us)
    assert limit is not None
    assert iso(limit * step) == "2026-12-06T13:00:00Z"


def test_live_a_partition_ahead_of_the_clock_cannot_make_the_others_late() -> None:
    step = 300 * US
    now = to_us(datetime(2026, 12, 6, 12, 2, tzinfo=UTC))
    by_clock = boundary_index(now - GRACE_US, step) - 1  # 11:50: the clock passed it by 12 min
    marks = Watermarks()
    marks.observe(0, now + 40 * 60 * US)  # busy, its clock 40 minutes ahead
    marks.observe(1, now - HOUR_US, idle=True)
    assert marks.emit_limit(step, GRACE_US, now_us=now) == by_clock
    marks.observe(0, None, idle=True)
    assert marks.emit_limit(step, GRACE_US, now_us=now) == by_clock
    # Replaying history (no clock given) flushes through the newest event, as report does.
    assert marks.emit_limit(step, GRACE_US) == boundary_index(now + 40 * 60 * US, step)


@LIGHT
@given(
    log=scenarios(),
    future=event_strategy(60),
    ahead_us=st.integers(1, 70 * 365 * 86400 * US),
    where=st.integers(0, 10**6),
)
def test_one_event_from_a_clock_ahead_changes_no_snapshot(
    log: Log, future: Ev, ahead_us: int, where: int
) -> None:
    settings = log.config.settings()
    clock = WallClock(max(e.at for e in log.timeline) + HOUR_US, HOUR_US)
    bad = replace(future, event_id="bad-clock", at=clock.not_after_us + ahead_us)
    lines = list(log.lines)
    lines.insert(where % (len(lines) + 1), bad.line())
    want, counted = run(log.lines, settings, GRACE_US, clock)
    got, counters = run(lines, settings, GRACE_US, clock)
    assert core_rows(got) == core_rows(want)
    assert core_alerts(got) == core_alerts(want)
    assert (counters.processed, counters.late) == (counted.processed, counted.late)
    extra = [reason for _, reason in counters.invalid if reason.startswith(AHEAD)]
    assert len(extra) == 1
    assert len(counters.invalid) == len(counted.invalid) + 1


def test_report_finishes_with_the_rows_of_the_stream_without_the_future_event(
    team: list[bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {"with": team, "without": [line for line in team if line != BAD_CLOCK]}
    written = {}
    for name, lines in files.items():
        events = tmp_path / f"{name}.jsonl"
        events.write_bytes(b"\n".join(lines) + b"\n")
        rows, alerts = tmp_path / f"{name}.csv", tmp_path / f"{name}-alerts.csv"
        command = ["report", str(events), "--step", "5m", "--output", str(rows)]
        assert main([*command, "--alerts", str(alerts)]) == 0
        written[name] = (rows.read_bytes(), alerts.read_bytes(), capsys.readouterr().err)
    rows, alerts, log = written["with"]
    assert (rows, alerts) == written["without"][:2]
    assert rows.count(b"\n") > 5000, "two days of the simulated team at a 5 min step"
    assert f"with.jsonl:2001: skipped: {AHEAD}: 2099-01-01T00:00:00Z is later than" in log
    assert "3000 events, 1 invalid, 0 duplicates, 0 late" in log


def test_a_flood_of_distinct_tags_keeps_a_steps_most_frequent_ones() -> None:
    start = to_us(datetime(2026, 3, 2, 9, tzinfo=UTC))  # all in the hour to 10:00
    flood = [
        {"ticket_id": f"F{n}", "tags": [f"free-text-{n}", f"more-{n}"]} for n in range(3000)
    ] + [{"ticket_id": f"O{n}", "tags": ["outage"]} for n in range(30)]
    lines = [
        json.dumps(
            {"event_id": "e", "type": "created", "occurred_at": iso(start + (n + 1) * US), **fields}
        ).encode()
        for n, fields in enumerate(flood)
    ]
    pipeline = LocalPipeline(core_settings(3600), GRACE_US)
    emitted = list(in_order(lines, pipeline))
    indicators = pipeline.scopes["all"].indicators
    assert len(indicators.baseline.tags) == TAGS_PER_STEP  # not 6,001
    assert all(len(bucket.tags) <= TAGS_PER_STEP for bucket in indicators.buckets.values())
    last = [item for item in emitted if item.flow.scope == "all"][-1].indicators
    assert last is not None
    assert (last.drivers[0].tag, last.drivers[0].recent) == ("outage", 30)


def test_one_requester_on_thousands_of_tickets_keeps_its_newest_contacts() -> None:
    """A system account as requester: each contact is matched against at most the kept ones."""
    start = to_us(datetime(2026, 3, 2, tzinfo=UTC))
    lines = []
    for n in range(4000):
        at = start + n * 20 * US
        for kind, offset in (("created", 0), ("resolved", 5)):
            body = {"event_id": kind, "ticket_id": f"S{n}", "type": kind, "requester_id": "sys"}
            lines.append(json.dumps({**body, "occurred_at": iso(at + offset * US)}).encode())
    pipeline = LocalPipeline(core_settings(3600), GRACE_US)
    emitted = list(in_order(lines, pipeline))
    [requester] = pipeline.requesters.values()
    kept = (requester.openings, requester.resolutions)
    assert [len(contacts) for contacts in kept] == [CONTACTS_KEPT, CONTACTS_KEPT]
    assert min(o.at_us for o in requester.openings) == start + 3000 * 20 * US  # the newest
    last = [item for item in emitted if item.flow.scope == "all"][-1].indicators
    assert last is not None
    assert last.recontact_rate > 0.99  # each new ticket follows a resolution 15 s before


# --- the real worker ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedBroker, Worker]]:
    workdir = tmp_path_factory.mktemp("hostile")
    with EmbeddedBroker() as broker:
        running = start_worker(broker, workdir, "worker", FLOWGAUGE_STEP="1h", **NO_PLANNING)
        try:
            yield broker, running
        finally:
            running.stop()


@pytest.mark.broker
@pytest.mark.slow
def test_the_worker_dead_letters_the_future_event_and_publishes_what_report_computes(
    worker: tuple[EmbeddedBroker, Worker], team: list[bytes]
) -> None:
    broker, running = worker
    produce(broker, INPUT, [(message_key(line), line) for line in team])
    wait_caught_up([running])
    wanted = expected_from_report([line for line in team if line != BAD_CLOCK])
    assert_snapshots(broker, wanted)
    [(key, value)] = read_topic(broker, DEAD_LETTERS, until=1)
    letter = json.loads(value)
    assert key == b"T-BAD-CLOCK"
    assert base64.b64decode(letter["original_base64"]) == BAD_CLOCK
    assert letter["reason"].startswith(f"{AHEAD}: 2099-01-01T00:00:00Z is later than")
    assert gauge([running], "flowgauge_events_ahead_of_clock_total") == 1
    assert gauge([running], "flowgauge_events_late_total") == 0
    assert gauge([running], "flowgauge_late_transitions_total") == 0
    time.sleep(5)  # idle beats go on: nothing more may be emitted
    published = {(json.loads(v)["as_of"], k) for k, v in read_topic(broker, FLOW, 1, quiet=1)}
    assert len(published) == len(wanted.flow)


@pytest.mark.broker
@pytest.mark.slow
def test_live_a_partition_whose_clock_runs_ahead_neither_holds_back_nor_makes_others_late(
    worker: tuple[EmbeddedBroker, Worker],
) -> None:
    broker, running = worker
    late = gauge([running], "flowgauge_late_transitions_total")
    now = int(time.time() * US)
    quiet = [created(f"quiet-{n}", now - 3 * HOUR_US + n * 60 * US) for n in range(30)]
    produce(broker, INPUT, [(None, line) for line in quiet], partition=1)
    time.sleep(4)  # partition 1 goes idle
    ahead = [created(f"ahead-{n}", now - HOUR_US + n * 5 * 60 * US) for n in range(20)]
    started = int(time.time() * US)
    produce(broker, INPUT, [(None, line) for line in ahead], partition=0)  # up to now + 35m
    wait_caught_up([running])
    # The worker emits every hour since the team's March: a catch-up of thousands of
    # boundaries after its intake has caught up.
    step = HOUR_US
    lowest = (boundary_index(started - GRACE_US, step) - 1) * step
    scopeless = {"queue": "", "priority": "", "channel": ""}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if gauge([running], "flowgauge_snapshot_timestamp_seconds", **scopeless) * US >= lowest:
            break
        time.sleep(1)
    time.sleep(4)
    checked = int(time.time() * US)
    newest = max(json.loads(v)["as_of"] for k, v in read_topic(broker, FLOW, 1, quiet=1))
    # Partition 1, idle since 3 hours ago, does not hold the boundaries back; partition 0
    # does not take them past the wall clock minus the grace.
    assert iso(lowest) <= newest
    assert newest <= iso((boundary_index(checked - GRACE_US, step) - 1) * step)
    # So events on time on partition 1 are not late, though partition 0 is 35 min ahead.
    on_time = [created(f"quiet-{n}", now + n * 60 * US - 5 * 60 * US, "resolved") for n in range(5)]
    produce(broker, INPUT, [(None, line) for line in on_time], partition=1)
    wait_caught_up([running])
    time.sleep(4)
    assert gauge([running], "flowgauge_late_transitions_total") == late
    assert gauge([running], "flowgauge_events_ahead_of_clock_total") == 1  # the earlier one
