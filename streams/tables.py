"""A typed view of a Faust table whose writes name their changelog partition explicitly.

Faust picks a write's changelog partition from the event being processed, which
``take_events`` batches do not set per key. Naming it keeps every key in the
partition its input came from, so recovery after a rebalance finds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from faust.types import AppT, TableT

from streams import codec


class PartitionedTable:
    def __init__(self, table: TableT) -> None:
        self.table = table

    @classmethod
    def create(cls, app: AppT, name: str, partitions: int) -> PartitionedTable:
        """A table of internal state: bytes keys, pickled core dataclasses as values."""
        table = app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes)
        table.value_serializer = codec.NAME
        return cls(table)

    def get(self, key: bytes) -> Any:
        # The store, not the table: no per-read sensor call on the hot path.
        return self.table.data.get(key)

    def put(self, partition: int, key: bytes, value: Any) -> None:
        store = self.table.data
        store[key] = value
        # The memory store only knows the partition of recovered keys; without this
        # it keeps a key after its partition moves to another worker.
        store._key_partition[key] = partition
        self.table.send_changelog(partition, key, value)

    def values(self) -> Iterator[Any]:
        return iter(list(self.table.data.values()))
