"""A typed view of a Faust table whose writes name their changelog partition explicitly.

Faust picks a write's changelog partition from the event being processed, which
``take_events`` batches do not set per key. Naming it keeps every key in the
partition its input came from, so recovery after a rebalance finds it.

Faust commits an input offset without waiting for the changelog writes buffered
for it, so a kill -9 just after a commit would lose state the broker no longer
replays. Each stage therefore awaits ``written()`` before it lets its batch be acked.

Writes go out together, one record batch per changelog partition (``streams.shell.publish``),
when the stage flushes or awaits them: a busy ticket stage writes a record per ticket it
changed, and Faust's per-record send cost more than encoding it. The memory store keeps
no changelog offsets, so nothing of Faust's own bookkeeping is skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from faust.types import AppT, TableT

from streams.shell import codec
from streams.shell.publish import kafka_producer, publish_placed


class PartitionedTable:
    def __init__(
        self, table: TableT[Any, Any], on_load: Callable[[Any], None] | None = None
    ) -> None:
        self.table = table
        self.on_load = on_load  # called with each value decoded from the changelog
        self._unsent: list[tuple[int, bytes, bytes | None]] = []  # partition, key, value
        self._unconfirmed: list[asyncio.Future[Any]] = []

    @classmethod
    def create(
        cls,
        app: AppT,
        name: str,
        partitions: int,
        topic_configs: dict[str, str],
        on_load: Callable[[Any], None] | None = None,
    ) -> PartitionedTable:
        """A table of internal state: bytes keys, core dataclasses encoded by ``codec``;
        ``topic_configs``: what its changelog is created with."""
        table = app.Table(
            name, partitions=partitions, key_type=bytes, value_type=bytes,
            extra_topic_configs=topic_configs,
        )  # fmt: skip
        return cls(table, on_load)

    def get(self, key: bytes) -> Any:
        # The store, not the table: no per-read sensor call on the hot path.
        value = self.table.data.get(key)
        if isinstance(value, bytes):  # as recovered from the changelog: decode once
            value = self.table.data[key] = codec.loads(value)
            if self.on_load is not None:
                self.on_load(value)
        return value

    def put(self, partition: int, key: bytes, value: Any) -> None:
        store: Any = self.table.data
        store[key] = value
        # The memory store only knows the partition of recovered keys; without this
        # it keeps a key after its partition moves to another worker.
        store._key_partition[key] = partition
        # Serialized now: Faust would serialize at flush time, and by then a later,
        # unacknowledged batch may have changed the object.
        self._send(partition, key, codec.dumps(value))

    def delete(self, partition: int, key: bytes) -> None:
        store: Any = self.table.data
        store.pop(key, None)
        store._key_partition.pop(key, None)
        self._send(partition, key, None)

    async def flush(self) -> None:
        """Hand every write so far to the producer, without waiting for the broker."""
        unsent, self._unsent = self._unsent, []
        if unsent:
            topic = self.table.changelog_topic.get_topic_name()
            records = ((topic, partition, key, value) for partition, key, value in unsent)
            sent = await publish_placed(kafka_producer(self.table.app), records)
            self._unconfirmed += sent

    async def written(self) -> None:
        """Until the broker has acknowledged every write so far."""
        await self.flush()
        unconfirmed, self._unconfirmed = self._unconfirmed, []
        if unconfirmed:
            await asyncio.gather(*unconfirmed)

    def _send(self, partition: int, key: bytes, value: bytes | None) -> None:
        self._unsent.append((partition, key, value))

    def keys_in(self, partition: int) -> list[bytes]:
        store: Any = self.table.data
        return [key for key, owner in store._key_partition.items() if owner == partition]

    def size(self) -> int:
        return len(self.table.data)

    def values(self) -> Iterator[Any]:
        return (self.get(key) for key in list(self.table.data.keys()))


async def written(*tables: PartitionedTable) -> None:
    """Until the broker has acknowledged every write so far to ``tables``, all handed to
    the producer before the first wait."""
    for table in tables:
        await table.flush()
    for table in tables:
        await table.written()
