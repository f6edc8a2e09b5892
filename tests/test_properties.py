"""Property tests: ``streams.commands.report.run`` against the brute-force oracle in
tests/oracle.py.

Generated logs use a small pool of tickets, queues, priorities (with aliases) and
channels, every event type, redeliveries and invalid lines. Unless a test says
otherwise, arrival order is time-sorted per ticket and shuffled across tickets by
less than the grace, so no event is late and every boundary is exact.

(1) every row of every scope, and every alert transition, equals the oracle;
(2) open(B) - open(A) = inflow(A, B] - outflow(A, B] (+ transfers off ``all``), and
    open and windows are cumulative sums of per-step counts;
(3) shuffling across tickets within the grace changes nothing;
(4) redeliveries (exact or with other content) change nothing;
(5) a late event is counted and only reaches the boundaries emitted after it;
(6) boundary range and the first row of each scope;
plus: queues, priorities and channels add up to ``all``; logs with late events
follow the oracle; per-ticket disorder within the grace (scope ``all``). The
Three focused tests pin discrepancies the oracle found in the core, since fixed.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from streams.commands import simulate
from streams.commands.report import Counters, LocalPipeline, in_order, run
from streams.core.alerts import CrossingPolicy
from streams.core.events import InvalidEvent, TicketEvent, parse_event
from streams.core.flow import Windows
from streams.core.scope import Emitted, Settings
from tests.oracle import Policy, Result, run_oracle

US = 1_000_000
MINUTE = 60
GRACE_S = 600
GRACE_US = GRACE_S * US
BASE_US = 1_710_028_800 * US  # 2024-03-10T00:00:00Z, a multiple of every step used here
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TICKETS = tuple(f"t{i}" for i in range(1, 13))
TYPES = (
    "created",
    "resolved",
    "agent_replied",
    "reopened",
    "transferred",
    # the lifecycle events twice as often as the rest
    "created",
    "resolved",
    "agent_replied",
    "reopened",
    "closed",
    "assigned",
    "customer_replied",
    "status_changed",
    "priority_changed",
    "escalated",
)
QUEUES = (None, None, None, "billing", "tech", "default")
PRIORITIES = (None, None, None, "P0", "P1", "P2", "P3", "Urgent", "high", "NORMAL", "low", " p2 ")
CHANNELS = (None, None, None, None, "email", "chat", "other")
ZONES = (
    ("+00:00", UTC),
    ("Z", UTC),
    ("+02:00", timezone(timedelta(hours=2))),
    ("-05:30", timezone(-timedelta(hours=5, minutes=30))),
)
INVALID_LINES = (
    b"not json at all",
    b'{"event_id": "x1", "type": "created", "occurred_at": "2024-03-10T00:00:00Z"}',
    b'{"event_id": "x2", "ticket_id": "t1", "type": "exploded",'
    b' "occurred_at": "2024-03-10T00:00:00Z"}',
    b'{"schema_version": 2, "event_id": "x3", "ticket_id": "t1", "type": "created",'
    b' "occurred_at": "2024-03-10T00:00:00Z"}',
    b'{"event_id": "x4", "ticket_id": "t9", "type": "created",'
    b' "occurred_at": "2024-03-10T00:00:00"}',
    b'{"event_id": "x5", "ticket_id": "t9", "type": "created", "priority": "P7",'
    b' "occurred_at": "2024-03-10T00:00:00Z"}',
    b'{"event_id": "x6", "ticket_id": "t9", "type": "created", "occurred_at": 1710028800}',
    b"   ",
)


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class Config:
    name: str
    step_s: int
    windows: dict[str, int]
    span_minutes: int
    policy: Policy

    def settings(self) -> Settings:
        """The oracles here are of flow, aging and alerts: planning, which has exact oracles
        of its own (test_forecast.py, test_pull.py), is left out of every example."""
        p = self.policy
        crossing = CrossingPolicy(p.window, p.min_volume, p.sustain, p.clear)
        windows = Windows.of(self.step_s, self.windows)
        return Settings(windows, crossing, forecast=None, pull=None)


SHORT = Config("5m/short", 300, {"15m": 900, "1h": 3600}, 180, Policy("15m", 2, 2, 2))
HOURLY = Config("15m/default", 900, {"1h": 3600, "24h": 86400, "7d": 604800}, 600, Policy("1h", 2))
DEFAULT_RULE = Config("5m/default", 300, {"1h": 3600, "24h": 86400, "7d": 604800}, 300, Policy())
LONG = Config(
    "6h/long", 21600, {"6h": 21600, "1d": 86400, "7d": 604800}, 45 * 1440, Policy("1d", 3)
)
BUSY = Config("5m/busy", 300, {"1h": 3600, "24h": 86400, "7d": 604800}, 240, Policy())
CONFIGS = (SHORT, HOURLY, DEFAULT_RULE, LONG)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Ev:
    ticket: str
    type: str
    at: int
    zone: int = 0
    queue: str | None = None
    priority: str | None = None
    channel: str | None = None
    meaningful: bool | None = None
    extra: bool = False
    event_id: str = ""

    def stamp(self) -> str:
        label, tz = ZONES[self.zone]
        text = (EPOCH + timedelta(microseconds=self.at)).astimezone(tz).isoformat()
        return text.replace("+00:00", "Z") if label == "Z" else text

    def line(self) -> bytes:
        doc: dict[str, object] = {
            "event_id": self.event_id,
            "ticket_id": self.ticket,
            "type": self.type,
            "occurred_at": self.stamp(),
        }
        for key in ("queue", "priority", "channel", "meaningful"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = value
        if self.extra:
            doc = {"schema_version": 1, "unknown_field": [1, 2], **doc, "tags": ["vip"]}
            if self.type == "status_changed":
                doc["status"] = "pending"
            if self.type in ("resolved", "closed"):
                doc["resolution"] = "solved"
            doc = dict(reversed(doc.items()))
        return json.dumps(doc).encode()


def event_strategy(span_minutes: int) -> st.SearchStrategy[Ev]:
    return st.builds(
        Ev,
        ticket=st.sampled_from(TICKETS),
        type=st.sampled_from(TYPES),
        at=st.builds(
            lambda m, s, u: BASE_US + m * MINUTE * US + s * US + u,
            st.integers(0, span_minutes),
            st.sampled_from((0, 0, 0, 1, 59)),
            st.sampled_from((0, 0, 0, 250_000)),
        ),
        zone=st.integers(0, len(ZONES) - 1),
        queue=st.sampled_from(QUEUES),
        priority=st.sampled_from(PRIORITIES),
        channel=st.sampled_from(CHANNELS),
        meaningful=st.sampled_from((None, None, True, False)),
        extra=st.booleans(),
    )


def time_sorted(evs: list[Ev]) -> list[Ev]:
    """Sort by time (stable) and give every event an id unique within its ticket."""
    counts: dict[str, int] = defaultdict(int)
    out = []
    for ev in sorted(evs, key=lambda e: e.at):
        counts[ev.ticket] += 1
        out.append(replace(ev, event_id=f"e{counts[ev.ticket]}"))
    return out


def jitter_across_tickets(timeline: list[Ev], jitters: list[int]) -> list[Ev]:
    """Arrival order: per ticket in time order, across tickets late by at most max(jitters).

    Each event's key is in [at, at + jitter]; keys never decrease within a ticket, so
    everything that arrives before an event is at most max(jitter) newer than it.
    """
    last: dict[str, int] = {}
    keyed = []
    for i, (ev, j) in enumerate(zip(timeline, jitters, strict=False)):
        key = max(ev.at + j * US, last.get(ev.ticket, ev.at))
        last[ev.ticket] = key
        keyed.append((key, i, ev))
    return [ev for _, _, ev in sorted(keyed, key=lambda x: (x[0], x[1]))]


@dataclass
class Scenario:
    config: Config
    timeline: list[Ev]  # time-sorted
    arrival: list[Ev]  # shuffled across tickets within the grace
    with_dups: list[bytes]  # arrival plus exact duplicate lines later on
    lines: list[bytes]  # with_dups plus different-content repeats and invalid lines
    exact_dups: int
    other_repeats: int
    invalid: int


def _insert_repeat(
    lines: list[bytes], times: list[int | None], src: int, pos_pick: int, make
) -> None:
    """Insert a repeat of line ``src`` after it, where it is not late (within the grace)."""
    t_src = times[src]
    hi = src + 1
    while hi < len(lines) and (times[hi] is None or times[hi] <= t_src + GRACE_US):
        hi += 1
    pos = src + 1 + pos_pick % (hi - src)
    valid = [t for t in times[:pos] if t is not None]
    line, t = make(max(valid))
    lines.insert(pos, line)
    times.insert(pos, t)


@st.composite
def scenarios(
    draw,
    configs=CONFIGS,
    max_events: int = 18,
    repeats: bool = True,
    max_tickets: int = 5,
    min_events: int = 1,
    min_tickets: int = 1,
) -> Scenario:
    config = draw(st.sampled_from(configs))
    evs = draw(
        st.lists(event_strategy(config.span_minutes), min_size=min_events, max_size=max_events)
    )
    # Sometimes only a few tickets, so that each one lives through many events.
    pool = draw(st.integers(min_tickets, max_tickets))
    evs = [replace(ev, ticket=TICKETS[TICKETS.index(ev.ticket) % pool]) for ev in evs]
    timeline = time_sorted(evs)
    jitters = draw(st.lists(st.integers(0, 540), min_size=len(timeline), max_size=len(timeline)))
    arrival = jitter_across_tickets(timeline, jitters)
    lines = [ev.line() for ev in arrival]
    times: list[int | None] = [ev.at for ev in arrival]
    by_line = {ev.line(): ev for ev in arrival}

    exact = draw(st.lists(st.tuples(st.integers(0, 999), st.integers(0, 999)), max_size=4))
    for src_pick, pos_pick in exact:
        src = src_pick % len(lines)
        _insert_repeat(lines, times, src, pos_pick, lambda _hi, s=src: (lines[s], times[s]))
    with_dups = list(lines)

    other = 0
    if repeats:
        alts = draw(
            st.lists(
                st.tuples(
                    st.integers(0, 999),
                    st.integers(0, 999),
                    event_strategy(config.span_minutes),
                    st.integers(0, GRACE_S),
                ),
                max_size=3,
            )
        )
        for src_pick, pos_pick, alt, back in alts:
            src = src_pick % len(lines)
            orig = by_line[lines[src]]

            def make(newest: int, orig=orig, alt=alt, back=back) -> tuple[bytes, int]:
                # Same (ticket_id, event_id), other content; never newer than what
                # has been seen (the watermark) and never late.
                at = max(orig.at, newest - back * US) if back else orig.at
                fake = replace(alt, ticket=orig.ticket, event_id=orig.event_id, at=at)
                by_line[fake.line()] = fake
                return fake.line(), at

            _insert_repeat(lines, times, src, pos_pick, make)
            other += 1

    bad = draw(st.lists(st.tuples(st.integers(0, 999), st.sampled_from(INVALID_LINES)), max_size=2))
    for pos_pick, line in bad:
        lines.insert(pos_pick % (len(lines) + 1), line)

    scenario = Scenario(config, timeline, arrival, with_dups, lines, len(exact), other, len(bad))
    note(f"config={config.name}")
    note("log:\n" + "\n".join(line.decode() for line in lines))
    return scenario


# --------------------------------------------------------------------------- comparing


def parsed(lines: list[bytes]) -> list[TicketEvent]:
    out = []
    for line in lines:
        if not line.strip():
            continue
        with contextlib.suppress(InvalidEvent):
            out.append(parse_event(line))
    return out


def core_rows(emitted: list[Emitted]) -> list[tuple]:
    rows = []
    for item in emitted:
        f, a = item.flow, item.aging
        assert a is not None
        rows.append(
            (
                f.as_of_us,
                f.scope,
                f.open,
                dict(f.inflow),
                dict(f.outflow),
                dict(f.transfers_in),
                dict(f.transfers_out),
                dict(a.bands),
                a.oldest_age_seconds,
                a.untouched,
                dict(a.percentiles),
                a.open,
            )
        )
    return rows


def oracle_rows(result: Result) -> list[tuple]:
    return [
        (
            r.as_of,
            r.scope,
            r.open,
            r.inflow,
            r.outflow,
            r.transfers_in,
            r.transfers_out,
            r.bands,
            r.oldest,
            r.untouched,
            r.percentiles,
            r.aging_open,
        )
        for r in result.rows
    ]


FIELDS = (
    "as_of",
    "scope",
    "open",
    "inflow",
    "outflow",
    "transfers_in",
    "transfers_out",
    "bands",
    "oldest",
    "untouched",
    "percentiles",
    "aging_open",
)


def core_alerts(emitted: list[Emitted]) -> list[tuple]:
    return [
        (a.at_us, a.scope, a.state.value, int(a.value), a.fired_at_us)
        for a in (item.alert for item in emitted)
        if a is not None
    ]


def oracle_alerts(result: Result) -> list[tuple]:
    return [(a.at, a.scope, a.state, a.value, a.fired_at) for a in result.alerts]


def when(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def assert_same_rows(got: list[tuple], want: list[tuple]) -> None:
    got_keys = [(r[0], r[1]) for r in got]
    want_keys = [(r[0], r[1]) for r in want]
    if got_keys != want_keys:
        missing = sorted(set(want_keys) - set(got_keys))[:5]
        extra = sorted(set(got_keys) - set(want_keys))[:5]
        pytest.fail(
            f"row keys differ: {len(got)} rows vs {len(want)}; missing {missing}, extra {extra}"
        )
    for g, w in zip(got, want, strict=True):
        if g != w:
            diffs = {FIELDS[i]: (g[i], w[i]) for i in range(len(FIELDS)) if g[i] != w[i]}
            pytest.fail(f"{when(g[0])} {g[1]}: (core, oracle) differ in {diffs}")


def check_against_oracle(lines: list[bytes], config: Config) -> Counters:
    """Core and oracle agree on every row, every alert transition and the counters."""
    emitted, counters = run(lines, config.settings(), GRACE_US)
    events = parsed(lines)
    result = run_oracle(events, config.step_s, config.windows, GRACE_US, config.policy)
    assert_same_rows(core_rows(emitted), oracle_rows(result))
    assert core_alerts(emitted) == oracle_alerts(result)
    assert counters.processed == result.processed
    assert counters.duplicates == result.duplicates
    return counters


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIGHT = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- (1) oracle


@PROPERTY
@given(scenarios())
def test_every_boundary_of_every_scope_equals_the_oracle(sc: Scenario) -> None:
    counters = check_against_oracle(sc.lines, sc.config)
    assert counters.late == 0
    assert counters.duplicates == sc.exact_dups + sc.other_repeats
    assert len(counters.invalid) == sum(1 for line in sc.lines if line.strip()) - len(
        parsed(sc.lines)
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(configs=(SHORT,), max_events=40, repeats=False))
def test_time_sorted_logs_equal_the_oracle(sc: Scenario) -> None:
    check_against_oracle([ev.line() for ev in sc.timeline], sc.config)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scenarios(configs=(SHORT, BUSY), min_events=20, max_events=40, min_tickets=6, max_tickets=12)
)
def test_alert_rule_equals_the_oracle_on_busy_logs(sc: Scenario) -> None:
    """Many events on one short timeline, so the crossing rule fires and resolves."""
    check_against_oracle(sc.lines, sc.config)


# --------------------------------------------------------------------------- (2) identity


def _by_scope(emitted: list[Emitted]) -> dict[str, list[Emitted]]:
    out: dict[str, list[Emitted]] = defaultdict(list)
    for item in emitted:
        out[item.flow.scope].append(item)
    return out


def _net(item: Emitted, window: str, with_transfers: bool) -> int:
    f = item.flow
    net = f.inflow[window] - f.outflow[window]
    if with_transfers:
        net += f.transfers_in[window] - f.transfers_out[window]
    return net


IDENTITY_1H = Config("1h/identity", 3600, {"1h": 3600, "24h": 86400, "7d": 604800}, 1440, Policy())
IDENTITY_5M = Config("5m/identity", 300, {"5m": 300, "1h": 3600}, 240, Policy("1h", 2))


@PROPERTY
@given(scenarios(configs=(IDENTITY_1H,)))
def test_open_difference_equals_hourly_inflow_minus_outflow(sc: Scenario) -> None:
    """open(B) - open(A) = inflow(A, B] - outflow(A, B] for scope all, A = B - 1h."""
    emitted, _ = run(sc.lines, sc.config.settings(), GRACE_US)
    rows = _by_scope(emitted)
    for scope, items in rows.items():
        transfers = scope != "all"
        previous = 0  # before a scope's first row nothing of it had happened
        for item in items:
            assert item.flow.open - previous == _net(item, "1h", transfers), (scope, item)
            previous = item.flow.open
        if not transfers:
            assert all(item.flow.transfers_in["1h"] == 0 for item in items)
            assert all(item.flow.transfers_out["1h"] == 0 for item in items)


@LIGHT
@given(scenarios(configs=(IDENTITY_5M,)))
def test_open_and_windows_are_cumulative_sums_of_steps(sc: Scenario) -> None:
    """open(B_k) is the sum of the per-step nets; a window is the sum of its steps."""
    emitted, _ = run(sc.lines, sc.config.settings(), GRACE_US)
    steps_per_hour = 12
    for scope, items in _by_scope(emitted).items():
        transfers = scope != "all"
        total = 0
        for k, item in enumerate(items):
            total += _net(item, "5m", transfers)
            assert item.flow.open == total, (scope, k)
            first = max(0, k - steps_per_hour + 1)
            span = items[first : k + 1]
            f = item.flow
            assert f.inflow["1h"] == sum(i.flow.inflow["5m"] for i in span)
            assert f.outflow["1h"] == sum(i.flow.outflow["5m"] for i in span)
            assert f.transfers_in["1h"] == sum(i.flow.transfers_in["5m"] for i in span)
            assert f.transfers_out["1h"] == sum(i.flow.transfers_out["5m"] for i in span)
            # A(B) - A(B - 1h) for any A = cumulative sums over arbitrary spans.
            if k >= steps_per_hour:
                before = items[k - steps_per_hour].flow.open
                assert f.open - before == _net(item, "1h", transfers)
            assert item.aging is not None
            assert item.aging.open == f.open
            assert sum(item.aging.bands.values()) == f.open
            assert 0 <= item.aging.untouched <= f.open


# --------------------------------------------------------------------------- (3) order


@LIGHT
@given(scenarios(repeats=False))
def test_shuffling_across_tickets_within_grace_changes_nothing(sc: Scenario) -> None:
    settings_ = sc.config.settings()
    sorted_lines = [ev.line() for ev in sc.timeline]
    want, want_counters = run(sorted_lines, settings_, GRACE_US)
    for lines in ([ev.line() for ev in sc.arrival], sc.with_dups):
        got, counters = run(lines, settings_, GRACE_US)
        assert core_rows(got) == core_rows(want)
        assert core_alerts(got) == core_alerts(want)
        assert counters.late == want_counters.late == 0


# --------------------------------------------------------------------------- (4) repeats


@LIGHT
@given(scenarios())
def test_redelivered_events_change_nothing(sc: Scenario) -> None:
    settings_ = sc.config.settings()
    want, _ = run([ev.line() for ev in sc.arrival], settings_, GRACE_US)
    got, counters = run(sc.lines, settings_, GRACE_US)
    assert core_rows(got) == core_rows(want)
    assert core_alerts(got) == core_alerts(want)
    assert counters.duplicates == sc.exact_dups + sc.other_repeats
    assert counters.processed == len(sc.arrival)


# --------------------------------------------------------------------------- (6) range


def _ticket_scopes(timeline: list[Ev]) -> dict[str, int]:
    """Each scope's first sighting time, from the events alone (spec: "seen")."""
    attrs: dict[str, dict[str, str]] = {}
    first: dict[str, int] = {}
    for ev in timeline:
        a = attrs.setdefault(ev.ticket, {"queue": "default", "priority": "P3", "channel": "other"})
        if ev.queue is not None:
            a["queue"] = ev.queue
        if ev.priority is not None:
            a["priority"] = parse_event(ev.line()).priority or a["priority"]
        if ev.channel is not None:
            a["channel"] = ev.channel
        for scope in ("all", *(f"{k}:{v}" for k, v in a.items())):
            first[scope] = min(first.get(scope, ev.at), ev.at)
    return first


def _ceil(us: int, step_us: int) -> int:
    return -(-us // step_us) * step_us


@LIGHT
@given(scenarios())
def test_boundary_range_and_scope_rows(sc: Scenario) -> None:
    step_us = sc.config.step_s * US
    emitted, _ = run(sc.lines, sc.config.settings(), GRACE_US)
    first = _ticket_scopes(sc.timeline)
    last_boundary = _ceil(max(ev.at for ev in sc.timeline), step_us)
    as_ofs = sorted({item.flow.as_of_us for item in emitted})
    start = _ceil(min(ev.at for ev in sc.timeline), step_us)
    assert as_ofs == list(range(start, last_boundary + 1, step_us))
    for scope, seen in first.items():
        got = [item.flow.as_of_us for item in emitted if item.flow.scope == scope]
        assert got == list(range(_ceil(seen, step_us), last_boundary + 1, step_us)), scope
    assert {item.flow.scope for item in emitted} == set(first)
    keys = [(item.flow.as_of_us, item.flow.scope != "all", item.flow.scope) for item in emitted]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


# --------------------------------------------------------------------------- conservation


def _dimension_sums(emitted: list[Emitted]) -> dict[tuple[int, str], dict[str, int]]:
    """Per boundary and dimension: open and window counts summed over that dimension's scopes."""
    sums: dict[tuple[int, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in emitted:
        f = item.flow
        dim = f.scope.split(":", 1)[0]
        cell = sums[(f.as_of_us, dim)]
        cell["open"] += f.open
        for name in f.inflow:
            cell[f"in_{name}"] += f.inflow[name]
            cell[f"out_{name}"] += f.outflow[name]
            cell[f"tin_{name}"] += f.transfers_in[name]
            cell[f"tout_{name}"] += f.transfers_out[name]
    return sums


def assert_conserved(emitted: list[Emitted], boundaries: set[int] | None = None) -> None:
    """Every ticket sits in exactly one queue, priority and channel: the sums match ``all``."""
    sums = _dimension_sums(emitted)
    for (as_of, dim), cell in sums.items():
        if dim == "all" or (boundaries is not None and as_of not in boundaries):
            continue
        whole = sums[(as_of, "all")]
        for key, value in cell.items():
            if key.startswith("tin_") or key.startswith("tout_"):
                other = "tout_" + key[4:] if key.startswith("tin_") else "tin_" + key[5:]
                assert value == cell[other], (when(as_of), dim, key)
            else:
                assert value == whole[key], (when(as_of), dim, key, value, whole[key])


@LIGHT
@given(scenarios())
def test_queues_priorities_and_channels_add_up_to_all(sc: Scenario) -> None:
    emitted, _ = run(sc.lines, sc.config.settings(), GRACE_US)
    assert_conserved(emitted)


# --------------------------------------------------------------------------- lateness


def interleave(timeline: list[Ev], keys: list[int]) -> list[Ev]:
    """Any order across tickets; each ticket's events keep their time order."""
    order = sorted(range(len(timeline)), key=lambda i: (keys[i], i))
    per_ticket: dict[str, list[Ev]] = defaultdict(list)
    for ev in timeline:
        per_ticket[ev.ticket].append(ev)
    taken: dict[str, int] = defaultdict(int)
    out = []
    for i in order:
        ticket = timeline[i].ticket
        out.append(per_ticket[ticket][taken[ticket]])
        taken[ticket] += 1
    return out


@PROPERTY
@given(scenarios(configs=(SHORT, HOURLY), repeats=False), st.data())
def test_late_events_follow_the_oracle(sc: Scenario, data: st.DataObject) -> None:
    """Arbitrary order across tickets: late events miss the boundaries already emitted."""
    n = len(sc.timeline)
    keys = data.draw(st.lists(st.integers(0, 3 * n), min_size=n, max_size=n))
    lines = [ev.line() for ev in interleave(sc.timeline, keys)]
    note("interleaved:\n" + "\n".join(line.decode() for line in lines))
    emitted, counters = run(lines, sc.config.settings(), GRACE_US)
    result = run_oracle(
        parsed(lines), sc.config.step_s, sc.config.windows, GRACE_US, sc.config.policy
    )
    assert_same_rows(core_rows(emitted), oracle_rows(result))
    assert core_alerts(emitted) == oracle_alerts(result)
    assert counters.late == result.late


def _line(ticket: str, event_id: str, kind: str, at: str, **extra: object) -> bytes:
    doc = {"event_id": event_id, "ticket_id": ticket, "type": kind, "occurred_at": at, **extra}
    return json.dumps(doc).encode()


def _at(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp()) * US


def _rows_at(emitted: list[Emitted], scope: str) -> dict[int, Emitted]:
    return {item.flow.as_of_us: item for item in emitted if item.flow.scope == scope}


def test_late_event_is_counted_and_kept_out_of_emitted_boundaries() -> None:
    """(5) Step 5m, grace 10m: the event at 10:30 emits 10:00..10:15; older ones are late."""
    on_time = [
        _line("t1", "e1", "created", "2024-03-10T10:00:00Z"),
        _line("t2", "e1", "created", "2024-03-10T10:01:00+00:00", queue="billing"),
        _line("t3", "e1", "created", "2024-03-10T12:30:00+02:00"),  # 10:30Z: watermark
    ]
    late = [
        _line("t2", "e2", "resolved", "2024-03-10T10:04:00Z"),  # lands in 10:05
        _line("t4", "e1", "created", "2024-03-10T10:12:00Z"),  # lands in 10:15
        _line("t1", "e2", "agent_replied", "2024-03-10T10:02:00Z"),
        _line("t5", "e1", "created", "2024-03-10T10:19:00Z"),  # late, not in any emitted
    ]
    config = SHORT
    emitted, counters = run(on_time + late, config.settings(), GRACE_US)
    assert counters.late == 4
    assert counters.processed == 7

    emitted_early = {_at(f"2024-03-10T10:{m:02d}:00+00:00") for m in (0, 5, 10, 15)}
    later = {_at(f"2024-03-10T10:{m:02d}:00+00:00") for m in (20, 25, 30)}
    assert {item.flow.as_of_us for item in emitted} == emitted_early | later

    # Boundaries emitted before the late events arrived: as if they never came.
    without, _ = run(on_time, config.settings(), GRACE_US)
    # Later boundaries: as if everything had arrived in time order.
    everything = sorted(on_time + late, key=lambda line: parse_event(line).occurred_us)
    in_order, in_order_counters = run(everything, config.settings(), GRACE_US)
    assert in_order_counters.late == 0
    for got, a, b in zip(core_rows(emitted), core_rows(without), core_rows(in_order), strict=False):
        assert got[:2] == a[:2] == b[:2]
        assert got == (a if got[0] in emitted_early else b), (when(got[0]), got[1])
    assert len(core_rows(emitted)) == len(core_rows(without)) == len(core_rows(in_order))

    # The same numbers, spelled out for scope all.
    rows = _rows_at(emitted, "all")
    at_1015, at_1020, at_1030 = (
        rows[_at(f"2024-03-10T10:{m}:00+00:00")] for m in ("15", "20", "30")
    )
    assert (at_1015.flow.open, at_1015.flow.inflow["1h"], at_1015.flow.outflow["1h"]) == (2, 2, 0)
    assert at_1015.aging is not None
    assert at_1015.aging.untouched == 2
    assert (at_1020.flow.open, at_1020.flow.inflow["15m"], at_1020.flow.outflow["1h"]) == (3, 2, 1)
    assert at_1020.flow.inflow["1h"] == 4  # t1, t2, t4, t5
    assert at_1020.aging is not None
    assert at_1020.aging.untouched == 2  # t1 was answered at 10:02
    assert at_1020.aging.oldest_age_seconds == 20 * 60
    assert (at_1030.flow.open, at_1030.flow.inflow["15m"]) == (4, 2)
    billing = _rows_at(emitted, "queue:billing")
    assert [billing[b].flow.open for b in sorted(billing)] == [1, 1, 1, 0, 0, 0]

    result = run_oracle(
        parsed(on_time + late), config.step_s, config.windows, GRACE_US, config.policy
    )
    assert_same_rows(core_rows(emitted), oracle_rows(result))
    assert result.late == counters.late


@LIGHT
@given(scenarios(configs=(SHORT, HOURLY), repeats=False), st.data())
def test_per_ticket_disorder_within_grace_scope_all(sc: Scenario, data: st.DataObject) -> None:
    """Even a ticket's own events may arrive out of time order (within the grace).

    Transitions are decided in arrival order and stamped with event time; scope
    ``all`` (but ``untouched``) and the boundary range must still equal the oracle.
    Other scopes and ``untouched``: see the focused tests below.
    """
    n = len(sc.timeline)
    jitters = data.draw(st.lists(st.integers(0, 540), min_size=n, max_size=n))
    order = sorted(range(n), key=lambda i: (sc.timeline[i].at + jitters[i] * US, i))
    lines = [sc.timeline[i].line() for i in order]
    note("arrival:\n" + "\n".join(line.decode() for line in lines))
    emitted, counters = run(lines, sc.config.settings(), GRACE_US)
    assert counters.late == 0
    result = run_oracle(
        parsed(lines), sc.config.step_s, sc.config.windows, GRACE_US, sc.config.policy
    )
    untouched = FIELDS.index("untouched")
    got = [(*row[:untouched], None, *row[untouched + 1 :]) for row in core_rows(emitted)]
    want = [(*row[:untouched], None, *row[untouched + 1 :]) for row in oracle_rows(result)]
    assert_same_rows(
        [row for row in got if row[1] == "all"], [row for row in want if row[1] == "all"]
    )
    assert [row[:2] for row in got] == [row[:2] for row in want]


def _all_rows_against_the_oracle(lines: list[bytes]) -> dict[int, Emitted]:
    emitted, counters = run(lines, SHORT.settings(), GRACE_US)
    assert counters.late == 0
    result = run_oracle(parsed(lines), SHORT.step_s, SHORT.windows, GRACE_US, SHORT.policy)
    assert_same_rows(
        [row for row in core_rows(emitted) if row[1] == "all"],
        [row for row in oracle_rows(result) if row[1] == "all"],
    )
    return _rows_at(emitted, "all")


def test_a_create_that_arrives_before_its_earlier_stamped_resolve_leaves_nothing_open() -> None:
    """Hypothesis found it: in arrival order t1 opens (01:19), then closes (stamped 01:18).
    Both flow and aging see a closed ticket at 01:20; no ghost in the age bands."""
    rows = _all_rows_against_the_oracle(
        [
            _line("t1", "e2", "created", "2024-03-10T01:19:00Z"),
            _line("t1", "e1", "resolved", "2024-03-10T01:18:00Z"),
        ]
    )
    at_0120 = rows[_at("2024-03-10T01:20:00+00:00")]
    assert at_0120.flow.open == 0
    assert at_0120.aging is not None
    assert (at_0120.aging.open, sum(at_0120.aging.bands.values())) == (0, 0)


def test_a_reopen_stamped_before_the_creation_does_not_age_the_ticket_from_its_stamp() -> None:
    """Created 10:00, resolved 10:01, then a reopen from a clock 6 minutes behind (09:55).
    It takes effect after the resolve, and age counts from the creation: 5 min at 10:05."""
    rows = _all_rows_against_the_oracle(
        [
            _line("t1", "e1", "created", "2024-03-10T10:00:00Z"),
            _line("t1", "e2", "resolved", "2024-03-10T10:01:00Z"),
            _line("t1", "e3", "reopened", "2024-03-10T09:55:00Z"),
        ]
    )
    at_1005 = rows[_at("2024-03-10T10:05:00+00:00")]
    assert at_1005.aging is not None
    assert (at_1005.aging.open, at_1005.aging.oldest_age_seconds) == (1, 300)


def test_a_priority_change_stamped_after_a_resolve_that_arrives_behind_it_closes_it() -> None:
    """Hypothesis found it: t1 is created at 10:00, changes priority at 10:12 (an SLA clock
    change, not a flow transition), then its resolve stamped 10:08 arrives. Flow closes the
    ticket at 10:08; aging must not keep it open until 10:12 behind the priority change."""
    rows = _all_rows_against_the_oracle(
        [
            _line("t1", "e1", "created", "2024-03-10T10:00:00Z"),
            _line("t1", "e2", "priority_changed", "2024-03-10T10:12:00Z", priority="P0"),
            _line("t1", "e3", "resolved", "2024-03-10T10:08:00Z"),
        ]
    )
    at_1010 = rows[_at("2024-03-10T10:10:00+00:00")]
    assert at_1010.flow.open == 0
    assert at_1010.aging is not None
    assert at_1010.aging.open == 0


def test_transfer_out_before_the_old_scopes_first_row_is_counted() -> None:
    """t1 is created at 10:05 in queue default, then (arriving second, within the grace)
    a transfer to billing stamped 10:00. Per DESIGN the transfer happens (the ticket is
    open in arrival order) at 10:00: queue:default has transfers_out at 10:00 and its
    open level at 10:05 is 1 - 1 = 0; the queues must add up to scope all (1)."""
    lines = [
        _line("t1", "e1", "created", "2024-03-10T10:05:00Z"),
        _line("t1", "e2", "transferred", "2024-03-10T10:00:00Z", queue="billing"),
    ]
    emitted, counters = run(lines, SHORT.settings(), GRACE_US)
    assert counters.late == 0
    at = _at("2024-03-10T10:05:00+00:00")
    default = _rows_at(emitted, "queue:default")[at].flow
    billing = _rows_at(emitted, "queue:billing")[at].flow
    everyone = _rows_at(emitted, "all")[at].flow
    assert default.open + billing.open == everyone.open == 1
    assert default.transfers_out["15m"] == billing.transfers_in["15m"] == 1
    assert default.open == 0


def test_a_repeat_with_a_newer_timestamp_is_ignored_entirely() -> None:
    """A redelivery that carries a later occurred_at must not move the watermark: it
    would extend the boundary range and make the next genuine events late."""
    lines = [
        _line("t1", "e1", "created", "2024-03-10T10:00:00Z"),
        _line("t1", "e1", "created", "2024-03-10T11:00:00Z"),  # repeat: ignored entirely
        _line("t1", "e2", "resolved", "2024-03-10T10:20:00Z"),
    ]
    without = [lines[0], lines[2]]
    got, counters = run(lines, SHORT.settings(), GRACE_US)
    want, _ = run(without, SHORT.settings(), GRACE_US)
    assert counters.duplicates == 1
    assert counters.late == 0
    assert core_rows(got) == core_rows(want)


def test_reply_stamped_before_the_ticket_opened_touches_it() -> None:
    """t1 is created at 10:05; a meaningful agent reply stamped 10:04 arrives next (within
    the grace). At 10:05 the ticket is open and has a meaningful reply with
    occurred_at <= 10:05, so DESIGN says it is not untouched."""
    lines = [
        _line("t1", "e1", "created", "2024-03-10T10:05:00Z"),
        _line("t1", "e2", "agent_replied", "2024-03-10T10:04:00Z"),
    ]
    emitted, counters = run(lines, SHORT.settings(), GRACE_US)
    assert counters.late == 0
    row = _rows_at(emitted, "all")[_at("2024-03-10T10:05:00+00:00")]
    assert row.flow.open == 1
    assert row.aging is not None
    assert row.aging.untouched == 0


def test_report_writes_rows_while_it_reads() -> None:
    """``report`` holds neither the file nor its rows: the first rows come out long before
    the last line is read, and the whole output is ``run``'s, in the same order."""
    lines = [simulate.encode(e) for e in simulate.generate_events(simulate.Scenario(days=7))]
    read = 0

    def reading() -> Iterator[bytes]:
        nonlocal read
        for line in lines:
            read += 1
            yield line

    pipeline = LocalPipeline(SHORT.settings(), GRACE_US)
    streamed, read_at_row = [], []
    for item in in_order(reading(), pipeline):
        streamed.append(item)
        read_at_row.append(read)
    assert read_at_row[len(read_at_row) // 2] < len(lines) * 3 // 4
    assert streamed == run(lines, SHORT.settings(), GRACE_US)[0]
