"""Per-ticket state machine: each event becomes flow transitions in its ticket's scopes.

Transitions are decided in arrival order and stamped with the event's own time,
so a snapshot "as of B" is a pure function of the transitions stamped <= B.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from streams.events import (
    DEFAULT_CHANNEL,
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    TERMINAL_TYPES,
    EventType,
    TicketEvent,
)

ALL_SCOPE = "all"
DIMENSIONS = ("queue", "priority", "channel")


class Kind(IntEnum):
    INFLOW = 0
    OUTFLOW = 1
    TRANSFER_IN = 2
    TRANSFER_OUT = 3
    REPLIED = 4


FLOW_KINDS = (Kind.INFLOW, Kind.OUTFLOW, Kind.TRANSFER_IN, Kind.TRANSFER_OUT)
OPENING_KINDS = frozenset({Kind.INFLOW, Kind.TRANSFER_IN})
CLOSING_KINDS = frozenset({Kind.OUTFLOW, Kind.TRANSFER_OUT})


class Status(StrEnum):
    OPEN = "open"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a scope's population, stamped in event time."""

    scope: str
    kind: Kind
    at_us: int
    ticket_id: str
    first_open_us: int
    replied_us: int | None


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
    seen: set[str] = field(default_factory=set)

    def scopes(self) -> tuple[str, ...]:
        return (
            ALL_SCOPE,
            f"queue:{self.queue}",
            f"priority:{self.priority}",
            f"channel:{self.channel}",
        )


def apply_event(
    ticket: Ticket | None, event: TicketEvent
) -> tuple[Ticket, list[Transition]] | None:
    """Apply one event; ``None`` when (ticket_id, event_id) was applied before."""
    if ticket is None:
        ticket = Ticket()
    elif event.event_id in ticket.seen:
        return None
    ticket.seen.add(event.event_id)
    at = event.occurred_us
    before = ticket.scopes()
    _apply_attributes(ticket, event)
    after = ticket.scopes()
    changes: list[Transition] = []
    if ticket.status is Status.OPEN:
        changes += _transfers(ticket, before, after, at, event.ticket_id)
    replied_now = _record_reply(ticket, event, at)
    kind = _apply_lifecycle(ticket, event.type, at)
    if kind is None and replied_now and ticket.status is Status.OPEN:
        kind = Kind.REPLIED
        # A reply stamped before the ticket's opening touches it from the opening on.
        at = max(at, ticket.opened_us or at)
    if kind is not None:
        changes += [_transition(ticket, scope, kind, at, event.ticket_id) for scope in after]
    return ticket, changes


def _apply_attributes(ticket: Ticket, event: TicketEvent) -> None:
    if event.queue is not None:
        ticket.queue = event.queue
    if event.priority is not None:
        ticket.priority = event.priority
    if event.channel is not None:
        ticket.channel = event.channel


def _transfers(
    ticket: Ticket, before: tuple[str, ...], after: tuple[str, ...], at: int, ticket_id: str
) -> list[Transition]:
    moves: list[Transition] = []
    for old, new in zip(before, after, strict=True):
        if old != new:
            moves.append(_transition(ticket, old, Kind.TRANSFER_OUT, at, ticket_id))
            moves.append(_transition(ticket, new, Kind.TRANSFER_IN, at, ticket_id))
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
        return Kind.OUTFLOW if was_open else None
    opens = ticket.status is None or (ticket.status is Status.DONE and kind is EventType.REOPENED)
    if not opens:
        return None
    ticket.status = Status.OPEN
    ticket.opened_us = at
    if ticket.first_open_us is None:
        ticket.first_open_us = at
    return Kind.INFLOW


def _transition(ticket: Ticket, scope: str, kind: Kind, at: int, ticket_id: str) -> Transition:
    first_open = ticket.first_open_us if ticket.first_open_us is not None else at
    return Transition(scope, kind, at, ticket_id, first_open, ticket.replied_us)
