"""The metrics and topics references (docs/reference.md) are exactly what the code renders."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from streams.commands import docs
from streams.core.topics import PUBLIC_TOPICS
from streams.outputs.metrics import PipelineMetrics
from tests.conftest import ROOT, SHARED_FIXTURES, core_settings, need_path

REFERENCE = ROOT / "docs" / "reference.md"
GRACE_US = 600 * 1_000_000


def section(name: str) -> str:
    text = REFERENCE.read_text()
    return text.split(f"<!-- {name}:start -->\n", 1)[1].split(f"<!-- {name}:end -->", 1)[0]


def first_column(table: str) -> set[str]:
    """The first backquoted name of every body row of a Markdown table."""
    rows = table.splitlines()[2:]
    return {match.group(1) for row in rows if (match := re.match(r"\| `([^`]+)`", row))}


def test_reference_sections_are_what_flowgauge_docs_renders() -> None:
    text = REFERENCE.read_text()
    assert docs.rendered(text) == text, "docs/reference.md drifted: run `flowgauge docs`"


def test_metrics_reference_lists_exactly_the_metrics_a_worker_serves() -> None:
    events = need_path(SHARED_FIXTURES / "sample-events.jsonl", "shared fixtures")
    lines = [line for line in events.read_bytes().splitlines() if line.strip()]
    metrics = PipelineMetrics(label_cap=50)
    text = metrics.render(docs.feed(metrics, lines, core_settings(3600), GRACE_US)).decode()
    families = list(text_string_to_metric_families(text))
    # The text format has no type for X_created: the parser makes it a gauge of its own.
    timestamped = {f"{f.name}_created" for f in families if f.type in ("counter", "histogram")}
    served = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in families
        if family.name not in timestamped
    }
    samples = {sample.name for family in families for sample in family.samples}
    assert "flowgauge_sla_breached_tickets" in samples, "scope gauges are served"
    assert "flowgauge_first_response_seconds_bucket" in samples
    assert first_column(section("metrics")) == served


def test_topics_reference_lists_every_public_and_internal_topic() -> None:
    listed = first_column(section("topics"))
    assert set(PUBLIC_TOPICS) <= listed
    internal = {f"{docs.APP_PREFIX}{name}" for name in docs.internal_topics()}
    assert listed == set(PUBLIC_TOPICS) | internal
    for schema in re.findall(r"\((schemas/[^)]+)\)", section("topics")):
        assert (ROOT / schema).is_file(), schema
