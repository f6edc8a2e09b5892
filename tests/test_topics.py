"""Topics as a production cluster needs them: replication, min.insync.replicas, retention of
the derived topics, warnings for topics laid out otherwise, and a mode that creates nothing.
Read back with DescribeConfigs from the embedded broker (one for the module)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.commands.broker import EmbeddedBroker
from streams.config import FlowgaugeConfig
from streams.core.topics import DERIVED_TOPICS, FLOW, PUBLIC_TOPICS
from streams.kafka import Kafka
from streams.shell.topics import Layout, ensure_topics, missing_topics
from tests.cluster import workers

pytestmark = [pytest.mark.broker]
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


def admin_call(broker: EmbeddedBroker, call: Any) -> Any:
    async def run() -> Any:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.url.removeprefix("kafka://"))
        await admin.start()
        try:
            return await call(admin)
        finally:
            await admin.close()

    return asyncio.run(run())


def described(broker: EmbeddedBroker, names: list[str]) -> dict[str, dict[str, str]]:
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    responses = admin_call(broker, lambda admin: admin.describe_configs(resources))
    return {
        name: {entry[0]: entry[1] for entry in entries}
        for response in responses
        for _, _, _, name, entries in response.resources
    }


def replication(broker: EmbeddedBroker, names: list[str]) -> dict[str, int]:
    topics = admin_call(broker, lambda admin: admin.describe_topics(names))
    return {t["topic"]: len(t["partitions"][0]["replicas"]) for t in topics}


def test_topics_are_created_checked_and_never_changed_silently(
    broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {"broker": broker.url, "derived_retention": "7d"}
    # Where CreateTopics is forbidden: nothing is created, every missing topic is named.
    refusing = FlowgaugeConfig(**settings, create_topics=False)
    with pytest.raises(SystemExit, match=r"missing topics: ticket-events, ticket-events\.dlq"):
        asyncio.run(ensure_topics(refusing, Kafka.of(refusing)))
    assert admin_call(broker, lambda admin: admin.list_topics()) == []
    # A derived topic someone created otherwise is reported, and left as it is.
    old = NewTopic(FLOW, 2, 1, topic_configs={"cleanup.policy": "compact"})
    admin_call(broker, lambda admin: admin.create_topics([old]))
    with caplog.at_level(logging.WARNING, logger="streams.shell.topics"):
        config = FlowgaugeConfig(**settings)
        layout = asyncio.run(ensure_topics(config, Kafka.of(config)))
    assert layout == Layout(4, 1, 1, 7 * DAY_MS)  # one broker: replication min(3, 1)
    warnings = [record.getMessage() for record in caplog.records]
    assert "backlog.flow: partitions is 2, configured 4 (left as it is)" in warnings
    assert "backlog.flow: cleanup.policy is compact, configured delete (left as it is)" in warnings
    assert "backlog.flow: retention.ms is unset, configured 604800000 (left as it is)" in warnings
    assert len(warnings) == 3
    configs = described(broker, list(PUBLIC_TOPICS))
    assert configs[FLOW] == {"cleanup.policy": "compact"}
    for name in PUBLIC_TOPICS:
        if name != FLOW:
            assert configs[name]["min.insync.replicas"] == "1", name
    for name in set(DERIVED_TOPICS) - {FLOW}:
        assert configs[name]["cleanup.policy"] == "delete", name
        assert configs[name]["retention.ms"] == str(7 * DAY_MS), name
    assert set(replication(broker, list(PUBLIC_TOPICS)).values()) == {1}


@pytest.mark.slow
def test_the_workers_internal_topics_and_changelogs_get_the_layout(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    with workers(broker, tmp_path, 1, FLOWGAUGE_MIN_INSYNC_REPLICAS="1"):
        names = [
            name
            for name in admin_call(broker, lambda admin: admin.list_topics())
            # Faust's leader topic carries no state; it gets the replication only.
            if name.startswith("flowgauge-") and "__assignor" not in name
        ]
    assert replication(broker, names) == dict.fromkeys(names, 1)
    assert "flowgauge-scope-deltas" in names
    assert "flowgauge-scopes-changelog" in names
    for name, configs in described(broker, names).items():
        assert configs.get("min.insync.replicas") == "1", name
    state = described(broker, ["flowgauge-scopes-changelog"])["flowgauge-scopes-changelog"]
    assert state["max.message.bytes"] == str(32 * 1024 * 1024)


def test_a_worker_that_may_not_create_topics_names_those_missing(broker: EmbeddedBroker) -> None:
    """Public topics exist; a new app id's internal topics do not."""
    config = FlowgaugeConfig(broker=broker.url)
    asyncio.run(ensure_topics(config, Kafka.of(config)))
    environment = {
        **os.environ, "FLOWGAUGE_BROKER": broker.url, "FLOWGAUGE_CREATE_TOPICS": "false",
        "FLOWGAUGE_APP_ID": "fresh",
    }  # fmt: skip
    command = [sys.executable, "-m", "streams.commands.cli", "worker"]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "missing topics: fresh-" in done.stderr
    assert "fresh-scope-deltas" in done.stderr
    assert "fresh-tickets-changelog" in done.stderr
    assert not [t for t in admin_call(broker, lambda a: a.list_topics()) if t.startswith("fresh")]


def test_an_internal_topic_laid_out_otherwise_is_named_and_left_alone(
    broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A changelog someone created by hand, with two partitions and deletion: the worker
    says so before it starts, and changes nothing."""
    name = "handmade-tickets-changelog"
    handmade = NewTopic(name, 2, 1, topic_configs={"cleanup.policy": "delete"})
    admin_call(broker, lambda admin: admin.create_topics([handmade]))
    wanted = NewTopic(name, 4, 1, topic_configs={"cleanup.policy": "compact"})
    absent = NewTopic("handmade-scope-deltas", 4, 1)
    config = FlowgaugeConfig(broker=broker.url)
    with caplog.at_level(logging.WARNING, logger="streams.shell.topics"):
        missing = asyncio.run(missing_topics(Kafka.of(config), [wanted, absent]))
    assert missing == ["handmade-scope-deltas"]
    assert [record.getMessage() for record in caplog.records] == [
        f"{name}: partitions is 2, configured 4 (left as it is)",
        f"{name}: cleanup.policy is delete, configured compact (left as it is)",
    ]
    assert (
        len(admin_call(broker, lambda admin: admin.describe_topics([name]))[0]["partitions"]) == 2
    )
