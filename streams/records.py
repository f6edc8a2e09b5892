"""The records flowgauge writes to Kafka, as pydantic models: the edge of the system.

``schemas/`` holds their JSON Schema and one example each (``flowgauge schemas``).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from streams.aging import BANDS, AgingSnapshot
from streams.alerts import AlertTransition
from streams.events import TicketEvent
from streams.flow import FlowSnapshot
from streams.sla import SlaChange
from streams.timeline import iso


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class FlowRecord(Record):
    """``backlog.flow``, key = scope: inflow, outflow and level as of one boundary."""

    as_of: str = Field(description="the boundary, ISO 8601 UTC")
    scope: str = Field(description="all, queue:NAME, priority:P0..P3 or channel:NAME")
    open: int = Field(description="tickets open at as_of (transfers included for a scope)")
    inflow: dict[str, int] = Field(description="tickets opened or reopened, per window")
    outflow: dict[str, int] = Field(description="tickets resolved or closed, per window")
    transfers_in: dict[str, int]
    transfers_out: dict[str, int]

    @classmethod
    def of(cls, snapshot: FlowSnapshot) -> FlowRecord:
        return cls(
            as_of=iso(snapshot.as_of_us),
            scope=snapshot.scope,
            open=snapshot.open,
            inflow=snapshot.inflow,
            outflow=snapshot.outflow,
            transfers_in=snapshot.transfers_in,
            transfers_out=snapshot.transfers_out,
        )


class AgingRecord(Record):
    """``backlog.aging``, key = scope: the age of the open tickets as of one boundary."""

    as_of: str
    scope: str
    open: int
    bands: dict[str, int] = Field(description=", ".join(name for name, _, _ in BANDS))
    oldest_age_seconds: int
    untouched: int = Field(description="open tickets with no meaningful agent reply yet")
    p50_age_seconds: int
    p85_age_seconds: int
    p95_age_seconds: int
    sla: dict[str, dict[str, int]] = Field(
        description="open tickets at_risk and breached, per target (first_response, resolution)"
    )

    @classmethod
    def of(cls, snapshot: AgingSnapshot) -> AgingRecord:
        return cls(
            as_of=iso(snapshot.as_of_us),
            scope=snapshot.scope,
            open=snapshot.open,
            bands=snapshot.bands,
            oldest_age_seconds=snapshot.oldest_age_seconds,
            untouched=snapshot.untouched,
            p50_age_seconds=snapshot.percentiles[50],
            p85_age_seconds=snapshot.percentiles[85],
            p95_age_seconds=snapshot.percentiles[95],
            sla={
                target.value: {state.value: count for state, count in counts.items()}
                for target, counts in snapshot.sla.items()
            },
        )


class SlaRecord(Record):
    """``ticket.sla``, key = ticket_id: one SLA clock entered a state."""

    ticket_id: str
    target: Literal["first_response", "resolution"]
    state: Literal["at_risk", "breached", "met"]
    due_at: str = Field(description="when the target is (or was) used up, ISO 8601 UTC")
    as_of: str = Field(description="the instant the state changed, ISO 8601 UTC")

    @classmethod
    def of(cls, change: SlaChange) -> SlaRecord:
        return cls(
            ticket_id=change.ticket_id,
            target=change.target.value,
            state=change.state.value,
            due_at=iso(change.due_us),
            as_of=iso(change.as_of_us),
        )


class AlertRecord(Record):
    """``backlog.alerts``, key = incident_id: one firing or resolved transition."""

    alert_id: str = Field(description="unique and stable per transition: dedupe on it")
    incident_id: str = Field(description="shared by a firing and its resolution")
    rule: str
    scope: str
    state: Literal["firing", "resolved"]
    at: str = Field(description="the boundary at which the rule changed state, ISO 8601 UTC")
    value: float
    threshold: float
    summary: str

    @classmethod
    def of(cls, alert: AlertTransition, summary: str) -> AlertRecord:
        return cls(
            alert_id=alert.alert_id,
            incident_id=alert.incident_id,
            rule=alert.rule,
            scope=alert.scope,
            state=alert.state.value,
            at=iso(alert.at_us),
            value=alert.value,
            threshold=alert.threshold,
            summary=summary,
        )


class DeadLetter(Record):
    """``ticket-events.dlq``, key = the original key: an event that failed validation."""

    reason: str
    original_base64: str = Field(description="the message value exactly as received")
    source_topic: str
    source_partition: int
    source_offset: int

    @classmethod
    def of(cls, raw: bytes, reason: str, topic: str, partition: int, offset: int) -> DeadLetter:
        encoded = base64.b64encode(raw).decode("ascii")
        return cls(
            reason=reason,
            original_base64=encoded,
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
        )


EXAMPLES: dict[str, BaseModel] = {
    "ticket-event": TicketEvent.model_validate(
        {
            "event_id": "E1",
            "ticket_id": "T1",
            "type": "created",
            "occurred_at": "2026-03-02T08:03:00Z",
            "queue": "billing",
            "priority": "P1",
            "channel": "email",
            "requester_id": "R1",
            "tags": ["refund"],
        }
    ),
    "flow": FlowRecord(
        as_of="2026-03-02T09:00:00Z",
        scope="queue:billing",
        open=42,
        inflow={"1h": 3, "24h": 41, "7d": 260},
        outflow={"1h": 2, "24h": 38, "7d": 255},
        transfers_in={"1h": 0, "24h": 2, "7d": 9},
        transfers_out={"1h": 1, "24h": 1, "7d": 7},
    ),
    "aging": AgingRecord(
        as_of="2026-03-02T09:00:00Z",
        scope="all",
        open=3,
        bands={
            name: 1 if name in {"age_lt_1h", "age_1h_4h", "age_1d_3d"} else 0
            for name, _, _ in BANDS
        },
        oldest_age_seconds=90000,
        untouched=1,
        p50_age_seconds=7200,
        p85_age_seconds=90000,
        p95_age_seconds=90000,
        sla={
            "first_response": {"at_risk": 1, "breached": 0},
            "resolution": {"at_risk": 0, "breached": 1},
        },
    ),
    "sla": SlaRecord(
        ticket_id="T1",
        target="first_response",
        state="breached",
        due_at="2026-03-02T08:33:00Z",
        as_of="2026-03-02T08:33:00Z",
    ),
    "alert": AlertRecord(
        alert_id="inflow_above_outflow:queue:billing:2026-03-02T14:00:00Z:firing",
        incident_id="inflow_above_outflow:queue:billing:2026-03-02T14:00:00Z",
        rule="inflow_above_outflow",
        scope="queue:billing",
        state="firing",
        at="2026-03-02T14:00:00Z",
        value=26.0,
        threshold=0.0,
        summary="billing: inflow 214/day now exceeds outflow 188/day",
    ),
    "dead-letter": DeadLetter.of(
        b"{not json", "not JSON: key must be a string", "ticket-events", 2, 17
    ),
}


def render_schemas() -> dict[str, str]:
    """File name -> text of every schema and example, exactly as committed in schemas/."""
    files: dict[str, str] = {}
    for name, example in EXAMPLES.items():
        # The input is described as it is read, the outputs as they are written.
        mode: Literal["validation", "serialization"] = (
            "validation" if isinstance(example, TicketEvent) else "serialization"
        )
        schema = type(example).model_json_schema(mode=mode)
        files[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        files[f"{name}.example.json"] = (
            example.model_dump_json(indent=2, exclude_defaults=False) + "\n"
        )
    return files


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written
