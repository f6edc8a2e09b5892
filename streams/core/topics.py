"""Topic names and their creation, shared by the worker and the producers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

if TYPE_CHECKING:  # the configuration imports the records, which name these topics
    from streams.config import FlowgaugeConfig

INPUT = "ticket-events"
DEAD_LETTERS = "ticket-events.dlq"
FLOW = "backlog.flow"
AGING = "backlog.aging"
ALERTS = "backlog.alerts"
SLA = "ticket.sla"
INDICATORS = "backlog.indicators"
PUBLIC_TOPICS = (INPUT, DEAD_LETTERS, FLOW, AGING, ALERTS, SLA, INDICATORS)
# A dead letter holds its input in base64 (4/3 of the size) and a reason: room for an
# input at the broker's default limit of about 1 MiB.
TOPIC_CONFIGS = {DEAD_LETTERS: {"max.message.bytes": str(8 * 1024 * 1024)}}

log = logging.getLogger(__name__)


def bootstrap(config: FlowgaugeConfig) -> str:
    if not config.broker:
        raise SystemExit("no broker: set FLOWGAUGE_BROKER=kafka://host:port or pass --broker")
    return config.broker.removeprefix("kafka://")


async def ensure_topics(config: FlowgaugeConfig, attempts: int = 30) -> int:
    """Create the input, dead-letter and derived topics that are missing; the input's partitions.

    Created here, before any worker runs, rather than by a producer's first metadata request:
    two workers auto-creating the same topic at once can leave the embedded broker without an
    answer to one of them, and a user's broker may not auto-create topics at all.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(config))
    for attempt in range(attempts):
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        for name in PUBLIC_TOPICS:
            if name not in existing:
                topic = NewTopic(
                    name,
                    num_partitions=config.partitions,
                    replication_factor=1,
                    topic_configs=TOPIC_CONFIGS.get(name, {}),
                )
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics([topic])
                    log.info("created %s with %d partitions", name, config.partitions)
        described = await admin.describe_topics([INPUT])
        return len(described[0]["partitions"])
    finally:
        await admin.close()
