"""What every helpdesk connector does, whichever way a payload came (a webhook delivery or a
history export): verify a delivery on its raw bytes, parse it, map it to ticket events.

A kind is one module in ``streams.connectors.kinds`` with one ``Connector`` subclass; the
gateway and ``flowgauge convert`` find it by its ``kind`` name and touch nothing else.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streams.core.events import EventType, TicketEvent

# Where a vendor's status lands in our contract: a non-terminal status, or done.
Target = Literal["open", "pending", "on_hold", "solved", "closed", "duplicate", "spam"]
DONE_TARGETS = frozenset({"solved", "closed", "duplicate", "spam"})
# Priorities named urgent, high, medium and low (Chatwoot's, Freshdesk's).
URGENT_TO_LOW = {"urgent": "P0", "high": "P1", "medium": "P2", "low": "P3"}


class Refused(Exception):
    """The delivery is not authentic (or not allowed): answered 401, nothing stored."""


class NotJson(ValueError):
    """Authentic bytes that are no JSON object: answered 400, nothing stored."""


class Unmappable(ValueError):
    """An authentic JSON payload that cannot be turned into events: kept, with this reason,
    on ``ticket-events.rejected``."""


@dataclass(frozen=True)
class Ignored:
    """An authentic delivery about nothing flowgauge counts (a GitHub ``pinned``)."""

    reason: str


class Options(BaseModel):
    """Per-instance mapping, over each kind's defaults; vendor names match case-insensitively."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queues: dict[str, str] = Field(
        default_factory=dict,
        description="the vendor's group, project, repository or inbox -> our queue",
    )
    statuses: dict[str, Target] = Field(
        default_factory=dict, description="the vendor's status -> open, pending, on_hold, ..."
    )
    priorities: dict[str, str] = Field(
        default_factory=dict, description="the vendor's priority -> P0..P3"
    )
    channel: str | None = Field(None, description="the channel of every ticket of this source")


@dataclass(frozen=True)
class Source:
    """One configured instance of a kind: ids are namespaced ``kind:account:vendor-id``."""

    name: str
    kind: str
    account: str
    secret: bytes | None = field(default=None, repr=False)
    tolerance_seconds: int = 300

    def namespaced(self, vendor_id: object) -> str:
        """A ticket's or a person's id: two accounts of one kind never share one."""
        return f"{self.kind}:{self.account}:{vendor_id}"


@dataclass(frozen=True)
class Delivery:
    """One parsed payload and what names it: the event named in a header (GitHub's
    ``X-GitHub-Event``), if any."""

    payload: dict[str, Any]
    event: str | None = None
    # What item of a history export this is, as ``history`` read it (a delivery has none):
    # never from a header, which a sender chooses.
    shape: str | None = None
    # When the gateway received it (epoch seconds): the time of a change for vendors whose
    # payload carries none (Freshdesk); None for saved payloads.
    received_at: float | None = None


Headers = Mapping[str, str]  # names in lower case


class Verifier(Protocol):
    """How a kind checks a delivery (streams/connectors/signatures.py)."""

    def verify(
        self, headers: Headers, body: bytes, secret: bytes | None, now: float, tolerance: int
    ) -> None: ...


class Connector(ABC):
    """One kind. Subclasses name themselves (``kind``), their options and their defaults."""

    kind: ClassVar[str]
    options_model: ClassVar[type[Options]] = Options
    default_statuses: ClassVar[dict[str, Target]] = {}
    default_priorities: ClassVar[dict[str, str]] = {}
    event_header: ClassVar[str | None] = None  # the header that names the event, if any
    signature: Verifier  # the vendor's scheme; generic's comes from its settings

    def __init__(self, source: Source, options: Options) -> None:
        self.source = source
        self.options = options
        self.statuses = _folded(self.default_statuses) | _folded(options.statuses)
        self.priorities = _folded(self.default_priorities) | _folded(options.priorities)
        self.queues = _folded(options.queues)

    def verify(self, headers: Headers, body: bytes, now: float) -> None:
        """Raise ``Refused`` unless the raw body is the vendor's, signed within tolerance."""
        self.signature.verify(headers, body, self.source.secret, now, self.source.tolerance_seconds)

    def parse(self, headers: Headers, body: bytes) -> Delivery:
        event = headers.get(self.event_header) if self.event_header else None
        return Delivery(json_object(body), event)

    @abstractmethod
    def map(self, delivery: Delivery) -> list[TicketEvent] | Ignored:
        """The events one payload is; raise ``Unmappable`` with the reason."""

    def events(self, delivery: Delivery) -> list[TicketEvent] | Ignored:
        """``map``, where a payload of another shape than the vendor's (a field of the wrong
        type) is unmappable too, never an error of the service."""
        with self._shape_errors():
            return self.map(delivery)

    def saved(self, document: Any, ticket: str | None = None) -> list[Delivery]:
        """``history``, where a document of another shape is unmappable too."""
        with self._shape_errors():
            return list(self.history(document, ticket))

    @contextmanager
    def _shape_errors(self) -> Iterator[None]:
        try:
            yield
        except Unmappable:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise Unmappable(f"not the shape of a {self.kind} payload: {exc!r}"[:300]) from None

    def history(self, document: Any, ticket: str | None = None) -> Iterator[Delivery]:
        """The payloads a saved document holds: by default, the document is one webhook body
        (or a list of them). Kinds whose exports differ read them here; ``ticket`` names the
        vendor's ticket of an export whose items do not name it."""
        for payload in document if isinstance(document, list) else [document]:
            if not isinstance(payload, dict):
                raise Unmappable("a saved delivery is a JSON object")
            yield Delivery(payload)

    # Helpers for the kinds.

    def queue(self, vendor_queue: object) -> str | None:
        if vendor_queue is None or vendor_queue == "":
            return None
        text = str(vendor_queue)
        return str(self.queues.get(text.casefold(), text))

    def priority(self, vendor_priority: object) -> str | None:
        if vendor_priority is None or vendor_priority == "":
            return None
        text = str(vendor_priority)
        return str(self.priorities.get(text.casefold(), text))

    def requester(self, vendor_person: object) -> str | None:
        return None if vendor_person is None else self.source.namespaced(vendor_person)

    def status(self, vendor_status: object) -> Target | None:
        if vendor_status is None:
            return None
        return self.statuses.get(str(vendor_status).casefold())

    def event(
        self,
        kind: EventType,
        vendor_ticket: object,
        change: str,
        occurred_at: object,
        **fields: Any,
    ) -> TicketEvent:
        """One event of this source's ticket; ``change`` is the vendor's id of the change, the
        same in a webhook and in a history export."""
        given = {key: value for key, value in fields.items() if value is not None}
        if self.options.channel is not None:
            given.setdefault("channel", self.options.channel)
        try:
            return TicketEvent.model_validate(
                {
                    "event_id": change,
                    "ticket_id": self.source.namespaced(vendor_ticket),
                    "type": kind,
                    "occurred_at": instant(occurred_at),
                    **given,
                }
            )
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            raise Unmappable(f"{where}: {first['msg']}") from None

    def status_events(
        self,
        target: Target,
        previous: Target | None,
        vendor_ticket: object,
        change: str,
        occurred_at: object,
        **fields: Any,
    ) -> list[TicketEvent]:
        """The events of a status change: done is resolved or closed with its resolution;
        out of done is a reopen (``previous`` None: not known, so a reopen, which changes
        nothing on a ticket that is open); pending and on hold are a status too."""
        if target in DONE_TARGETS:
            kind = EventType.CLOSED if target == "closed" else EventType.RESOLVED
            resolution = {"solved": "solved", "duplicate": "duplicate", "spam": "spam"}.get(target)
            return [
                self.event(
                    kind, vendor_ticket, change, occurred_at, resolution=resolution, **fields
                )
            ]
        events = []
        if previous is None or previous in DONE_TARGETS:
            events.append(
                self.event(EventType.REOPENED, vendor_ticket, f"{change}:reopened", occurred_at)
            )
        events.append(
            self.event(
                EventType.STATUS_CHANGED,
                vendor_ticket,
                change,
                occurred_at,
                status=target,
                **fields,
            )
        )
        return events


def event_json(event: TicketEvent) -> bytes:
    """An event as producers put it on ``ticket-events``: the fields it has, nothing more."""
    return event.model_dump_json(exclude_none=True, exclude_defaults=True).encode()


def _folded(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key.casefold(): value for key, value in mapping.items()}


def json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # ValueError: also an integer of 4,300 digits
        raise NotJson(f"not JSON: {exc}"[:300]) from None
    if not isinstance(payload, dict):
        raise NotJson("not a JSON object")
    return payload


def dig(payload: Any, *path: str | int) -> Any:
    """``payload[path[0]][path[1]]...``, None where any step is missing or of another type."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(payload, list) or not -len(payload) <= step < len(payload):
                return None
        elif not isinstance(payload, dict):
            return None
        payload = payload[step] if isinstance(step, int) else payload.get(step)
    return payload


def required(payload: Any, *path: str | int) -> Any:
    value = dig(payload, *path)
    if value is None or value == "":
        raise Unmappable(f"no {'.'.join(str(step) for step in path)}")
    return value


# Epoch numbers: which unit a number is in, by its size (seconds reach 1e10 in 2286).
_EPOCH_UNITS = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3), (0.0, 1.0))


def instant(value: object) -> str:
    """ISO 8601 with an offset from what vendors send: ISO text (``Z``, ``+03:00``, Jira's
    ``+0300``, Rails' ``2020-03-03 13:05:57 UTC``), or epoch seconds, milliseconds,
    microseconds or nanoseconds (numbers or digits)."""
    if isinstance(value, bool) or value is None:
        raise Unmappable(f"no timestamp: {value!r}")
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        number = float(value)
        divisor = next(unit for floor, unit in _EPOCH_UNITS if abs(number) >= floor)
        try:
            moment = datetime.fromtimestamp(number / divisor, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise Unmappable(f"timestamp out of range: {value!r}") from exc
        return moment.isoformat()
    if not isinstance(value, str):
        raise Unmappable(f"timestamp is not text or a number: {value!r}")
    text = value.strip()
    if text.endswith(" UTC"):  # Rails' default, as Chatwoot sends it
        text = text.removesuffix(" UTC") + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Unmappable(f"timestamp is not ISO 8601: {value[:64]!r}") from None
    if moment.utcoffset() is None:
        raise Unmappable(f"timestamp has no UTC offset: {value[:64]!r}")
    return moment.isoformat()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
