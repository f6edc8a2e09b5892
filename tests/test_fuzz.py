"""Bad input, fuzzed: hostile events never stop the pipeline, and every one is accounted for.

Core level (no broker): generated and hand-written hostile messages (arbitrary bytes,
non-UTF-8, wrong types, missing fields, unknown types, extreme timestamps, offsets of
+-23:59, leap seconds, fractional seconds, clock skew, per-ticket disorder, duplicate
storms, a flood of distinct queue names) go through ``parse_event``, ``run_ticket_batch``
and the scope stage exactly as the Faust shell drives them. Broker level: one real worker
fed a hostile batch stays alive and dead-letters with reasons.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from streams.commands.broker import EmbeddedBroker
from streams.commands.report import Counters, run
from streams.core.events import EventType, InvalidEvent, TicketEvent, parse_event
from streams.core.flow import Windows
from streams.core.scope import Emitted, Settings
from streams.core.ticket import ALL_SCOPE, Status
from streams.core.timeline import US_PER_SECOND, iso, to_us
from streams.core.topics import DEAD_LETTERS, INPUT, TOPIC_CONFIGS
from streams.outputs.metrics import OTHER, PipelineMetrics
from streams.outputs.records import DeadLetter, outgoing
from tests import inprocess
from tests.cluster import NO_PLANNING, produce, read_topic, workers
from tests.inprocess import GRACE_US, CoreRun

BASE = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
BASE_US = to_us(BASE)
# The step is a window too, so open(B) - open(previous B) = inflow - outflow of that step;
# 24h and 7d are the headline rule's.
SETTINGS = Settings(Windows.of(300, {"5m": 300, "1h": 3600, "24h": 86400, "7d": 604800}))
TYPES = [t.value for t in EventType]
# Apache Kafka's default message.max.bytes (and so every topic's max.message.bytes):
# the size of the largest input message a production broker accepts.
KAFKA_MESSAGE_MAX_BYTES = 1_048_588

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
PIPELINE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


# --- strategies ---------------------------------------------------------------------------

OFFSETS = st.one_of(
    st.sampled_from(["Z", "+00:00", "-00:00", "+23:59", "-23:59", "+05:30", "-12:00", "+14:00"]),
    st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
        lambda m: f"{'+' if m >= 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
    ),
)


@st.composite
def timestamps(draw: st.DrawFn) -> object:
    """occurred_at values: valid ones from year 1 to 9999, and every way to get it wrong."""
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
    day = moment.strftime("%Y-%m-%d")
    clock = moment.strftime("%H:%M:%S")
    fraction = draw(st.sampled_from(["", ".5", ".123456", ".123456789", ",25", ".0000001"]))
    offset = draw(OFFSETS)
    return draw(
        st.sampled_from(
            [
                f"{day}T{clock}{fraction}{offset}",
                f"{day}T23:59:60{offset}",  # a leap second
                f"{day}T{clock}{fraction}",  # no offset
                f"{day} {clock}{offset}",
                f"{day}T24:00:00{offset}",
                f"{day}T{clock}+24:00",
                moment.timestamp() if moment.year > 1970 else -1,
                "",
                "yesterday",
                None,
                [day],
            ]
        )
    )


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
IDS = st.one_of(st.sampled_from(["T1", "T2", "T3"]), st.text(max_size=300), JSON_VALUES)


def field_value(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a right value, sometimes any JSON value at all."""
    return st.one_of(good, good, JSON_VALUES)


DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "schema_version": field_value(st.just(1)),
        "event_id": field_value(st.sampled_from(["E1", "E2", "E3"])),
        "ticket_id": IDS,
        "type": field_value(st.one_of(st.sampled_from(TYPES), st.text(max_size=12))),
        "occurred_at": timestamps(),
        "queue": field_value(st.text(max_size=300)),
        "priority": field_value(
            st.sampled_from(["P0", "p1", "urgent", "HIGH", "Normal", "low", "P7", "", " p2 "])
        ),
        "channel": field_value(st.sampled_from(["email", "chat", "other"])),
        "tags": field_value(st.lists(st.text(max_size=5), max_size=70)),
        "sentiment": field_value(st.floats()),
        "actor": field_value(st.sampled_from(["agent", "customer", "bot", "system", "alien"])),
        "meaningful": JSON_VALUES,
        "status": field_value(st.sampled_from(["open", "pending", "on_hold", "closed"])),
        "resolution": field_value(st.sampled_from(["solved", "spam", "maybe"])),
        "extra": JSON_VALUES,
    },
)


@st.composite
def hostile_bytes(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, non-UTF-8 text, broken JSON, and JSON documents of every shape."""
    document = json.dumps(draw(DOCUMENTS)).encode()  # NaN and Infinity included
    kind = draw(st.sampled_from(["bytes", "document", "document", "broken", "latin1", "nesting"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "broken":
        cut = draw(st.integers(0, max(0, len(document) - 1)))
        return document[:cut]
    if kind == "latin1":  # a producer that encodes as Latin-1, or a stray byte inside a string
        at = draw(st.integers(0, len(document)))
        return document[:at] + draw(st.sampled_from([b"\xe9", b"\xff", b"\xc3", b"\xed\xa0\x80"]))
    if kind == "nesting":
        depth = draw(st.integers(1, 3000))
        return b'{"event_id":"E1","x":' + b"[" * depth + b"]" * depth + b"}"
    return document


def line(ticket: str, event: str, kind: str, at_us: int, **extra: object) -> bytes:
    fields = {"event_id": event, "ticket_id": ticket, "type": kind, "occurred_at": iso(at_us)}
    return json.dumps({**fields, **extra}).encode()


@dataclass(frozen=True)
class Ev:
    ticket: str
    event: str
    kind: str
    at_us: int
    queue: str | None

    def encode(self) -> bytes:
        extra = {"queue": self.queue} if self.queue is not None else {}
        return line(self.ticket, self.event, self.kind, self.at_us, **extra)


# Valid events of a few tickets over two hours, each producer's clock skewed by up to a
# quarter of an hour, with no care for per-ticket order: that is what hostile means here.
VALID_EVENTS = st.builds(
    Ev,
    ticket=st.sampled_from([f"T{i}" for i in range(6)]),
    event=st.sampled_from([f"E{i}" for i in range(12)]),
    kind=st.sampled_from(TYPES),
    at_us=st.integers(0, 2 * 3600).map(lambda s: BASE_US + s * US_PER_SECOND),
    queue=st.sampled_from([None, None, "billing", "tech", "q:with:colons", "ünïcødé"]),
)


@st.composite
def skewed(draw: st.DrawFn, event: Ev) -> Ev:
    skew = draw(st.integers(-15 * 60, 15 * 60)) * US_PER_SECOND
    return Ev(event.ticket, event.event, event.kind, event.at_us + skew, event.queue)


MIXED = st.lists(
    st.one_of(
        VALID_EVENTS.flatmap(skewed).map(Ev.encode),
        VALID_EVENTS.map(Ev.encode),
        VALID_EVENTS.map(Ev.encode),
        hostile_bytes(),
    ),
    max_size=60,
)


# --- the core pipeline, driven as the Faust shell drives it -------------------------------


def run_core(
    lines: list[bytes],
    batch: int = 7,
    budget: int | None = None,
    metrics: PipelineMetrics | None = None,
) -> CoreRun:
    """The three stages, one input partition, in batches; every snapshot published as the
    shell would (what the shell sends must be serialisable too)."""
    return inprocess.run_core(lines, SETTINGS, batch, budget, metrics, emit_each=publish)


def publish(item: Emitted) -> list[bytes]:
    """The records the shell publishes of one emitted snapshot."""
    return [value for _, _, value in outgoing(item, None, "7d", "7d")]


def parses(raw: bytes) -> TicketEvent | None:
    try:
        return parse_event(raw)
    except InvalidEvent:
        return None


def open_by_arrival(lines: list[bytes]) -> int:
    """Tickets open at the end by DESIGN's state machine in arrival order: independent model."""
    status: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    for raw in lines:
        event = parses(raw)
        if event is None or (event.ticket_id, event.event_id) in seen:
            continue
        seen.add((event.ticket_id, event.event_id))
        current = status.get(event.ticket_id)
        if event.type in (EventType.RESOLVED, EventType.CLOSED):
            status[event.ticket_id] = "done"
        elif current is None or (current == "done" and event.type is EventType.REOPENED):
            status[event.ticket_id] = "open"
    return sum(1 for s in status.values() if s == "open")


def rows(emitted: list[Emitted]) -> list[tuple[str, int, Any, Any, Any]]:
    return sorted(
        (e.flow.scope, e.flow.as_of_us, e.flow, e.aging, e.alert.alert_id if e.alert else None)
        for e in emitted
    )


def of_scope(emitted: list[Emitted], scope: str) -> list[Emitted]:
    return sorted((e for e in emitted if e.flow.scope == scope), key=lambda e: e.flow.as_of_us)


# --- parse_event: total over any bytes ------------------------------------------------------


def check_parse(raw: bytes) -> None:
    try:
        event = parse_event(raw)
    except InvalidEvent as exc:
        reason = str(exc)
        assert reason.strip(), "a dead letter needs a reason"
        assert "\n" not in reason, f"reasons are one line: {reason!r}"
        return
    # Anything accepted is a usable event: an instant, ids, a known type and priority.
    assert isinstance(event, TicketEvent)
    assert event.occurred_at.utcoffset() is not None
    assert isinstance(event.occurred_us, int)
    assert event.ticket_id
    assert event.event_id
    assert event.priority in (None, "P0", "P1", "P2", "P3")
    assert EventType(event.type) is event.type


@FUZZ
@given(hostile_bytes())
def test_parse_event_accepts_or_rejects_with_a_reason_never_raises(raw: bytes) -> None:
    check_parse(raw)


@FUZZ
@given(st.binary(max_size=200))
def test_parse_event_on_arbitrary_bytes(raw: bytes) -> None:
    check_parse(raw)


@pytest.mark.parametrize(
    ("occurred_at", "valid"),
    [
        # Outside [2000, 2100): a broken producer's clock, dead-lettered.
        ("0001-01-01T00:00:00Z", False),
        ("0001-01-01T00:00:00+23:59", False),  # year 0 in UTC
        ("9999-12-31T23:59:59Z", False),
        ("9999-12-31T23:59:59-23:59", False),  # year 10000 in UTC
        ("1999-12-31T23:59:59Z", False),
        ("2000-01-01T00:00:00Z", True),
        ("2099-12-31T23:59:59Z", True),
        ("2100-01-01T00:00:00+01:00", True),  # 2099 in UTC
        ("2026-03-02T23:59:60Z", False),  # leap second: datetime has none
        ("2026-06-30T23:59:60+00:00", False),
        ("2026-03-02T08:00:00.123456789Z", True),  # truncated to microseconds
        ("2026-03-02T08:00:00,5+01:00", True),
        ("2026-03-02T08:00:00+24:00", False),
        ("2026-03-02T08:00:00", False),
        ("2026-03-02", False),
    ],
)
def test_extreme_and_odd_timestamps(occurred_at: str, valid: bool) -> None:
    raw = line("T1", "E1", "created", BASE_US).replace(iso(BASE_US).encode(), occurred_at.encode())
    if valid:
        assert parse_event(raw).occurred_at.utcoffset() is not None
    else:
        with pytest.raises(InvalidEvent, match="occurred_at"):
            parse_event(raw)


# --- the ticket and scope stages over hostile batches ---------------------------------------


@PIPELINE
@given(MIXED, st.integers(1, 25))
def test_mixed_batches_never_raise_and_every_message_is_accounted_for(
    lines: list[bytes], batch: int
) -> None:
    result = run_core(lines, batch=batch)
    invalid = [raw for raw in lines if parses(raw) is None]
    assert [dl.message.value for dl in result.dead_letters] == invalid
    assert all(dl.reason.strip() for dl in result.dead_letters)
    assert len(invalid) + result.duplicates + result.processed == len(lines)
    # The stream's stages and ``report`` are the same core (report skips blank lines).
    emitted, counters = run(lines, SETTINGS, GRACE_US)
    assert (counters.duplicates, counters.late, len(counters.invalid)) == (
        result.duplicates,
        result.late,
        sum(1 for raw in invalid if raw.strip()),
    )
    # Which boundaries are out when a late event comes depends on the batching; one event
    # per batch is report's own rhythm, and without late events batching cannot matter.
    same_rhythm = result if result.late == 0 or batch == 1 else run_core(lines, batch=1)
    assert rows(same_rhythm.emitted) == rows(emitted)
    check_invariants(lines, result, counters)


def check_invariants(lines: list[bytes], result: CoreRun, counters: Counters) -> None:
    everything = of_scope(result.emitted, ALL_SCOPE)
    if not everything:
        assert result.processed == 0
        return
    # open(all) at the last boundary = inflows - outflows of every transition, late ones too,
    # = the tickets the state machine leaves open.
    still_open = sum(1 for t in result.tickets.values() if t.status is Status.OPEN)
    assert everything[-1].flow.open == still_open == open_by_arrival(lines)
    if counters.late == 0:  # late transitions land in open(B) without their step's inflow
        for before, after in pairwise(everything):
            net = after.flow.inflow["5m"] - after.flow.outflow["5m"]
            assert after.flow.open - before.flow.open == net
    for item in result.emitted:
        flow = item.flow
        assert all(
            count >= 0 for window in (flow.inflow, flow.outflow) for count in window.values()
        )
        assert flow.inflow["5m"] <= flow.inflow["1h"] <= flow.inflow["24h"]
        if item.aging is not None:
            assert item.aging.open >= item.aging.untouched >= 0
            assert sum(item.aging.bands.values()) == item.aging.open
    # Aging applies each ticket's transitions in arrival order too, so once every one has
    # taken effect it holds the same open tickets, however skewed their stamps.
    last = everything[-1]
    assert last.aging is not None
    assert last.aging.open == still_open


@PIPELINE
@given(st.lists(VALID_EVENTS.flatmap(skewed), max_size=50))
def test_a_time_sorted_log_has_no_late_events(events: list[Ev]) -> None:
    ordered = sorted(events, key=lambda e: e.at_us)
    result = run_core([e.encode() for e in ordered], batch=5)
    assert (result.late, result.late_transitions) == (0, 0)


@st.composite
def duplicate_storm(draw: st.DrawFn) -> tuple[list[bytes], list[bytes], int]:
    """A log, and the same log with repeats of its events (same ids, any content) after them."""
    events = draw(st.lists(VALID_EVENTS.flatmap(skewed), min_size=1, max_size=30))
    original = [e.encode() for e in events]
    stormy = list(original)
    repeats = draw(st.integers(1, 200))
    for _ in range(repeats):
        source = draw(st.integers(0, len(events) - 1))
        at = draw(st.integers(stormy.index(original[source]) + 1, len(stormy)))
        twin = draw(st.sampled_from(["same", "other content"]))
        event = events[source]
        if twin == "same":
            copy = original[source]
        else:  # a repeat is ignored entirely, whatever else it says
            changed = draw(VALID_EVENTS)
            copy = Ev(event.ticket, event.event, changed.kind, changed.at_us, "storm").encode()
        stormy.insert(at, copy)
    deduped, seen = [], set()
    for raw, event in zip(original, events, strict=True):
        if (event.ticket, event.event) not in seen:
            seen.add((event.ticket, event.event))
            deduped.append(raw)
    return deduped, stormy, len(stormy) - len(deduped)


@PIPELINE
@given(duplicate_storm(), st.integers(1, 40))
def test_a_duplicate_storm_gives_exactly_the_deduplicated_log(
    storm: tuple[list[bytes], list[bytes], int], batch: int
) -> None:
    deduped, stormy, repeats = storm
    assert rows(run(stormy, SETTINGS, GRACE_US)[0]) == rows(run(deduped, SETTINGS, GRACE_US)[0])
    clean = run_core(deduped, batch=batch)
    noisy = run_core(stormy, batch=batch)
    if clean.late == 0:  # else repeats move batch edges, so which boundaries a late one missed
        assert rows(noisy.emitted) == rows(clean.emitted)
    assert noisy.duplicates == repeats + clean.duplicates
    assert (noisy.late, noisy.processed) == (clean.late, clean.processed)
    assert not any(s.startswith("queue:storm") for s in noisy.scopes)


def test_a_duplicate_storm_of_one_event_in_one_batch() -> None:
    created = line("T1", "E1", "created", BASE_US)
    storm = [created] * 20_000 + [line("T1", "E2", "resolved", BASE_US + 600 * US_PER_SECOND)]
    result = run_core(storm, batch=2000)
    assert (result.processed, result.duplicates) == (2, 19_999)
    assert result.tickets["T1"].seen == {"E1", "E2"}
    assert of_scope(result.emitted, ALL_SCOPE)[-1].flow.open == 0


@PIPELINE
@given(st.lists(VALID_EVENTS, min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_per_ticket_disorder_keeps_the_flow_identities(events: list[Ev], rng: Any) -> None:
    """Per ticket, transitions follow arrival order (DESIGN): a shuffled ticket is a
    different history, not an error; the flow's identities still hold exactly."""
    shuffled = list(events)
    rng.shuffle(shuffled)
    lines = [e.encode() for e in shuffled]
    result = run_core(lines, batch=3)
    emitted, counters = run(lines, SETTINGS, GRACE_US)
    same_rhythm = result if result.late == 0 else run_core(lines, batch=1)
    assert rows(same_rhythm.emitted) == rows(emitted)
    check_invariants(lines, result, counters)


def test_skewed_resolve_before_create_leaves_flow_and_aging_agreeing() -> None:
    """A ticket's transitions take effect in arrival order, whatever their stamps say.

    Between the resolve's stamp and the creation's, DESIGN's count makes the ticket -1 open
    in backlog.flow; no ticket can be open a negative number of times, so aging shows 0 then.
    From the creation's stamp on, both agree: the ticket is closed.
    """
    created_us = BASE_US + 120 * US_PER_SECOND
    lines = [
        line("T1", "E1", "created", created_us),  # intake's clock
        line("T1", "E2", "resolved", BASE_US),  # the agent tool's clock, 2 min behind
        line("T2", "E1", "created", BASE_US + 7200 * US_PER_SECOND),
    ]
    result = run_core(lines, batch=1)
    assert result.late == 0
    agreed = 0
    for item in result.emitted:
        assert item.aging is not None
        assert sum(item.aging.bands.values()) == item.aging.open, item.flow.scope
        if item.flow.as_of_us >= created_us:
            assert item.aging.open == item.flow.open, (item.flow.scope, iso(item.flow.as_of_us))
            agreed += 1
        else:
            assert (item.flow.open, item.aging.open) == (-1, 0), item.flow.scope
    assert agreed, "no boundary after the creation"


def test_skewed_transfer_before_first_open_keeps_bands_summing_to_open() -> None:
    lines = [
        line("T1", "E1", "created", BASE_US + 60 * US_PER_SECOND),
        line("T1", "E2", "transferred", BASE_US, queue="billing"),  # 1 min behind
        line("T2", "E1", "created", BASE_US + 7200 * US_PER_SECOND),
    ]
    result = run_core(lines, batch=1)
    assert result.late == 0
    for item in result.emitted:
        assert item.aging is not None
        assert sum(item.aging.bands.values()) == item.aging.open, item.flow.scope
        assert item.aging.oldest_age_seconds >= 0


# --- extreme event times: dead-lettered or late, never a stall -------------------------------

NORMAL_DAY = [
    line(f"N{i}", "E1", "created", BASE_US + i * 60 * US_PER_SECOND, queue="billing")
    for i in range(0, 24 * 60, 30)
]
# One day at a 5 min step: 289 boundaries for each of 4 scopes, plus the extreme event's own.
SANE_SNAPSHOTS = 10_000


@pytest.mark.parametrize(
    "occurred_at",
    [
        pytest.param("9999-12-31T23:59:59Z", id="year 9999 mid-stream"),
        pytest.param("2126-03-02T08:00:00Z", id="a century ahead"),
        pytest.param("0001-01-01T00:00:00Z", id="year 1 first"),
        pytest.param("1970-01-01T00:00:00+23:59", id="before the epoch first"),
    ],
)
def test_an_extreme_timestamp_is_dead_lettered_or_late_and_boundaries_go_on(
    occurred_at: str,
) -> None:
    extreme = line("X1", "E1", "created", BASE_US).replace(
        iso(BASE_US).encode(), occurred_at.encode()
    )
    lines = (
        [extreme, *NORMAL_DAY]
        if occurred_at.startswith(("0001", "1970"))
        else [*NORMAL_DAY[:24], extreme, *NORMAL_DAY[24:]]
    )
    started = time.monotonic()
    result = run_core(lines, batch=10, budget=SANE_SNAPSHOTS)
    assert time.monotonic() - started < 10
    assert not result.stalled, f"more than {SANE_SNAPSHOTS} snapshots for one day of data"
    dead = [dl.message.value for dl in result.dead_letters]
    assert extreme in dead or result.late >= 1
    assert result.late <= 1, "normal events must not become late because of one bad clock"


def test_the_last_instant_of_year_9999_does_not_crash_the_scope_stage() -> None:
    lines = [
        line("X1", "E1", "created", BASE_US, queue="future").replace(
            iso(BASE_US).encode(), b"9999-12-31T23:59:59Z"
        )
    ]
    result = run_core(lines, batch=1, budget=SANE_SNAPSHOTS)
    assert result.dead_letters or result.emitted


# --- huge payloads ----------------------------------------------------------------------------


def test_a_huge_valid_event_is_processed_and_a_huge_invalid_one_dead_lettered() -> None:
    padding = "x" * (KAFKA_MESSAGE_MAX_BYTES - 1000)
    valid = json.dumps(
        {**json.loads(line("T1", "E1", "created", BASE_US)), "notes": padding}
    ).encode()
    invalid = valid[:-2]  # truncated: not JSON
    too_many_tags = line("T2", "E1", "created", BASE_US, tags=["t"] * 100_000)
    long_queue = line("T3", "E1", "created", BASE_US, queue="q" * 300_000)
    lines = [valid, invalid, too_many_tags, long_queue]
    assert all(len(raw) < KAFKA_MESSAGE_MAX_BYTES for raw in lines)
    result = run_core(lines, batch=4)
    reasons = {dl.message.value: dl.reason for dl in result.dead_letters}
    assert set(reasons) == {invalid, too_many_tags, long_queue}
    assert reasons[invalid].startswith("not JSON")
    assert reasons[too_many_tags].startswith("tags")
    assert reasons[long_queue].startswith("queue")
    assert all(len(reason) < 500 for reason in reasons.values()), reasons
    assert result.processed == 1


def test_a_dead_letter_fits_where_its_input_fitted() -> None:
    timestamp = "2026-03-02T08:00:00Z" + " " * (KAFKA_MESSAGE_MAX_BYTES - 200)
    raw = line("T1", "E1", "created", BASE_US).replace(iso(BASE_US).encode(), timestamp.encode())
    assert len(raw) < KAFKA_MESSAGE_MAX_BYTES
    result = run_core([raw], batch=1)
    (letter,) = result.dead_letters
    assert len(letter.reason) < 1000, f"a reason of {len(letter.reason)} characters"
    record = DeadLetter.of(raw, letter.reason, INPUT, 0, 0).to_bytes()
    # ensure_topics (and docker-compose) give the dead-letter topic room for base64 + reason.
    room = int(TOPIC_CONFIGS[DEAD_LETTERS]["max.message.bytes"])
    assert len(record) < room, f"a dead letter of {len(record)} bytes"


# --- a flood of distinct queue names: metric cardinality stays capped --------------------------

LABEL_CAP = 50
QUEUES = int(os.environ.get("FLOWGAUGE_FUZZ_QUEUES", "5000"))


def queue_flood(count: int) -> Iterator[bytes]:
    for i in range(count):
        # Every event within one step, so each scope emits one boundary when flushed.
        at = BASE_US + 1 + (i % 200_000_000)
        yield line(f"T{i}", "E1", "created", at, queue=f"q-{i:07d}", channel=f"c-{i % 997}")


def test_a_flood_of_distinct_queue_names_keeps_metric_labels_capped() -> None:
    """QUEUES distinct queue names (FLOWGAUGE_FUZZ_QUEUES; 5,000 by default so the file
    stays fast, 1,000,000 measured for the report): at most the scope cap of them are
    scopes, /metrics carries at most LABEL_CAP+1 distinct queue (and channel) values per
    metric, and totals are preserved in ``other``."""
    metrics = PipelineMetrics(LABEL_CAP)
    tracemalloc.start()
    started = time.monotonic()
    result = run_core(list(queue_flood(QUEUES)), batch=2000, metrics=metrics)
    core_seconds = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rendered = time.monotonic()
    text = metrics.render(list(result.scopes.values())).decode()
    render_seconds = time.monotonic() - rendered
    print(
        f"\n{QUEUES} queues: {len(result.scopes)} scopes, core {core_seconds:.1f}s, "
        f"peak traced {peak / 2**20:.0f} MiB, max RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB, "
        f"render {render_seconds:.1f}s, {len(text) / 2**10:.0f} KiB of /metrics"
    )
    # Scopes are capped too: all; 200 queues and 200 channels, each with its other;
    # priority P3, and priority's other, which keeps the dimension's catalog.
    cap = SETTINGS.scope_cap
    assert len(result.scopes) == 1 + 2 * (cap + 1) + 2
    assert {"queue:other", "channel:other"} <= result.scopes.keys()
    values: dict[tuple[str, str], set[str]] = {}
    opened = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for dimension in ("queue", "channel"):
                if sample.labels.get(dimension):
                    values.setdefault((sample.name, dimension), set()).add(sample.labels[dimension])
            if sample.name == "flowgauge_open_tickets" and sample.labels.get("queue"):
                opened += sample.value
    assert values, "queue labels are rendered"
    for (name, dimension), seen in values.items():
        assert len(seen) <= LABEL_CAP + 1, (name, dimension, len(seen))
        assert OTHER in seen or len(seen) <= LABEL_CAP
    assert opened == QUEUES  # capped into "other", not dropped


# --- a real worker fed a hostile batch ---------------------------------------------------------


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


def worker_gauge(text: str, name: str) -> dict[str, float]:
    return {
        json.dumps(sample.labels, sort_keys=True): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_worker_survives_a_hostile_batch(broker: EmbeddedBroker, tmp_path: Path) -> None:
    huge_invalid = b'{"event_id":"E1","ticket_id":"H1","notes":"' + b"x" * 1_000_000
    huge_valid = json.dumps(
        {**json.loads(line("H2", "E1", "created", BASE_US)), "notes": "y" * 1_000_000}
    ).encode()
    far_future = line("F1", "E1", "created", BASE_US).replace(
        iso(BASE_US).encode(), b"2126-03-02T08:00:00Z"
    )
    bad: list[tuple[bytes | None, bytes]] = [
        (b"H1", huge_invalid),
        (b"U1", b'{"event_id":"E1","ticket_id":"U1","queue":"caf\xe9"}'),
        (b"U2", b"\xff\xfe\x00\x01"),
        (b"W1", json.dumps({"event_id": 7, "ticket_id": "W1", "type": "created"}).encode()),
        (b"K1", line("K1", "E1", "teleported", BASE_US)),
        (b"L1", line("L1", "E1", "created", BASE_US).replace(b"08:00:00Z", b"23:59:60Z")),
        (None, b"[]"),
        (b"F1", far_future),  # outside [2000, 2100): a broken clock
    ]
    good = [line(f"G{i}", "E1", "created", BASE_US + i * US_PER_SECOND) for i in range(50)]
    storm = [line("G0", "E1", "created", BASE_US)] * 2000
    messages: list[tuple[bytes | None, bytes]] = [
        *((f"G{i}".encode(), raw) for i, raw in enumerate(good)),
        *bad,
        (b"H2", huge_valid),
        *((b"G0", raw) for raw in storm),
    ]
    started = time.monotonic()
    with workers(broker, tmp_path, 1, FLOWGAUGE_STEP="1h", **NO_PLANNING) as (worker,):
        produce(broker, INPUT, messages)
        letters = [json.loads(v) for _, v in read_topic(broker, DEAD_LETTERS, until=len(bad))]
        deadline = time.monotonic() + 40
        while True:
            assert worker.process.poll() is None, "the worker died"
            text = worker.metrics()
            lag = worker_gauge(text, "flowgauge_consumer_lag_messages")
            done = worker_gauge(text, "flowgauge_events_processed_total")
            if len(lag) == 4 and not any(lag.values()) and sum(done.values()) == 51:
                break
            assert time.monotonic() < deadline, (lag, done)
            time.sleep(0.5)
        assert worker_gauge(text, "flowgauge_events_duplicate_total") == {"{}": 2000.0}
        assert worker_gauge(text, "flowgauge_events_dead_lettered_total") == {"{}": len(bad)}
        time.sleep(3)  # past the idle timeout: the scope stage flushes, the worker lives on
        assert worker.process.poll() is None, "the worker died"
        assert worker.metrics()
    print(f"\nhostile batch: {time.monotonic() - started:.1f}s with worker start and stop")
    by_original = {base64.b64decode(letter["original_base64"]): letter for letter in letters}
    assert set(by_original) == {raw for _, raw in bad}
    reasons = {raw: by_original[raw]["reason"] for _, raw in bad}
    assert reasons[huge_invalid].startswith("not JSON")
    assert reasons[bad[1][1]].startswith("not UTF-8")
    assert reasons[bad[2][1]].startswith("not UTF-8")
    assert reasons[bad[3][1]].startswith("event_id")
    assert reasons[bad[4][1]].startswith("type")
    assert reasons[bad[5][1]].startswith("occurred_at")
    assert reasons[b"[]"] == "event: Input should be an object"
    assert "outside [2000, 2100)" in reasons[far_future]
    assert all(0 < len(reason) < 500 for reason in reasons.values()), reasons
    for letter in letters:
        assert (letter["source_topic"], letter["source_offset"] >= 0) == (INPUT, True)
