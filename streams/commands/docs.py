"""The metrics and topics references, rendered from the code: ``flowgauge docs``.

docs/reference.md holds each table between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``;
:func:`update` rewrites them, and ``tests/test_reference.py`` fails when they differ.

The metrics table lists every family a worker serves, named as ``/metrics`` spells it
(counters with ``_total``), read from a worker's registry after it has counted a short
simulated stream, so that every family has samples and their labels show.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from prometheus_client.core import Metric
from pydantic import BaseModel

from streams.commands.report import run
from streams.commands.simulate import Scenario, encode, generate_events
from streams.config import FlowgaugeConfig
from streams.core.events import TicketEvent
from streams.core.scope import Emitted, ScopeState, Settings
from streams.core.stages import Message, ScopeRecord, run_ticket_batch
from streams.core.topics import (
    AGING,
    ALERTS,
    DEAD_LETTERS,
    FLOW,
    FORECAST,
    INDICATORS,
    INPUT,
    PUBLIC_TOPICS,
    PULL,
    REJECTED,
    SLA,
)
from streams.outputs.metrics import PipelineMetrics
from streams.outputs.records import (
    EXAMPLES,
    AgingRecord,
    AlertRecord,
    DeadLetter,
    FlowRecord,
    ForecastRecord,
    IndicatorRecord,
    PullRecord,
    Rejected,
    SlaRecord,
)

DEFAULT_PAGE = Path("docs/reference.md")
SAMPLE = Scenario(days=3, seed=7)
# Suffix of the served sample name, and the further samples a family serves.
SERVED = {"counter": ("_total", ""), "gauge": ("", ""), "histogram": ("", "_bucket, _sum, _count")}
METRICS_HEADER = "| metric | type | labels | meaning |\n| --- | --- | --- | --- |\n"
TOPICS_HEADER = "| topic | key | value |\n| --- | --- | --- |\n"
APP_PREFIX = "<app>-"


@dataclass(frozen=True)
class PublicTopic:
    key: str
    model: type[BaseModel]


PUBLIC = {
    INPUT: PublicTopic("ticket_id", TicketEvent),
    DEAD_LETTERS: PublicTopic("the original key", DeadLetter),
    FLOW: PublicTopic("scope", FlowRecord),
    AGING: PublicTopic("scope", AgingRecord),
    ALERTS: PublicTopic("incident_id", AlertRecord),
    SLA: PublicTopic("ticket_id", SlaRecord),
    INDICATORS: PublicTopic("scope", IndicatorRecord),
    FORECAST: PublicTopic("scope", ForecastRecord),
    PULL: PublicTopic("queue:NAME", PullRecord),
    REJECTED: PublicTopic("the source instance's name", Rejected),
}
# Internal topics by name without the app id: key, pickled value.
INTERNAL = {
    "scope-deltas": (
        "dimension (`all`, `queue`, `priority`, `channel`: partition 0..3 mod N)",
        "`DimensionDeltas`: a batch's `ScopeDelta`s of one dimension and source partition;"
        " `Progress` per source partition, `Relay` per requester partition, `Resume` from"
        " the scope stage to itself",
    ),
    "requester-contacts": (
        "none (partition by requester)",
        "`Contacts`: a ticket batch's openings and resolutions per requester, then its progress",
    ),
    "tickets-changelog": ("ticket_id", "`Ticket`: state machine, scopes, SLA clocks"),
    "input-logs-changelog": (
        "partition/N",
        "`SourceLog`: last input offset read and what makes offsets positions after a lost log",
    ),
    "requesters-changelog": (
        "requester:ID or ticket:ID",
        "`Requester`: recent openings, resolutions and reopens",
    ),
    "requester-partitions-changelog": (
        "partition/N",
        "`RequesterPartitionRecord`: the input's progress, for forgetting requesters;"
        " its contacts log",
    ),
    "held-back-changelog": (
        "N/scope",
        "a scope's transitions held back until their boundary settles, one segment per"
        " batch that held some back; deleted once all are applied",
    ),
    "scopes-changelog": (
        "scope",
        "`ScopeRecord`: windows, aging index, applied positions, its held-back segments",
    ),
    "scope-partitions-changelog": (
        "partition/N",
        "`PartitionRecord`: watermarks of the source partitions, scopes held",
    ),
}


# Metrics


def feed(
    metrics: PipelineMetrics, lines: Sequence[bytes], settings: Settings, grace_us: int
) -> list[ScopeRecord]:
    """Count ``lines`` as one worker owning every partition would; the scopes it exports."""
    messages = [Message(0, offset, None, line) for offset, line in enumerate(lines)]
    batch = run_ticket_batch(messages, lambda _: None, {}, grace_us, settings.sla, 1, {})
    metrics.count_ticket_batch(batch)
    emitted, counters = run(lines, settings, grace_us)
    metrics.count_snapshots(emitted)
    for dimension, folded in counters.folded.items():
        metrics.count_folded(dimension, folded)
    metrics.set_lag({0: 0})
    latest = {item.flow.scope: item for item in emitted}  # ordered by as_of: the last wins
    return [_exported(scope, item, settings) for scope, item in latest.items()]


def _exported(scope: str, item: Emitted, settings: Settings) -> ScopeRecord:
    state = ScopeState.new(scope, settings)
    state.plan = item.plan
    return ScopeRecord(state, 0, last=item)


def sample_metrics() -> PipelineMetrics:
    """A worker's metrics after it counted a few simulated days with the default settings."""
    config = FlowgaugeConfig.model_validate({})
    metrics = PipelineMetrics(config.label_cap)
    lines = [encode(event) for event in generate_events(SAMPLE)]
    settings = config.core()
    if settings.forecast is not None:  # a few days are enough to show the forecast's series
        settings = replace(settings, forecast=replace(settings.forecast, min_days=1))
    metrics.render(feed(metrics, lines, settings, config.grace_us))
    metrics.count_chat("slack", "delivered")  # the notifier's counter, served after a post
    metrics.folded.labels("queue")  # served once a dimension has more values than the cap
    return metrics


def served_name(family: Metric) -> str:
    return family.name + SERVED[family.type][0]


def _labels(family: Metric) -> list[str]:
    if not family.samples:
        raise ValueError(f"{family.name} has no samples to read labels from: feed it in docs")
    names = dict.fromkeys(name for sample in family.samples for name in sample.labels)
    names.pop("le", None)
    return list(names)


def _metric_row(family: Metric) -> str:
    name = f"`{served_name(family)}`"
    if more := SERVED[family.type][1]:
        name += f" ({more})"
    labels = ", ".join(_labels(family))
    return f"| {name} | {family.type} | {labels} | {family.documentation} |\n"


def metrics_table(metrics: PipelineMetrics) -> str:
    return METRICS_HEADER + "".join(_metric_row(f) for f in metrics.registry.collect())


# Topics


def _schema_file(model: type[BaseModel]) -> str:
    (name,) = [name for name, example in EXAMPLES.items() if type(example) is model]
    return f"../schemas/{name}.schema.json"  # from docs/


def _public_row(topic: str) -> str:
    spec = PUBLIC[topic]
    fields = ", ".join(spec.model.model_fields)
    schema = _schema_file(spec.model)
    value = f"`{spec.model.__name__}` JSON: {fields} ([schema]({schema}))"
    return f"| `{topic}` | {spec.key} | {value} |\n"


def internal_topics(app_id: str = "flowgauge") -> list[str]:
    """The internal topics a worker produces to, as ``build_app`` declares them."""
    from streams.kafka import Kafka
    from streams.shell.app import build_app
    from streams.shell.topics import Layout
    from streams.shell.wiring import DELTAS

    config = FlowgaugeConfig.model_validate({"app_id": app_id, "broker": "kafka://localhost:9092"})
    app = build_app(config, Layout(1, 1, 1, 0), Kafka.of(config))
    names = [f"{app_id}-{DELTAS}", *sorted(app.tables.changelog_topics)]
    return [name.removeprefix(f"{app_id}-") for name in names]


def _internal_row(name: str) -> str:
    key, value = INTERNAL[name]
    return f"| `{APP_PREFIX}{name}` | {key} | {value} (pickled) |\n"


def topics_table(public: Iterable[str], internal: Iterable[str]) -> str:
    rows = [_public_row(topic) for topic in public] + [_internal_row(name) for name in internal]
    return TOPICS_HEADER + "".join(rows)


# The reference page


def sections() -> dict[str, str]:
    """Marker name to the text between its markers."""
    return {
        "metrics": metrics_table(sample_metrics()),
        "topics": topics_table(PUBLIC_TOPICS, internal_topics()),
    }


def replace_section(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    before, found_start, rest = text.partition(start)
    _, found_end, after = rest.partition(end)
    if not (found_start and found_end):
        raise ValueError(f"the page has no {start} ... {end} section")
    return f"{before}{start}\n{body}{end}{after}"


def rendered(text: str) -> str:
    for name, body in sections().items():
        text = replace_section(text, name, body)
    return text


def update(page: Path = DEFAULT_PAGE) -> bool:
    """Rewrite the generated sections of ``page``; True when it changed."""
    text = page.read_text()
    new = rendered(text)
    if new != text:
        page.write_text(new)
    return new != text
