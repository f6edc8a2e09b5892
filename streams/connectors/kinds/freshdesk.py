"""Freshdesk: an automation rule's "Trigger webhook" action, whose JSON body the admin writes
with placeholders; this kind reads the body integrations commonly document (Zulip's):
``{"freshdesk_webhook": {"triggered_event": "{{triggered_event}}", "ticket_id":
"{{ticket.id}}", "ticket_status": "{{ticket.status}}", "ticket_priority":
"{{ticket.priority}}", "requester_email": "{{ticket.requester.email}}", ...}}``, plus the
optional ``ticket_group`` and ``ticket_updated_at``. Freshdesk signs nothing: the rule sends
the instance's secret as ``Authorization: Bearer`` (or as basic auth's user or password).

``triggered_event`` says what changed: ``{ticket_action:created}``, ``{status:{from:4,to:6}}``,
``{priority:{from:3,to:1}}``, ``{note_type:public}``. The body names no change and, unless
the template adds ``ticket_updated_at``, no time: the gateway's receipt time stands in, and
the event id is the ticket, the change and that time.
"""

from __future__ import annotations

import re
from typing import ClassVar

from streams.connectors.base import (
    URGENT_TO_LOW,
    Connector,
    Delivery,
    Ignored,
    Target,
    Unmappable,
    required,
)
from streams.connectors.signatures import Token
from streams.core.events import EventType, TicketEvent

# Freshdesk's numbers for statuses and priorities, as triggered_event gives them.
_STATUS_NUMBERS = {"2": "open", "3": "pending", "4": "resolved", "5": "closed"}
_STATUS_NUMBERS |= {"6": "waiting on customer", "7": "waiting on third party"}
_PRIORITY_NUMBERS = {"1": "low", "2": "medium", "3": "high", "4": "urgent"}
_CHANGE = re.compile(
    r"^\{\s*(\w+)\s*:\s*(?:\{\s*from\s*:\s*([^,}]*),\s*to\s*:\s*([^}]*)\}|([^}]*))\s*\}$"
)


class Freshdesk(Connector):
    kind: ClassVar[str] = "freshdesk"
    default_statuses: ClassVar[dict[str, Target]] = {
        "open": "open",
        "pending": "pending",
        "waiting on customer": "pending",
        "waiting on third party": "on_hold",
        "resolved": "solved",
        "closed": "closed",
    }
    default_priorities: ClassVar[dict[str, str]] = URGENT_TO_LOW
    signature = Token("Authorization")

    def map(self, delivery: Delivery) -> list[TicketEvent] | Ignored:
        ticket = required(delivery.payload, "freshdesk_webhook")
        number = required(ticket, "ticket_id")
        when = ticket.get("ticket_updated_at") or delivery.received_at
        if when is None:
            raise Unmappable("no time: add ticket_updated_at to the rule's body")
        trigger = str(required(ticket, "triggered_event")).strip()
        match = _CHANGE.match(trigger)
        if match is None:
            raise Unmappable(f"triggered_event {trigger[:64]!r} is not Freshdesk's")
        field, before, after, value = match.groups()
        change = f"{field}:{(after or value or '').strip()}:{when}"
        attributes = {
            "queue": self.queue(ticket.get("ticket_group")),
            "priority": self.priority(ticket.get("ticket_priority")),
        }
        if field == "ticket_action" and value.strip() == "created":
            requester = ticket.get("requester_email")
            return [
                self.event(
                    EventType.CREATED, number, "created", when, **attributes,
                    requester_id=self.requester(requester),
                )
            ]  # fmt: skip
        if field == "status":
            target = self.status(_STATUS_NUMBERS.get(after.strip(), after)) or "open"
            previous = self.status(_STATUS_NUMBERS.get(before.strip(), before))
            return self.status_events(target, previous, number, change, when, **attributes)
        if field == "priority":
            priority = self.priority(_PRIORITY_NUMBERS.get(after.strip(), after))
            return [self.event(EventType.PRIORITY_CHANGED, number, change, when, priority=priority)]
        if field == "note_type":
            if value.strip() != "public":
                return Ignored("a private note is not a reply")
            return [self.event(EventType.AGENT_REPLIED, number, change, when, actor="agent")]
        return Ignored(f"Freshdesk {trigger[:64]}")
