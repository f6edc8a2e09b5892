"""Zendesk: event-subscription webhooks (``zen:event-type:ticket.*``), signed
``X-Zendesk-Webhook-Signature`` = base64(HMAC-SHA256(secret, timestamp + body)) with the
timestamp in ``X-Zendesk-Webhook-Signature-Timestamp``; and the incremental ticket events
export (``/api/v2/incremental/ticket_events.json?include=comment_events``).

A comment's id is the same in both. A field change has no shared id (the webhook's ``id``
is an event UUID the export never shows; the export's is the audit's), so both build it
from the ticket, the field, the new value and the instant of the update: the webhook's
``detail.updated_at``, the audit's ``created_at``. Trigger-built bodies (a ``notify
webhook`` action with a JSON body of placeholders) go through the ``generic`` kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from streams.connectors.base import (
    Connector,
    Delivery,
    Ignored,
    Options,
    Source,
    Target,
    Unmappable,
    dig,
    instant,
    required,
)
from streams.connectors.signatures import Hmac
from streams.core.events import EventType, TicketEvent

PREFIX = "zen:event-type:ticket."
_AUDIT = "audit"
_DONE = {"marked_as_spam": "spam", "soft_deleted": "closed", "permanently_deleted": "closed"}


class Zendesk(Connector):
    kind: ClassVar[str] = "zendesk"
    default_statuses: ClassVar[dict[str, Target]] = {
        "new": "open",
        "open": "open",
        "pending": "pending",
        "hold": "on_hold",
        "solved": "solved",
        "closed": "closed",
        "deleted": "closed",
    }
    signature = Hmac(
        "X-Zendesk-Webhook-Signature", "sha256", "base64", "",
        "X-Zendesk-Webhook-Signature-Timestamp",
    )  # fmt: skip

    def __init__(self, source: Source, options: Options) -> None:
        super().__init__(source, options)
        self.requesters: dict[Any, Any] = {}  # ticket -> requester, as the export's pages say

    def map(self, delivery: Delivery) -> list[TicketEvent] | Ignored:
        if delivery.shape == _AUDIT:
            return self._audit(delivery.payload)
        payload = delivery.payload
        name = str(required(payload, "type"))
        if not name.startswith(PREFIX):
            return Ignored(f"Zendesk {name} is not a ticket event")
        action = name.removeprefix(PREFIX)
        detail = required(payload, "detail")
        ticket = required(detail, "id")
        when = detail.get("updated_at") or required(payload, "time")
        change = payload.get("event") or {}
        if action == "created":
            return [self._created(detail)]
        if action == "comment_added":
            return self._comment(detail, required(change, "comment"), payload.get("time") or when)
        if action in _DONE:
            target: Target = "spam" if _DONE[action] == "spam" else "closed"
            return self.status_events(target, None, ticket, f"{action}:{ticket}", when)
        field = {
            "status_changed": "status",
            "priority_changed": "priority",
            "agent_assignment_changed": "assignee_id",
            "group_assignment_changed": "group_id",
        }.get(action)
        if field is None:
            return Ignored(f"Zendesk ticket.{action}")
        return self._change(ticket, field, _id_or_value(change.get("current")),
                            _id_or_value(change.get("previous")), when)  # fmt: skip

    def _created(self, ticket: dict[str, Any]) -> TicketEvent:
        number = required(ticket, "id")
        requester = ticket.get("requester_id")
        return self.event(
            EventType.CREATED, number, f"created:{number}", required(ticket, "created_at"),
            queue=self.queue(ticket.get("group_id")),
            priority=self.priority(ticket.get("priority")),
            requester_id=self.requester(requester),
        )  # fmt: skip

    def _change(
        self, ticket: Any, field: str, current: Any, previous: Any, when: Any
    ) -> list[TicketEvent] | Ignored:
        value = str(current).lower()
        change = f"{field}:{ticket}:{value}:{instant(when)}"
        if field == "status":
            target = self.status(value) or "open"
            return self.status_events(target, self.status(previous), ticket, change, when)
        if current is None:
            return Ignored(f"{field} emptied")
        if field == "priority":
            priority = self.priority(value)
            return [self.event(EventType.PRIORITY_CHANGED, ticket, change, when, priority=priority)]
        if field == "assignee_id":
            return [self.event(EventType.ASSIGNED, ticket, change, when)]
        queue = self.queue(current)
        return [self.event(EventType.TRANSFERRED, ticket, change, when, queue=queue)]

    def _comment(
        self, ticket: dict[str, Any], comment: dict[str, Any], when: Any
    ) -> list[TicketEvent] | Ignored:
        if comment.get("is_public", comment.get("public")) is False:
            return Ignored("a private comment is a note, not a reply")
        author = comment.get("author") or {}
        author_id = author.get("id", comment.get("author_id"))
        automated = str(author_id) == "-1" or dig(comment, "via", "channel") == "rule"
        staff = author.get("is_staff")
        if staff is None:  # the export names no role: the requester is the customer
            staff = author_id is None or str(author_id) != str(ticket.get("requester_id"))
        return [
            self.event(
                EventType.AGENT_REPLIED if staff or automated else EventType.CUSTOMER_REPLIED,
                required(ticket, "id"),
                f"comment:{required(comment, 'id')}",
                comment.get("created_at") or when,
                actor="bot" if automated else ("agent" if staff else "customer"),
                meaningful=False if automated else None,
            )
        ]

    def history(self, document: Any, ticket: str | None = None) -> Iterator[Delivery]:
        """Saved webhook bodies, or pages of the incremental ticket events export: each audit
        in ``ticket_events`` with its ``child_events``."""
        items = document if isinstance(document, list) else [document]
        for item in items:
            if not isinstance(item, dict):
                raise Unmappable("a Zendesk item is a JSON object")
            if "ticket_events" in item:
                yield from self._audits(item["ticket_events"] or [])
            elif "type" in item:
                yield Delivery(item)
            else:
                raise Unmappable("neither a webhook body nor a ticket events export page")

    def _audits(self, audits: list[Any]) -> Iterator[Delivery]:
        """Each audit, with its ticket's requester where an earlier audit (on any page read
        by this connector) created it: the export names no comment author's role, and the
        requester is the customer."""
        for audit in audits:
            if not isinstance(audit, dict):
                raise Unmappable("an audit is a JSON object")
            for child in audit.get("child_events") or []:
                if isinstance(child, dict) and child.get("event_type") == "Create":
                    self.requesters[audit.get("ticket_id")] = child.get("requester_id")
            requester = self.requesters.get(audit.get("ticket_id"))
            yield Delivery({**audit, "requester_id": requester}, shape=_AUDIT)

    def _audit(self, audit: dict[str, Any]) -> list[TicketEvent]:
        ticket = {"id": required(audit, "ticket_id"), "requester_id": audit.get("requester_id")}
        when = required(audit, "created_at")
        events: list[TicketEvent] = []
        for child in audit.get("child_events") or []:
            kind = child.get("event_type")
            if kind == "Create":
                ticket |= {key: child.get(key) for key in ("requester_id", "group_id", "priority")}
                events.append(self._created({**ticket, "created_at": when}))
            elif kind == "Comment":
                mapped = self._comment(ticket, child, when)
                events += mapped if isinstance(mapped, list) else []
            elif kind == "Change":
                events += self._audit_change(ticket["id"], child, when)
        return events

    def _audit_change(self, ticket: Any, child: dict[str, Any], when: Any) -> list[TicketEvent]:
        for field in ("status", "priority", "assignee_id", "group_id"):
            if field in child:
                mapped = self._change(
                    ticket, field, child[field], child.get("previous_value"), when
                )
                return mapped if isinstance(mapped, list) else []
        return []


def _id_or_value(value: Any) -> Any:
    """A webhook's ``current``/``previous``: a value, or an object with an ``id``."""
    return value.get("id") if isinstance(value, dict) else value
