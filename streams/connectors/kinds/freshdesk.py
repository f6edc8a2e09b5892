"""Freshdesk: an automation rule's "Trigger webhook" action, whose body the admin writes with
placeholders, so this kind is the generic one with Freshdesk's defaults: the body of
docs/connectors.md ("Freshdesk"), and a token, since Freshdesk signs nothing (the rule sends
it as ``Authorization: Bearer``, or as basic auth's user or password).

Freshdesk's placeholders name no change, so the event id is the ticket, the event, the
status and ``{{ticket.updated_at}}``: two rules firing on one update give one event each.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from streams.connectors.base import Target
from streams.connectors.kinds.generic import Generic, GenericAuth, GenericOptions

FIELDS = {
    "event_id": (
        "join(':', [to_string(ticket_id), event, to_string(status), to_string(updated_at)])"
    ),
    "ticket_id": "ticket_id",
    "type": "event",
    "occurred_at": "updated_at",
    "status": "status",
    "priority": "priority",
    "queue": "group",
    "requester_id": "requester",
}


class FreshdeskOptions(GenericOptions):
    auth: GenericAuth = GenericAuth(scheme="token", header="Authorization")
    fields: dict[str, str] = Field(default_factory=lambda: dict(FIELDS))


class Freshdesk(Generic):
    kind: ClassVar[str] = "freshdesk"
    options_model = FreshdeskOptions
    default_statuses: ClassVar[dict[str, Target]] = {
        "open": "open",
        "pending": "pending",
        "waiting on customer": "pending",
        "waiting on third party": "on_hold",
        "resolved": "solved",
        "closed": "closed",
    }
    default_priorities: ClassVar[dict[str, str]] = {
        "urgent": "P0",
        "high": "P1",
        "medium": "P2",
        "low": "P3",
    }
