"""The stream's three stages driven in-process, as the Faust shell drives them, without a broker.

Input messages are spread over ``partitions`` input partitions by ticket, each stage
runs in batches, and what a stage sends waits in a queue per destination partition
until that stage's turn. The requester stage can be made to fall behind (``lag``
rounds), which is when the scope stage must wait for its relays. The broker can be lost
half-way (``lose_broker_after``): the rest of the input and the contacts then start again
at offset 0 on an empty log, as on a fresh broker, while the stages keep their state.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from streams.commands.replay import message_key
from streams.core.catalog import dimension_of, other_scope
from streams.core.positions import SourceLog
from streams.core.recontact import Requester
from streams.core.scope import Emitted, ScopeState, Settings
from streams.core.stages import (
    Contacts,
    DeadLetterOut,
    DimensionDeltas,
    Message,
    PartitionRecord,
    Progress,
    Relay,
    RequesterPartitionRecord,
    ScopeRecord,
    apply_deltas,
    apply_progress,
    apply_relay,
    by_dimension,
    contacts_for,
    decide_scopes,
    emit,
    run_requester_batch,
    run_ticket_batch,
)
from streams.core.ticket import Ticket
from streams.outputs.metrics import PipelineMetrics
from streams.shell import codec

GRACE_US = 600 * 1_000_000


@dataclass
class CoreRun:
    emitted: list[Emitted] = field(default_factory=list)
    tickets: dict[str, Ticket] = field(default_factory=dict)
    requesters: dict[str, Requester] = field(default_factory=dict)
    scopes: dict[str, ScopeRecord] = field(default_factory=dict)
    dead_letters: list[DeadLetterOut] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0
    processed: int = 0
    late_transitions: int = 0
    stalled: bool = False  # the snapshot budget ran out before the stream settled


@dataclass
class _Stream:
    settings: Settings
    partitions: int
    budget: int | None
    out: CoreRun = field(default_factory=CoreRun)
    newest: dict[int, int] = field(default_factory=dict)
    contacts: dict[int, list[tuple[int, Contacts]]] = field(default_factory=dict)
    requester_next: dict[int, int] = field(default_factory=dict)  # next offset to process
    requester_records: dict[int, RequesterPartitionRecord] = field(default_factory=dict)
    scope_queue: list[Progress | Relay | DimensionDeltas] = field(default_factory=list)
    ends: dict[int, int] = field(default_factory=dict)  # the input's end offsets
    logs: dict[int, SourceLog] = field(default_factory=dict)  # the ticket stage's, per input
    inputs: dict[int, list[Message]] = field(default_factory=dict)  # the input log, as now
    scope_partition: PartitionRecord = field(init=False)

    def __post_init__(self) -> None:
        # One scope partition receives every scope: the watermark rules do not depend on it.
        self.scope_partition = PartitionRecord(0, source_partitions=self.partitions)
        for p in range(self.partitions):
            self.contacts[p] = []
            self.requester_next[p] = 0
            self.requester_records[p] = RequesterPartitionRecord(p, self.partitions)

    def ticket_stage(self, chunk: list[Message], metrics: PipelineMetrics | None) -> None:
        out = self.out
        source = self.logs.setdefault(chunk[0].partition, SourceLog())
        if source.rewinds(chunk[0].offset):
            log = self.inputs[chunk[0].partition]
            found = log[source.last_offset] if source.last_offset < len(log) else None
            if source.is_new_log(found and (found.offset, found.value)):
                source.restart()
        result = run_ticket_batch(
            chunk, out.tickets.get, self.newest, GRACE_US, self.settings.sla, self.partitions,
            {chunk[0].partition: source.base},
        )  # fmt: skip
        source.read(chunk[-1].offset, chunk[-1].value)
        accounted = len(result.dead_letters) + result.duplicates + sum(result.processed.values())
        assert accounted == len(chunk), "every message is dead-lettered, a repeat, or applied"
        out.tickets.update({key: ticket for key, (_, ticket) in result.changed.items()})
        out.dead_letters += result.dead_letters
        out.duplicates += result.duplicates
        out.late += result.late
        out.processed += sum(result.processed.values())
        if metrics is not None:
            metrics.count_ticket_batch(result)
        self.scope_queue += [*by_dimension(result.deltas.values()), *result.progress.values()]
        self._send_contacts(contacts_for(result, self.partitions))

    def idle(self, ends: dict[int, int]) -> None:
        """Every input partition caught up and quiet, as the shell's heartbeat says."""
        for p, end in ends.items():
            base = self.logs.get(p, SourceLog()).base
            progress = Progress(p, self.newest.get(p), end, idle=True, base=base)
            self.scope_queue.append(progress)
            self._send_contacts([Contacts(progress=[progress])] * self.partitions)

    def _send_contacts(self, per_partition: list[Contacts]) -> None:
        for p, contacts in enumerate(per_partition):
            queue = self.contacts[p]
            queue.append((len(queue), contacts))

    def requester_stage(self, batch: int, emit_each: Callable[[Emitted], Any] | None) -> None:
        """Each requester batch in turn, with the scope stage's turn after each."""
        for p, queue in self.contacts.items():
            record = self.requester_records[p]
            pending = queue[self.requester_next[p] :]
            self.requester_next[p] = len(queue)
            for start in range(0, len(pending), batch):
                items = pending[start : start + batch]
                if record.log.rewinds(items[0][0]):
                    found = (
                        queue[record.log.last_offset]
                        if record.log.last_offset < len(queue)
                        else None
                    )
                    if record.log.is_new_log(found and (found[0], codec.dumps(found[1]))):
                        record.log.restart()
                result = run_requester_batch(items, self.out.requesters.get, record)
                last_offset, last_contacts = items[-1]
                record.log.read(last_offset, codec.dumps(last_contacts))
                self.out.requesters.update(result.changed)
                self.scope_queue += [*by_dimension(result.deltas.values()), Relay(p, result.relay)]
                self.scope_stage(emit_each)

    def lose_broker(self, remaining: dict[int, list[Message]]) -> None:
        """Everything sent so far is consumed; then the broker starts again empty, and the
        rest of the input arrives on it from offset 0."""
        for p, messages in remaining.items():
            self.inputs[p] = [Message(p, n, m.key, m.value) for n, m in enumerate(messages)]
            self.ends[p] = len(messages)
        for p in self.contacts:
            self.contacts[p] = []
            self.requester_next[p] = 0

    def _scope_of(self, name: str) -> ScopeRecord:
        if name not in self.out.scopes:
            state = ScopeState.new(name, self.settings, self.scope_partition.emitted)
            self.out.scopes[name] = ScopeRecord(state, 0)
        self.scope_partition.scopes.add(name)
        return self.out.scopes[name]

    def scope_stage(self, emit_each: Callable[[Emitted], Any] | None) -> None:
        out, settings, partition = self.out, self.settings, self.scope_partition
        for item in self.scope_queue:
            if isinstance(item, Progress):
                apply_progress(partition, item)
            elif isinstance(item, Relay):
                apply_relay(partition, item)
            else:
                emitted = partition.emitted
                out.late_transitions += apply_deltas(item, self._scope_of, settings, emitted)[0]
        self.scope_queue.clear()
        ends = self.ends if partition.has_idle else None  # asked for only then, as the shell
        limit = partition.emit_limit(settings, GRACE_US, live_horizon_us=0, end_offsets=ends)
        if limit is None:
            return
        for dimension in {dimension_of(name) for name in partition.scopes} - {None}:
            other = self._scope_of(other_scope(str(dimension)))
            through = limit * settings.windows.step_us
            out.late_transitions += decide_scopes(other, through, self._scope_of, settings)[0]
        previous = partition.emitted
        partition.emitted = limit if previous is None else max(previous, limit)
        records = (out.scopes[s] for s in sorted(partition.scopes))
        fresh = list(islice(emit(records, limit, settings), self.budget))
        if self.budget is not None:
            self.budget -= len(fresh)
            out.stalled = out.stalled or self.budget <= 0
        for item in fresh:
            if emit_each is not None:
                emit_each(item)
        out.emitted += fresh


def run_core(
    lines: list[bytes],
    settings: Settings,
    batch: int = 7,
    budget: int | None = None,
    metrics: PipelineMetrics | None = None,
    partitions: int = 1,
    lag: int = 0,
    emit_each: Callable[[Emitted], Any] | None = None,
    lose_broker_after: int | None = None,
) -> CoreRun:
    """The three stages over ``lines`` in batches; flushed when every partition is idle.

    ``budget`` bounds the snapshots emitted in all (the shell bounds them per batch): a
    stream that would emit more has stalled on boundaries nobody can use. ``lag``: the
    requester stage runs only every ``lag + 1`` rounds. ``lose_broker_after``: once that
    many lines are read, the broker is lost (``_Stream.lose_broker``).
    """
    stream = _Stream(settings, partitions, budget)
    # Workers start before the data: their first heartbeats find every partition idle.
    stream.idle(dict.fromkeys(range(partitions), 0))
    inputs = stream.inputs = _spread(lines, partitions)
    stream.ends = {p: len(messages) for p, messages in inputs.items()}
    positions = dict.fromkeys(inputs, 0)
    rounds = 0
    while any(positions[p] < len(inputs[p]) for p in inputs) and not stream.out.stalled:
        if lose_broker_after is not None and sum(positions.values()) >= lose_broker_after:
            lose_broker_after = None
            stream.requester_stage(1, emit_each)
            stream.scope_stage(emit_each)
            stream.lose_broker({p: inputs[p][positions[p] :] for p in inputs})
            positions = dict.fromkeys(inputs, 0)
        for p, messages in inputs.items():
            chunk = messages[positions[p] : positions[p] + batch]
            positions[p] += len(chunk)
            if chunk:
                stream.ticket_stage(chunk, metrics)
        rounds += 1
        if rounds % (lag + 1) == 0:
            stream.requester_stage(1, emit_each)
        stream.scope_stage(emit_each)
    if not stream.out.stalled:
        stream.idle({p: len(messages) for p, messages in inputs.items()})
        stream.requester_stage(1, emit_each)
        stream.scope_stage(emit_each)
    return stream.out


def _spread(lines: list[bytes], partitions: int) -> dict[int, list[Message]]:
    """Input partitions as a producer keyed by ticket_id fills them; offsets per partition."""
    inputs: dict[int, list[Message]] = {p: [] for p in range(partitions)}
    for line in lines:
        key = message_key(line)
        p = zlib.crc32(key or b"") % partitions
        inputs[p].append(Message(p, len(inputs[p]), key, line))
    return inputs
