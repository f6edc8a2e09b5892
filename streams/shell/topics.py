"""Creating the topics: the public ones before any worker runs, and every topic a worker
writes to, declared again after a broker loss (``streams.workarounds.redeclare``)."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from streams.config import FlowgaugeConfig
from streams.core.timeline import parse_duration
from streams.core.topics import INPUT, PUBLIC_TOPICS, public_topic_configs
from streams.kafka import Kafka

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layout:
    """How flowgauge's topics sit on the cluster, as ``ensure_topics`` found or chose it."""

    partitions: int  # of the input, and so of every internal topic and changelog
    replication: int
    min_insync: int
    derived_retention_ms: int

    @property
    def configs(self) -> dict[str, str]:
        """What every topic flowgauge makes is created with, beyond its own settings."""
        return {"min.insync.replicas": str(self.min_insync)}

    def public_configs(self) -> dict[str, dict[str, str]]:
        return public_topic_configs(self.min_insync, self.derived_retention_ms)


async def ensure_topics(config: FlowgaugeConfig, kafka: Kafka) -> Layout:
    """Create the public topics that are missing (or, with ``create_topics`` off, refuse to
    start without them), warn about those whose layout differs from the configuration, and
    say how every topic is laid out: replication ``min(3, brokers)`` unless configured.

    Created here, before any worker runs, rather than by a producer's first metadata request:
    two workers auto-creating the same topic at once can leave the embedded broker without an
    answer to one of them, and a user's broker may not auto-create topics at all.
    """
    await kafka.connect()
    admin = kafka.admin()
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        replication = config.replication or min(3, brokers)
        min_insync = config.min_insync_replicas or max(1, replication - 1)
        retention_ms = parse_duration(config.derived_retention) * 1000
        wanted = public_topic_configs(min_insync, retention_ms)
        existing = set(await admin.list_topics())
        missing = [name for name in PUBLIC_TOPICS if name not in existing]
        if not config.create_topics:
            refuse_missing(missing)
        for name in missing:
            topic = NewTopic(name, config.partitions, replication, topic_configs=wanted[name])
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([topic])
                log.info("created %s with %d partitions", name, config.partitions)
        found = [name for name in PUBLIC_TOPICS if name in existing]
        for difference in await _differences(admin, found, config.partitions, replication, wanted):
            log.warning("%s (left as it is)", difference)
        described = await admin.describe_topics([INPUT])
        return Layout(len(described[0]["partitions"]), replication, min_insync, retention_ms)
    finally:
        await admin.close()


async def _differences(
    admin: AIOKafkaAdminClient,
    names: list[str],
    partitions: int,
    replication: int,
    wanted: dict[str, dict[str, str]],
) -> list[str]:
    """How existing topics differ from what flowgauge would create: partitions, replication,
    and for the derived topics cleanup and retention."""
    if not names:
        return []
    differences = []
    for topic in await admin.describe_topics(names):
        laid_out = topic["partitions"]
        found = {"partitions": len(laid_out), "replication": len(laid_out[0]["replicas"])}
        for key, value in {"partitions": partitions, "replication": replication}.items():
            if found[key] != value:
                differences.append(f"{topic['topic']}: {key} is {found[key]}, configured {value}")
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    for response in await admin.describe_configs(resources):
        for error, message, _, name, entries in response.resources:
            if error:  # say so rather than report every setting as unset
                differences.append(f"{name}: its configuration could not be read: {message}")
                continue
            configured = {entry[0]: entry[1] for entry in entries}
            for key in ("cleanup.policy", "retention.ms"):
                want = wanted[name].get(key)
                if want is not None and configured.get(key) != want:
                    differences.append(
                        f"{name}: {key} is {configured.get(key, 'unset')}, configured {want}"
                    )
    return differences


def refuse_missing(missing: list[str]) -> None:
    """Stop where flowgauge may not create topics and some are missing."""
    if missing:
        raise SystemExit(
            f"missing topics: {', '.join(missing)} (FLOWGAUGE_CREATE_TOPICS is false):"
            " create them as docs/operations.md, 'Topics and ACLs', says"
        )


async def missing_topics(kafka: Kafka, topics: list[NewTopic]) -> list[str]:
    """Which of ``topics`` the cluster does not have; a warning for each of the others not
    public (``ensure_topics`` checked those) whose layout differs from ``topics``."""
    admin = kafka.admin()
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        found = [t for t in topics if t.name in existing and t.name not in PUBLIC_TOPICS]
        if found:
            partitions, replication = found[0].num_partitions, found[0].replication_factor
            wanted = {topic.name: dict(topic.topic_configs) for topic in found}
            names = [topic.name for topic in found]
            for difference in await _differences(admin, names, partitions, replication, wanted):
                log.warning("%s (left as it is)", difference)
    finally:
        await admin.close()
    return [topic.name for topic in topics if topic.name not in existing]


def declared_topics(app: faust.App, layout: Layout) -> list[NewTopic]:
    """Every topic the worker writes to or commits offsets on, as it would be created: the
    public ones (the input too: a commit on a topic nobody created fails on Tansu), its
    internal topics and its tables' changelogs."""
    configs = layout.public_configs()
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
        NewTopic(
            name,
            num_partitions=layout.partitions,
            replication_factor=layout.replication,
            topic_configs={**layout.configs, **config},
        )
        for name, config in sorted(configs.items())
    ]
