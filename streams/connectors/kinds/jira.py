"""Jira (Service Management): ``jira:issue_created``, ``jira:issue_updated`` (its changelog)
and ``comment_created`` webhooks, and the REST history (an issue with ``expand=changelog``,
search results of them, or a bulk changelog fetch).

A ticket is an issue by its id (``jira:acme:10002``: a key changes when the issue moves);
the queue is the project. One changelog becomes an event per item flowgauge counts (status,
assignee, priority, project), each ``changelog:<id>:<field>``: the webhook and the REST
changelog carry the same id. A status maps by name (``statuses``), else by the category of
the issue's current status (done: resolved; otherwise open). A comment by the reporter or
a portal customer is the customer's; an ``app`` account's is an automation; a comment that
Service Management keeps internal (``jsdPublic: false``) is a note, not a reply.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

from streams.connectors.base import (
    Connector,
    Delivery,
    Ignored,
    Target,
    Unmappable,
    dig,
    required,
)
from streams.connectors.signatures import Hmac
from streams.core.events import EventType, TicketEvent

_CATEGORIES: dict[str, Target] = {"new": "open", "indeterminate": "open", "done": "solved"}
_HISTORY = "history"
_ISSUE_URL = re.compile(r"/rest/api/\d+/issue/([^/?]+)")


class Jira(Connector):
    kind: ClassVar[str] = "jira"
    default_statuses: ClassVar[dict[str, Target]] = {
        "waiting for customer": "pending",
        "pending": "pending",
        "on hold": "on_hold",
        "resolved": "solved",
        "done": "solved",
        "closed": "closed",
        "canceled": "closed",
        "cancelled": "closed",
        "won't do": "closed",
        "declined": "closed",
    }
    default_priorities: ClassVar[dict[str, str]] = {
        "highest": "P0",
        "blocker": "P0",
        "high": "P1",
        "critical": "P1",
        "medium": "P2",
        "major": "P2",
        "low": "P3",
        "lowest": "P3",
        "minor": "P3",
        "trivial": "P3",
    }
    signature = Hmac("X-Hub-Signature", "sha256", "hex", "sha256=")

    def map(self, delivery: Delivery) -> list[TicketEvent] | Ignored:
        payload = delivery.payload
        if delivery.shape == _HISTORY:
            return self._issue_history(payload)
        name = required(payload, "webhookEvent")
        # Jira Server's comment_created names its issue only in the comment's URL.
        issue = payload.get("issue") or {"id": _issue_in(dig(payload, "comment", "self"))}
        if name == "jira:issue_created":
            return [self._created(issue)]
        if name == "jira:issue_updated":
            changelog = payload.get("changelog") or {}
            when = dig(issue, "fields", "updated") or required(payload, "timestamp")
            return self._changes(issue, changelog, when) or Ignored("no change flowgauge counts")
        if name == "comment_created":
            return self._comment(issue, required(payload, "comment"))
        return Ignored(f"Jira {name}")

    def _created(self, issue: dict[str, Any]) -> TicketEvent:
        fields = issue.get("fields") or {}
        return self.event(
            EventType.CREATED,
            required(issue, "id"),
            f"created:{issue['id']}",
            required(fields, "created"),
            queue=self.queue(dig(fields, "project", "key")),
            priority=self.priority(dig(fields, "priority", "name")),
            requester_id=self.requester(dig(fields, "reporter", "accountId")),
        )

    def _changes(
        self, issue: dict[str, Any], changelog: dict[str, Any], when: Any
    ) -> list[TicketEvent]:
        """The events of one changelog, in the order of its items."""
        change = f"changelog:{required(changelog, 'id')}" if changelog.get("items") else ""
        ticket = required(issue, "id")
        items = {item.get("field"): item for item in changelog.get("items") or []}
        events: list[TicketEvent] = []
        for field, item in items.items():
            identity = f"{change}:{field}"
            if field == "status":
                resolution = dig(items, "resolution", "toString")
                events += self._status(issue, item, identity, when, resolution)
            elif field == "assignee" and item.get("to"):
                events.append(self.event(EventType.ASSIGNED, ticket, identity, when))
            elif field == "priority":
                priority = self.priority(item.get("toString"))
                events.append(
                    self.event(
                        EventType.PRIORITY_CHANGED, ticket, identity, when, priority=priority
                    )
                )
            elif field == "project":
                queue = self.queue(dig(issue, "fields", "project", "key") or item.get("toString"))
                events.append(
                    self.event(EventType.TRANSFERRED, ticket, identity, when, queue=queue)
                )
        return events

    def _status(
        self, issue: dict[str, Any], item: dict[str, Any], change: str, when: Any, resolution: Any
    ) -> list[TicketEvent]:
        target = self._target(issue, item.get("toString"))
        previous = self._target(issue, item.get("fromString"))
        if target == "solved" and str(resolution).casefold() == "duplicate":
            target = "duplicate"
        return self.status_events(target, previous, issue["id"], change, when)

    def _target(self, issue: dict[str, Any], name: Any) -> Target:
        named = self.status(name)
        if named is not None:
            return named
        current = dig(issue, "fields", "status")
        if isinstance(current, dict) and current.get("name") == name:
            return _CATEGORIES.get(str(dig(current, "statusCategory", "key")), "open")
        return "open"

    def _comment(
        self, issue: dict[str, Any], comment: dict[str, Any]
    ) -> list[TicketEvent] | Ignored:
        if comment.get("jsdPublic") is False:
            return Ignored("an internal comment is a note, not a reply")
        author = comment.get("author") or {}
        reporter = dig(issue, "fields", "reporter", "accountId")
        bot = author.get("accountType") == "app"
        customer = not bot and (
            author.get("accountType") == "customer"
            or (reporter is not None and author.get("accountId") == reporter)
        )
        return [
            self.event(
                EventType.CUSTOMER_REPLIED if customer else EventType.AGENT_REPLIED,
                required(issue, "id"),
                f"comment:{required(comment, 'id')}",
                required(comment, "created"),
                actor="bot" if bot else ("customer" if customer else "agent"),
                meaningful=False if bot else None,
            )
        ]

    def history(self, document: Any, ticket: str | None = None) -> Iterator[Delivery]:
        """Saved webhook bodies; an issue with ``expand=changelog`` (and its comments, when
        its fields hold them); search results (``issues``); a bulk changelog fetch
        (``issueChangeLogs``: no issue fields, so no queue and no status category)."""
        items = document if isinstance(document, list) else [document]
        for item in items:
            if not isinstance(item, dict):
                raise Unmappable("a Jira item is a JSON object")
            if "webhookEvent" in item:
                yield Delivery(item)
            elif "issues" in item:
                yield from self.history(item["issues"], ticket)
            elif "issueChangeLogs" in item:
                for log in item["issueChangeLogs"] or []:
                    issue = {
                        "id": dig(log, "issueId"),
                        "changelog": {"histories": _list(log, "changeHistories")},
                    }
                    yield Delivery(issue, shape=_HISTORY)
            elif "values" in item:  # GET /issue/{id}/changelog: the issue is in its URL
                named = ticket or _issue_in(item.get("self"))
                histories = {"histories": _list(item, "values")}
                yield Delivery({"id": named, "changelog": histories}, shape=_HISTORY)
            elif "id" in item and ("changelog" in item or "fields" in item):
                yield Delivery(item, shape=_HISTORY)
            else:
                raise Unmappable(
                    "neither a webhook body, an issue, search results nor a bulk changelog"
                )

    def _issue_history(self, issue: dict[str, Any]) -> list[TicketEvent]:
        events = [self._created(issue)] if dig(issue, "fields", "created") else []
        for history in _list(issue.get("changelog"), "histories"):
            events += self._changes(issue, history, required(history, "created"))
        for comment in _list(dig(issue, "fields", "comment"), "comments"):
            mapped = self._comment(issue, comment)
            events += mapped if isinstance(mapped, list) else []
        return events


def _issue_in(url: Any) -> str:
    """The issue's id (or key) in a REST URL such as ``.../rest/api/3/issue/10002/...``."""
    match = _ISSUE_URL.search(url) if isinstance(url, str) else None
    if match is None:
        raise Unmappable("no issue, and no issue URL to name it")
    return match.group(1)


def _list(payload: Any, key: str) -> list[Any]:
    value = dig(payload, key)
    return value if isinstance(value, list) else []
