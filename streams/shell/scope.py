"""The scope stage: apply each delta once (by source position), emit every boundary the
input partitions allow, publish the snapshots, then write the tables. Tables: ``scopes``,
``scope-partitions``, ``held-back`` (a scope's held-back transitions, in segments)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from streams.core.scope import Emitted, ScopeState, Settings
from streams.core.stages import (
    PartitionRecord,
    Progress,
    Relay,
    Resume,
    ScopeDelta,
    ScopeRecord,
    apply_delta,
    apply_progress,
    apply_relay,
    emit,
)
from streams.core.timeline import US_PER_SECOND, parse_duration
from streams.core.topics import INPUT
from streams.outputs.records import outgoing
from streams.shell import tables
from streams.shell.publish import kafka_producer, publish
from streams.shell.tables import PartitionedTable
from streams.shell.wiring import Wiring, acked, partition_key


class ScopeStage:
    def __init__(self, wiring: Wiring) -> None:
        self.wiring = wiring
        self.held_back = wiring.table("held-back")
        self.scopes = wiring.table("scopes", on_load=self._restore_held_back)
        self.partitions = wiring.table("scope-partitions")
        self.input_ends = EndOffsets(wiring.servers, INPUT, wiring.partitions)
        self.horizon_us = parse_duration(wiring.config.live_horizon) * US_PER_SECOND
        wiring.stage(wiring.deltas, "scopes", self._batch)

    def owned(self) -> list[ScopeRecord]:
        """The scopes of the partitions this worker actively owns: what /metrics shows."""
        active = {tp.partition for tp in self.wiring.owned(self.wiring.deltas.get_topic_name())}
        return [
            s for s in self.scopes.values() if isinstance(s, ScopeRecord) and s.partition in active
        ]

    async def _batch(self, batch: list[Any]) -> None:
        wiring, settings = self.wiring, self.wiring.settings
        touched: dict[int, PartitionRecord] = {}
        changed: dict[str, ScopeRecord] = {}
        late = 0
        for event in batch:
            partition = event.message.partition
            record = touched.get(partition) or _partition(
                self.partitions, partition, wiring.partitions
            )
            touched[partition] = record
            item = event.value  # a Resume only touches its partition
            if isinstance(item, Progress):
                apply_progress(record, item)
            elif isinstance(item, Relay):
                apply_relay(record, item)
            elif isinstance(item, ScopeDelta):
                scope = changed.get(item.scope) or _scope(self.scopes, item.scope, record, settings)
                changed[item.scope] = scope
                record.scopes.add(item.scope)
                late += apply_delta(scope, item, settings)
        ends = await self.input_ends.fetch() if any(r.has_idle for r in touched.values()) else None
        sends, behind = await self._emit(touched, changed, ends)
        sends += [
            await wiring.deltas.send(key=None, value=Resume(p), partition=p, force=True)
            for p in behind
        ]
        await acked(sends)
        spent = await self._write_scopes(changed)
        for partition, record in touched.items():
            self.partitions.put(partition, partition_key(partition), record)
        await tables.written(self.scopes, self.partitions)
        for partition, key in spent:  # no state written lists them any more
            self.held_back.delete(partition, key)
        await self.held_back.flush()
        wiring.metrics.count_late(late)

    async def _write_scopes(self, changed: dict[str, ScopeRecord]) -> list[tuple[int, bytes]]:
        """Write each changed scope after the segment of transitions it newly held back
        (the state lists its segments); the segments no longer needed, to delete once the
        states are on the broker."""
        for name, scope in changed.items():
            aging = scope.state.aging
            segment = aging.seal() if aging is not None else None
            if segment is not None:
                number, entries = segment
                self.held_back.put(scope.partition, _segment_key(name, number), entries)
        await self.held_back.written()
        spent: list[tuple[int, bytes]] = []
        for name, scope in changed.items():
            aging = scope.state.aging
            if aging is not None:
                keys = (_segment_key(name, number) for number in aging.release_segments())
                spent += [(scope.partition, key) for key in keys]
            self.scopes.put(scope.partition, name.encode(), scope)
            # Writing a scope takes milliseconds: let the other stages run in between.
            await asyncio.sleep(0)
        return spent

    async def _emit(
        self,
        touched: dict[int, PartitionRecord],
        changed: dict[str, ScopeRecord],
        ends: Mapping[int, int] | None,
    ) -> tuple[list[Any], list[int]]:
        """Emit and publish what the touched partitions allow, within the batch's budget:
        the sends to await, and the partitions left behind.

        Published (and counted) a tenth of the budget at a time, with the loop let go in
        between, so a catch-up holds up neither /metrics nor the other stages, nor keeps
        its snapshots; a Resume to a partition left behind carries on in the next batch."""
        wiring, settings = self.wiring, self.wiring.settings
        unpublished: list[Emitted] = []
        sends: list[Any] = []
        behind: list[int] = []
        budget = wiring.config.snapshots_per_batch
        chunk = max(1, budget // 10)

        async def publish_unpublished() -> None:
            sends.extend(await publish(kafka_producer(wiring.app), self._records(unpublished)))
            wiring.metrics.count_snapshots(unpublished)
            unpublished.clear()

        ceiling = wiring.config.wall_clock(time.time()).not_after_us
        for partition, record in touched.items():
            limit = record.emit_limit(
                settings, wiring.config.grace_us, self.horizon_us, ends, ceiling
            )
            if limit is None:
                continue
            record.emitted = max(limit, record.emitted if record.emitted is not None else limit)
            for name in sorted(record.scopes):
                scope = changed.get(name) or self.scopes.get(name.encode())
                while scope is not None and budget > 0:
                    wanted = min(budget, chunk)
                    fresh = list(islice(emit([scope], limit, settings), wanted))
                    budget -= len(fresh)
                    if fresh:
                        changed[name] = scope
                        unpublished += fresh
                    if len(unpublished) >= chunk:
                        await publish_unpublished()
                        await asyncio.sleep(0)
                    if len(fresh) < wanted:
                        break
            if budget == 0:
                behind.append(partition)
        await publish_unpublished()
        return sends, behind

    def _records(self, emitted: Iterable[Emitted]) -> Iterator[tuple[str, bytes, bytes]]:
        config = self.wiring.config
        window, capacity = config.indicators.window, self.wiring.settings.rules.capacity_window
        for item in emitted:
            yield from outgoing(item, config.dashboard_url, window, capacity)

    def _restore_held_back(self, record: Any) -> None:
        """Put back a recovered scope's held-back transitions, and delete the segments of it
        that a crash left unlisted (written, but not the state that would have listed them)."""
        if not isinstance(record, ScopeRecord) or record.state.aging is None:
            return
        scope, aging = record.state.scope, record.state.aging
        aging.restore(lambda number: self.held_back.get(_segment_key(scope, number)))
        for key in self.held_back.keys_in(record.partition):
            number, _, owner = key.decode().partition("/")
            if owner == scope and int(number) not in aging.segments:
                self.held_back.delete(record.partition, key)


class EndOffsets:
    """The input's end offsets, asked for at the moment an idle partition would be skipped."""

    def __init__(self, servers: str, topic: str, partitions: int) -> None:
        self.bootstrap = servers
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self.consumer: AIOKafkaConsumer | None = None

    async def fetch(self) -> dict[int, int]:
        if self.consumer is None:
            self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
            await self.consumer.start()
        ends = await self.consumer.end_offsets(self.partitions)
        return {tp.partition: int(offset) for tp, offset in ends.items()}


def _partition(table: PartitionedTable, partition: int, sources: int) -> PartitionRecord:
    record = table.get(partition_key(partition))
    if isinstance(record, PartitionRecord):
        return record
    return PartitionRecord(partition, sources)


def _scope(
    table: PartitionedTable, scope: str, partition: PartitionRecord, settings: Settings
) -> ScopeRecord:
    record = table.get(scope.encode())
    if isinstance(record, ScopeRecord):
        return record
    state = ScopeState.new(scope, settings, partition.emitted)
    return ScopeRecord(state, partition.partition)


def _segment_key(scope: str, number: int) -> bytes:
    """Of a scope's segment of held-back transitions: the number first, as a scope's name
    may hold any character."""
    return f"{number}/{scope}".encode()
