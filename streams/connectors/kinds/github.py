"""GitHub Issues: ``issues`` and ``issue_comment`` webhooks, and the REST history (issues,
the repository's issue events, an issue's events or timeline, issue comments).

A ticket is an issue (``github:acme:owner/repo:42``; the queue is the repository). Its
author is the requester; a commenter whose ``author_association`` is in ``agents`` (owner,
member, collaborator) is an agent, anyone else the customer; a ``Bot`` user is an
automation. A comment's id is the change's, in the webhook and in the REST history. For
the rest GitHub's webhooks carry no id of the change, so the id is the action and its
instant, which the REST issue events carry too (``closed_at`` for a close; ``updated_at``,
which a reopen, an assignment or a label sets, for the others): ``closed:<instant>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field

from streams.connectors.base import (
    Connector,
    Delivery,
    Ignored,
    Options,
    Source,
    Unmappable,
    dig,
    required,
)
from streams.connectors.signatures import Hmac
from streams.core.events import EventType, TicketEvent

_PRIORITY_LABEL = re.compile(r"^(?:p([0-3])|priority\s*[:/=-]\s*(.+))$", re.IGNORECASE)
_ISSUE_URL = re.compile(r"/repos/([^/]+/[^/]+)/issues/(\d+)$")
_REPOSITORY_URL = re.compile(r"/repos/([^/]+/[^/]+)$")
_TICKET = re.compile(r"^([^/\s#]+/[^/\s#]+)#(\d+)$")
_RESOLUTIONS = {"completed": "solved", "duplicate": "duplicate"}


class GithubOptions(Options):
    agents: list[str] = Field(
        default_factory=lambda: ["OWNER", "MEMBER", "COLLABORATOR"],
        description="author_association values that make a commenter an agent",
    )


class Github(Connector):
    kind: ClassVar[str] = "github"
    options_model = GithubOptions
    event_header = "x-github-event"
    signature = Hmac("X-Hub-Signature-256", "sha256", "hex", "sha256=")

    def __init__(self, source: Source, options: Options) -> None:
        super().__init__(source, options)
        assert isinstance(options, GithubOptions)
        self.agents = frozenset(options.agents)

    def map(self, delivery: Delivery) -> list[TicketEvent] | Ignored:
        payload = delivery.payload
        if delivery.shape is not None:
            return self._rest_item(payload, delivery.shape)
        name = delivery.event or _event_name(payload)
        if name not in ("issues", "issue_comment"):
            return Ignored(f"GitHub {name or 'delivery'} events are not tickets")
        issue = required(payload, "issue")
        if "pull_request" in issue:
            return Ignored("a pull request is not a ticket")
        ticket = f"{required(payload, 'repository', 'full_name')}:{required(issue, 'number')}"
        action = required(payload, "action")
        if name == "issue_comment":
            if action != "created":
                return Ignored(f"issue_comment {action}")
            return [self._comment(ticket, required(payload, "comment"))]
        if action == "opened":
            return [self._created(ticket, issue)]
        when = issue.get("closed_at") if action == "closed" else issue.get("updated_at")
        item = {**payload, "state_reason": issue.get("state_reason")}
        return self._issue_event(ticket, action, when, item)

    def _issue_event(
        self, ticket: str, action: str, when: Any, item: dict[str, Any]
    ) -> list[TicketEvent] | Ignored:
        """An action on an issue, as a webhook or the REST issue events give it: ``item``
        holds its ``assignee``, ``label`` or ``state_reason``."""
        queue = self.queue(ticket.rpartition(":")[0])
        if action == "closed":
            resolution = _RESOLUTIONS.get(str(item.get("state_reason")))
            kind = EventType.RESOLVED if resolution else EventType.CLOSED
            change = f"closed:{when}"
            return [self.event(kind, ticket, change, when, resolution=resolution, queue=queue)]
        if action in ("deleted", "transferred"):  # the ticket leaves this repository
            return [self.event(EventType.CLOSED, ticket, action, when, queue=queue)]
        if action == "reopened":
            return [self.event(EventType.REOPENED, ticket, f"reopened:{when}", when, queue=queue)]
        if action == "assigned":
            login = required(item, "assignee", "login")
            change = f"assigned:{login}:{when}"
            return [self.event(EventType.ASSIGNED, ticket, change, when, queue=queue)]
        if action == "labeled":
            name = required(item, "label", "name")
            priority = self._label_priority(name)
            if priority is None:
                return Ignored("a label that is no priority")
            change = f"labeled:{name}:{when}"
            return [
                self.event(
                    EventType.PRIORITY_CHANGED, ticket, change, when, priority=priority, queue=queue
                )
            ]
        return Ignored(f"issues {action}")

    def _created(self, ticket: str, issue: dict[str, Any]) -> TicketEvent:
        author = required(issue, "user")
        return self.event(
            EventType.CREATED,
            ticket,
            "created",
            required(issue, "created_at"),
            queue=self.queue(ticket.rpartition(":")[0]),
            priority=self._issue_priority(issue),
            requester_id=self.requester(required(author, "login")),
            actor="bot" if author.get("type") == "Bot" else "customer",
        )

    def _comment(self, ticket: str, comment: dict[str, Any]) -> TicketEvent:
        user = comment.get("user") or {}
        bot = user.get("type") == "Bot"
        agent = bot or comment.get("author_association") in self.agents
        return self.event(
            EventType.AGENT_REPLIED if agent else EventType.CUSTOMER_REPLIED,
            ticket,
            f"comment:{required(comment, 'id')}",
            required(comment, "created_at"),
            queue=self.queue(ticket.rpartition(":")[0]),
            actor="bot" if bot else ("agent" if agent else "customer"),
            meaningful=False if bot else None,
        )

    def _issue_priority(self, issue: dict[str, Any]) -> str | None:
        for label in issue.get("labels") or []:
            priority = self._label_priority(dig(label, "name"))
            if priority is not None:
                return priority
        return None

    def _label_priority(self, name: Any) -> str | None:
        if not isinstance(name, str):
            return None
        if name.casefold() in self.priorities:
            return str(self.priorities[name.casefold()])
        match = _PRIORITY_LABEL.match(name.strip())
        if match is None:
            return None
        return f"P{match.group(1)}" if match.group(1) else self.priority(match.group(2).strip())

    def history(self, document: Any, ticket: str | None = None) -> Iterator[Delivery]:
        """Saved webhook bodies, or REST pages: issues (``/repos/o/r/issues?state=all``),
        the repository's issue events (``/repos/o/r/issues/events``), issue comments
        (``/repos/o/r/issues/comments``), and one issue's events or timeline
        (``/repos/o/r/issues/42/events``), whose items do not name their issue: ``ticket``
        (``o/r#42``) does."""
        for item in document if isinstance(document, list) else [document]:
            if not isinstance(item, dict):
                raise Unmappable("a GitHub item is a JSON object")
            if "action" in item:
                yield Delivery(item)
                continue
            named = item if ticket is None else {**item, "_ticket": ticket}
            yield Delivery(named, shape=_rest_shape(item))

    def _rest_item(self, item: dict[str, Any], shape: str) -> list[TicketEvent] | Ignored:
        if "pull_request" in item or "pull_request" in (item.get("issue") or {}):
            return Ignored("a pull request is not a ticket")  # REST lists hold them too
        ticket = _ticket_of(item, shape)
        if shape == "issue":
            created = self._created(ticket, item)
            if item.get("state") != "closed" or not item.get("closed_at"):
                return [created]
            closed = self._issue_event(ticket, "closed", item["closed_at"], item)
            return [created, *closed] if isinstance(closed, list) else [created]
        if shape == "comment":
            return [self._comment(ticket, item)]
        reason = {"state_reason": dig(item, "issue", "state_reason") or item.get("state_reason")}
        when = required(item, "created_at")
        return self._issue_event(ticket, required(item, "event"), when, {**item, **reason})


def _event_name(payload: dict[str, Any]) -> str | None:
    """The event a saved body is, where no X-GitHub-Event header came with it."""
    if "issue" not in payload:
        return None
    return "issue_comment" if "comment" in payload else "issues"


def _rest_shape(item: dict[str, Any]) -> str:
    if "issue_url" in item and ("body" in item or item.get("event") == "commented"):
        return "comment"
    if "number" in item and "repository_url" in item:
        return "issue"
    if "event" in item:
        return "event"
    raise Unmappable("neither a webhook body, an issue, an issue event nor an issue comment")


def _ticket_of(item: dict[str, Any], shape: str) -> str:
    """``owner/repo:number`` of a REST item: from its URLs, or the ticket named beside it."""
    if shape == "issue":
        match = _REPOSITORY_URL.search(str(item.get("repository_url")))
        if match is not None:
            return f"{match.group(1)}:{required(item, 'number')}"
    url = item.get("issue_url") if shape == "comment" else dig(item, "issue", "url")
    match = _ISSUE_URL.search(url) if isinstance(url, str) else None
    if match is not None:
        return f"{match.group(1)}:{match.group(2)}"
    named = _TICKET.match(str(item.get("_ticket")))
    if named is not None:
        return f"{named.group(1)}:{named.group(2)}"
    raise Unmappable("no issue named: give the issue of a per-issue history (--ticket o/r#42)")
