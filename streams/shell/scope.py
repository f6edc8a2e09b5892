"""The scope stage: apply each delta once (by source position), emit every boundary the
input partitions allow, publish the snapshots, then write the tables. Tables: ``scopes``,
``scope-partitions``, ``held-back`` (a scope's held-back transitions, in segments)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from streams.core.catalog import dimension_of, other_scope
from streams.core.scope import Emitted, ScopeState, Settings, forget_caches
from streams.core.stages import (
    DimensionDeltas,
    PartitionRecord,
    Progress,
    Relay,
    Resume,
    ScopeDelta,
    ScopeRecord,
    apply_deltas,
    apply_progress,
    apply_relay,
    decide_scopes,
    dimension_key,
    dimension_partition,
    emit,
)
from streams.core.timeline import US_PER_SECOND, parse_duration
from streams.core.topics import INPUT
from streams.kafka import Kafka
from streams.outputs.records import publisher
from streams.shell import tables
from streams.shell.publish import kafka_producer, publish
from streams.shell.tables import PartitionedTable
from streams.shell.wiring import Wiring, acked, partition_key

log = logging.getLogger(__name__)


class ScopesElsewhere(RuntimeError):
    """State written before the scopes of a dimension shared one partition."""


class ScopeStage:
    def __init__(self, wiring: Wiring) -> None:
        self.wiring = wiring
        self.held_back = wiring.table("held-back")
        self.scopes = wiring.table("scopes", on_load=self._restore_held_back)
        self.partitions = wiring.table("scope-partitions")
        self.input_ends = EndOffsets(wiring.kafka, INPUT, wiring.partitions)
        self.horizon_us = parse_duration(wiring.config.live_horizon) * US_PER_SECOND
        wiring.stage(wiring.deltas, "scopes", self._batch)
        # mode's handler type (a keyword after *args, from mypy_extensions) matches no function.
        wiring.app.on_partitions_revoked.connect(self.forget_revoked)  # type: ignore[arg-type]

    def forget_revoked(self, _: Any, revoked: set[TopicPartition], **__: Any) -> None:
        """Drop the pull lists' and forecasts' caches of the scopes on partitions revoked:
        they hold open tickets and drawn futures that another worker keeps now, and would
        stay in this one's memory until the scope came back."""
        topic = self.wiring.deltas.get_topic_name()
        lost = {tp.partition for tp in revoked if tp.topic == topic}
        if lost:
            sources = self.wiring.partitions
            forget_caches(lambda scope: dimension_partition(dimension_key(scope), sources) in lost)

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
            elif isinstance(item, DimensionDeltas | ScopeDelta):
                if isinstance(item, ScopeDelta):  # sent before dimensions shared a message
                    item = DimensionDeltas(dimension_key(item.scope), [item])
                scope_of = self._scope_of(record, changed)
                found, folded = apply_deltas(item, scope_of, settings, record.emitted)
                late += found
                wiring.metrics.count_folded(item.dimension, folded)
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
        # A dimension's other last: a value it decided to make a scope is written before the
        # catalog that no longer holds its entries.
        for name, scope in sorted(changed.items(), key=lambda item: item[1].catalog is not None):
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
            self._decide(record, changed, limit * settings.windows.step_us)
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

    def _scope_of(
        self, partition: PartitionRecord, changed: dict[str, ScopeRecord]
    ) -> Callable[[str], ScopeRecord]:
        """A scope of ``partition`` by name, made if new, and marked changed."""

        def scope_of(name: str) -> ScopeRecord:
            scope = changed.get(name) or _scope(self.scopes, name, partition, self.wiring.settings)
            changed[name] = scope
            partition.scopes.add(name)
            return scope

        return scope_of

    def _decide(
        self, partition: PartitionRecord, changed: dict[str, ScopeRecord], through_us: int
    ) -> None:
        """Before a boundary goes out: which values first seen by then are scopes."""
        scope_of, metrics = self._scope_of(partition, changed), self.wiring.metrics
        for dimension in {dimension_of(name) for name in partition.scopes} - {None}:
            name = other_scope(str(dimension))
            other = changed.get(name) or self.scopes.get(name.encode())
            catalog = other.catalog if isinstance(other, ScopeRecord) else None
            if catalog is None or not catalog.undecided:
                continue
            changed[name], was_full = other, catalog.full
            late, folded = decide_scopes(other, through_us, scope_of, self.wiring.settings)
            metrics.count_late(late)
            metrics.count_folded(str(dimension), folded)
            if catalog.full and not was_full:
                log.warning(
                    "%s: %d values are scopes now; further ones count in %s "
                    "(FLOWGAUGE_SCOPE_CAP)", dimension, catalog.cap, name,
                )  # fmt: skip

    def _records(self, emitted: Iterable[Emitted]) -> Iterator[tuple[str, bytes, bytes]]:
        records = publisher(self.wiring.config, self.wiring.settings)
        for item in emitted:
            yield from records(item)

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

    def __init__(self, kafka: Kafka, topic: str, partitions: int) -> None:
        self.kafka = kafka
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self.consumer: AIOKafkaConsumer | None = None

    async def fetch(self) -> dict[int, int]:
        if self.consumer is None:
            self.consumer = self.kafka.consumer(group_id=None)
            await self.consumer.start()
        ends = await self.consumer.end_offsets(self.partitions)
        return {tp.partition: int(offset) for tp, offset in ends.items()}


def _partition(table: PartitionedTable, partition: int, sources: int) -> PartitionRecord:
    record = table.get(partition_key(partition))
    if not isinstance(record, PartitionRecord):
        return PartitionRecord(partition, sources)
    for scope in record.scopes:
        check_placed(scope, partition, sources)
    return record


def _scope(
    table: PartitionedTable, scope: str, partition: PartitionRecord, settings: Settings
) -> ScopeRecord:
    record = table.get(scope.encode())
    if isinstance(record, ScopeRecord):
        check_placed(scope, record.partition, partition.source_partitions)
        return record
    state = ScopeState.new(scope, settings, partition.emitted)
    return ScopeRecord(state, partition.partition)


def check_placed(scope: str, partition: int, partitions: int) -> None:
    """Refuse state from before a dimension's scopes shared a partition: read under the new
    routing it would be counted apart from the new deltas (docs/operations.md, "Upgrading")."""
    wanted = dimension_partition(dimension_key(scope), partitions)
    if partition != wanted:
        raise ScopesElsewhere(
            f"scope {scope!r} is kept on partition {partition}, but its dimension's scopes"
            f" live on partition {wanted} since the scope cap: rebuild the state as"
            " docs/operations.md, 'Upgrading', says"
        )


def _segment_key(scope: str, number: int) -> bytes:
    """Of a scope's segment of held-back transitions: the number first, as a scope's name
    may hold any character."""
    return f"{number}/{scope}".encode()
