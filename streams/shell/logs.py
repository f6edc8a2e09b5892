"""Whether a stage reading back in a partition reads the same log again (a replay after a
crash or a rebalance) or a new one (the broker lost the old log): ``streams.core.positions``."""

from __future__ import annotations

import logging
from dataclasses import replace

from streams.core.positions import SourceLog
from streams.kafka import Kafka
from streams.shell.tables import PartitionedTable
from streams.shell.wiring import partition_key
from streams.workarounds import gaps

log = logging.getLogger(__name__)


async def source_logs(
    table: PartitionedTable, kafka: Kafka, topic: str, read: list[tuple[int, int]]
) -> dict[int, SourceLog]:
    """The log of each partition in ``read`` (partition, offset pairs), restarted where
    the broker lost it."""
    first: dict[int, int] = {}
    for partition, offset in read:
        first[partition] = min(offset, first.get(partition, offset))
    logs: dict[int, SourceLog] = {}
    for partition, offset in first.items():
        key = partition_key(partition)
        stored = table.get(key)
        # A copy: the stored one changes only once the batch is done (the heartbeat reads it).
        source = logs[partition] = replace(stored) if isinstance(stored, SourceLog) else SourceLog()
        if await is_new_log(source, kafka, topic, partition, offset):
            source.restart()
            # Kept before anything goes out under the new base: a retry of this batch may
            # find the new log grown to the old one's last offset, and must not decide again.
            table.put(partition, key, replace(source))
            await table.written()
    return logs


async def is_new_log(
    source: SourceLog, kafka: Kafka, topic: str, partition: int, offset: int
) -> bool:
    """Reading back at ``offset``: a replay of the same log, or a new one?"""
    if not source.rewinds(offset):
        return False
    found = await gaps.first_message_at(kafka, topic, partition, source.last_offset)
    if not source.is_new_log(found):
        return False
    log.warning(
        "%s[%d] is a new log (the broker lost the old one up to offset %d): "
        "its positions continue after the old log's",
        topic, partition, source.last_offset,
    )  # fmt: skip
    return True
