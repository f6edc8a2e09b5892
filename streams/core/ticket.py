"""Per-ticket state machine: each event becomes flow transitions in its ticket's scopes.

Transitions are decided in arrival order and stamped with the event's own time,
so a snapshot "as of B" is a pure function of the transitions stamped <= B.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum

from streams.core.events import (
    DEFAULT_CHANNEL,
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    TERMINAL_TYPES,
    EventType,
    TicketEvent,
)
from streams.core.indicators import REOPEN_HORIZON_US, Effort
from streams.core.sla import Clock, FlatClock, SlaPolicy, settle_clock

ALL_SCOPE = "all"
AI_RESOLVED = "ai_resolved"
DIMENSIONS = ("queue", "priority", "channel")


class Kind(IntEnum):
    INFLOW = 0
    OUTFLOW = 1
    TRANSFER_IN = 2
    TRANSFER_OUT = 3
    REPLIED = 4
    CLOCK = 5  # an SLA clock paused, resumed or was re-targeted, or the ticket's traits changed
    RECONTACT = 6  # a new ticket from a requester resolved in the 7 days before
    UNDEFLECTED = 7  # an AI resolution its requester came back from within 48 hours


FLOW_KINDS = (Kind.INFLOW, Kind.OUTFLOW, Kind.TRANSFER_IN, Kind.TRANSFER_OUT)
FINDING_KINDS = frozenset({Kind.RECONTACT, Kind.UNDEFLECTED})  # from the requester stage
OPENING_KINDS = frozenset({Kind.INFLOW, Kind.TRANSFER_IN})
CLOSING_KINDS = frozenset({Kind.OUTFLOW, Kind.TRANSFER_OUT})


class Status(StrEnum):
    OPEN = "open"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Traits:
    """What the pull list ranks an open ticket by, besides its age, replies and clocks."""

    priority: str
    tier: str | None = None
    sentiment: float | None = None
    paused: bool = False


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a scope's population, stamped in event time."""

    scope: str
    kind: Kind
    at_us: int
    ticket_id: str
    first_open_us: int
    replied_us: int | None
    # The clocks after the event, and just before it for a ticket (re)entering, as plain
    # values (``Clock.flat``): every scope's delta and held-back transitions carry them.
    clock: FlatClock | None = None
    prior: FlatClock | None = None
    effort: Effort | None = None  # on inflows and outflows, for the leading indicators
    traits: Traits | None = None  # as of the event


@dataclass(slots=True)
class Ticket:
    """What flowgauge remembers of one ticket; ``seen`` makes redelivery harmless."""

    status: Status | None = None
    queue: str = DEFAULT_QUEUE
    priority: str = DEFAULT_PRIORITY
    channel: str = DEFAULT_CHANNEL
    first_open_us: int | None = None
    opened_us: int | None = None
    replied_us: int | None = None
    paused: bool = False
    clock: Clock | None = None
    tags: tuple[str, ...] = ()
    requester: str | None = None
    resolved_us: int | None = None
    transfers: int = 0  # queue changes since the ticket last (re)opened
    turns: int = 0  # customer replies an agent answered since then
    awaiting_agent: bool = False
    seen: set[str] = field(default_factory=set)
    tier: str | None = None
    sentiment: float | None = None

    def traits(self) -> Traits:
        return Traits(self.priority, self.tier, self.sentiment, self.paused)

    def scopes(self) -> tuple[str, ...]:
        return (
            ALL_SCOPE,
            f"queue:{self.queue}",
            f"priority:{self.priority}",
            f"channel:{self.channel}",
        )


def apply_event(
    ticket: Ticket | None, event: TicketEvent, policy: SlaPolicy
) -> tuple[Ticket, list[Transition]] | None:
    """Apply one event; ``None`` when (ticket_id, event_id) was applied before."""
    if ticket is None:
        ticket = Ticket()
    elif event.event_id in ticket.seen:
        return None
    ticket.seen.add(event.event_id)
    at = event.occurred_us
    prior = _clock_at(ticket, at, policy)
    before, queue_before, traits_before = ticket.scopes(), ticket.queue, ticket.traits()
    _apply_attributes(ticket, event)
    after = ticket.scopes()
    was_open = ticket.status is Status.OPEN
    if was_open and ticket.queue != queue_before:
        ticket.transfers += 1
    _count_turn(ticket, event)
    replied_now = _record_reply(ticket, event, at)
    resolved_before = ticket.resolved_us
    kind = _apply_lifecycle(ticket, event.type, at)
    effort = _effort(ticket, kind, event, resolved_before)
    _apply_pause(ticket, event, policy)
    ticket.clock = settle_clock(
        prior,
        policy,
        open_=ticket.status is Status.OPEN,
        paused=ticket.paused,
        replied=ticket.replied_us is not None,
        targets=policy.targets(ticket.queue, ticket.priority),
    )
    stamp = _Stamp(event.ticket_id, prior.flat(), ticket.clock.flat(), effort, ticket.traits())
    changes: list[Transition] = []
    if was_open:
        changes += _transfers(ticket, before, after, at, stamp)
    if kind is None and replied_now and ticket.status is Status.OPEN:
        kind = Kind.REPLIED
        # A reply stamped before the ticket's opening touches it from the opening on.
        at = max(at, ticket.opened_us or at)
    if kind is None and ticket.status is Status.OPEN and _runs_differently(prior, ticket.clock):
        kind = Kind.CLOCK
    if kind is not None:
        changes += [_transition(ticket, scope, kind, at, stamp) for scope in after]
    elif ticket.status is Status.OPEN and stamp.traits != traits_before:
        # Only the queue's pull list ranks by traits: the other scopes learn them with
        # the ticket's next transition there. Without clocks: the ticket's are stamped in
        # arrival order, and this event may be older than the last (DESIGN), so they would
        # move the queue's SLA states ahead of the other scopes'.
        traits_only = replace(stamp, prior=None, clock=None)
        changes.append(_transition(ticket, after[1], Kind.CLOCK, at, traits_only))
    return ticket, changes


@dataclass(frozen=True, slots=True)
class _Stamp:
    ticket_id: str
    prior: FlatClock | None
    clock: FlatClock | None
    effort: Effort | None
    traits: Traits


def _count_turn(ticket: Ticket, event: TicketEvent) -> None:
    """A turn is a customer reply that an agent then answers meaningfully."""
    if event.type is EventType.CUSTOMER_REPLIED:
        ticket.awaiting_agent = True
    elif event.type is EventType.AGENT_REPLIED and event.meaningful and ticket.awaiting_agent:
        ticket.turns += 1
        ticket.awaiting_agent = False


def _effort(
    ticket: Ticket, kind: Kind | None, event: TicketEvent, resolved_before: int | None
) -> Effort | None:
    if kind is Kind.OUTFLOW:
        ai = event.resolution == AI_RESOLVED
        effort = Effort(transfers=ticket.transfers, turns=ticket.turns, ai_resolved=ai)
        ticket.transfers = ticket.turns = 0
        ticket.awaiting_agent = False
        return effort
    if kind is Kind.INFLOW:
        quick = (
            event.type is EventType.REOPENED
            and resolved_before is not None
            and event.occurred_us - resolved_before <= REOPEN_HORIZON_US
        )
        return Effort(quick_reopen=quick, tags=ticket.tags)
    return None


def _clock_at(ticket: Ticket, at: int, policy: SlaPolicy) -> Clock:
    """The ticket's clocks at the event, before it applies; they never run backwards."""
    if ticket.clock is None:
        return Clock(at, policy.targets(ticket.queue, ticket.priority))
    return ticket.clock.advanced(at, policy)


def _apply_pause(ticket: Ticket, event: TicketEvent, policy: SlaPolicy) -> None:
    if event.type is EventType.STATUS_CHANGED and event.status is not None:
        ticket.paused = event.status in policy.pause_statuses
    elif event.type is EventType.REOPENED:
        ticket.paused = False


def _runs_differently(prior: Clock, clock: Clock) -> bool:
    return (
        prior.targets != clock.targets
        or prior.response.running != clock.response.running
        or prior.resolution.running != clock.resolution.running
    )


def _apply_attributes(ticket: Ticket, event: TicketEvent) -> None:
    if event.queue is not None:
        ticket.queue = event.queue
    if event.priority is not None:
        ticket.priority = event.priority
    if event.channel is not None:
        ticket.channel = event.channel
    if event.tags:
        ticket.tags = tuple(event.tags)
    if event.requester_id is not None:
        ticket.requester = event.requester_id
    if event.account_tier is not None:
        ticket.tier = event.account_tier
    if event.sentiment is not None:
        ticket.sentiment = event.sentiment


def _transfers(
    ticket: Ticket, before: tuple[str, ...], after: tuple[str, ...], at: int, stamp: _Stamp
) -> list[Transition]:
    moves: list[Transition] = []
    for old, new in zip(before, after, strict=True):
        if old != new:
            moves.append(_transition(ticket, old, Kind.TRANSFER_OUT, at, stamp))
            moves.append(_transition(ticket, new, Kind.TRANSFER_IN, at, stamp))
    return moves


def _record_reply(ticket: Ticket, event: TicketEvent, at: int) -> bool:
    """Remember the earliest meaningful agent reply; True when this event is it."""
    if event.type is not EventType.AGENT_REPLIED or not event.meaningful:
        return False
    if ticket.replied_us is not None and ticket.replied_us <= at:
        return False
    ticket.replied_us = at
    return True


def _apply_lifecycle(ticket: Ticket, kind: EventType, at: int) -> Kind | None:
    """Move the ticket between unknown, open and done; the flow it causes, if any."""
    if kind in TERMINAL_TYPES:
        was_open = ticket.status is Status.OPEN
        ticket.status = Status.DONE
        if was_open:
            ticket.resolved_us = at
        return Kind.OUTFLOW if was_open else None
    opens = ticket.status is None or (ticket.status is Status.DONE and kind is EventType.REOPENED)
    if not opens:
        return None
    ticket.status = Status.OPEN
    ticket.opened_us = at
    if ticket.first_open_us is None:
        ticket.first_open_us = at
    return Kind.INFLOW


def _transition(ticket: Ticket, scope: str, kind: Kind, at: int, stamp: _Stamp) -> Transition:
    first_open = ticket.first_open_us if ticket.first_open_us is not None else at
    return Transition(
        scope,
        kind,
        at,
        stamp.ticket_id,
        first_open,
        ticket.replied_us,
        stamp.clock,
        stamp.prior,
        stamp.effort,
        stamp.traits,
    )
