"""Recontacts and real deflection: what a requester does after a resolution.

Both need the requester's other tickets, so this state is keyed by requester, not by
ticket. A new ticket is a *recontact* when its requester had a resolution in the 7
days before it opened; an ``ai_resolved`` resolution is *undeflected* when its ticket
reopens, or its requester opens a new ticket, within 48 hours after it. Both are
monotone facts about the set of contacts (once true, no later contact makes them
false), so the findings do not depend on the order in which contacts arrive: each is
found once, when its last piece arrives, and stamped with the time it is about.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum

from streams.core.events import EventType, TicketEvent
from streams.core.indicators import DEFLECTION_HORIZON_US, RECONTACT_HORIZON_US
from streams.core.ticket import AI_RESOLVED, ALL_SCOPE, Kind, Ticket, Transition

# A requester's contacts are kept this long behind their newest one, and a requester
# is forgotten this long after it, once every input partition has moved past that: a
# contact that arrives later than this can no longer change a finding.
RETENTION_US = 2 * RECONTACT_HORIZON_US
# More contacts than this within the retention is a system account, not a person: only its
# newest are kept, so one requester id on thousands of tickets costs bounded time and state
# (each contact is matched against the kept ones). Below it, findings are exact.
CONTACTS_KEPT = 1000


class ContactKind(IntEnum):
    OPENED = 0  # a new ticket opened for the first time
    RESOLVED = 1
    REOPENED = 2


@dataclass(frozen=True, slots=True)
class Contact:
    """What the ticket stage tells the requester's state about one of its tickets."""

    kind: ContactKind
    at_us: int
    ticket_id: str
    scopes: tuple[str, ...]
    ai: bool = False  # on a resolution: resolved by automation


@dataclass(frozen=True, slots=True)
class Finding:
    """A recontact (stamped when the new ticket opened) or an undeflected AI resolution
    (stamped when it was resolved), counted in the scopes the ticket had then."""

    kind: Kind
    at_us: int
    ticket_id: str
    scopes: tuple[str, ...]

    def transitions(self) -> Iterator[Transition]:
        for scope in self.scopes:
            yield Transition(scope, self.kind, self.at_us, self.ticket_id, self.at_us, None)


@dataclass(slots=True)
class Resolution:
    at_us: int
    ticket_id: str
    scopes: tuple[str, ...]
    ai: bool
    undeflected: bool = False


@dataclass(slots=True)
class Opening:
    at_us: int
    ticket_id: str
    scopes: tuple[str, ...]
    recontact: bool = False


@dataclass(slots=True)
class Requester:
    """One requester's recent contacts."""

    newest_us: int = 0
    resolutions: list[Resolution] = field(default_factory=list)
    openings: list[Opening] = field(default_factory=list)
    reopens: list[tuple[int, str]] = field(default_factory=list)

    def apply(self, contact: Contact) -> list[Finding]:
        """Remember a contact; the findings it completes. A repeated contact finds nothing."""
        if self._knows(contact):
            return []
        self.newest_us = max(self.newest_us, contact.at_us)
        if contact.kind is ContactKind.OPENED:
            findings = self._opened(contact)
        elif contact.kind is ContactKind.RESOLVED:
            findings = self._resolved(contact)
        else:
            findings = self._reopened(contact)
        self._forget_before(self.newest_us - RETENTION_US)
        self._keep_newest(CONTACTS_KEPT)
        return findings

    def expired(self, low_us: int) -> bool:
        """True once every input has moved past the point where this requester matters."""
        return self.newest_us < low_us - RETENTION_US

    def _knows(self, contact: Contact) -> bool:
        at, ticket = contact.at_us, contact.ticket_id
        if contact.kind is ContactKind.OPENED:
            return any(o.ticket_id == ticket for o in self.openings)
        if contact.kind is ContactKind.RESOLVED:
            return any(r.ticket_id == ticket and r.at_us == at for r in self.resolutions)
        return (at, ticket) in self.reopens

    def _opened(self, contact: Contact) -> list[Finding]:
        at, ticket = contact.at_us, contact.ticket_id
        opening = Opening(at, ticket, contact.scopes)
        opening.recontact = any(
            _within(r.at_us, at, RECONTACT_HORIZON_US)
            for r in self.resolutions
            if r.ticket_id != ticket
        )
        self.openings.append(opening)
        findings = [_recontact(opening)] if opening.recontact else []
        return findings + self._undeflect(lambda r: r.ticket_id != ticket, at)

    def _resolved(self, contact: Contact) -> list[Finding]:
        resolution = Resolution(contact.at_us, contact.ticket_id, contact.scopes, contact.ai)
        self.resolutions.append(resolution)
        findings = []
        for opening in self.openings:
            if (
                not opening.recontact
                and opening.ticket_id != resolution.ticket_id
                and _within(resolution.at_us, opening.at_us, RECONTACT_HORIZON_US)
            ):
                opening.recontact = True
                findings.append(_recontact(opening))
        if self._returned_after(resolution):
            resolution.undeflected = True
            findings.append(_undeflected(resolution))
        return findings

    def _returned_after(self, resolution: Resolution) -> bool:
        """An AI resolution whose ticket reopened, or whose requester opened another, in time."""
        ticket = resolution.ticket_id
        new_ticket = any(
            o.ticket_id != ticket and _undeflects(resolution, o.at_us) for o in self.openings
        )
        return new_ticket or any(
            t == ticket and _undeflects(resolution, at) for at, t in self.reopens
        )

    def _reopened(self, contact: Contact) -> list[Finding]:
        at, ticket = contact.at_us, contact.ticket_id
        self.reopens.append((at, ticket))
        return self._undeflect(lambda r: r.ticket_id == ticket, at)

    def _undeflect(self, concerns: Callable[[Resolution], bool], at_us: int) -> list[Finding]:
        """Mark the AI resolutions that a return at ``at_us`` shows did not hold."""
        findings = []
        for resolution in self.resolutions:
            if concerns(resolution) and _undeflects(resolution, at_us):
                resolution.undeflected = True
                findings.append(_undeflected(resolution))
        return findings

    def _forget_before(self, cutoff_us: int) -> None:
        self.resolutions = [r for r in self.resolutions if r.at_us >= cutoff_us]
        self.openings = [o for o in self.openings if o.at_us >= cutoff_us]
        self.reopens = [r for r in self.reopens if r[0] >= cutoff_us]

    def _keep_newest(self, count: int) -> None:
        if len(self.resolutions) > count:
            self.resolutions = sorted(self.resolutions, key=_when)[-count:]
        if len(self.openings) > count:
            self.openings = sorted(self.openings, key=_when)[-count:]
        if len(self.reopens) > count:
            self.reopens = sorted(self.reopens)[-count:]


def _when(contact: Resolution | Opening) -> tuple[int, str]:
    return contact.at_us, contact.ticket_id


def _within(resolved_us: int, at_us: int, horizon_us: int) -> bool:
    return resolved_us < at_us <= resolved_us + horizon_us


def _undeflects(resolution: Resolution, at_us: int) -> bool:
    return (
        resolution.ai
        and not resolution.undeflected
        and _within(resolution.at_us, at_us, DEFLECTION_HORIZON_US)
    )


def _recontact(opening: Opening) -> Finding:
    return Finding(Kind.RECONTACT, opening.at_us, opening.ticket_id, opening.scopes)


def _undeflected(resolution: Resolution) -> Finding:
    return Finding(Kind.UNDEFLECTED, resolution.at_us, resolution.ticket_id, resolution.scopes)


def requester_key(ticket_id: str, requester: str | None) -> str:
    """Tickets without a requester stand alone: only their own reopens can concern them."""
    return f"requester:{requester}" if requester is not None else f"ticket:{ticket_id}"


def requester_partition(key: str, partitions: int) -> int:
    """A stable partition for a requester, the same in every worker and every run."""
    return zlib.crc32(key.encode()) % partitions


def contact_of(
    ticket: Ticket, event: TicketEvent, transitions: list[Transition]
) -> tuple[str, Contact] | None:
    """The contact an applied event makes, keyed by requester, if it opened or resolved."""
    for transition in transitions:
        if transition.scope != ALL_SCOPE:
            continue
        if transition.kind is Kind.INFLOW:
            reopened = event.type is EventType.REOPENED and ticket.resolved_us is not None
            kind = ContactKind.REOPENED if reopened else ContactKind.OPENED
        elif transition.kind is Kind.OUTFLOW:
            kind = ContactKind.RESOLVED
        else:
            continue
        ai = kind is ContactKind.RESOLVED and event.resolution == AI_RESOLVED
        contact = Contact(kind, transition.at_us, event.ticket_id, ticket.scopes(), ai)
        return requester_key(event.ticket_id, ticket.requester), contact
    return None
