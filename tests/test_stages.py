"""The stream's three stages, driven in-process as the Faust shell drives them, equal ``report``.

No broker (``tests.inprocess``): what a stage sends waits for the next stage's turn,
in batches, over several partitions, with the requester stage falling behind, so a
rule that differs between the stream and ``report`` shows here.
"""

from __future__ import annotations

import pytest

from streams.commands.report import run
from streams.commands.simulate import Scenario, encode, generate_events
from streams.core.scope import Emitted, Settings
from streams.core.stages import (
    Contacts,
    Progress,
    RequesterPartitionRecord,
    apply_progress_to,
    run_requester_batch,
)
from streams.core.watermark import Watermarks
from tests.conftest import SHARED_FIXTURES, core_settings, need_path
from tests.inprocess import GRACE_US, run_core


def stream_rows(
    lines: list[bytes], settings: Settings, batch: int, partitions: int = 1, lag: int = 0
) -> list[tuple[str, int, dict]]:
    emitted = run_core(lines, settings, batch, partitions=partitions, lag=lag).emitted
    return sorted((e.flow.scope, e.flow.as_of_us, _values(e)) for e in emitted)


def report_rows(lines: list[bytes], settings: Settings) -> list[tuple[str, int, dict]]:
    emitted, _ = run(lines, settings, GRACE_US)
    return sorted((e.flow.scope, e.flow.as_of_us, _values(e)) for e in emitted)


def _values(item: Emitted) -> dict:
    alerts = [alert.alert_id for alert in item.alerts]
    return {"flow": item.flow, "aging": item.aging, "alerts": alerts, "indicators": item.indicators}


def _line(ticket: str, event: str, kind: str, at: str, **extra: str) -> bytes:
    fields = {"event_id": event, "ticket_id": ticket, "type": kind, "occurred_at": at, **extra}
    return encode(fields)


@pytest.mark.parametrize(
    ("batch", "partitions", "lag"), [(1, 1, 0), (7, 1, 0), (500, 1, 0), (7, 3, 0), (7, 3, 4)]
)
def test_stages_equal_report_on_the_shared_fixture(batch: int, partitions: int, lag: int) -> None:
    events = need_path(SHARED_FIXTURES / "sample-events.jsonl", "shared fixtures")
    lines = [line for line in events.read_bytes().splitlines() if line.strip()]
    settings = core_settings(3600)
    assert stream_rows(lines, settings, batch, partitions, lag) == report_rows(lines, settings)


@pytest.mark.parametrize(("partitions", "lag"), [(1, 0), (4, 3)])
def test_stages_equal_report_on_a_simulated_fortnight(partitions: int, lag: int) -> None:
    """Long enough for recontacts and settled deflection in every scope."""
    lines = [encode(event) for event in generate_events(Scenario(days=14))]
    settings = core_settings(300)
    rows = stream_rows(lines, settings, 500, partitions, lag)
    assert rows == report_rows(lines, settings)
    last = [values["indicators"] for scope, _, values in rows if scope == "all"][-1]
    assert last.recontact_rate > 0
    assert last.ai_resolutions > 0


def test_a_transfer_out_does_not_make_the_old_scope_seen_earlier() -> None:
    """A ticket's own events out of order: the stream starts rows where report does."""
    lines = [
        _line("t1", "e1", "created", "2024-03-10T10:05:00Z"),
        _line("t1", "e2", "transferred", "2024-03-10T10:00:00Z", queue="billing"),
        _line("t2", "e1", "created", "2024-03-10T10:40:00Z"),
    ]
    settings = core_settings(300)
    rows = stream_rows(lines, settings, 1)
    assert rows == report_rows(lines, settings)
    default = [values["flow"] for scope, _, values in rows if scope == "queue:default"]
    # First seen at 10:05 (created); the 10:00 transfer out of it is in that first row.
    assert default[0].as_of_us == 1710065100000000
    assert (default[0].open, default[0].transfers_out["1h"]) == (0, 1)


@pytest.mark.parametrize("partitions", [1, 3])
def test_a_broker_lost_half_way_loses_and_repeats_nothing(partitions: int) -> None:
    """The second half arrives on an empty broker from offset 0: without positions that
    continue after the lost log, the scope stage took its deltas as applied already."""
    lines = [encode(event) for event in generate_events(Scenario(days=4))]
    settings = core_settings(3600)
    unbroken = report_rows(lines, settings)
    result = run_core(lines, settings, 50, partitions=partitions, lose_broker_after=len(lines) // 2)
    rows = sorted((e.flow.scope, e.flow.as_of_us, _values(e)) for e in result.emitted)
    assert rows == unbroken
    assert result.duplicates == 0


def test_a_relay_passes_on_the_newest_event_time_of_all_the_progress_it_read() -> None:
    """After a takeover the new owner replays a partition the old owner finished, and its
    progress has no event time. A relay that passed on only the last progress per source
    hid the old owner's newest one, and the scope stage never flushed the last boundary
    (the two-worker kill -9 test, with a 100 ms fetch wait)."""
    old_owner = Progress(0, newest_us=1_000, next_offset=2225)
    new_owner = Progress(0, newest_us=None, next_offset=1354)
    idle = Progress(0, newest_us=None, next_offset=2225, idle=True)
    other = Progress(1, newest_us=700, next_offset=9)
    contacts = [Contacts(progress=[old_owner, other]), Contacts(progress=[new_owner, idle])]
    batch = run_requester_batch(enumerate(contacts), lambda _: None, RequesterPartitionRecord(0, 2))
    assert batch.relay == [
        Progress(0, newest_us=1_000, next_offset=2225, idle=True),
        Progress(1, newest_us=700, next_offset=9),
    ]
    relayed = Watermarks()
    for progress in batch.relay:
        apply_progress_to(relayed, progress)
    one_by_one = Watermarks()
    for item in contacts:
        for progress in item.progress:
            apply_progress_to(one_by_one, progress)
    assert relayed == one_by_one
