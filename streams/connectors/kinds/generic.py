"""Any helpdesk whose webhook posts one JSON change per delivery (or a list of them): the
mapping is configuration, JMESPath expressions over the body, and so is the authentication
(an HMAC in a header, or a static token). An in-house desk, say:

    [gateway.sources.mapping]
    events = "changes"                   # optional: the body holds a list of changes
    types = { "ticket.opened" = "created", "reply.agent" = "agent_replied", "tag" = "ignore" }
    [gateway.sources.mapping.fields]
    event_id = "change_id"               # the desk's id of the change, not of the delivery
    ticket_id = "ticket.id"
    type = "kind"
    occurred_at = "at"
    queue = "ticket.team"
    [gateway.sources.mapping.auth]
    header = "X-Desk-Signature"
    algorithm = "sha256"
    encoding = "hex"
    prefix = "sha256="
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streams.connectors.base import (
    Connector,
    Delivery,
    Ignored,
    Options,
    Source,
    Target,
    Unmappable,
)
from streams.connectors.signatures import Algorithm, Encoding, Hmac, Token
from streams.core.events import EventType, TicketEvent

REQUIRED_FIELDS = ("event_id", "ticket_id", "type", "occurred_at")
OPTIONAL_FIELDS = (
    "queue", "priority", "channel", "requester_id", "account_tier", "tags", "actor",
    "meaningful", "status", "resolution",
)  # fmt: skip
OurType = EventType | Literal["ignore"]


class GenericAuth(BaseModel):
    """``hmac``: ``header`` = ``prefix`` + HMAC(secret, [timestamp + separator +] body);
    ``token``: the secret as a bearer token or basic-auth password in ``header``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: Literal["hmac", "token"] = "hmac"
    header: str = "X-Signature"
    algorithm: Algorithm = "sha256"
    encoding: Encoding = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    timestamp_separator: str = ""

    def verifier(self) -> Hmac | Token:
        if self.scheme == "token":
            return Token(self.header)
        return Hmac(
            self.header, self.algorithm, self.encoding, self.prefix, self.timestamp_header,
            self.timestamp_separator.encode(),
        )  # fmt: skip


class GenericOptions(Options):
    auth: GenericAuth = GenericAuth()
    events: str | None = Field(None, description="JMESPath to a list of changes in the body")
    fields: dict[str, str] = Field(description="our field -> JMESPath over one change")
    types: dict[str, OurType] = Field(
        default_factory=dict, description="the vendor's value of `type` -> ours, or ignore"
    )

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, fields: dict[str, str]) -> dict[str, str]:
        missing = [name for name in REQUIRED_FIELDS if name not in fields]
        unknown = sorted(set(fields) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
        if missing or unknown:
            raise ValueError(f"fields: missing {missing}, unknown {unknown}")
        return fields

    @model_validator(mode="after")
    def _expressions_compile(self) -> GenericOptions:
        for name, expression in {**self.fields, "events": self.events or "@"}.items():
            try:
                jmespath.compile(expression)
            except JMESPathError as exc:
                raise ValueError(
                    f"{name}: {expression!r} is no JMESPath expression: {exc}"
                ) from None
        return self


class Generic(Connector):
    kind: ClassVar[str] = "generic"
    options_model = GenericOptions
    default_statuses: ClassVar[dict[str, Target]] = {
        "new": "open",
        "open": "open",
        "active": "open",
        "pending": "pending",
        "waiting": "pending",
        "on_hold": "on_hold",
        "on hold": "on_hold",
        "hold": "on_hold",
        "solved": "solved",
        "resolved": "solved",
        "closed": "closed",
        "spam": "spam",
    }

    def __init__(self, source: Source, options: Options) -> None:
        super().__init__(source, options)
        assert isinstance(options, GenericOptions)
        self.signature = options.auth.verifier()
        self.fields: dict[str, ParsedResult] = {
            name: jmespath.compile(expression) for name, expression in options.fields.items()
        }
        self.items = jmespath.compile(options.events) if options.events else None
        self.types = {key.casefold(): value for key, value in options.types.items()}

    def map(self, delivery: Delivery) -> list[TicketEvent] | Ignored:
        changes = [delivery.payload] if self.items is None else self.items.search(delivery.payload)
        if not isinstance(changes, list):
            raise Unmappable("the events expression does not give a list")
        events = [event for change in changes for event in self._change(change)]
        return events or Ignored("every change is of an ignored type")

    def _change(self, change: Any) -> list[TicketEvent]:
        values = {name: expression.search(change) for name, expression in self.fields.items()}
        for name in REQUIRED_FIELDS:
            if values[name] is None or values[name] == "":
                raise Unmappable(f"mapping.fields.{name} finds nothing in the body")
        kind = self._type(values.pop("type"))
        if kind == "ignore":
            return []
        ticket, change_id, when = (
            values.pop("ticket_id"),
            values.pop("event_id"),
            values.pop("occurred_at"),
        )
        values["queue"] = self.queue(values.get("queue"))
        values["priority"] = self.priority(values.get("priority"))
        if values.get("requester_id") is not None:
            values["requester_id"] = self.requester(values["requester_id"])
        status = values.pop("status", None)
        if kind is EventType.STATUS_CHANGED and status is not None:
            target = self.status(status) or "open"
            # The previous status is not known: out of done is a reopen.
            return self.status_events(target, None, ticket, str(change_id), when, **values)
        return [self.event(kind, ticket, str(change_id), when, **values)]

    def _type(self, value: Any) -> OurType:
        text = str(value).casefold()
        if text in self.types:
            return self.types[text]
        try:
            return EventType(text)
        except ValueError:
            raise Unmappable(f"type {str(value)[:64]!r} is not mapped (mapping.types)") from None
