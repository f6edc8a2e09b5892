"""What the stages of one worker share: the app, its settings, the internal topics between
the stages, the metrics, and how a stage sends to those topics and waits for the acks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP
from mode.supervisors import CrashingSupervisor

from streams.config import FlowgaugeConfig
from streams.core.scope import Settings
from streams.core.stages import Contacts, Progress, ScopeDelta, by_dimension, dimension_partition
from streams.kafka import Kafka
from streams.outputs.metrics import PipelineMetrics
from streams.shell import codec
from streams.shell.tables import PartitionedTable
from streams.shell.topics import Layout

DELTAS = "scope-deltas"
CONTACTS = "requester-contacts"
# A scope's state is one changelog value and grows with its open tickets (docs/operations.md).
STATE_MESSAGE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Wiring:
    app: faust.App
    config: FlowgaugeConfig
    settings: Settings
    partitions: int  # of the input topic, and so of every internal topic and table
    topic_configs: dict[str, str]  # what every internal topic and changelog is created with
    kafka: Kafka
    metrics: PipelineMetrics
    deltas: Any  # the scope stage's input, keyed by scope (a faust TopicT)
    contacts: Any  # the requester stage's input, one value per requester partition

    @classmethod
    def of(cls, app: faust.App, config: FlowgaugeConfig, layout: Layout, kafka: Kafka) -> Wiring:
        def internal(name: str) -> Any:
            return app.topic(
                f"{config.app_id}-{name}", partitions=layout.partitions, internal=True,
                key_type=bytes, key_serializer="raw", value_serializer=codec.NAME,
                config=layout.configs,
            )  # fmt: skip

        return cls(
            app, config, config.core(), layout.partitions, layout.configs, kafka,
            PipelineMetrics(config.label_cap), internal(DELTAS), internal(CONTACTS),
        )  # fmt: skip

    def raw(self, name: str) -> Any:
        """A public topic of bytes keys and values."""
        return self.app.topic(
            name, partitions=self.partitions, key_type=bytes, value_type=bytes,
            key_serializer="raw", value_serializer="raw",
        )  # fmt: skip

    def table(self, name: str, on_load: Callable[[Any], None] | None = None) -> PartitionedTable:
        configs = {**self.topic_configs, "max.message.bytes": str(STATE_MESSAGE_BYTES)}
        return PartitionedTable.create(self.app, name, self.partitions, configs, on_load)

    def stage(
        self, channel: Any, name: str, process: Callable[[list[Any]], Awaitable[None]]
    ) -> None:
        """An agent named ``name`` that hands ``process`` the channel's events a batch at a
        time. An error in a stage stops the worker: it restarts from the changelogs, never
        from in-memory state that a failed batch has half changed."""
        size, within = self.config.batch_size, self.config.batch_seconds

        async def take(stream: Any) -> AsyncIterator[None]:
            async for batch in stream.take_events(size, within=within):
                await process(batch)
                yield None

        self.app.agent(channel, name=name, supervisor_strategy=CrashingSupervisor)(take)

    async def send_deltas(self, deltas: Iterable[ScopeDelta]) -> list[Any]:
        """A batch's deltas as one message per dimension, to the dimension's partition."""
        return [
            await self.deltas.send(
                key=message.dimension.encode(),
                value=message,
                force=True,
                partition=dimension_partition(message.dimension, self.partitions),
            )
            for message in by_dimension(deltas)
        ]

    def owned(self, topic: str) -> list[TP]:
        """The partitions of ``topic`` this worker actively owns."""
        return sorted(tp for tp in self.app.assignor.assigned_actives() if tp.topic == topic)


def partition_key(partition: int) -> bytes:
    return f"partition/{partition}".encode()


async def broadcast(topic: faust.TopicT, progress: Progress, partitions: int) -> list[Any]:
    return [
        await topic.send(key=None, value=progress, partition=p, force=True)
        for p in range(partitions)
    ]


async def to_each(topic: faust.TopicT, values: list[Contacts]) -> list[Any]:
    """One value to each partition, the n-th to partition n."""
    return [
        await topic.send(key=None, value=value, partition=p, force=True)
        for p, value in enumerate(values)
    ]


async def acked(sends: Iterable[Any]) -> None:
    futures = []
    for sent in sends:
        futures += sent if isinstance(sent, list) else [sent]
    if futures:
        await asyncio.gather(*futures)
