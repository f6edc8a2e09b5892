"""A scope's held-back transitions are written apart, in segments, and come back after a crash.

The scope stage writes, per batch: the segment of transitions it newly held back, then
the scope's state listing its segments, then deletes the segments no longer needed. Here
one scope is driven through that order with a dict as the compacted changelog, killed at
each step of each batch, recovered and replayed from its last state: what it emits must
equal an unbroken run's.
"""

from __future__ import annotations

import pytest

from streams.commands.simulate import Scenario, encode, generate_events
from streams.core.events import parse_event
from streams.core.scope import Emitted, ScopeState
from streams.core.sla import SlaPolicy
from streams.core.stages import (
    Message,
    ScopeDelta,
    ScopeRecord,
    apply_delta,
    emit,
    run_ticket_batch,
)
from streams.core.ticket import Ticket
from streams.core.timeline import US_PER_SECOND, boundary_index
from streams.shell import codec
from tests.conftest import core_settings

SETTINGS = core_settings(300)
GRACE_US = 600 * US_PER_SECOND
BEHIND_US = 86400 * US_PER_SECOND  # the scope emits a day behind its input: a catch-up
STATE = b"all"


def _deltas() -> list[tuple[ScopeDelta, int]]:
    """Scope ``all``'s delta of each input batch, with the boundary it may emit through."""
    step = SETTINGS.windows.step_us
    lines = [encode(event) for event in generate_events(Scenario(days=3))]
    tickets: dict[str, Ticket] = {}
    newest: dict[int, int] = {}
    out = []
    for start in range(0, len(lines), 400):
        chunk = lines[start : start + 400]
        messages = [Message(0, start + n, None, line) for n, line in enumerate(chunk)]
        batch = run_ticket_batch(messages, tickets.get, newest, GRACE_US, SlaPolicy(), 1, {})
        tickets.update({key: ticket for key, (_, ticket) in batch.changed.items()})
        limit = boundary_index(newest[0] - BEHIND_US, step) - 1
        out.append((batch.deltas[("all", 0)], limit))
    last = max(parse_event(line).occurred_us for line in lines)
    out.append((ScopeDelta("all", 0, -1), boundary_index(last, step)))  # the end: all out
    return out


DELTAS = _deltas()


def _segment(number: int) -> bytes:
    return f"{number}/all".encode()


def _recover(changelog: dict[bytes, bytes]) -> tuple[ScopeRecord, int]:
    """The scope as a restarted worker loads it, and how many transitions came back."""
    if STATE not in changelog:
        return ScopeRecord(ScopeState.new("all", SETTINGS), 0), 0
    record: ScopeRecord = codec.loads(changelog[STATE])
    assert record.state.aging is not None
    assert not record.state.aging.pending, "held-back transitions are not in the state"

    def segment(number: int) -> list | None:
        stored = changelog.get(_segment(number))
        return None if stored is None else codec.loads(stored)

    record.state.aging.restore(segment)
    return record, len(record.state.aging.pending)


def _run(crash: tuple[int, str] | None) -> tuple[dict[int, Emitted], int, int]:
    """Everything emitted, by boundary; the transitions recovered; the most held back."""
    changelog: dict[bytes, bytes] = {}
    record, _ = _recover(changelog)
    out: dict[int, Emitted] = {}
    recovered = most_held = index = 0
    while index < len(DELTAS):
        delta, limit = DELTAS[index]
        apply_delta(record, delta, SETTINGS)
        out.update((e.flow.as_of_us, e) for e in emit([record], limit, SETTINGS))
        aging = record.state.aging
        assert aging is not None
        most_held = max(most_held, len(aging.pending))
        segment = aging.seal()
        if segment is not None:
            changelog[_segment(segment[0])] = codec.dumps(segment[1])
        if crash == (index, "after the segment"):
            crash, (record, recovered) = None, _recover(changelog)
            continue  # the batch again: its state was not written
        spent = aging.release_segments()
        changelog[STATE] = codec.dumps(record)
        if crash == (index, "after the state"):
            crash, (record, recovered) = None, _recover(changelog)
        for number in spent:
            changelog.pop(_segment(number))
        index += 1
    return out, recovered, most_held


UNBROKEN, _, MOST_HELD = _run(None)


def test_the_scope_holds_back_hundreds_of_transitions_that_its_state_leaves_out() -> None:
    assert MOST_HELD > 500
    record, _ = _recover({})
    for delta, _ in DELTAS[:3]:
        apply_delta(record, delta, SETTINGS)
    aging = record.state.aging
    assert aging is not None
    assert len(codec.dumps(record)) * 4 < len(codec.dumps(aging.pending))


@pytest.mark.parametrize("step", ["after the segment", "after the state"])
@pytest.mark.parametrize("batch", range(0, len(DELTAS), 2))
def test_a_scope_killed_after_any_write_emits_what_an_unbroken_one_does(
    batch: int, step: str
) -> None:
    emitted, recovered, _ = _run((batch, step))
    assert emitted == UNBROKEN
    if 0 < batch < len(DELTAS) - 1:
        assert recovered > 100, "the recovered scope should have held transitions back"


def test_a_lost_segment_stops_the_recovery_rather_than_emit_wrong_numbers() -> None:
    record, _ = _recover({})
    for delta, _ in DELTAS[:2]:
        apply_delta(record, delta, SETTINGS)
    aging = record.state.aging
    assert aging is not None
    assert aging.seal() is not None
    changelog = {STATE: codec.dumps(record)}  # its segment never written
    with pytest.raises(RuntimeError, match="held-back segment 0 lost"):
        _recover(changelog)
