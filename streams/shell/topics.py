"""Creating the topics: the public ones before any worker runs, and every topic a worker
writes to, declared again after a broker loss (``streams.workarounds.redeclare``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from streams.config import FlowgaugeConfig
from streams.core.topics import INPUT, PUBLIC_TOPICS, TOPIC_CONFIGS

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


def declared_topics(app: faust.App, partitions: int) -> list[NewTopic]:
    """Every topic the worker writes to or commits offsets on, as it would be created: the
    public ones (the input too: a commit on a topic nobody created fails on Tansu), its
    internal topics and its tables' changelogs."""
    configs = {name: TOPIC_CONFIGS.get(name, {}) for name in PUBLIC_TOPICS}
    for agent in app.agents.values():
        channel: Any = agent.channel
        if channel.internal:
            configs[channel.get_topic_name()] = dict(channel.config or {})
    for table in app.tables.values():
        changelog: Any = table.changelog_topic
        configs[changelog.get_topic_name()] = {
            "cleanup.policy": "compact",
            **(changelog.config or {}),
        }
    return [
        NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=config)
        for name, config in sorted(configs.items())
    ]
