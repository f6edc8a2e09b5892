"""Scopes are capped like labels: a flood of queue names folds into ``queue:other``, the same
values in ``report`` and in the stream, across workers and restarts (one broker here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.commands.broker import EmbeddedBroker
from streams.commands.cli import main
from streams.commands.replay import message_key
from streams.commands.report import run
from streams.core.catalog import Catalog
from streams.core.scope import Emitted, Settings
from streams.core.timeline import US_PER_SECOND, iso, to_us
from streams.core.topics import INPUT
from streams.shell.scope import ScopesElsewhere, check_placed
from tests.cluster import NO_PLANNING, produce, workers
from tests.conftest import core_settings
from tests.test_pipeline import assert_snapshots, expected_from_report, gauge, wait_caught_up

US = US_PER_SECOND
GRACE_US = 600 * US
START_US = to_us(datetime(2026, 3, 2, tzinfo=UTC))


def created(n: int, at_us: int, queue: str, kind: str = "created") -> bytes:
    body = {
        "event_id": kind, "ticket_id": f"T{n}", "type": kind, "occurred_at": iso(at_us),
        "queue": queue,
    }  # fmt: skip
    return json.dumps(body).encode()


def flood(tickets: range, hours: float, first_queue: int = 0, offset_h: float = 0) -> list[bytes]:
    """One created event per ticket, each in a queue of its own, spread over ``hours``."""
    spacing = int(hours * 3600 * US / len(tickets))
    start = START_US + int(offset_h * 3600 * US)
    return [
        created(n, start + i * spacing + 1, f"q-{first_queue + i:04d}")
        for i, n in enumerate(tickets)
    ]


def capped(cap: int) -> Settings:
    settings = core_settings(3600)
    return Settings(settings.windows, scope_cap=cap)


def last_rows(emitted: list[Emitted]) -> dict[str, Emitted]:
    return {item.flow.scope: item for item in emitted}  # ordered by as_of: the last wins


# --- the catalog -------------------------------------------------------------------------------


def test_values_are_decided_in_order_of_first_sighting_ties_by_name() -> None:
    catalog: Catalog[str] = Catalog("queue", cap=2)
    catalog.hold("queue:c", 30, ["c1"], None)
    catalog.hold("queue:b", 10, ["b1"], None)
    catalog.hold("queue:a", 10, ["a1"], None)
    catalog.hold("queue:d", None, ["d1"], None)  # a transfer out came before any sighting
    assert catalog.target("queue:a") is None  # undecided until its first boundary goes out
    assert catalog.target("queue:other") == "queue:other"  # always a scope, never counted
    assert [(d.scope, d.target) for d in catalog.decide(through_us=20)] == [
        ("queue:a", "queue:a"),
        ("queue:b", "queue:b"),
        # the cap is reached: every value still undecided folds now
        ("queue:c", "queue:other"),
        ("queue:d", "queue:other"),
    ]
    assert catalog.undecided == {}
    assert catalog.target("queue:zzz") == "queue:other"
    assert catalog.target("queue:b") == "queue:b"


def test_a_value_not_due_stays_undecided_while_there_is_room() -> None:
    catalog: Catalog[str] = Catalog("channel", cap=5)
    catalog.hold("channel:chat", 50, [], None)
    catalog.hold("channel:chat", 40, ["x"], None)
    assert catalog.decide(through_us=39) == []
    [decision] = catalog.decide(through_us=40)
    assert (decision.scope, decision.first_seen_us, decision.held) == ("channel:chat", 40, ["x"])


def test_a_worker_refuses_scope_state_kept_where_the_scope_name_hashed() -> None:
    check_placed("queue:billing", 1, 4)  # queue's partition
    check_placed("queue:billing", 0, 1)  # one partition: state from before is in place
    with pytest.raises(ScopesElsewhere, match="'queue:billing' is kept on partition 3"):
        check_placed("queue:billing", 3, 4)


# --- report ----------------------------------------------------------------------------


def test_report_folds_a_flood_of_queue_names_into_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's reproduction: 3,000 created events over a day, each its own queue."""
    lines = flood(range(3000), hours=24)
    events = tmp_path / "flood.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "rows.csv"
    assert main(["report", str(events), "--output", str(out)]) == 0
    rows = out.read_text().splitlines()
    scopes = {row.split(",")[1] for row in rows[1:]}
    queues = {scope for scope in scopes if scope.startswith("queue:")}
    assert queues == {f"queue:q-{n:04d}" for n in range(200)} | {"queue:other"}
    assert len(rows) - 1 < 70_000, "437,524 rows before the cap"
    assert "queue: more than 200 values; 2800 transitions counted in queue:other" in (
        capsys.readouterr().err
    )
    last = last_rows(run(lines, core_settings(), GRACE_US)[0])
    assert last["queue:other"].flow.open == 2800
    assert sum(last[s].flow.open for s in queues) == last["all"].flow.open == 3000


def test_the_same_values_fold_whatever_the_arrival_order_within_the_grace() -> None:
    lines = flood(range(401), hours=2)
    # 0, 2, 1, 4, 3, ...: by arrival the 50th value would be q-0050, by first sighting q-0049.
    swapped = [lines[0], *(b for pair in zip(lines[2::2], lines[1::2], strict=True) for b in pair)]
    settings = capped(50)
    assert [e.flow for e in run(swapped, settings, GRACE_US)[0]] == [
        e.flow for e in run(lines, settings, GRACE_US)[0]
    ]


# --- the stream -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.mark.broker
@pytest.mark.slow
def test_two_workers_fold_what_report_folds_and_a_restart_keeps_the_catalog(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    cap = {"FLOWGAUGE_STEP": "1h", "FLOWGAUGE_SCOPE_CAP": "40", **NO_PLANNING}
    first = flood(range(300), hours=10)  # queues from every input partition
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with workers(broker, tmp_path / "first", 2, **cap) as running:
        produce(broker, INPUT, [(message_key(line), line) for line in first])
        wait_caught_up(running)
        assert_snapshots(broker, expected_from_report(first, capped(40)))
        assert gauge(running, "flowgauge_transitions_folded_total", dimension="queue") == 260
    # New workers recover the catalog from the changelogs: the queues admitted before keep
    # their scopes and new ones fold, though there would be room had it been forgotten.
    later = [
        *flood(range(300, 340), hours=2, first_queue=300, offset_h=12),
        *(
            created(n, START_US + 15 * 3600 * US, f"q-{n:04d}", "resolved")
            for n in range(0, 300, 7)
        ),
    ]
    with workers(broker, tmp_path / "second", 1, **cap) as running:
        produce(broker, INPUT, [(message_key(line), line) for line in later])
        wait_caught_up(running)
        wanted = expected_from_report([*first, *later], capped(40))
        assert_snapshots(broker, wanted)
    queues = {scope for _, scope in wanted.flow if scope.startswith("queue:")}
    assert len(queues) == 41
