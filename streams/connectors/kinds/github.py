"""GitHub Issues: ``issues`` and ``issue_comment`` webhooks, and the REST history (issues,
the repository's issue events, issue comments).

A ticket is an issue (``github:owner/repo:42``; the queue is the repository). Its author is
the requester; a commenter whose ``author_association`` is in ``agents`` (owner, member,
collaborator) is an agent, anyone else the customer; a ``Bot`` user is an automation.
GitHub gives webhook deliveries no id of the change except for comments, so the other ids
are built from what the REST issue events carry too: the issue's id, the action and its
instant (``closed_at``; ``updated_at`` for the rest, which a reopen or assignment sets).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field

from streams.connectors.base import (
    Connector,
    Delivery,
    Headers,
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
_REPOSITORY_URL = re.compile(r"/repos/([^/]+/[^/]+)(?:/issues/(\d+))?")
# What ``history`` calls each REST item, as the event name it hands to ``map``.
HISTORY = "history:"
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

    def verify(self, headers: Headers, body: bytes, now: float) -> None:
        self.signature.verify(headers, body, self.source.secret, now, self.source.tolerance_seconds)

    def map(self, delivery: Delivery) -> list[TicketEvent] | Ignored:
        payload = delivery.payload
        name = delivery.event or _event_name(payload)
        if name is not None and name.startswith(HISTORY):
            return self._history_item(payload, name.removeprefix(HISTORY))
        if name not in ("issues", "issue_comment"):
            return Ignored(f"GitHub {name or 'delivery'} events are not tickets")
        issue = required(payload, "issue")
        if "pull_request" in issue:
            return Ignored("a pull request is not a ticket")
        repository = required(payload, "repository", "full_name")
        action = required(payload, "action")
        if name == "issue_comment":
            if action != "created":
                return Ignored(f"issue_comment {action}")
            return [self._comment(repository, issue, required(payload, "comment"))]
        when = issue.get("closed_at") if action == "closed" else issue.get("updated_at")
        return self._issue_action(repository, issue, action, when, payload)

    def _issue_action(
        self,
        repository: str,
        issue: dict[str, Any],
        action: str,
        when: Any,
        payload: dict[str, Any],
    ) -> list[TicketEvent] | Ignored:
        number = required(issue, "number")
        ticket = f"{repository}:{number}"
        change = f"{action}:{required(issue, 'id')}:{when}"
        common = {"queue": self.queue(repository)}
        if action == "opened":
            return [self._created(repository, issue)]
        if action == "closed":
            resolution = _RESOLUTIONS.get(str(issue.get("state_reason")))
            kind = EventType.RESOLVED if resolution else EventType.CLOSED
            return [self.event(kind, ticket, change, when, resolution=resolution, **common)]
        if action in ("deleted", "transferred"):  # the ticket leaves this repository
            return [self.event(EventType.CLOSED, ticket, f"{action}:{issue['id']}", when, **common)]
        if action == "reopened":
            return [self.event(EventType.REOPENED, ticket, change, when, **common)]
        if action == "assigned":
            login = required(payload, "assignee", "login")
            return [self.event(EventType.ASSIGNED, ticket, f"{change}:{login}", when, **common)]
        if action == "labeled":
            priority = self._label_priority(required(payload, "label", "name"))
            if priority is None:
                return Ignored("a label that is no priority")
            return [
                self.event(
                    EventType.PRIORITY_CHANGED, ticket, f"{change}:{payload['label']['name']}",
                    when, priority=priority, **common,
                )
            ]  # fmt: skip
        return Ignored(f"issues {action}")

    def _created(self, repository: str, issue: dict[str, Any]) -> TicketEvent:
        author = required(issue, "user")
        return self.event(
            EventType.CREATED,
            f"{repository}:{required(issue, 'number')}",
            f"created:{required(issue, 'id')}",
            required(issue, "created_at"),
            queue=self.queue(repository),
            priority=self._issue_priority(issue),
            requester_id=self.source.person_id(required(author, "login")),
            actor="bot" if author.get("type") == "Bot" else "customer",
        )

    def _comment(
        self, repository: str, issue: dict[str, Any], comment: dict[str, Any]
    ) -> TicketEvent:
        ticket = f"{repository}:{required(issue, 'number')}"
        user = comment.get("user") or {}
        bot = user.get("type") == "Bot"
        agent = bot or comment.get("author_association") in self.agents
        return self.event(
            EventType.AGENT_REPLIED if agent else EventType.CUSTOMER_REPLIED,
            ticket,
            f"comment:{required(comment, 'id')}",
            required(comment, "created_at"),
            queue=self.queue(repository),
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

    def history(self, document: Any) -> Iterator[Delivery]:
        """Saved webhook bodies, or REST pages: issues (``/repos/o/r/issues?state=all``),
        the repository's issue events (``/repos/o/r/issues/events``), issue comments
        (``/repos/o/r/issues/comments``)."""
        for item in document if isinstance(document, list) else [document]:
            if not isinstance(item, dict):
                raise Unmappable("a GitHub item is a JSON object")
            yield Delivery(item, _history_kind(item))

    def _history_item(self, item: dict[str, Any], shape: str) -> list[TicketEvent] | Ignored:
        repository, number = _repository_of(item, shape)
        if shape == "issue":
            issue = {**item, "number": number}
            created = self._created(repository, issue)
            if item.get("state") != "closed" or not item.get("closed_at"):
                return [created]
            closed = self._issue_action(repository, issue, "closed", item["closed_at"], item)
            return [created, *closed] if isinstance(closed, list) else [created]
        if shape == "comment":
            return [self._comment(repository, {"number": number}, item)]
        issue = {**required(item, "issue"), "number": number}
        action = required(item, "event")
        return self._issue_action(repository, issue, action, required(item, "created_at"), item)


def _event_name(payload: dict[str, Any]) -> str | None:
    """The event a saved body is, where no X-GitHub-Event header came with it."""
    if "issue" not in payload:
        return None
    return "issue_comment" if "comment" in payload else "issues"


def _history_kind(item: dict[str, Any]) -> str | None:
    if "action" in item:
        return None  # a saved webhook body
    if "event" in item and "issue" in item:
        return f"{HISTORY}event"
    if "issue_url" in item and "body" in item:
        return f"{HISTORY}comment"
    if "number" in item and "repository_url" in item:
        return f"{HISTORY}issue"
    raise Unmappable("neither a webhook body, an issue, an issue event nor an issue comment")


def _repository_of(item: dict[str, Any], shape: str) -> tuple[str, Any]:
    url = item.get("issue_url") if shape == "comment" else None
    if shape == "event":
        url = dig(item, "issue", "repository_url")
        number = dig(item, "issue", "number")
    elif shape == "issue":
        url, number = item.get("repository_url"), item.get("number")
    else:
        number = None
    match = _REPOSITORY_URL.search(url) if isinstance(url, str) else None
    if match is None:
        raise Unmappable("no repository_url or issue_url to name the repository")
    return match.group(1), number if number is not None else match.group(2)
