"""Never let a skipped message pass as a compaction gap.

Faust's drainer reads a jump in a partition's offsets as a compacted range and marks it
done, so the commit moves past it. After a rebalance a message fetched before the seek
back to the committed offset can arrive first (faust-streaming issue #221): the jump
then hides real messages, which are lost to the stages and to the commit alike, and the
scope stage would later drop them as already applied. So a jump is checked against the
log: when messages really sit in it, the worker restarts itself at once (as after a
kill -9), before anything past the jump is processed or committed, and resumes from the
committed offsets. A true gap (compaction, transaction markers) keeps Faust's handling.

mode's flow control clears every channel queue whenever it resumes, even when the flow is
running already. Faust's recovery resumes it once as it starts and again after the seek
to the committed offsets, while the stream partitions already fetch: whatever reached a
queue in between was dropped, though Faust had read past it. The event was missing until
the next rebalance or restart, its offset never acked, and the commit stuck below it. So a resume
clears the queues only when it ends a suspension: what came while the flow was running
is kept (a message fetched before the seek is then read twice, and the stages apply it
once).

Faust checks for a jump only against the last offset read, and after a seek to the
committed offset it records that offset itself as read (or nothing at offset 0): a skip
of the partition's head, from the committed offset on, went unseen. After a seek the
offset before the committed one is recorded instead, so the first message must be the
committed one.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faust.transport import consumer as faust_consumer
from mode.utils.queues import FlowControlEvent

log = logging.getLogger(__name__)
_original_add_gap = faust_consumer.Consumer._add_gap
_original_resume = FlowControlEvent.resume
# Where each partition resumed at the last seek: a jump is only checked from there on.
_RESUMED_AT = "_flowgauge_resumed_at"


async def first_message_at(
    bootstrap: str, topic: str, partition: int, offset: int
) -> tuple[int, bytes] | None:
    """The offset and value of the first message at or after ``offset``; None only once
    the broker said the log ends at or before ``offset``. A slow broker is not taken for
    a short log: after 30 s without an answer this raises TimeoutError."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await probe.start()
    try:
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


async def _perform_seek(self: Any) -> None:
    """Faust's ``perform_seek``, recording as read the offset before the committed one."""
    committed = await self.seek_to_committed()
    resumed_at = self.__dict__.setdefault(_RESUMED_AT, {})
    for tp, offset in committed.items():
        if offset is None or offset < 0:  # never committed: Faust's handling
            self._read_offset[tp] = None
            continue
        resumed_at[tp] = offset
        # Faust skips its check when the last offset read is 0 (it tests truthiness), so
        # -1 stands for it too; the check then starts at the committed offset anyway.
        self._read_offset[tp] = offset - 1 if offset > 1 else -1
    self._committed_offset.update(
        {tp: offset or None for tp, offset in committed.items() if offset is not None}
    )


async def _checked_add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    offset_from = max(offset_from, self.__dict__.get(_RESUMED_AT, {}).get(tp, 0))
    if offset_from >= offset_to:
        return
    bootstrap = ",".join(str(url).removeprefix("kafka://") for url in self.app.conf.broker)
    message = await first_message_at(bootstrap, tp.topic, tp.partition, offset_from)
    found = message[0] if message else None
    if found is not None and found < offset_to:
        log.error(
            "messages %d..%d of %s[%d] were skipped after a rebalance: restarting the worker",
            found,
            offset_to - 1,
            tp.topic,
            tp.partition,
        )
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, "-m", "streams.cli", *sys.argv[1:]])
    await _original_add_gap(self, tp, offset_from, offset_to)


def _resume_keeping_fresh_messages(self: FlowControlEvent) -> None:
    if not self.is_active():
        _original_resume(self)


def install_gap_check() -> None:
    setattr(FlowControlEvent, "resume", _resume_keeping_fresh_messages)  # noqa: B010
    setattr(faust_consumer.Consumer, "_add_gap", _checked_add_gap)  # noqa: B010
    setattr(faust_consumer.Consumer, "perform_seek", _perform_seek)  # noqa: B010
