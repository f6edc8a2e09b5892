"""Records to the broker as one record batch per topic partition.

Faust's ``Topic.send`` costs a future, a pending-message object and a partitioner call
per record, more than building the record; a catch-up publishes three or more records
per scope and boundary, and a busy ticket stage writes a changelog record per ticket it
changed. aiokafka's batch interface appends each record to a buffer (its C record
builder) and hands the producer one batch per partition. The caller awaits the returned
futures before it acks its input, as it awaited the sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from faust.types import AppT

Record = tuple[str, bytes, bytes]  # topic, key, value
Placed = tuple[str, int, bytes, bytes | None]  # topic, partition, key, value (None deletes)


async def publish(
    producer: AIOKafkaProducer, records: Iterable[Record]
) -> list[asyncio.Future[Any]]:
    """Send ``records`` partitioned by key as aiokafka's ``send`` would, in order per topic
    partition; one future per batch sent."""
    partitions: dict[tuple[str, bytes], int] = {}  # a scope's records are most of them
    placed: list[Placed] = []
    for topic, key, value in records:
        partition = partitions.get((topic, key))
        if partition is None:
            await producer.client._wait_on_metadata(topic)
            partition = producer._partition(topic, None, key, value, key, value)
            partitions[(topic, key)] = partition
        placed.append((topic, partition, key, value))
    return await publish_placed(producer, placed)


async def publish_placed(
    producer: AIOKafkaProducer, records: Iterable[Placed]
) -> list[asyncio.Future[Any]]:
    """Send ``records`` to the partitions they name, in order per topic partition."""
    batches: dict[tuple[str, int], Any] = {}
    sent: list[asyncio.Future[Any]] = []
    for topic, partition, key, value in records:
        batch = batches.get((topic, partition))
        if batch is not None and batch.append(key=key, value=value, timestamp=None) is None:
            sent.append(await producer.send_batch(batch, topic, partition=partition))  # full
            batch = None
        if batch is None:  # a new batch takes its first record whatever its size
            batch = batches[(topic, partition)] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
    for (topic, partition), batch in batches.items():
        sent.append(await producer.send_batch(batch, topic, partition=partition))
    return sent


def kafka_producer(app: AppT) -> AIOKafkaProducer:
    """The aiokafka producer under Faust's, started with the worker (as in metadata.py)."""
    producer: Any = app.producer
    return producer._ensure_producer()
