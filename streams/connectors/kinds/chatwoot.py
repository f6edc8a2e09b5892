"""Chatwoot: account webhooks ``conversation_created``, ``conversation_status_changed``,
``conversation_updated`` and ``message_created``, signed
``X-Chatwoot-Signature: sha256=<hex HMAC-SHA256(secret, "{X-Chatwoot-Timestamp}.{body}")>``.

A ticket is a conversation (its ``display_id``, the number the team sees). A message's id
is the change's; a status change carries none, so it is ``status:<conversation>:<status>:
<updated_at>``. Incoming messages are the customer's; outgoing ones an agent's, unless a
bot's (``agent_bot`` sender) or a ``template`` (automated); private messages are notes and
``activity`` messages are Chatwoot's own log lines.
"""

from __future__ import annotations

from typing import Any, ClassVar

from streams.connectors.base import (
    URGENT_TO_LOW,
    Connector,
    Delivery,
    Ignored,
    Target,
    dig,
    required,
)
from streams.connectors.signatures import Hmac
from streams.core.events import EventType, TicketEvent

# Chatwoot's message_type as text (webhooks) or as its enum's number (its API).
_MESSAGE_TYPES = {"0": "incoming", "1": "outgoing", "2": "activity", "3": "template"}


class Chatwoot(Connector):
    kind: ClassVar[str] = "chatwoot"
    default_statuses: ClassVar[dict[str, Target]] = {
        "open": "open",
        "pending": "pending",
        "snoozed": "on_hold",
        "resolved": "solved",
    }
    default_priorities: ClassVar[dict[str, str]] = URGENT_TO_LOW
    signature = Hmac(
        "X-Chatwoot-Signature", "sha256", "hex", "sha256=", "X-Chatwoot-Timestamp", b"."
    )

    def map(self, delivery: Delivery) -> list[TicketEvent] | Ignored:
        payload = delivery.payload
        name = required(payload, "event")
        if name == "message_created":
            return self._message(payload)
        if name == "conversation_created":
            return [self._created(payload)]
        if name == "conversation_status_changed":
            return self._status(payload)
        if name == "conversation_updated":
            return self._updated(payload) or Ignored("no change flowgauge counts")
        return Ignored(f"Chatwoot {name}")

    def _created(self, conversation: dict[str, Any]) -> TicketEvent:
        number = _number(conversation)
        sender = dig(conversation, "meta", "sender", "id")
        return self.event(
            EventType.CREATED, number, f"created:{number}", required(conversation, "created_at"),
            queue=self._queue(conversation),
            priority=self.priority(conversation.get("priority")),
            requester_id=self.requester(sender),
        )  # fmt: skip

    def _status(self, conversation: dict[str, Any]) -> list[TicketEvent]:
        status = required(conversation, "status")
        target = self.status(status) or "open"
        previous = self.status(_changed(conversation, "status")[0])
        number = _number(conversation)
        when = conversation.get("updated_at") or required(conversation, "timestamp")
        change = f"status:{number}:{status}:{when}"
        return self.status_events(target, previous or "open", number, change, when)

    def _updated(self, conversation: dict[str, Any]) -> list[TicketEvent]:
        number = _number(conversation)
        when = conversation.get("updated_at") or required(conversation, "timestamp")
        events = []
        assignee = _changed(conversation, "assignee_id")[1]
        if assignee is not None:
            change = f"assignee:{number}:{assignee}:{when}"
            events.append(self.event(EventType.ASSIGNED, number, change, when))
        team = _changed(conversation, "team_id")[1]
        if team is not None:
            change = f"team:{number}:{team}:{when}"
            queue = self._queue(conversation)
            events.append(self.event(EventType.TRANSFERRED, number, change, when, queue=queue))
        priority = _changed(conversation, "priority")[1]
        if priority is not None:
            change = f"priority:{number}:{priority}:{when}"
            events.append(
                self.event(
                    EventType.PRIORITY_CHANGED, number, change, when,
                    priority=self.priority(priority),
                )
            )  # fmt: skip
        return events

    def _message(self, message: dict[str, Any]) -> list[TicketEvent] | Ignored:
        kind = _MESSAGE_TYPES.get(str(message.get("message_type")), message.get("message_type"))
        if message.get("private"):
            return Ignored("a private message is a note, not a reply")
        if kind not in ("incoming", "outgoing", "template"):
            return Ignored(f"a message of type {kind}")
        conversation = required(message, "conversation")
        automated = kind == "template" or dig(message, "sender", "type") == "agent_bot"
        return [
            self.event(
                EventType.CUSTOMER_REPLIED if kind == "incoming" else EventType.AGENT_REPLIED,
                _number(conversation),
                f"message:{required(message, 'id')}",
                required(message, "created_at"),
                actor="customer" if kind == "incoming" else ("bot" if automated else "agent"),
                meaningful=False if automated and kind != "incoming" else None,
            )
        ]

    def _queue(self, conversation: dict[str, Any]) -> str | None:
        team = dig(conversation, "meta", "team", "name")
        return self.queue(team if team is not None else conversation.get("inbox_id"))


def _number(conversation: dict[str, Any]) -> Any:
    number = conversation.get("display_id")
    return number if number is not None else required(conversation, "id")


def _changed(conversation: dict[str, Any], attribute: str) -> tuple[Any, Any]:
    """(previous, current) of an attribute in ``changed_attributes`` (a list of one-key
    objects, or one object), or (None, None)."""
    changes = conversation.get("changed_attributes") or []
    for change in changes if isinstance(changes, list) else [changes]:
        if isinstance(change, dict) and isinstance(change.get(attribute), dict):
            return change[attribute].get("previous_value"), change[attribute].get("current_value")
    return None, None
