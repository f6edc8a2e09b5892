"""State and repartition messages pickled before the layout moved the modules still load.

``tests/data/state-before-layout.json`` holds, base64, what the codec wrote at 92a4697
(every module then directly under ``streams``) for the objects :func:`built` makes, as
``[base64.b64encode(codec.dumps(item)).decode() for item in built()]``. A worker upgraded
in place reads such records from its changelogs and internal topics."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

from streams.commands.report import LocalPipeline
from streams.commands.simulate import Scenario, encode, generate_events
from streams.core.alerts import CrossingPolicy
from streams.core.events import parse_event
from streams.core.positions import SourceLog
from streams.core.scope import ScopeState
from streams.core.sla import Clock, FlatClock, SlaPolicy
from streams.core.stages import (
    Entry,
    Message,
    PartitionRecord,
    Relay,
    RequesterPartitionRecord,
    Resume,
    ScopeDelta,
    ScopeRecord,
    apply_delta,
    apply_progress,
    contacts_for,
    emit,
    run_requester_batch,
    run_ticket_batch,
)
from streams.core.ticket import Kind, Ticket, Transition
from streams.shell import codec
from tests.conftest import core_settings

OLD_STATE = Path(__file__).parent / "data" / "state-before-layout.json"
US = 1_000_000


class _EveryValueAScope(LocalPipeline):
    """The pipeline as it built scope states when they were pickled: every value a scope
    from its first event (since the scope cap, values wait for a boundary to be decided)."""

    def _see(self, scope: str, at_us: int) -> None:
        self._scope(scope).flow.see(at_us)

    def _add(self, transition: Transition) -> None:
        self._scope(transition.scope).add(transition, self.settings)


def _pipeline_state() -> list[object]:
    """Tickets, scopes (one with transitions held back) and requesters after a day."""
    # The state was pickled when the headline rule was today's earlier rule.
    settings = replace(core_settings(300), crossing=CrossingPolicy())
    pipeline = _EveryValueAScope(settings, 86400 * US)  # a day's grace: held back
    for event in generate_events(Scenario(days=1)):
        list(pipeline.ingest(parse_event(encode(event))))
    aging = pipeline.scopes["all"].aging
    assert aging is not None
    segment = aging.seal()  # what the scope stage writes apart, in the held-back table
    assert segment is not None
    scopes = [ScopeRecord(scope, 0) for scope in pipeline.scopes.values()]
    return [
        *pipeline.tickets.values(), *scopes, *pipeline.requesters.values(), list(segment[1])
    ]  # fmt: skip


def _messages() -> list[object]:
    """What the stages send each other, and the partition records they keep."""
    lines = [encode(event) for event in generate_events(Scenario(days=1))]
    messages = [Message(0, offset, None, line) for offset, line in enumerate(lines)]
    batch = run_ticket_batch(messages, {}.get, {}, 600 * US, SlaPolicy(), 4, {0: 7})
    contacts = contacts_for(batch, 4)
    requesters = RequesterPartitionRecord(0, 4)
    found = run_requester_batch(list(enumerate(contacts)), lambda _: None, requesters)
    scopes = PartitionRecord(0, 4)
    for progress in batch.progress.values():
        apply_progress(scopes, progress)
    source = SourceLog()
    source.read(41, b"the last message read")
    sent = [*batch.deltas.values(), *batch.progress.values(), *contacts, *found.deltas.values()]
    return [*sent, Relay(0, found.relay), Resume(2), requesters, scopes, source]


def _traits_only(entry: Entry) -> bool:
    """A queue's entry for a change of traits alone: a CLOCK without clocks."""
    return entry[1] == Kind.CLOCK and entry[6] is None and entry[7] is None


def _as_then(entry: Entry) -> Entry:
    """An entry as written then: no traits, and its clocks as Clock objects."""
    *head, clock, prior, effort, _ = entry
    return (*head, _clock(clock), _clock(prior), effort)  # type: ignore[return-value]


def _clock(flat: FlatClock | None) -> Clock | None:
    return Clock.of_flat(*flat) if flat is not None else None


def built() -> list[object]:
    """The objects whose encoding is committed, as the codec writes them: a scope's
    held-back transitions are written apart, so its state holds none. What the code has
    carried since (a ticket's tier and sentiment, the traits on each transition) is left
    at what state written before it loads as: unset."""
    objects = [*_pipeline_state(), *_messages()]
    for item in objects:
        if isinstance(item, ScopeRecord) and item.state.aging is not None:
            item.state.aging.pending = []
            for ticket in item.state.aging.tickets.values():
                ticket.traits = None
        if isinstance(item, Ticket):
            item.tier = item.sentiment = None
        if isinstance(item, ScopeDelta):
            item.entries = [_as_then(entry) for entry in item.entries if not _traits_only(entry)]
        if isinstance(item, list):  # a held-back segment
            item[:] = [held[:9] for held in item]
    return objects


def test_state_pickled_before_the_layout_loads_as_what_the_code_builds_now() -> None:
    old = [base64.b64decode(item) for item in json.loads(OLD_STATE.read_text())]
    expected = built()
    assert len(old) == len(expected)
    for data, item in zip(old, expected, strict=True):
        loaded = codec.loads(data)
        if isinstance(item, ScopeRecord) and item.state.scope.startswith("queue:"):
            _count_traits_arrivals_as_then(loaded, item)
        assert loaded == item


def _count_traits_arrivals_as_then(loaded: ScopeRecord, item: ScopeRecord) -> None:
    """A queue's aging index counts more arrivals now that a change of traits alone (a
    customer reply's sentiment) is a transition of its own there, for the pull list: the
    arrival bookkeeping is the state's as written then; everything it indexes must match."""
    then, now = loaded.state.aging, item.state.aging
    assert then is not None
    assert now is not None
    assert now.arrivals > then.arrivals, "traits changes should add arrivals to a queue"
    now.arrivals, now.sealed, now.held = then.arrivals, then.sealed, then.held


def test_the_committed_state_names_the_modules_as_they_were() -> None:
    data = b"".join(base64.b64decode(item) for item in json.loads(OLD_STATE.read_text()))
    for old in (b"streams.ticket", b"streams.scope", b"streams.stages", b"streams.codec"):
        assert old in data
    assert b"clock_of" in data


def test_a_delta_written_when_clocks_were_objects_counts_as_one_written_now() -> None:
    """Deltas in flight when a worker is upgraded hold Clock objects, as do the entries a
    scope's catalog held back then: each scope they reach must end up as with plain values."""
    settings = core_settings(300)
    snapshots = 0
    for delta in (d for d in _messages() if isinstance(d, ScopeDelta)):
        then = replace(delta, entries=[_as_then(entry) for entry in delta.entries])
        now = replace(delta, entries=[entry[:9] for entry in delta.entries])  # type: ignore[misc]
        records = [ScopeRecord(ScopeState.new(delta.scope, settings), 0) for _ in range(2)]
        for record, sent in zip(records, (then, now), strict=True):
            apply_delta(record, sent, settings)
        assert records[0] == records[1]
        limit = max(entry[2] for entry in delta.entries) // settings.windows.step_us + 1
        emitted = [list(emit([record], limit, settings)) for record in records]
        assert emitted[0] == emitted[1]
        snapshots += len(emitted[0])
    assert snapshots > 1000  # a day of the four dimensions' scopes at 5 min
