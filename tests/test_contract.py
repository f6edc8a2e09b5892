"""The event contract and the derived records: validation rules and schemas/ in step with models."""

from __future__ import annotations

import json

import jsonschema
import pytest

from streams.commands.report import run
from streams.commands.simulate import Scenario, encode, generate_events
from streams.core.events import InvalidEvent, TicketEvent, parse_event
from streams.core.timeline import US_PER_SECOND
from streams.core.topics import AGING, ALERTS, FLOW, FORECAST, INDICATORS, PULL, SLA
from streams.outputs.records import (
    EXAMPLES,
    AgingRecord,
    AlertRecord,
    FlowRecord,
    ForecastRecord,
    IndicatorRecord,
    PullRecord,
    Record,
    SlaRecord,
    outgoing,
    render_schemas,
)
from tests.conftest import ROOT, core_settings

SCHEMAS = ROOT / "schemas"
VALID = {
    "event_id": "E1",
    "ticket_id": "T1",
    "type": "created",
    "occurred_at": "2026-03-02T08:00:00Z",
}


def _event(**changes: object) -> bytes:
    return json.dumps({**VALID, **changes}).encode()


def test_schema_files_are_exactly_what_the_models_generate() -> None:
    rendered = render_schemas()
    on_disk = {path.name: path.read_text() for path in SCHEMAS.glob("*.json")}
    assert on_disk == rendered, "schemas/ drifted from the models: run `flowgauge schemas`"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_validates_against_its_schema(name: str) -> None:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    example = json.loads((SCHEMAS / f"{name}.example.json").read_text())
    jsonschema.validate(example, schema)


def test_a_schema_rejects_a_record_missing_a_required_field() -> None:
    schema = json.loads((SCHEMAS / "flow.schema.json").read_text())
    example = json.loads((SCHEMAS / "flow.example.json").read_text())
    del example["open"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(example, schema)


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [("urgent", "P0"), ("High", "P1"), ("NORMAL", "P2"), ("low", "P3"), ("p2", "P2"), ("P1", "P1")],
)
def test_priority_aliases_are_case_insensitive(alias: str, canonical: str) -> None:
    assert parse_event(_event(priority=alias)).priority == canonical


def test_defaults_and_unknown_fields() -> None:
    event = parse_event(_event(surprise={"nested": True}))
    assert (event.schema_version, event.meaningful, event.tags) == (1, True, [])
    assert event.queue is None  # the ticket's defaults apply in the state machine


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "event: Input should be an object"),
        (_event(ticket_id=None), "ticket_id"),
        (json.dumps({k: v for k, v in VALID.items() if k != "event_id"}).encode(), "event_id"),
        (_event(event_id=17), "event_id"),
        (_event(type="teleported"), "type"),
        (_event(schema_version=2), "schema_version"),
        (_event(occurred_at="2026-03-02T08:00:00"), "no UTC offset"),
        (_event(occurred_at="yesterday"), "not ISO 8601"),
        (_event(occurred_at=1772438400), "must be an ISO 8601 string"),
        (_event(priority="P7"), "priority"),
        (_event(ticket_id=""), "ticket_id"),
    ],
)
def test_invalid_events_are_rejected_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(raw)


def test_offsets_other_than_utc_are_converted_exactly() -> None:
    east = parse_event(_event(occurred_at="2026-03-02T10:00:00+02:00"))
    utc = parse_event(_event(occurred_at="2026-03-02T08:00:00Z"))
    assert east.occurred_us == utc.occurred_us
    assert isinstance(east, TicketEvent)


MODELS: dict[str, type[Record]] = {
    FLOW: FlowRecord,
    AGING: AgingRecord,
    SLA: SlaRecord,
    INDICATORS: IndicatorRecord,
    FORECAST: ForecastRecord,
    PULL: PullRecord,
    ALERTS: AlertRecord,
}


def test_every_published_record_is_its_model_to_the_byte() -> None:
    """``outgoing`` writes the records' fields without building the models: each record
    of ten simulated days must validate as its model and read back to the same bytes (a
    week and more: the alert rules decide nothing in a scope's first week)."""
    lines = [encode(event) for event in generate_events(Scenario(days=10, seed=3))]
    emitted, _ = run(lines, core_settings(), 600 * US_PER_SECOND)
    seen: dict[str, int] = dict.fromkeys(MODELS, 0)
    linked = 0

    def links(ticket_id: str) -> str | None:  # the helpdesk links some tickets, not all
        return f"https://desk.example/tickets/{ticket_id}" if ticket_id.endswith("1") else None

    for item in emitted:
        for topic, _, value in outgoing(
            item, "http://grafana.example/d/x", "7d", "7d", False, links
        ):
            model = MODELS[topic].model_validate_json(value)
            assert model.to_bytes() == value
            seen[topic] += 1
            if isinstance(model, SlaRecord) and model.link is not None:
                assert model.link == links(model.ticket_id)
                linked += 1
    assert all(seen.values()), seen  # every kind of record was checked
    assert 0 < linked < seen[SLA]
