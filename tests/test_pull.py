"""The pull list per queue (streams/core/pull.py), through report's pipeline, worked by hand.

Default policy: weights age .25, untouched .25, sla .20, priority .15, tier .10,
sentiment .05; tiers enterprise 1.0, business 0.5 (matched lower-cased); age over 24 h.
SLA targets (no calendar: a business day is 24 h), first response / resolution, in minutes:
P0 10 / 120, P1 30 / 1440, P2 240 / 4320, P3 1440 / 7200. A clock runs while the ticket is
open and not paused; the first-response clock stops for good at the first meaningful reply.
"""

from __future__ import annotations

import asyncio
import copy
import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from itertools import count
from pathlib import Path

import pytest
from faust.types import TP
from hypothesis import given
from hypothesis import settings as settings_of_hypothesis
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.commands.report import LocalPipeline, run
from streams.commands.simulate import Scenario, encode, generate_events
from streams.config import FlowgaugeConfig
from streams.core.events import parse_event
from streams.core.forecast import DRAWN
from streams.core.pull import RANKINGS, PullList, PullPolicy, Rankings, pull_list
from streams.core.scope import Emitted, Settings
from streams.core.sla import SlaState, Target
from streams.core.stages import dimension_key, dimension_partition
from streams.core.timeline import iso, to_us
from streams.kafka import Kafka
from streams.shell.pull import PullLists
from streams.shell.scope import ScopeStage
from streams.shell.topics import Layout
from streams.shell.wiring import Wiring
from tests.conftest import core_settings

GRACE_US = 600 * 1_000_000  # report's default grace, 10m
STEP_SECONDS = 1800  # half hours: boundaries between the whole hours too
DAY = "2025-03-03"
_ids = count()


def event(kind: str, at: str, ticket: str, day: str = DAY, **fields: object) -> bytes:
    body = {
        "event_id": f"E{next(_ids)}",
        "type": kind,
        "ticket_id": ticket,
        "occurred_at": f"{day}T{at}:00Z",
    }
    return json.dumps(body | fields).encode()


def parts(
    age: float, untouched: float, sla: float, priority: float, tier: float, sentiment: float
) -> dict[str, float]:
    return {
        "age": age,
        "untouched": untouched,
        "sla": sla,
        "priority": priority,
        "tier": tier,
        "sentiment": sentiment,
    }


def at(hhmm: str, day: str = DAY) -> int:
    return to_us(datetime.fromisoformat(f"{day}T{hhmm}:00+00:00"))


def pull_of(emitted: list[Emitted], scope: str, hhmm: str, day: str = DAY) -> PullList:
    wanted = at(hhmm, day)
    for item in emitted:
        if item.flow.scope == scope and item.flow.as_of_us == wanted:
            assert item.pull is not None, f"no pull list for {scope} at {hhmm}"
            assert item.pull.scope == scope
            assert item.pull.as_of_us == wanted
            return item.pull
    raise AssertionError(f"no row for {scope} at {hhmm}")


def assert_picks(pull: PullList, expected: list[tuple[str, float, dict[str, float]]]) -> None:
    """The picks in order, ranked 1.., with their scores and parts (to the 6 places kept)."""
    assert [p.ticket_id for p in pull.picks] == [ticket for ticket, _, _ in expected]
    assert [p.rank for p in pull.picks] == list(range(1, len(expected) + 1))
    for pick, (ticket, score, want) in zip(pull.picks, expected, strict=True):
        assert pick.parts == pytest.approx(want, abs=1.5e-6), ticket
        assert pick.score == pytest.approx(score, abs=1.5e-6), ticket


# Queue support: A P1 enterprise; D P3 (resolved at 01:45); B P0 business, replied at once;
# F then E, P3 enterprise, created together (F first in the file: the tie must still go to
# E); C P2, pending 01:30-03:30. Queue billing: G P0. Every ticket on channel other.
EVENTS = [
    event("created", "00:00", "A", queue="support", priority="P1", account_tier="enterprise"),
    event("created", "00:15", "D", queue="support", priority="P3"),
    event("created", "00:30", "B", queue="support", priority="P0", account_tier="business"),
    event("agent_replied", "00:35", "B", meaningful=True),
    event("created", "01:00", "F", queue="support", priority="P3", account_tier="Enterprise"),
    event("created", "01:00", "E", queue="support", priority="P3", account_tier="enterprise"),
    event("created", "01:00", "C", queue="support", priority="P2"),
    event("created", "01:00", "G", queue="billing", priority="P0"),
    event("agent_replied", "01:10", "A", meaningful=False),  # no touch: A stays untouched
    event("status_changed", "01:30", "C", status="pending"),
    event("resolved", "01:45", "D"),
    event("customer_replied", "02:30", "A", sentiment=-0.6),
    event("customer_replied", "02:30", "E", sentiment=0.8),
    event("status_changed", "03:30", "C", status="open"),
    event("assigned", "04:00", "G"),  # carries the input (and the flush) to 04:00
]


def settings(pull: PullPolicy | None = None) -> Settings:
    return Settings(core_settings(STEP_SECONDS).windows, pull=pull or PullPolicy())


@pytest.fixture(scope="module")
def emitted() -> list[Emitted]:
    items, counters = run(EVENTS, settings(), GRACE_US)
    assert counters.invalid == []
    assert counters.late == 0
    return items


def test_the_first_hour_ranks_every_open_ticket(emitted: list[Emitted]) -> None:
    pull = pull_of(emitted, "queue:support", "00:00")
    # A just opened: age 0, untouched 1, sla 0, P1 2/3, enterprise 1: .25 + .10 + .10.
    assert_picks(pull, [("A", 0.45, parts(0, 1, 0, 2 / 3, 1, 0))])

    pull = pull_of(emitted, "queue:support", "01:00")
    assert (pull.open, pull.candidates) == (6, 6)
    assert_picks(
        pull,
        [
            # age 60/1440; first response 60 of 30 min: breached, 1.
            # .25/24 = .010417 + .25 + .20 + .15*2/3 = .10 + .10 = .660417
            ("A", 0.660417, parts(1 / 24, 1, 1, 2 / 3, 1, 0)),
            # E and F: age 0, untouched, sla 0, P3 0, "Enterprise" read as enterprise 1:
            # .25 + .10 = .35 each; the tie goes to the smaller id, E, though F came first.
            ("E", 0.35, parts(0, 1, 0, 0, 1, 0)),
            ("F", 0.35, parts(0, 1, 0, 0, 1, 0)),
            # C: age 0, untouched, sla 0, P2 1/3: .25 + .15/3 = .30
            ("C", 0.30, parts(0, 1, 0, 1 / 3, 0, 0)),
            # D: 45 min: age 45/1440 = .03125; first response 45/1440 = .03125 (resolution
            # 45/7200 less): .25*.03125 + .25 + .20*.03125 = .007813 + .25 + .00625 = .264063
            ("D", 0.264063, parts(0.03125, 1, 0.03125, 0, 0, 0)),
            # B: replied at 00:35 (meaningful): untouched 0, and its first response, met
            # with 5 of 10 min used (.5), no longer counts: sla is the resolution's 30/120 =
            # .25, not .5. age 30/1440: .25*.020833 + .20*.25 + .15 + .10*.5
            # = .005208 + .05 + .15 + .05 = .255208
            ("B", 0.255208, parts(30 / 1440, 0, 0.25, 1, 0.5, 0)),
        ],
    )


def test_the_paused_and_the_resolved_ticket_are_left_out(emitted: list[Emitted]) -> None:
    pull = pull_of(emitted, "queue:support", "02:00")
    # D resolved at 01:45: gone from the queue. C pending since 01:30: open, not a candidate.
    assert (pull.open, pull.candidates) == (5, 4)
    assert_picks(
        pull,
        [
            # age 120/1440 = 1/12; sla still 1; no sentiment yet (the reply comes at 02:30):
            # .020833 + .25 + .20 + .10 + .10 = .670833
            ("A", 0.670833, parts(1 / 12, 1, 1, 2 / 3, 1, 0)),
            # age 60/1440; first response 60/1440 (resolution 60/7200 less):
            # .010417 + .25 + .20/24 = .008333 + .10 = .36875
            ("E", 0.36875, parts(1 / 24, 1, 1 / 24, 0, 1, 0)),
            ("F", 0.36875, parts(1 / 24, 1, 1 / 24, 0, 1, 0)),
            # age 90/1440 = .0625; resolution 90/120 = .75:
            # .015625 + .20*.75 + .15 + .05 = .365625
            ("B", 0.365625, parts(0.0625, 0, 0.75, 1, 0.5, 0)),
        ],
    )
    assert "C" not in {p.ticket_id for p in pull_of(emitted, "queue:support", "03:00").picks}


def test_a_sentiment_update_moves_the_score_at_the_next_whole_hour(
    emitted: list[Emitted],
) -> None:
    pull = pull_of(emitted, "queue:support", "03:00")
    assert (pull.open, pull.candidates) == (5, 4)
    assert_picks(
        pull,
        [
            # A's customer reply at 02:30 carried sentiment -0.6: part .6 (it was 0 at 02:00).
            # age 180/1440 = .125: .03125 + .25 + .20 + .10 + .10 + .05*.6 = .71125
            ("A", 0.71125, parts(0.125, 1, 1, 2 / 3, 1, 0.6)),
            # resolution 150 of 120 min: breached, 1. age 150/1440 = .104167:
            # .026042 + .20 + .15 + .05 = .426042
            ("B", 0.426042, parts(150 / 1440, 0, 1, 1, 0.5, 0)),
            # E's sentiment 0.8 is positive: part 0, still tied with F.
            # age 120/1440 = 1/12, first response 120/1440 = 1/12:
            # .020833 + .25 + .016667 + .10 = .3875
            ("E", 0.3875, parts(1 / 12, 1, 1 / 12, 0, 1, 0)),
            ("F", 0.3875, parts(1 / 12, 1, 1 / 12, 0, 1, 0)),
        ],
    )


def test_a_day_old_ticket_moves_with_its_first_reply_and_its_sentiment() -> None:
    """Past a day the age part is whole and the ticket keeps its rank from hour to hour
    (the pull list's ``Ranking``): a reply or new traits must still move it."""
    day = "2025-03-04"
    events = [
        event("created", "00:00", "X", queue="old", priority="P3"),
        event("created", "00:30", "Y", queue="old", priority="P3"),
        event("agent_replied", "05:30", "X", day=day, meaningful=True),
        event("customer_replied", "07:30", "Y", day=day, sentiment=-1.0),
        event("assigned", "08:00", "Y", day=day),
    ]
    emitted, _ = run(events, settings(), GRACE_US)
    # 05:00: both a day old and untouched, first response (P3, 24 h) breached: .25 + .25 +
    # .20 = .70 each; the tie goes to X.
    both = parts(1, 1, 1, 0, 0, 0)
    assert_picks(pull_of(emitted, "queue:old", "05:00", day), [("X", 0.7, both), ("Y", 0.7, both)])
    # 06:00: X replied at 05:30. Its first-response clock stopped for good; resolution
    # (7200 min) 1800 min used, .25: .25 + .20*.25 = .30.
    assert_picks(
        pull_of(emitted, "queue:old", "06:00", day),
        [("Y", 0.7, both), ("X", 0.3, parts(1, 0, 0.25, 0, 0, 0))],
    )
    # 08:00: Y's reply carried sentiment -1: .70 + .05. X's resolution 1920 of 7200 min.
    assert_picks(
        pull_of(emitted, "queue:old", "08:00", day),
        [("Y", 0.75, parts(1, 1, 1, 0, 0, 1)), ("X", 0.303333, parts(1, 0, 1920 / 7200, 0, 0, 0))],
    )


PULLED = PullPolicy(top=2, age_full_us=2 * 3600 * 1_000_000)  # day-old after two hours
TICKETS = "ABCDEFGHIJ"
QUEUE_EVENTS: list[tuple[str, dict[str, object]]] = [
    ("created", {"queue": "q1", "priority": "P2"}),
    ("created", {"queue": "q1", "priority": "P0", "sentiment": -0.2}),
    ("created", {"queue": "q2", "priority": "P0", "account_tier": "business"}),
    ("agent_replied", {"meaningful": True}),
    ("customer_replied", {"sentiment": -0.7}),
    ("status_changed", {"status": "pending"}),
    ("status_changed", {"status": "open"}),
    ("priority_changed", {"priority": "P1"}),
    ("transferred", {"queue": "q1"}),
    ("transferred", {"queue": "q2"}),
    ("resolved", {}),
    ("reopened", {}),
]


@st.composite
def queue_days(draw: st.DrawFn) -> list[bytes]:
    """Events of a few tickets in two queues over half a day: openings, replies, pauses, new
    traits, transfers, resolves and reopens. They arrive in time order but for up to nine
    minutes (within the grace), so a transition may apply after one that arrived later."""
    timed = []
    for minute in draw(st.lists(st.integers(0, 720), min_size=1, max_size=60)):
        ticket = draw(st.sampled_from(TICKETS))
        kind, fields = draw(st.sampled_from(QUEUE_EVENTS))
        arrival = minute + draw(st.integers(0, 9))
        timed.append(
            (arrival, event(kind, f"{minute // 60:02d}:{minute % 60:02d}", ticket, **fields))
        )
    return [line for _, line in sorted(timed, key=lambda item: item[0])]


@given(queue_days())
@settings_of_hypothesis(max_examples=150, deadline=None)
def test_each_hour_ranks_as_a_fresh_read_of_every_ticket_would(lines: list[bytes]) -> None:
    """The ranking kept from hour to hour (``Ranking``) against one made afresh from a copy
    of the queue's index at every whole hour: the same list, scores, parts and counts. And
    the visit's early stop against every ticket scored (a top as long as the queue): no
    ticket left unvisited belonged in the list."""
    pipeline = LocalPipeline(settings(PULLED), GRACE_US)
    everyone = replace(PULLED, top=len(TICKETS))

    def afresh(item: Emitted, policy: PullPolicy) -> PullList:
        """The scope's list as of ``item``, ranked from a copy of its index by new rankings."""
        aging = pipeline.scopes[item.flow.scope].aging
        assert aging is not None
        index = copy.deepcopy(aging)
        sla = pipeline.settings.sla
        return pull_list(item.flow.scope, index, item.flow.as_of_us, policy, sla, Rankings())

    def check(items: Iterable[Emitted]) -> None:
        for item in items:  # taken one by one: the scope is still as of the item
            if item.pull is not None:
                assert item.pull == afresh(item, PULLED)
                assert item.pull.picks == afresh(item, everyone).picks[: PULLED.top]

    for line in lines:
        check(pipeline.ingest(parse_event(line)))
    check(pipeline.finish())


def test_the_paused_ticket_comes_back_with_its_clock_stopped_while_paused(
    emitted: list[Emitted],
) -> None:
    pull = pull_of(emitted, "queue:support", "04:00")
    assert (pull.open, pull.candidates) == (5, 5)
    assert_picks(
        pull,
        [
            # age 240/1440 = 1/6: .041667 + .25 + .20 + .10 + .10 + .03 = .721667
            ("A", 0.721667, parts(1 / 6, 1, 1, 2 / 3, 1, 0.6)),
            # age 210/1440 = .145833: .036458 + .20 + .15 + .05 = .436458
            ("B", 0.436458, parts(210 / 1440, 0, 1, 1, 0.5, 0)),
            # age 180/1440 = .125, first response 180/1440 = .125:
            # .03125 + .25 + .025 + .10 = .40625
            ("E", 0.40625, parts(0.125, 1, 0.125, 0, 1, 0)),
            ("F", 0.40625, parts(0.125, 1, 0.125, 0, 1, 0)),
            # C, open again since 03:30: age from its creation, 180/1440 = .125; its clocks
            # ran 01:00-01:30 and 03:30-04:00 only: first response 60/240 = .25 (not
            # 180/240). .03125 + .25 + .20*.25 + .15/3 = .03125 + .25 + .05 + .05 = .38125
            ("C", 0.38125, parts(0.125, 1, 0.25, 1 / 3, 0, 0)),
        ],
    )


def test_each_queue_ranks_only_its_own_tickets(emitted: list[Emitted]) -> None:
    pull = pull_of(emitted, "queue:billing", "02:00")
    assert (pull.open, pull.candidates) == (1, 1)
    # G P0, no tier: age 60/1440, first response 60 of 10 min: 1.
    # .010417 + .25 + .20 + .15 = .610417
    assert_picks(pull, [("G", 0.610417, parts(1 / 24, 1, 1, 1, 0, 0))])
    support = pull_of(emitted, "queue:support", "02:00")
    assert "G" not in {p.ticket_id for p in support.picks}


def test_pull_lists_come_only_for_queues_at_whole_hours(emitted: list[Emitted]) -> None:
    hour = 3600 * 1_000_000
    with_pull = {(e.flow.scope, iso(e.flow.as_of_us)) for e in emitted if e.pull is not None}
    queue_rows = {
        (e.flow.scope, iso(e.flow.as_of_us)) for e in emitted if e.flow.scope.startswith("queue:")
    }
    # Half-hour rows exist (00:30, 01:30, ...), and other scopes too: none of them has one.
    assert any(as_of.endswith("30:00Z") for _, as_of in queue_rows)
    assert {e.flow.scope for e in emitted} >= {"all", "priority:P0", "channel:other"}
    assert with_pull == {
        (scope, as_of) for scope, as_of in queue_rows if at(as_of[11:16]) % hour == 0
    }
    assert with_pull == {
        *(("queue:support", f"{DAY}T0{h}:00:00Z") for h in range(5)),
        *(("queue:billing", f"{DAY}T0{h}:00:00Z") for h in range(1, 5)),
    }


def test_top_limits_the_list_and_the_cut_keeps_the_tie_order() -> None:
    items, _ = run(EVENTS, settings(PullPolicy(top=2)), GRACE_US)
    # 01:00: A .660417, then E and F tied at .35: E makes the cut, F does not.
    pull = pull_of(items, "queue:support", "01:00")
    assert [p.ticket_id for p in pull.picks] == ["A", "E"]
    assert (pull.open, pull.candidates) == (6, 6)  # the counts are not cut
    pull = pull_of(items, "queue:support", "04:00")
    assert [p.ticket_id for p in pull.picks] == ["A", "B"]
    assert [p.score for p in pull.picks] == pytest.approx([0.721667, 0.436458], abs=1.5e-6)


def test_a_transferred_and_reopened_ticket_keeps_its_traits_and_its_age() -> None:
    traits = {"account_tier": "business", "sentiment": -1.0}
    lines = [
        event("created", "00:00", "H", queue="billing", priority="P2", **traits),
        event("transferred", "00:30", "H", queue="support"),
        event("resolved", "01:10", "H"),
        event("reopened", "02:20", "H"),
        event("assigned", "03:00", "H"),
    ]
    items, _ = run(lines, settings(), GRACE_US)
    # Entered support at 00:30, aged from its creation: 60/1440; its clocks from 00:00:
    # first response 60/240 = .25 (resolution 60/4320 less); P2 1/3, business .5,
    # sentiment -1: 1. .010417 + .25 + .05 + .05 + .05 + .05 = .460417
    pull = pull_of(items, "queue:support", "01:00")
    assert_picks(pull, [("H", 0.460417, parts(1 / 24, 1, 0.25, 1 / 3, 0.5, 1))])
    left = pull_of(items, "queue:billing", "01:00")
    assert (left.open, left.candidates, left.picks) == (0, 0, ())
    assert pull_of(items, "queue:support", "02:00").picks == ()  # resolved at 01:10
    # Reopened at 02:20: age still from 00:00, 180/1440 = .125. The clocks ran 00:00-01:10
    # and 02:20-03:00: 110 min; first response 110/240 = .458333.
    # .03125 + .25 + .20*.458333 = .091667 + .05 + .05 + .05 = .522917
    pull = pull_of(items, "queue:support", "03:00")
    assert_picks(pull, [("H", 0.522917, parts(0.125, 1, 110 / 240, 1 / 3, 0.5, 1))])


@pytest.mark.parametrize(
    ("pull", "where"),
    [
        ({"weights": {"age": -0.1}}, ("pull", "weights", "age")),
        ({"weights": {"urgency": 0.3}}, ("pull", "weights", "urgency")),
        ({"tiers": {"enterprise": 1.5}}, ("pull", "tiers", "enterprise")),
        ({"top": 0}, ("pull", "top")),
    ],
)
def test_the_pull_settings_refuse_bad_values_by_name(
    pull: dict[str, object], where: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        FlowgaugeConfig(pull=pull)  # type: ignore[arg-type]
    errors = caught.value.errors()
    assert [error["loc"][: len(where)] for error in errors] == [where]
    assert ".".join(where) in str(caught.value)


def test_the_pull_settings_reach_the_core() -> None:
    config = FlowgaugeConfig(
        pull={"top": 3, "weights": {"sla": 0.5}, "tiers": {"Gold": 0.7}, "age_full": "12h"}
    )  # type: ignore[arg-type]
    policy = config.core().pull
    assert policy is not None
    assert policy.top == 3
    assert policy.weights == {
        "age": 0.25,
        "untouched": 0.25,
        "sla": 0.5,
        "priority": 0.15,
        "tier": 0.10,
        "sentiment": 0.05,
    }
    assert policy.tiers["gold"] == 0.7
    assert policy.age_full_us == 12 * 3600 * 1_000_000
    off = FlowgaugeConfig(pull={"enabled": False}).core()  # type: ignore[arg-type]
    assert off.pull is None
    items, _ = run(EVENTS, off, GRACE_US)
    assert all(item.pull is None for item in items)


def test_report_writes_the_pull_lists_as_csv(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(EVENTS) + b"\n")
    out = tmp_path / "pull.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGAUGE_")}
    subprocess.run(
        [
            sys.executable, "-m", "streams.commands.cli", "report", str(events),
            "--step", "30m", "--output", os.devnull, "--pull", str(out),
        ],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    with out.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [
        "as_of", "queue", "rank", "ticket_id", "score",
        "age", "untouched", "sla", "priority", "tier", "sentiment",
    ]  # fmt: skip
    items, _ = run(EVENTS, settings(), GRACE_US)
    expected = [
        [iso(item.pull.as_of_us), item.pull.scope.removeprefix("queue:"), str(pick.rank)]
        + [pick.ticket_id, str(pick.score)]
        + [str(pick.parts[name]) for name in parts(0, 0, 0, 0, 0, 0)]
        for item in items
        if item.pull is not None
        for pick in item.pull.picks
    ]
    assert rows[1:] == expected
    # 1 + 6 + 4 + 4 + 5 support rows, one billing row at each of 01:00-04:00.
    assert len(expected) == 24
    last = [row for row in rows[1:] if row[0] == f"{DAY}T04:00:00Z" and row[1] == "support"]
    assert [row[2:4] for row in last] == [
        ["1", "A"],
        ["2", "B"],
        ["3", "E"],
        ["4", "F"],
        ["5", "C"],
    ]
    # A at 04:00, by hand above: .721667; parts 1/6, 1, 1, 2/3, 1, .6
    assert [float(cell) for cell in last[0][4:]] == pytest.approx(
        [0.721667, 1 / 6, 1, 1, 2 / 3, 1, 0.6], abs=1.5e-6
    )


def test_the_pull_page_keeps_each_queue_s_newest_record_and_skips_what_is_not_one() -> None:
    lists = PullLists()
    first = json.dumps({"scope": "queue:billing", "as_of": "2026-03-02T09:00:00Z"}).encode()
    later = json.dumps({"scope": "queue:billing", "as_of": "2026-03-02T10:00:00Z"}).encode()
    lists.take(b"queue:billing", first)
    deep = b"[" * 100_000 + b"]" * 100_000  # deeper than the interpreter's stack
    for bad in (b"{not json", b"[]", b'"text"', b'{"as_of": 5}', b'{"scope": 7}', None, deep):
        lists.take(b"queue:billing", bad)  # skipped: never raises, never replaces
    assert lists.answer("billing").body == first
    lists.take(b"queue:billing", later)
    assert lists.answer("billing").body == later
    assert lists.answer("tech").status == 404
    assert lists.answer(None).status == 400
    assert lists.answer("").status == 400


def test_a_change_of_traits_alone_moves_no_clock() -> None:
    # A P3 ticket (first response 24 h) becomes P0 at 00:30 (first response 10 min, so
    # breached from 00:30 on); a customer reply stamped 00:22, with a sentiment, arrives
    # after it. The ticket's clocks are stamped in arrival order (already P0 at 00:30), so
    # a transition carrying them at 00:22 would breach the queue's first response at 00:25,
    # ahead of the whole backlog's. Traits alone carry no clock: both agree, at every
    # boundary, and the queue's pull list still learns the sentiment.
    lines = [
        event("created", "00:00", "T", queue="billing", priority="P3"),
        event("priority_changed", "00:30", "T", priority="P0"),
        event("customer_replied", "00:22", "T", sentiment=-0.5),
        event("customer_replied", "01:05", "T"),  # the log runs on past 01:00
    ]
    emitted, _ = run(lines, core_settings(300), GRACE_US)
    breached = {
        (item.flow.scope, item.flow.as_of_us): item.aging.sla[Target.FIRST_RESPONSE][
            SlaState.BREACHED
        ]
        for item in emitted
        if item.aging is not None
    }
    for (scope, as_of), count_ in breached.items():
        if scope == "queue:billing":
            assert count_ == breached[("all", as_of)], iso(as_of)
    assert breached[("queue:billing", at("00:25"))] == 0
    assert breached[("queue:billing", at("00:35"))] == 1
    assert pull_of(emitted, "queue:billing", "01:00").picks[0].parts["sentiment"] == 0.5


def test_a_worker_forgets_the_caches_of_the_scopes_it_no_longer_owns(tmp_path: Path) -> None:
    """After a rebalance a revoked partition's scopes live on another worker: the pull
    lists' rankings (which hold the queue's aging index) and the forecasts' draws of
    those scopes are dropped; the other partitions' stay."""
    config = FlowgaugeConfig.model_validate(
        {"broker": "kafka://localhost:9092", "data_dir": str(tmp_path), "step": "1h"}
    )
    kafka = Kafka.of(config)
    wiring = Wiring.of(
        kafka.app(config.app_id, store="memory://"), config, Layout(4, 1, 1, 0), kafka
    )
    ScopeStage(wiring)  # connects itself to the app's rebalance signals
    lines = [encode(e) for e in generate_events(Scenario(days=16, seed=5))]
    run(lines, wiring.settings, GRACE_US)

    def placed(scope: str) -> int:
        return dimension_partition(dimension_key(scope), wiring.partitions)

    queues = placed("queue:billing")
    drawn = set(DRAWN.by_scope) | set(DRAWN.answers) | set(DRAWN.pools)
    assert {"queue:billing", "queue:tech"} <= set(RANKINGS.by_scope)
    assert {"all", "queue:billing"} <= drawn
    assert placed("all") != queues  # so that one partition's scopes go, another's stay

    def revoke(topic: str) -> None:  # as Faust signals a rebalance
        asyncio.run(wiring.app.on_partitions_revoked.send({TP(topic, queues)}))

    revoke("ticket-events")  # not the scopes' topic
    assert "queue:billing" in RANKINGS.by_scope
    revoke(wiring.deltas.get_topic_name())
    for held in (RANKINGS.by_scope, DRAWN.by_scope, DRAWN.answers, DRAWN.pools):
        assert all(placed(scope) != queues for scope in held)
    assert "all" in set(DRAWN.by_scope) | set(DRAWN.answers) | set(DRAWN.pools)
