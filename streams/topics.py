"""Topic names and their creation, shared by the worker and the producers."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from streams.config import FlowgaugeConfig

INPUT = "ticket-events"
DEAD_LETTERS = "ticket-events.dlq"
FLOW = "backlog.flow"
AGING = "backlog.aging"
ALERTS = "backlog.alerts"

log = logging.getLogger(__name__)


def bootstrap(config: FlowgaugeConfig) -> str:
    if not config.broker:
        raise SystemExit("no broker: set FLOWGAUGE_BROKER=kafka://host:port or pass --broker")
    return config.broker.removeprefix("kafka://")


async def ensure_input_topic(config: FlowgaugeConfig, attempts: int = 30) -> int:
    """Create ``ticket-events`` with the configured partitions unless it exists; its partitions."""
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
        if INPUT not in await admin.list_topics():
            topic = NewTopic(INPUT, num_partitions=config.partitions, replication_factor=1)
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([topic])
                log.info("created %s with %d partitions", INPUT, config.partitions)
        described = await admin.describe_topics([INPUT])
        return len(described[0]["partitions"])
    finally:
        await admin.close()
