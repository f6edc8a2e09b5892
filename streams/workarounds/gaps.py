"""Never deliver a message fetched before a seek, and never let a skipped one pass.

Faust's consumer thread drains aiokafka and hands each batch to the main loop, which
iterates it with an await per message. A seek (back to the committed offset after a
rebalance) runs meanwhile in the consumer thread: aiokafka drops what it buffered, but a
batch already handed over is still delivered, and Faust's "last offset read" lands
anywhere in it (faust-streaming #221 is the symptom; its fix checks the generation,
while this happens within one). So every jump of a partition's position in aiokafka (a
seek, or a reset on assignment) gets a fence: a batch carries the fences current when it
was drained, and a message is delivered only while its partition's fence is unchanged;
otherwise aiokafka fetches it again from the new position. The first message after a
fence sets the last offset read to the one before the fence's position, so Faust's gap
check counts from where aiokafka really resumed.

mode's flow control clears every channel queue whenever it resumes, even when the flow is
running already. Faust's recovery resumes it once as it starts and again after the seek
to the committed offsets, while the stream partitions already fetch: whatever reached a
queue in between was dropped, though Faust had read past it. The event was missing until
the next rebalance or restart, its offset never acked, and the commit stuck below it. So
a resume clears the queues only when it ends a suspension: what came while the flow was
running is kept (a message queued before the seek is then read twice, and the stages
apply it once).

Faust drops a batch it has drained when its flow stops before the batch is read (a
rebalance starting) or the generation changes while it is read, and relies on seeking back
to the committed offsets; but aiokafka's ``seek_to_committed`` leaves a partition with no
committed offset (or offset 0) where it is (``if offset and offset > 0``), so a partition's
first records after its assignment were fetched, dropped, and never fetched again: the
worker took in nothing of it until a restart. So the records Faust drops unread are fetched
again: the partition is seeked back to the first of them, unless it was seeked or
reassigned since the batch was drained.

Faust reads a jump in a partition's offsets as a compacted range and marks it done, so
the commit moves past it. As a safety net a jump is checked against the log: when
messages really sit in it, the worker restarts itself at once (as after a kill -9),
before anything past the jump is processed or committed, and resumes from the committed
offsets. A true gap (compaction, transaction markers) keeps Faust's handling.

Works around Faust's consumer thread handing over batches fetched before a seek
(faust-streaming #221 is the symptom), Faust's ``Consumer.getmany`` dropping a drained
batch for a seek that aiokafka skips, and mode's flow control clearing queues on every
resume. Remove once Faust fences its own seeks and refetches what it drops, and mode clears
only on a real resume.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from aiokafka.consumer.subscription_state import TopicPartitionState
from aiokafka.structs import TopicPartition
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.utils.queues import FlowControlEvent

from streams.kafka import Kafka
from streams.workarounds.restart import restart_worker

log = logging.getLogger(__name__)
_original_add_gap = faust_consumer.Consumer._add_gap
_original_resume = FlowControlEvent.resume
_original_seek = TopicPartitionState.seek
_original_reset_to = TopicPartitionState.reset_to
_original_fetch_records = faust_aiokafka.AIOKafkaConsumerThread._fetch_records
_original_wait_next_records = faust_consumer.Consumer._wait_next_records
_original_getmany = faust_consumer.Consumer.getmany
_FENCE = "_flowgauge_fence"  # on aiokafka's partition state: (jump number, position)
_BATCH = "_flowgauge_batch"  # on Faust's consumer: the batch being delivered
_DELIVERED = "_flowgauge_delivered_fence"  # on Faust's consumer: per partition
_jumps = itertools.count(1)
_kafka: Kafka | None = None  # how this process's worker reaches its cluster
Fence = tuple[int, int]


async def first_message_at(
    kafka: Kafka, topic: str, partition: int, offset: int
) -> tuple[int, bytes] | None:
    """The offset and value of the first message at or after ``offset``; None only once
    the broker said the log ends at or before ``offset``. A slow broker is not taken for
    a short log: after 30 s without an answer this raises TimeoutError."""
    probe = kafka.consumer(group_id=None, enable_auto_commit=False)
    try:
        await probe.start()  # within: a start given up on (wait_for) still closes the client
        tp = TopicPartition(topic, partition)
        probe.assign([tp])
        probe.seek(tp, offset)
        for _ in range(60):
            batch = await probe.getmany(tp, timeout_ms=500, max_records=1)
            records = batch.get(tp)
            if records:
                return int(records[0].offset), records[0].value or b""
            end = probe.highwater(tp)  # from a fetch answer: the log's true end on Tansu too
            if end is not None and end <= offset:
                return None
        raise TimeoutError(f"no answer for {topic}[{partition}] at offset {offset} in 30 s")
    finally:
        await probe.stop()


def _fenced_seek(self: TopicPartitionState, position: int) -> None:
    _original_seek(self, position)
    setattr(self, _FENCE, (next(_jumps), position))


def _fenced_reset_to(self: TopicPartitionState, position: int) -> None:
    _original_reset_to(self, position)
    setattr(self, _FENCE, (next(_jumps), position))


def _assignment(consumer: Any) -> Any:
    """aiokafka's current assignment, None before the first one."""
    subscription = consumer._subscription.subscription
    return subscription.assignment if subscription is not None else None


def _fence_of(consumer: Any, tp: Any) -> Fence | None:
    """The fence of ``tp``'s last seek or reset in aiokafka's current assignment."""
    assignment = _assignment(consumer)
    state = assignment.state_value(tp) if assignment is not None else None
    return getattr(state, _FENCE, None)


class _FencedRecords(dict[Any, Any]):
    fences: dict[Any, Fence | None]


async def _fenced_fetch_records(
    self: Any,
    consumer: Any,
    active_partitions: Any,
    timeout: float | None = None,
    max_records: int | None = None,
) -> Any:
    records = await _original_fetch_records(
        self, consumer, active_partitions, timeout=timeout, max_records=max_records
    )
    fenced = _FencedRecords(records)  # no await since the drain: no seek came between
    fenced.fences = {tp: _fence_of(consumer, tp) for tp in records}
    return fenced


async def _stashing_wait_next_records(self: Any, timeout: float) -> Any:
    records, active_partitions = await _original_wait_next_records(self, timeout)
    self.__dict__[_BATCH] = records
    return records, active_partitions


async def _fenced_getmany(self: Any, timeout: float) -> AsyncIterator[Any]:
    consumer = self._thread._ensure_consumer()
    delivered = self.__dict__.setdefault(_DELIVERED, {})
    passed: Counter[Any] = Counter()  # per partition, the batch's records Faust let through
    async for tp, message in _original_getmany(self, timeout):
        passed[tp] += 1
        fences = getattr(self.__dict__.get(_BATCH), "fences", None)
        if fences is None:  # not drained through _fetch_records: Faust's handling
            yield tp, message
            continue
        fence = _fence_of(consumer, tp)
        if fence is None or fences.get(tp) != fence:
            continue  # drained before a later seek: aiokafka fetches it again
        if delivered.get(tp) != fence:
            delivered[tp] = fence
            self._read_offset[tp] = fence[1] - 1 if fence[1] > 0 else None
        yield tp, message
    batch = self.__dict__.get(_BATCH)
    dropped = _dropped(batch, passed) if isinstance(batch, _FencedRecords) else {}
    if dropped and not self.should_stop:
        await self._thread.call_thread(_fetch_again, consumer, dropped)


def _dropped(batch: _FencedRecords, passed: Counter[Any]) -> dict[Any, tuple[Fence, int]]:
    """Per partition of ``batch`` whose records Faust did not all let through (its flow
    stopped, or the generation changed, mid-batch): the batch's fence and the first such
    record's offset."""
    return {
        tp: (fence, records[passed[tp]].offset)
        for tp, records in batch.items()
        if passed[tp] < len(records) and (fence := batch.fences.get(tp)) is not None
    }


def _fetch_again(consumer: Any, dropped: dict[Any, tuple[Fence, int]]) -> None:
    """In the consumer's thread: back to the first record Faust dropped, for each partition
    not seeked or reassigned since (those are fetched again from where that put them)."""
    for tp, (fence, offset) in dropped.items():
        if _fence_of(consumer, tp) == fence:
            log.debug("%s: Faust dropped a batch from offset %d; fetching it again", tp, offset)
            consumer.seek(tp, offset)


async def _perform_seek(self: Any) -> None:
    """Faust's, but the last offset read is left to the fence (set at the first message)."""
    committed = await self.seek_to_committed()
    self._committed_offset.update(
        {
            faust_consumer.ensure_TP(tp): offset or None
            for tp, offset in committed.items()
            if offset is not None
        }
    )


async def _checked_add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    assert _kafka is not None, "installed with the cluster's address"
    message = await first_message_at(_kafka, tp.topic, tp.partition, offset_from)
    found = message[0] if message else None
    if found is not None and found < offset_to:
        log.error(
            "messages %d..%d of %s[%d] were skipped after a rebalance: restarting the worker",
            found,
            offset_to - 1,
            tp.topic,
            tp.partition,
        )
        restart_worker()
    await _original_add_gap(self, tp, offset_from, offset_to)


def resume_keeping_fresh_messages(self: FlowControlEvent) -> None:
    """``FlowControlEvent.resume``, clearing the queues only when it ends a suspension."""
    if not self.is_active():
        _original_resume(self)


def describe_partitions(faust_consumer: Any) -> str:
    """Per assigned partition, what decides whether it is fetched and delivered: aiokafka's
    position, pause, reset and fence, what its fetcher holds, and Faust's side of it. For
    the stall dump (SIGUSR1): a partition the stages never see shows here why."""
    kafka: Any = getattr(getattr(faust_consumer, "_thread", None), "_consumer", None)
    assignment = _assignment(kafka) if kafka is not None else None
    if assignment is None:
        return "PARTITIONS none assigned in aiokafka"
    fetcher = kafka._fetcher
    lines = [
        f"PARTITIONS flow_active={faust_consumer.flow_active}"
        f" can_resume_flow={faust_consumer.can_resume_flow.is_set()}"
        f" fetches_in_flight={len(fetcher._pending_tasks)}"
    ]
    delivered = faust_consumer.__dict__.get(_DELIVERED, {})
    for tp in sorted(assignment.tps):
        state = assignment.state_value(tp)
        lines.append(
            f"  {tp.topic}[{tp.partition}] position={state._position}"
            f" highwater={state.highwater} paused={state.paused}"
            f" awaiting_reset={state.awaiting_reset} fence={getattr(state, _FENCE, None)}"
            f" buffered={tp in fetcher._records}"
            f" | faust: active={tp in (faust_consumer._active_partitions or ())}"
            f" paused={tp in faust_consumer._paused_partitions}"
            f" read={faust_consumer._read_offset.get(tp)}"
            f" committed={faust_consumer._committed_offset.get(tp)}"
            f" delivered_fence={delivered.get(tp)}"
        )
    return "\n".join(lines)


def install_gap_check(kafka: Kafka) -> None:
    """``kafka``: how this process's worker reaches its cluster, for the probes."""
    global _kafka
    _kafka = kafka
    setattr(FlowControlEvent, "resume", resume_keeping_fresh_messages)  # noqa: B010
    setattr(TopicPartitionState, "seek", _fenced_seek)  # noqa: B010
    setattr(TopicPartitionState, "reset_to", _fenced_reset_to)  # noqa: B010
    thread = faust_aiokafka.AIOKafkaConsumerThread
    setattr(thread, "_fetch_records", _fenced_fetch_records)  # noqa: B010
    consumer = faust_consumer.Consumer
    setattr(consumer, "_wait_next_records", _stashing_wait_next_records)  # noqa: B010
    setattr(consumer, "getmany", _fenced_getmany)  # noqa: B010
    setattr(consumer, "perform_seek", _perform_seek)  # noqa: B010
    setattr(consumer, "_add_gap", _checked_add_gap)  # noqa: B010
