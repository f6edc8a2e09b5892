"""The requester stage: per batch of contacts, find recontacts and undeflected AI resolutions
(``streams.core.stages.run_requester_batch``), send them to the scopes, then relay the
progress it has seen. Tables: ``requesters``, ``requester-partitions``."""

from __future__ import annotations

from typing import Any

from streams.core.recontact import Requester
from streams.core.stages import Contacts, Relay, RequesterPartitionRecord, run_requester_batch
from streams.core.timeline import US_PER_SECOND
from streams.shell import tables
from streams.shell.logs import is_new_log
from streams.shell.tables import PartitionedTable
from streams.shell.wiring import Wiring, acked, partition_key

# How far the input's event time moves between sweeps of forgotten requesters.
SWEEP_EVERY_US = 86400 * US_PER_SECOND


class RequesterStage:
    def __init__(self, wiring: Wiring) -> None:
        self.wiring = wiring
        self.requesters = wiring.table("requesters")
        self.partitions = wiring.table("requester-partitions")
        wiring.stage(wiring.contacts, "requesters", self._batch)

    async def _batch(self, batch: list[Any]) -> None:
        by_partition: dict[int, list[tuple[int, Contacts, bytes]]] = {}
        for event in batch:
            items = by_partition.setdefault(event.message.partition, [])
            items.append((event.message.offset, event.value, event.message.value))
        for partition, items in by_partition.items():
            await self._partition(partition, items)

    async def _partition(self, partition: int, items: list[tuple[int, Contacts, bytes]]) -> None:
        wiring = self.wiring
        key = partition_key(partition)
        record = self.partitions.get(key)
        if not isinstance(record, RequesterPartitionRecord):
            record = RequesterPartitionRecord(partition, wiring.partitions)
        topic = wiring.contacts.get_topic_name()
        first = min(offset for offset, _, _ in items)
        if await is_new_log(record.log, wiring.kafka, topic, partition, first):
            record.log.restart()
            self.partitions.put(partition, key, record)  # kept first, as in source_logs
            await self.partitions.written()
        result = run_requester_batch(
            [(offset, value) for offset, value, _ in items],
            lambda k: self.requesters.get(k.encode()),
            record,
        )
        # Findings first, then the relay: on each scope partition the relay is behind them.
        sends: list[Any] = await wiring.send_deltas(result.deltas.values())
        relay = Relay(partition, result.relay)
        sends += [
            await wiring.deltas.send(key=None, value=relay, partition=p, force=True)
            for p in range(wiring.partitions)
        ]
        await acked(sends)
        for name, requester in result.changed.items():
            self.requesters.put(partition, name.encode(), requester)
        last_offset, _, last_value = items[-1]
        record.log.read(last_offset, last_value)
        sweep = record.sweep_before(SWEEP_EVERY_US)
        if sweep is not None:
            _forget_requesters(self.requesters, partition, sweep)
        self.partitions.put(partition, key, record)
        await tables.written(self.requesters, self.partitions)
        wiring.metrics.count_requester_batch(result, self.requesters.size())


def _forget_requesters(table: PartitionedTable, partition: int, low_us: int) -> None:
    for key in table.keys_in(partition):
        requester = table.get(key)
        if isinstance(requester, Requester) and requester.expired(low_us):
            table.delete(partition, key)
