"""Zammad: the default webhook payload of a trigger (``ticket`` and, when the trigger fired
with one, ``article``), signed ``X-Hub-Signature: sha1=<hex HMAC-SHA1(token, body)>``.

Zammad sends no id of a change and rebuilds the payload on each retry, so each delivery says
what the ticket is now: created (``created:<id>``, the same every time, counted once), its
state as of ``updated_at`` (``state:<id>:<state>:<updated_at>``: a state not done after one
that was is a reopen; Zammad does not say the previous state, so every delivery of an open
ticket carries a reopen, which changes nothing on a ticket that is open) and the article
(``article:<id>``). The first article is the ticket's opening message, not a reply; an
internal article is a note; a ``System`` article is an automation's.
"""

from __future__ import annotations

from typing import Any, ClassVar

from streams.connectors.base import (
    Connector,
    Delivery,
    Ignored,
    Target,
    dig,
    required,
)
from streams.connectors.signatures import Hmac
from streams.core.events import EventType, TicketEvent


class Zammad(Connector):
    kind: ClassVar[str] = "zammad"
    default_statuses: ClassVar[dict[str, Target]] = {
        "new": "open",
        "open": "open",
        "pending reminder": "pending",
        "pending close": "pending",
        "closed": "solved",
        "merged": "duplicate",
        "removed": "closed",
    }
    default_priorities: ClassVar[dict[str, str]] = {
        "1 low": "P3",
        "2 normal": "P2",
        "3 high": "P1",
    }
    signature = Hmac("X-Hub-Signature", "sha1", "hex", "sha1=")

    def map(self, delivery: Delivery) -> list[TicketEvent] | Ignored:
        ticket = required(delivery.payload, "ticket")
        number = required(ticket, "id")
        attributes = {
            "queue": self.queue(_name(ticket.get("group"))),
            "priority": self.priority(_name(ticket.get("priority"))),
        }
        customer = ticket.get("customer_id")
        events = [
            self.event(
                EventType.CREATED, number, f"created:{number}", required(ticket, "created_at"),
                requester_id=self.requester(customer),
                **attributes,
            )
        ]  # fmt: skip
        state = _name(required(ticket, "state"))
        target = self.status(state)
        if target is not None:
            when = required(ticket, "updated_at")
            change = f"state:{number}:{state}:{when}"
            # The ticket's group and priority now: a change of them is a transfer.
            events += self.status_events(target, None, number, change, when, **attributes)
        article = delivery.payload.get("article")
        if isinstance(article, dict) and article:
            events += self._article(ticket, article)
        return events

    def _article(self, ticket: dict[str, Any], article: dict[str, Any]) -> list[TicketEvent]:
        article_id = required(article, "id")
        first = min(ticket.get("article_ids") or [article_id])
        if article.get("internal") or article_id == first:
            return []
        sender = str(article.get("sender") or _name(dig(article, "sender")) or "")
        kind = EventType.CUSTOMER_REPLIED if sender == "Customer" else EventType.AGENT_REPLIED
        automated = sender == "System"
        return [
            self.event(
                kind, ticket["id"], f"article:{article_id}", required(article, "created_at"),
                actor="bot" if automated else ("customer" if sender == "Customer" else "agent"),
                meaningful=False if automated else None,
            )
        ]  # fmt: skip


def _name(value: Any) -> Any:
    """Zammad names a group, state or priority by text, or by an object with ``name``."""
    return value.get("name") if isinstance(value, dict) else value
