"""The stream's two stages, driven in-process as the Faust shell drives them, equal ``report``.

No broker: the ticket-stage deltas and progress go straight into the scope stage,
in batches, so a rule that differs between the stream and ``report`` shows here.
"""

from __future__ import annotations

import pytest

from streams.report import run
from streams.scope import Emitted, ScopeState, Settings
from streams.simulate import Scenario, encode, generate_events
from streams.stages import (
    Message,
    PartitionRecord,
    Progress,
    ScopeRecord,
    apply_delta,
    apply_progress,
    emit,
    run_ticket_batch,
)
from streams.ticket import Ticket
from tests.conftest import SHARED_FIXTURES, core_settings, need_path

GRACE_US = 600 * 1_000_000


def stream_rows(lines: list[bytes], settings: Settings, batch: int) -> list[tuple[str, int, dict]]:
    tickets: dict[str, Ticket] = {}
    scopes: dict[str, ScopeRecord] = {}
    partition = PartitionRecord(0, source_partitions=1)
    newest: dict[int, int] = {}
    emitted: list[Emitted] = []

    def scope_stage(progress: list[Progress], deltas: list) -> None:
        for delta in deltas:
            if delta.scope not in scopes:
                state = ScopeState.new(delta.scope, settings, partition.emitted)
                scopes[delta.scope] = ScopeRecord(state, 0)
            partition.scopes.add(delta.scope)
            apply_delta(scopes[delta.scope], delta, settings)
        for item in progress:
            apply_progress(partition, item)
        limit = partition.emit_limit(settings, GRACE_US, live_horizon_us=0)
        if limit is not None:
            previous = partition.emitted
            partition.emitted = limit if previous is None else max(previous, limit)
            emitted.extend(emit((scopes[s] for s in sorted(partition.scopes)), limit, settings))

    messages = [Message(0, offset, None, line) for offset, line in enumerate(lines)]
    for start in range(0, len(messages), batch):
        chunk = messages[start : start + batch]
        result = run_ticket_batch(chunk, tickets.get, newest, GRACE_US, settings.sla)
        tickets.update({key: ticket for key, (_, ticket) in result.changed.items()})
        scope_stage(list(result.progress.values()), list(result.deltas.values()))
    scope_stage([Progress(0, None, len(messages), idle=True)], [])
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


@pytest.mark.parametrize("batch", [1, 7, 500])
def test_stages_equal_report_on_the_shared_fixture(batch: int) -> None:
    events = need_path(SHARED_FIXTURES / "sample-events.jsonl", "shared fixtures")
    lines = [line for line in events.read_bytes().splitlines() if line.strip()]
    settings = core_settings(3600)
    assert stream_rows(lines, settings, batch) == report_rows(lines, settings)


def test_stages_equal_report_on_a_simulated_week() -> None:
    lines = [encode(event) for event in generate_events(Scenario(days=7))]
    settings = core_settings(300)
    assert stream_rows(lines, settings, 2000) == report_rows(lines, settings)


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
