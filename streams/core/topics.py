"""The names of flowgauge's public topics and the settings they are created with."""

from __future__ import annotations

INPUT = "ticket-events"
DEAD_LETTERS = "ticket-events.dlq"
FLOW = "backlog.flow"
AGING = "backlog.aging"
ALERTS = "backlog.alerts"
SLA = "ticket.sla"
INDICATORS = "backlog.indicators"
FORECAST = "backlog.forecast"
PULL = "backlog.pull"
# Connector deliveries that verified but could not be mapped (they may hold personal data).
REJECTED = "ticket-events.rejected"
PUBLIC_TOPICS = (
    INPUT,
    DEAD_LETTERS,
    FLOW,
    AGING,
    ALERTS,
    SLA,
    INDICATORS,
    FORECAST,
    PULL,
    REJECTED,
)
DERIVED_TOPICS = (FLOW, AGING, ALERTS, SLA, INDICATORS, FORECAST, PULL)
# Kept for a time, not compacted: history, not tables.
RETAINED_TOPICS = (*DERIVED_TOPICS, REJECTED)
# A dead letter holds its input in base64 (4/3 of the size) and a reason: room for an
# input at the broker's default limit of about 1 MiB.
TOPIC_CONFIGS = {
    DEAD_LETTERS: {"max.message.bytes": str(8 * 1024 * 1024)},
    REJECTED: {"max.message.bytes": str(8 * 1024 * 1024)},
}


def public_topic_configs(min_insync: int, derived_retention_ms: int) -> dict[str, dict[str, str]]:
    """What each public topic is created with: the derived ones keep their history for a
    time (a replay writes the same keys again; readers such as a web view read it back)."""
    derived = {"cleanup.policy": "delete", "retention.ms": str(derived_retention_ms)}
    return {
        name: {
            "min.insync.replicas": str(min_insync),
            **TOPIC_CONFIGS.get(name, {}),
            **(derived if name in RETAINED_TOPICS else {}),
        }
        for name in PUBLIC_TOPICS
    }
