"""Age of the open tickets of one scope, as of a boundary, from an ordered index.

Transitions are held back until their boundary settles, then applied in event
time order, so the index always describes the scope exactly as of the last
settled boundary. Band counts, the oldest age and percentiles are bisections
of the sorted first-open times: no scan of the open tickets. They are kept
between snapshots (``AgeCounts``): a snapshot in which no ticket opened, closed
or crossed a band's start bisects nothing.

SLA states change between events too (a clock runs out with nothing happening),
so each open ticket's next crossing sits in a second heap, merged with the
transitions in time order; a crossing goes first when both fall on one instant.
Only scope ``all`` keeps the ``ticket.sla`` records: it holds every ticket once.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from sortedcontainers import SortedList

from streams.core.sla import (
    TARGETS,
    Clock,
    FlatClock,
    Reading,
    SlaChange,
    SlaPolicy,
    SlaState,
    Target,
    as_flat,
    read,
)
from streams.core.ticket import (
    ALL_SCOPE,
    CLOSING_KINDS,
    FLOW_KINDS,
    OPENING_KINDS,
    Kind,
    Traits,
    Transition,
)
from streams.core.timeline import US_PER_SECOND

HOUR = 3600
DAY = 86400
# Half-open [lo, hi) age bands, in seconds, named as the report's columns.
BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("age_lt_1h", 0, HOUR),
    ("age_1h_4h", HOUR, 4 * HOUR),
    ("age_4h_12h", 4 * HOUR, 12 * HOUR),
    ("age_12h_24h", 12 * HOUR, DAY),
    ("age_1d_3d", DAY, 3 * DAY),
    ("age_3d_7d", 3 * DAY, 7 * DAY),
    ("age_7d_30d", 7 * DAY, 30 * DAY),
    ("age_ge_30d", 30 * DAY, None),
)
# Each band ends where the next begins (the oracle of tests/test_properties.py counts each
# band by its own bounds), so one bisection per band start counts them all.
_BAND_NAMES = tuple(name for name, _, _ in BANDS)
_BAND_STARTS_US = tuple(lo * US_PER_SECOND for _, lo, _ in BANDS)
PERCENTILES = (50, 85, 95)
COUNTED_STATES = (SlaState.AT_RISK, SlaState.BREACHED)
NO_STATES: dict[Target, SlaState | None] = dict.fromkeys(Target)


@dataclass(frozen=True, slots=True)
class AgingSnapshot:
    as_of_us: int
    scope: str
    open: int
    bands: dict[str, int]
    oldest_age_seconds: int
    untouched: int
    percentiles: dict[int, int]
    oldest_open_us: int | None
    sla: dict[Target, dict[SlaState, int]]
    sla_changes: tuple[SlaChange, ...] = ()


_K = TypeVar("_K")
_V = TypeVar("_V")
_UNKNOWN = -1  # below every threshold: the first open after it is looked up again
_NONE_AFTER = 2**63  # no ticket first opened after the threshold


@dataclass(slots=True)
class AgeCounts:
    """What a snapshot reads of the ordered first-open times, kept between snapshots.

    Per band start: the tickets first opened at or before its threshold (``as_of`` minus
    the start) at the last snapshot, and a first open no later than the earliest one after
    it: until time passes it, the count stays. A ticket that opens or closes moves the
    counts it belongs to; the percentiles' first opens are looked up again only after one
    has."""

    thresholds: list[int] = field(default_factory=lambda: [_UNKNOWN] * len(_BAND_STARTS_US))
    counts: list[int] = field(default_factory=lambda: [0] * len(_BAND_STARTS_US))
    next_opens: list[int] = field(default_factory=lambda: [_UNKNOWN] * len(_BAND_STARTS_US))
    ranked: tuple[int, ...] | None = None  # first opens of the oldest and the percentiles

    def at_least(self, opens: SortedList, as_of_us: int) -> list[int]:
        """Per band start, the open tickets at least that old as of ``as_of_us``."""
        thresholds, counts, next_opens = self.thresholds, self.counts, self.next_opens
        for i, start in enumerate(_BAND_STARTS_US):
            threshold = as_of_us - start
            if threshold >= next_opens[i] or threshold < thresholds[i]:
                index = opens.bisect_right(threshold)
                counts[i] = index
                next_opens[i] = opens[index] if index < len(opens) else _NONE_AFTER
            thresholds[i] = threshold
        return counts

    def ranked_opens(self, opens: SortedList) -> tuple[int, ...]:
        """The earliest first open, then the one at each percentile's nearest rank."""
        if self.ranked is None:
            count = len(opens)
            ranks = (count - _nearest_rank(p, count) for p in PERCENTILES)
            self.ranked = (opens[0], *(opens[rank] for rank in ranks))
        return self.ranked

    def opened(self, first_open_us: int) -> None:
        self.ranked = None
        for i, threshold in enumerate(self.thresholds):
            if first_open_us <= threshold:
                self.counts[i] += 1
            elif first_open_us < self.next_opens[i]:
                self.next_opens[i] = first_open_us

    def closed(self, first_open_us: int) -> None:
        # A next open that closed stays: early, it costs one bisection, never a wrong count.
        self.ranked = None
        for i, threshold in enumerate(self.thresholds):
            if first_open_us <= threshold:
                self.counts[i] -= 1


# A transition held back, as plain values in heap order: (effective time, arrival number,
# kind, at_us, ticket_id, first_open_us, replied_us, clock, prior, traits; held back before
# traits existed: without them). The heap is written with
# the scope's state every batch and grows with a catch-up's distance; plain values are
# written several times faster than the objects, and the index never needs the effort.
Held = tuple[
    int, int, int, int, str, int, int | None, FlatClock | None, FlatClock | None, Traits | None
]


def _held(transition: Transition, effective_us: int, arrival: int) -> Held:
    return (
        effective_us,
        arrival,
        transition.kind,
        transition.at_us,
        transition.ticket_id,
        transition.first_open_us,
        transition.replied_us,
        transition.clock,
        transition.prior,
        transition.traits,
    )


@dataclass(slots=True)
class SharedReadings:
    """The readings of the latest clocks, shared by the scopes of their tickets.

    Each scope of a ticket applies the same transition, with the same clock at the same
    instant (four times per ticket event), and a reading is a function of the clock, the
    instant and the policy alone: read once, and once built, one clock object for all.
    A crossing falls due in every scope of the ticket at one instant too: kept by that
    clock object (held here, so its identity stays its own)."""

    limit: int = 8192
    kept: dict[tuple[FlatClock, int], tuple[SlaPolicy, Clock, Reading]] = field(
        default_factory=dict
    )
    crossed: dict[tuple[int, int], tuple[SlaPolicy, Clock, Reading]] = field(default_factory=dict)

    def of(self, flat: FlatClock, at_us: int, policy: SlaPolicy) -> tuple[Clock, Reading]:
        key = (flat, at_us)
        kept = self.kept.get(key)
        if kept is not None and kept[0] is policy:
            return kept[1], kept[2]
        clock = Clock.of_flat(*flat)
        reading = read(clock, at_us, policy)
        self._keep(self.kept, key, (policy, clock, reading))
        return clock, reading

    def at(self, clock: Clock, at_us: int, policy: SlaPolicy) -> Reading:
        key = (id(clock), at_us)
        kept = self.crossed.get(key)
        if kept is not None and kept[0] is policy and kept[1] is clock:
            return kept[2]
        reading = read(clock, at_us, policy)
        self._keep(self.crossed, key, (policy, clock, reading))
        return reading

    def _keep(self, store: dict[_K, _V], key: _K, value: _V) -> None:
        if len(store) >= self.limit:
            store.clear()  # the scopes of a ticket read its clock within a batch
        store[key] = value


_READINGS = SharedReadings()


@dataclass(slots=True)
class OpenTicket:
    first_open_us: int
    replied: bool
    clock: Clock | None = None
    states: dict[Target, SlaState | None] = field(default_factory=lambda: dict(NO_STATES))
    version: int = 0
    traits: Traits | None = None
    traits_arrival: int = -1  # the arrival number of the transition they came with


@dataclass(slots=True)
class ScopeAging:
    scope: str
    settled_us: int | None = None
    tickets: dict[str, OpenTicket] = field(default_factory=dict)
    first_opens: SortedList = field(default_factory=SortedList)
    untouched: int = 0
    # Held-back transitions as a heap of (effective time, arrival number, transition):
    # applied in time order, ties in arrival order. A ticket's flow transitions keep their
    # arrival order (DESIGN decides them so), even when producers' clocks disagree: each
    # takes effect no earlier than the flow transition that arrived before it, and so does
    # a reply or clock change. Only flow transitions push that limit: a priority change
    # stamped after the resolve that arrives behind it must not keep the ticket open.
    pending: list[Held] = field(default_factory=list)
    arrivals: int = 0
    # Scheduled SLA crossings: (instant, sequence, ticket_id, the ticket's version then).
    # An update leaves the ticket's earlier entries stale rather than searching the heap
    # for them; ``_compact_crossings`` drops them before they outnumber the live ones.
    crossings: list[tuple[int, int, str, int]] = field(default_factory=list)
    scheduled: int = 0
    sla_counts: dict[tuple[Target, SlaState], int] = field(default_factory=dict)
    sla_changes: list[SlaChange] = field(default_factory=list)
    # Per ticket with held-back transitions: the latest flow effective time, and how many.
    held: dict[str, tuple[int, int]] = field(default_factory=dict)
    # The held-back transitions as written apart from the rest (``seal``): segment number
    # -> the latest effective time in it; arrival numbers below ``sealed`` are in one.
    # ``codec`` writes the state without ``pending``: ``restore`` puts it back.
    segments: dict[int, int] = field(default_factory=dict)
    sealed: int = 0
    ages: AgeCounts = field(default_factory=AgeCounts)
    # The SLA counts as snapshots carry them, until they change: shared by the snapshots
    # taken meanwhile, which nobody writes to.
    sla_read: dict[Target, dict[SlaState, int]] | None = None
    # The tickets a transition applied to (opened, closed, replied to, new traits) since the
    # pull list last read them (streams/core/pull.py), while it reads them; None: nobody
    # does. The process's own, not state: ``codec`` writes None, and equal states may
    # differ in it.
    touched: set[str] | None = field(default=None, compare=False)

    def seal(self) -> tuple[int, list[Held]] | None:
        """The transitions held back since the last seal, as a new segment (its number and
        entries) to write apart from the rest of the state.

        The state is written once per batch, and in a catch-up the held-back transitions
        pile up to most of it: written in segments, each batch writes only its own. A
        replayed batch seals the same arrivals under the same number."""
        fresh = [held for held in self.pending if held[1] >= self.sealed]
        number, self.sealed = self.sealed, self.arrivals
        if not fresh:
            return None
        self.segments[number] = max(held[0] for held in fresh)
        return number, fresh

    def release_segments(self) -> list[int]:
        """Forget the segments whose every transition has been applied; their numbers."""
        settled = self.settled_us
        if settled is None:
            return []
        spent = [number for number, latest in self.segments.items() if latest <= settled]
        for number in spent:
            del self.segments[number]
        return spent

    def restore(self, segment: Callable[[int], list[Held] | None]) -> None:
        """Hold back again, as recovered, what the listed segments hold and is not applied
        yet; ``segment`` reads one by number (the segments are written before the state)."""
        settled = self.settled_us
        for number in self.segments:
            entries = segment(number)
            if entries is None:
                raise RuntimeError(f"scope {self.scope}: held-back segment {number} lost")
            self.pending += [held for held in entries if settled is None or held[0] > settled]
        heapq.heapify(self.pending)

    def add(self, transition: Transition, policy: SlaPolicy) -> None:
        ticket_id = transition.ticket_id
        latest, count = self.held.get(ticket_id, (0, 0))
        effective = max(transition.at_us, latest)
        held = _held(transition, effective, self.arrivals)
        if self.settled_us is not None and effective <= self.settled_us:
            self._apply(held, policy)  # late: it still counts from now on
        else:
            heapq.heappush(self.pending, held)
            self.arrivals += 1
            latest = effective if transition.kind in FLOW_KINDS else latest
            self.held[ticket_id] = (latest, count + 1)

    def settle(self, as_of_us: int, policy: SlaPolicy) -> AgingSnapshot:
        """Apply every transition and SLA crossing up to ``as_of_us``; the scope as of then."""
        while True:
            transition_at = self.pending[0][0] if self.pending else None
            crossing_at = self.crossings[0][0] if self.crossings else None
            if (
                crossing_at is not None
                and crossing_at <= as_of_us
                and (transition_at is None or crossing_at <= transition_at)
            ):
                self._cross(heapq.heappop(self.crossings), policy)
            elif transition_at is not None and transition_at <= as_of_us:
                self._apply(self._release(), policy)
            else:
                break
        self.settled_us = as_of_us
        return self._snapshot(as_of_us)

    def _release(self) -> Held:
        held: Held | tuple[int, int, Transition] = heapq.heappop(self.pending)
        if len(held) == 3:  # held back by a worker before this form: (effective, arrival, it)
            old = held[2]
            flat = replace(old, clock=as_flat(old.clock), prior=as_flat(old.prior))
            held = _held(flat, held[0], held[1])
        ticket_id = held[4]
        # Absent for state written before ``held`` existed: nothing is held back then.
        latest, count = self.held.pop(ticket_id, (0, 0))
        if count > 1:
            self.held[ticket_id] = (latest, count - 1)
        return held

    def _apply(self, held: Held, policy: SlaPolicy) -> None:
        """Apply a transition as held back: its clocks are built only where they are read."""
        effective_us, _, kind, at_us, ticket_id, first_open_us, replied_us, clock, prior = held[:9]
        current = self.tickets.get(ticket_id)
        if kind in OPENING_KINDS and current is None:
            replied = replied_us is not None and replied_us <= at_us
            # Entering before it first opened (producers' clocks disagree) ages from entering.
            # A reopen stamped before the creation still takes effect after it: no earlier.
            first_open = min(first_open_us, effective_us)
            current = self.tickets[ticket_id] = OpenTicket(first_open, replied)
            if prior is not None:
                current.states = _READINGS.of(prior, prior[0], policy)[1].states
                self._count(current.states, 1)
            self.first_opens.add(first_open)
            self.ages.opened(first_open)
            self.untouched += not replied
        elif current is None:
            return
        elif kind == Kind.REPLIED and not current.replied:
            current.replied = True
            self.untouched -= 1
        if self.touched is not None:  # opened, replied to, new traits, closed: rank it again
            self.touched.add(ticket_id)
        # Traits are the ticket's as of its latest event by arrival, as its attributes are
        # (DESIGN): a transition applied later in event time may have arrived earlier.
        if len(held) > 9 and held[9] is not None and held[1] >= current.traits_arrival:
            current.traits, current.traits_arrival = held[9], held[1]
        closing = kind in CLOSING_KINDS
        # Only ``all`` keeps the changes: elsewhere a closing ticket's states just leave.
        if clock is not None and (not closing or self.scope == ALL_SCOPE):
            current.clock, reading = _READINGS.of(clock, at_us, policy)
            self._update_sla(ticket_id, current, reading, policy)
        if closing:
            del self.tickets[ticket_id]
            self.first_opens.remove(current.first_open_us)
            self.ages.closed(current.first_open_us)
            self.untouched -= not current.replied
            self._count(current.states, -1)

    def _cross(self, crossing: tuple[int, int, str, int], policy: SlaPolicy) -> None:
        if self._is_live(crossing):
            at_us, _, ticket_id, _ = crossing
            ticket = self.tickets[ticket_id]
            assert ticket.clock is not None
            self._update_sla(ticket_id, ticket, _READINGS.at(ticket.clock, at_us, policy), policy)

    def _is_live(self, crossing: tuple[int, int, str, int]) -> bool:
        _, _, ticket_id, version = crossing
        ticket = self.tickets.get(ticket_id)
        return ticket is not None and ticket.version == version

    def _update_sla(
        self, ticket_id: str, ticket: OpenTicket, reading: Reading, policy: SlaPolicy
    ) -> None:
        """Bring the ticket's SLA states to the reading's, keep the changes, schedule the next."""
        clock, states, before = reading.clock, reading.states, ticket.states
        if states != before:
            for target, state in states.items():
                if state is not None and state != before[target] and self.scope == ALL_SCOPE:
                    due = clock.due_us(target, policy)
                    self.sla_changes.append(SlaChange(ticket_id, target, state, due, clock.at_us))
            self._count(before, -1)
            self._count(states, 1)
        ticket.states = states
        ticket.version += 1
        for crossing in reading.crossings:
            heapq.heappush(self.crossings, (crossing, self.scheduled, ticket_id, ticket.version))
            self.scheduled += 1
        if len(self.crossings) > 2 * len(TARGETS) * len(self.tickets) + 64:
            self._compact_crossings()

    def _compact_crossings(self) -> None:
        """Keep only the entries ``_cross`` would act on: an open ticket's current version.

        Without this, resolution crossings days ahead pile up with every update: most of a
        scope's changelog record, and of ``report``'s memory."""
        live = [entry for entry in self.crossings if self._is_live(entry)]
        heapq.heapify(live)
        self.crossings = live

    def _count(self, states: dict[Target, SlaState | None], sign: int) -> None:
        for target, state in states.items():
            if state in COUNTED_STATES:
                self.sla_read = None
                key = (target, state)
                self.sla_counts[key] = self.sla_counts.get(key, 0) + sign

    def _snapshot(self, as_of_us: int) -> AgingSnapshot:
        opens = self.first_opens
        count = len(opens)
        bands = self._bands(as_of_us)
        if count:
            first, *ranked = self.ages.ranked_opens(opens)
            oldest = (as_of_us - first) // US_PER_SECOND
            ages = ((as_of_us - at) // US_PER_SECOND for at in ranked)
            percentiles = dict(zip(PERCENTILES, ages, strict=True))
        else:
            first, oldest, percentiles = None, 0, dict.fromkeys(PERCENTILES, 0)
        if self.sla_read is None:
            counts = self.sla_counts
            self.sla_read = {t: {s: counts.get((t, s), 0) for s in COUNTED_STATES} for t in TARGETS}
        # Changes at one instant come in arrival order, which differs between workers.
        changes = tuple(sorted(self.sla_changes, key=_change_order))
        self.sla_changes = []
        return AgingSnapshot(
            as_of_us, self.scope, count, bands, oldest, self.untouched, percentiles, first,
            self.sla_read, changes,
        )  # fmt: skip

    def _bands(self, as_of_us: int) -> dict[str, int]:
        """Open tickets per age band: aged [lo, hi) seconds is first opened in (B - hi, B - lo],
        and tickets at least ``lo`` old are those first opened at or before B - lo."""
        at_least = [*self.ages.at_least(self.first_opens, as_of_us), 0]
        return {name: at_least[i] - at_least[i + 1] for i, name in enumerate(_BAND_NAMES)}


def _nearest_rank(percent: int, count: int) -> int:
    return max(1, -(-percent * count // 100))


def _change_order(change: SlaChange) -> tuple[int, str, str]:
    return change.as_of_us, change.ticket_id, change.target.value
