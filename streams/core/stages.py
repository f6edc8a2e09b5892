"""The three stages of the stream as plain functions over one batch, with no Faust import.

Ticket stage (keyed by ticket, one input partition at a time): validate, dedupe,
run the state machine, fold the batch's transitions into one delta per (scope,
source partition), and send each requester partition the batch's contacts for it
followed by the batch's progress. Requester stage (keyed by requester): find
recontacts and undeflected AI resolutions, send them to the scopes as deltas of
their own source, then relay the progress it received. Scope stage (keyed by
scope): apply deltas exactly once by source position (streams/core/positions.py: an
offset that keeps increasing across a lost log), and emit a boundary once both
the ticket stage's progress and every requester partition's relay allow it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from streams.core.catalog import Catalog, Decision, dimension_of, event_order, other_scope
from streams.core.events import AheadOfClock, EventType, InvalidEvent, parse_event
from streams.core.indicators import Effort
from streams.core.positions import SourceLog
from streams.core.recontact import Contact, Requester, contact_of, requester_partition
from streams.core.scope import Emitted, ScopeState, Settings
from streams.core.sla import FlatClock, SlaPolicy, as_flat
from streams.core.ticket import ALL_SCOPE, Kind, Ticket, Traits, Transition, apply_event
from streams.core.timeline import US_PER_SECOND, WallClock
from streams.core.watermark import Watermarks

# An entry of a delta: (source position, kind, at_us, ticket_id, first_open_us, replied_us,
# SLA clocks after and before the event, effort for the indicators, traits for the pull
# list). Entries written before traits existed have nine values, and those written before
# the clocks were plain values hold Clock objects (``count_entries`` reads both).
Entry = tuple[
    int, int, int, str, int, int | None, FlatClock | None, FlatClock | None, Effort | None,
    Traits | None,
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Message:
    """One input message as the shell hands it over."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(slots=True)
class ScopeDelta:
    """What one batch of one source partition changed in one scope."""

    scope: str
    source_partition: int
    last_position: int
    seen_us: int | None = None  # earliest event in the batch that leaves a ticket in the scope
    entries: list[Entry] = field(default_factory=list)


@dataclass(slots=True)
class DimensionDeltas:
    """A batch's deltas of one source partition for the scopes of one dimension, in one
    message to the dimension's partition, where its catalog decides which values are
    scopes (streams/core/catalog.py): the entries of several values folded into ``other``
    interleave, and reach it whole this way."""

    dimension: str  # "all" for the scope all
    deltas: list[ScopeDelta]

    @property
    def source_partition(self) -> int:
        return self.deltas[0].source_partition


# Every scope of a dimension lives on one partition: the one its catalog decides on.
DIMENSIONS = (ALL_SCOPE, "queue", "priority", "channel")


def dimension_key(scope: str) -> str:
    return dimension_of(scope) or ALL_SCOPE


def dimension_partition(dimension: str, partitions: int) -> int:
    return DIMENSIONS.index(dimension) % partitions


def by_dimension(deltas: Iterable[ScopeDelta]) -> list[DimensionDeltas]:
    """One message per dimension and source partition."""
    grouped: dict[tuple[str, int], list[ScopeDelta]] = defaultdict(list)
    for delta in deltas:
        grouped[(dimension_key(delta.scope), delta.source_partition)].append(delta)
    return [DimensionDeltas(dimension, group) for (dimension, _), group in grouped.items()]


@dataclass(slots=True)
class Progress:
    """A source partition's event-time progress, broadcast to every scope partition."""

    source_partition: int
    newest_us: int | None
    next_offset: int
    idle: bool = False
    now_us: int | None = None
    base: int = 0  # of the source's positions: grows when the broker lost the log


@dataclass(slots=True)
class Contacts:
    """One ticket batch's contacts for one requester partition, then the batch's progress."""

    entries: list[tuple[str, Contact]] = field(default_factory=list)
    progress: list[Progress] = field(default_factory=list)


@dataclass(slots=True)
class Relay:
    """Progress a requester partition passes on once it has sent everything found before it."""

    requester_partition: int
    progress: list[Progress]


@dataclass(frozen=True, slots=True)
class Resume:
    """What the scope stage sends its own partition when a batch's snapshot budget ran out:
    the next batch carries on at once, instead of after new input or the idle heartbeat."""

    partition: int


@dataclass(slots=True)
class DeadLetterOut:
    message: Message
    reason: str


@dataclass(slots=True)
class TicketBatch:
    """Everything one batch of the ticket stage produces."""

    deltas: dict[tuple[str, int], ScopeDelta] = field(default_factory=dict)
    progress: dict[int, Progress] = field(default_factory=dict)
    contacts: dict[int, list[tuple[str, Contact]]] = field(default_factory=dict)
    dead_letters: list[DeadLetterOut] = field(default_factory=list)
    changed: dict[str, tuple[int, Ticket]] = field(default_factory=dict)
    lifecycle: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    processed: dict[str, int] = field(default_factory=dict)
    first_responses: list[tuple[str, float]] = field(default_factory=list)  # (priority, seconds)
    duplicates: int = 0
    late: int = 0
    ahead: int = 0  # of the dead letters: dated ahead of the clock


def run_ticket_batch(
    messages: Iterable[Message],
    lookup: Callable[[str], Ticket | None],
    newest: dict[int, int],
    grace_us: int,
    policy: SlaPolicy,
    partitions: int,
    bases: Mapping[int, int],
    clock: WallClock | None = None,
) -> TicketBatch:
    """Apply a batch of input messages; ``newest`` (per partition) is updated in place.

    ``partitions``: how many requester partitions the contacts are spread over;
    ``bases``: per input partition, what makes its offsets positions (0 if absent);
    ``clock``: the wall clock when the batch was read, which the progress carries on."""
    batch = TicketBatch()
    next_offsets: dict[int, int] = {}
    for message in messages:
        next_offsets[message.partition] = message.offset + 1
        position = bases.get(message.partition, 0) + message.offset
        try:
            event = parse_event(message.value, clock)
        except InvalidEvent as exc:
            batch.dead_letters.append(DeadLetterOut(message, str(exc)))
            batch.ahead += isinstance(exc, AheadOfClock)
            continue
        at = event.occurred_us
        partition = message.partition
        known = batch.changed.get(event.ticket_id)
        applied = apply_event(known[1] if known else lookup(event.ticket_id), event, policy)
        if applied is None:  # a repeat is ignored entirely, watermark included
            batch.duplicates += 1
            continue
        previous = newest.get(partition)
        if previous is not None and at < previous - grace_us:
            batch.late += 1
        newest[partition] = at if previous is None else max(previous, at)
        ticket, transitions = applied
        batch.changed[event.ticket_id] = (partition, ticket)
        batch.processed[event.type.value] = batch.processed.get(event.type.value, 0) + 1
        for scope in ticket.scopes():
            delta = _delta(batch, scope, message.partition, position)
            delta.seen_us = at if delta.seen_us is None else min(delta.seen_us, at)
        contact = contact_of(ticket, event, transitions)
        if contact is not None:
            batch.contacts.setdefault(requester_partition(contact[0], partitions), []).append(
                contact
            )
        for transition in transitions:
            _delta(batch, transition.scope, message.partition, position).entries.append(
                _entry(position, transition)
            )
            if transition.scope == ALL_SCOPE and transition.kind is Kind.REPLIED:
                waited = (transition.at_us - transition.first_open_us) / US_PER_SECOND
                batch.first_responses.append((ticket.priority, waited))
            if transition.scope == ALL_SCOPE and transition.kind in _LIFECYCLE:
                cause = _cause(transition.kind, event.type)
                key = (cause, ticket.queue, ticket.priority, ticket.channel)
                batch.lifecycle[key] = batch.lifecycle.get(key, 0) + 1
    now = clock.now_us if clock is not None else None
    batch.progress = {
        p: Progress(p, newest.get(p), offset, now_us=now, base=bases.get(p, 0))
        for p, offset in next_offsets.items()
    }
    return batch


_LIFECYCLE = frozenset({Kind.INFLOW, Kind.OUTFLOW})


def _entry(position: int, transition: Transition) -> Entry:
    return (
        position,
        int(transition.kind),
        transition.at_us,
        transition.ticket_id,
        transition.first_open_us,
        transition.replied_us,
        transition.clock,
        transition.prior,
        transition.effort,
        transition.traits,
    )


def contacts_for(batch: TicketBatch, partitions: int) -> list[Contacts]:
    """What each requester partition gets from a ticket batch, its progress included."""
    progress = list(batch.progress.values())
    return [Contacts(batch.contacts.get(p, []), progress) for p in range(partitions)]


@dataclass(slots=True)
class RequesterPartitionRecord:
    """Per requester partition: the input's progress, to know when a requester is forgotten."""

    partition: int
    source_partitions: int
    watermarks: Watermarks = field(default_factory=Watermarks)
    swept_us: int = 0
    log: SourceLog = field(default_factory=SourceLog)  # of its partition of contacts

    def sweep_before(self, every_us: int) -> int | None:
        """The low watermark, when it has moved ``every_us`` since the last sweep."""
        marks = self.watermarks.partitions.values()
        times = [p.newest_us for p in marks if p.newest_us is not None]
        if len(times) < self.source_partitions or min(times) < self.swept_us + every_us:
            return None
        self.swept_us = min(times)
        return self.swept_us


@dataclass(slots=True)
class RequesterBatch:
    """Everything one batch of the requester stage produces."""

    deltas: dict[str, ScopeDelta] = field(default_factory=dict)
    changed: dict[str, Requester] = field(default_factory=dict)
    passed_on: Watermarks = field(default_factory=Watermarks)  # the progress read, combined
    findings: dict[str, int] = field(default_factory=dict)  # by kind: recontact, undeflected

    @property
    def relay(self) -> list[Progress]:
        """One progress per source partition, saying what all those read say together.

        Not just the last one read: after a takeover, the new owner's progress for a
        partition it only replays carries no event time, and would hide the newest one
        the old owner reported just before it; the scope stage would then never flush.
        """
        marks = sorted(self.passed_on.partitions.items())
        return [Progress(p, m.newest_us, m.next_offset, m.idle, base=m.base) for p, m in marks]


def run_requester_batch(
    items: Iterable[tuple[int, Contacts]],
    lookup: Callable[[str], Requester | None],
    record: RequesterPartitionRecord,
) -> RequesterBatch:
    """Apply (offset, contacts) of one requester partition, in order.

    Findings go out as deltas of source ``source_partitions + partition``, so the scope
    stage applies them exactly once by this partition's positions, as it does the input's.
    The caller restarts ``record.log`` first when the broker lost the log.
    """
    batch = RequesterBatch()
    source = record.source_partitions + record.partition
    for offset, contacts in items:
        position = record.log.position(offset)
        for key, contact in contacts.entries:
            requester = batch.changed.get(key) or lookup(key) or Requester()
            batch.changed[key] = requester
            for finding in requester.apply(contact):
                kind = finding.kind.name.lower()
                batch.findings[kind] = batch.findings.get(kind, 0) + 1
                for transition in finding.transitions():
                    delta = batch.deltas.get(transition.scope)
                    if delta is None:
                        delta = batch.deltas[transition.scope] = ScopeDelta(
                            transition.scope, source, position
                        )
                    delta.last_position = position
                    delta.entries.append(_entry(position, transition))
        for progress in contacts.progress:
            apply_progress_to(record.watermarks, progress)
            apply_progress_to(batch.passed_on, progress)
    return batch


def _cause(kind: Kind, event_type: EventType) -> str:
    if kind is Kind.OUTFLOW:
        return "resolved"
    return "reopened" if event_type is EventType.REOPENED else "created"


def _delta(batch: TicketBatch, scope: str, partition: int, position: int) -> ScopeDelta:
    key = (scope, partition)
    delta = batch.deltas.get(key)
    if delta is None:
        delta = batch.deltas[key] = ScopeDelta(scope, partition, position)
    delta.last_position = position
    return delta


# What a catalog holds for an undecided value: (source partition, entry).
HeldEntry = tuple[int, Entry]


@dataclass(slots=True)
class ScopeRecord:
    """A scope's state as the scope stage stores it: core state plus exactly-once bookkeeping.
    A dimension's ``other`` also keeps the dimension's catalog, with the entries of the
    values not decided yet: one record, so they are written together."""

    state: ScopeState
    partition: int
    applied: dict[int, int] = field(default_factory=dict)
    last: Emitted | None = None
    catalog: Catalog[HeldEntry] | None = None


@dataclass(slots=True)
class PartitionRecord:
    """Per scope partition: the progress of every source partition, and the scopes it holds."""

    partition: int
    source_partitions: int
    watermarks: Watermarks = field(default_factory=Watermarks)
    scopes: set[str] = field(default_factory=set)
    now_us: int | None = None
    emitted: int | None = None
    relayed: dict[int, Watermarks] = field(default_factory=dict)  # by requester partition

    def emit_limit(
        self,
        settings: Settings,
        grace_us: int,
        live_horizon_us: int,
        end_offsets: Mapping[int, int] | None = None,
        ceiling_us: int | None = None,
    ) -> int | None:
        """The last boundary that may be emitted: every source partition must be accounted
        for, directly and through every requester partition's relay. ``ceiling_us``: as in
        ``Watermarks.emit_limit``."""
        marks = [self.watermarks, *self.relayed.values()]
        if len(self.relayed) < self.source_partitions or any(
            len(m.partitions) < self.source_partitions for m in marks
        ):
            return None
        now = self.now_us
        newest = self.watermarks.newest_us
        live = now is not None and newest is not None and now - newest <= live_horizon_us
        step = settings.windows.step_us
        clock = now if live else None
        limits = [m.emit_limit(step, grace_us, clock, end_offsets, ceiling_us) for m in marks]
        return None if None in limits else min(limit for limit in limits if limit is not None)

    @property
    def has_idle(self) -> bool:
        """Any partition reported idle, directly or through a relay: then the input's end
        offsets must be asked for, or an idle mark that data has since overtaken (a relay
        lags behind) would let it be skipped."""
        marks = [self.watermarks, *self.relayed.values()]
        return any(p.idle for m in marks for p in m.partitions.values())


def apply_delta(record: ScopeRecord, delta: ScopeDelta, settings: Settings) -> int:
    """Apply the entries not applied before; the count of late transitions among them."""
    done = record.applied.get(delta.source_partition, -1)
    if delta.last_position <= done:
        return 0
    if delta.seen_us is not None:
        record.state.flow.see(delta.seen_us)
    late = count_entries(record, (entry for entry in delta.entries if entry[0] > done), settings)
    record.applied[delta.source_partition] = delta.last_position
    return late


def count_entries(record: ScopeRecord, entries: Iterable[Entry], settings: Settings) -> int:
    """Count entries in the record's scope (those of a folded value too); how many were late."""
    late, scope = 0, record.state.scope
    for _, kind, at, ticket_id, first_open, replied, clock, prior, effort, *traits in entries:
        transition = Transition(
            scope, Kind(kind), at, ticket_id, first_open, replied, as_flat(clock),
            as_flat(prior), effort, traits[0] if traits else None,
        )  # fmt: skip
        late += record.state.add(transition, settings)
    return late


def apply_deltas(
    message: DimensionDeltas,
    scope_of: Callable[[str], ScopeRecord],
    settings: Settings,
    emitted: int | None,
) -> tuple[int, int]:
    """Apply one message of a dimension's deltas: a value that is a scope takes its own;
    the dimension's ``other`` takes those of folded values, and holds those of values not
    decided yet, deduplicated by its own positions; ``emitted``: the partition's last
    boundary emitted. Late transitions, transitions folded."""
    if message.dimension == ALL_SCOPE:
        return sum(apply_delta(scope_of(d.scope), d, settings) for d in message.deltas), 0
    other_name = other_scope(message.dimension)
    other = scope_of(other_name)
    if other.catalog is None:
        other.catalog = Catalog(message.dimension, settings.scope_cap)
    catalog, source = other.catalog, message.source_partition
    done = other.applied.get(source, -1)
    late, folded, into_other = 0, 0, []
    for delta in message.deltas:
        target = catalog.target(delta.scope)
        if target == delta.scope and target != other_name:
            late += apply_delta(scope_of(delta.scope), delta, settings)
            continue
        fresh = [entry for entry in delta.entries if entry[0] > done]
        if target is None:
            seen = delta.seen_us if delta.last_position > done else None
            catalog.hold(delta.scope, seen, [(source, entry) for entry in fresh], emitted)
        else:
            if delta.seen_us is not None and delta.last_position > done:
                other.state.flow.see(delta.seen_us)
            folded += len(fresh) if target != delta.scope else 0
            into_other += fresh
    late += count_entries(other, sorted(into_other, key=_event_order), settings)
    other.applied[source] = max(done, *(d.last_position for d in message.deltas))
    return late, folded


def decide_scopes(
    other: ScopeRecord,
    through_us: int,
    scope_of: Callable[[str], ScopeRecord],
    settings: Settings,
) -> tuple[int, int]:
    """Decide the values of ``other``'s dimension first seen by ``through_us``: each target
    takes the held entries of its values, merged in event order; a value that becomes a
    scope starts from what ``other`` has applied, so a redelivery is not counted twice.
    Late transitions, transitions folded."""
    if other.catalog is None:
        return 0, 0
    by_target: dict[str, list[Decision[HeldEntry]]] = defaultdict(list)
    for decision in other.catalog.decide(through_us):
        by_target[decision.target].append(decision)
    late = folded = 0
    for target, decisions in by_target.items():
        record = other if target == other.state.scope else scope_of(target)
        if record is not other and not record.applied:  # new: rows after its first sighting
            record.state.flow.emitted = decisions[0].after
        for seen in (d.first_seen_us for d in decisions if d.first_seen_us is not None):
            record.state.flow.see(seen)
        held = sorted((h for d in decisions for h in d.held), key=lambda h: _event_order(h[1]))
        if record is other:  # deduplicated by other's positions when they were held
            entries = [entry for _, entry in held]
            folded += len(entries)
        else:
            entries = [e for source, e in held if e[0] > record.applied.get(source, -1)]
            for source, position in other.applied.items():
                record.applied[source] = max(record.applied.get(source, -1), position)
        late += count_entries(record, entries, settings)
    return late, folded


def _event_order(entry: Entry) -> tuple[int, bool]:
    return event_order(entry[0], entry[1])


def apply_progress(record: PartitionRecord, progress: Progress) -> None:
    apply_progress_to(record.watermarks, progress)
    if progress.now_us is not None:
        record.now_us = max(record.now_us or 0, progress.now_us)


def apply_relay(record: PartitionRecord, relay: Relay) -> None:
    marks = record.relayed.setdefault(relay.requester_partition, Watermarks())
    for progress in relay.progress:
        apply_progress_to(marks, progress)


def apply_progress_to(watermarks: Watermarks, progress: Progress) -> None:
    watermarks.observe(
        progress.source_partition,
        progress.newest_us,
        progress.next_offset,
        progress.idle,
        progress.base,
    )


def emit(records: Iterable[ScopeRecord], limit: int, settings: Settings) -> Iterator[Emitted]:
    for record in records:
        if not record.state.flow.due(limit):
            continue
        for emitted in record.state.emit_through(limit, settings):
            record.last = emitted
            yield emitted
