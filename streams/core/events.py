"""The input contract: one ticket lifecycle event, validated from its own bytes and, for one
rule only, the wall clock: it may not be dated ahead of it (``WallClock``)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from streams.core.timeline import WallClock, iso, to_us

SCHEMA_VERSION = 1
DEFAULT_QUEUE = "default"
DEFAULT_PRIORITY = "P3"
DEFAULT_CHANNEL = "other"


class EventType(StrEnum):
    CREATED = "created"
    ASSIGNED = "assigned"
    AGENT_REPLIED = "agent_replied"
    CUSTOMER_REPLIED = "customer_replied"
    STATUS_CHANGED = "status_changed"
    PRIORITY_CHANGED = "priority_changed"
    TRANSFERRED = "transferred"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    CLOSED = "closed"


TERMINAL_TYPES = frozenset({EventType.RESOLVED, EventType.CLOSED})

_PRIORITY_ALIASES = {"urgent": "P0", "high": "P1", "normal": "P2", "low": "P3"}
_PRIORITIES = frozenset({"P0", "P1", "P2", "P3"})


def _canonical_priority(value: object) -> object:
    if not isinstance(value, str):
        return value
    folded = value.strip().lower()
    return _PRIORITY_ALIASES.get(folded, folded.upper())


# A range that holds with no clock given too: a year-9999 or 1970 timestamp is a broken
# producer, and one would stall every boundary. With a clock, the future ends sooner.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _iso_with_offset(value: object) -> object:
    # Only ISO 8601 text is accepted: numbers would be read as Unix times and
    # a timestamp without an offset has no defined instant.
    if not isinstance(value, str):
        raise ValueError("occurred_at must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"occurred_at is not ISO 8601: {_shown(value)}") from exc
    if moment.utcoffset() is None:
        raise ValueError("occurred_at has no UTC offset")
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"occurred_at outside [{EARLIEST:%Y}, {LATEST:%Y}): {_shown(value)}")
    return moment


def _shown(value: str, limit: int = 64) -> str:
    """The offending value in a reason, cut short: a dead letter must fit where its input did."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} chars)"


def _known_priority(value: str) -> str:
    if value not in _PRIORITIES:
        raise ValueError("priority must be P0..P3 or urgent/high/normal/low")
    return value


NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Priority = Annotated[str, BeforeValidator(_canonical_priority), AfterValidator(_known_priority)]
OccurredAt = Annotated[datetime, BeforeValidator(_iso_with_offset)]


class TicketEvent(BaseModel):
    """One event of a ticket's life, as producers put it on ``ticket-events``."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=False)

    schema_version: Literal[1] = 1
    event_id: NonEmpty
    ticket_id: NonEmpty
    type: EventType
    occurred_at: OccurredAt
    queue: NonEmpty | None = None
    priority: Priority | None = None
    channel: NonEmpty | None = None
    requester_id: NonEmpty | None = None
    account_tier: NonEmpty | None = None
    tags: list[NonEmpty] = Field(default_factory=list, max_length=64)
    sentiment: float | None = None
    actor: Literal["agent", "customer", "bot", "system"] | None = None
    meaningful: bool = True
    status: Literal["open", "pending", "on_hold"] | None = None
    resolution: Literal["solved", "ai_resolved", "duplicate", "stale", "spam"] | None = None

    @cached_property  # read several times per event: by the clock check, the core and its stages
    def occurred_us(self) -> int:
        return to_us(self.occurred_at)


class InvalidEvent(ValueError):
    """Raised with a one-line reason that a person can act on."""


class AheadOfClock(InvalidEvent):
    """A valid event dated later than the clock allows: its producer's clock is wrong."""


def parse_event(raw: bytes, clock: WallClock | None = None) -> TicketEvent:
    """Validate raw message bytes; raise :class:`InvalidEvent` with the reason.

    ``clock``: the wall clock when the bytes were read (None: history that is checked
    already, as in tests)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        event = TicketEvent.model_validate_json(text)
    except ValidationError as exc:
        raise InvalidEvent(_reason(exc)) from exc
    if clock is not None and event.occurred_us > clock.not_after_us:
        raise AheadOfClock(
            f"occurred_at ahead of the clock: {iso(event.occurred_us)} is later than"
            f" {iso(clock.not_after_us)}, the clock when read plus the tolerance"
        )
    return event


def _reason(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return f"not JSON: {first['msg']}"
    where = ".".join(str(part) for part in first["loc"]) or "event"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"
