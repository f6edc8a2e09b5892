"""Commit offsets only while a member of the consumer group.

When the group coordinator stops knowing the worker (a broker that came back empty, or a
session that timed out), aiokafka resets the worker's generation and member id, and
Faust then commits its offsets as it revokes its partitions. aiokafka sends that commit
with no generation, which a broker accepts into an empty group: on a broker that lost
its logs, the old logs' offsets become the committed offsets of the new ones, and after
the rejoin every partition resumes there, silently skipping whatever the new log already
held below them (deltas and contacts the worker itself wrote since the loss). The Java
client refuses such a commit ("not part of an active group"); so does this. Nothing is
lost by not committing: the stages apply what they read again exactly once, by position.

Works around aiokafka's group coordinator, which commits with no generation after it
reset its membership (the Java client raises CommitFailedException instead). Remove once
aiokafka refuses such a commit itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiokafka.protocol.commit import OffsetCommitRequest
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger(__name__)
_original_commit = faust_aiokafka.AIOKafkaConsumerThread._commit


def is_member(consumer: Any) -> bool:
    """The consumer holds a generation of its group (it has joined and not been dropped)."""
    coordinator = getattr(consumer, "_coordinator", None)
    generation = getattr(coordinator, "generation", OffsetCommitRequest.DEFAULT_GENERATION_ID)
    return bool(generation != OffsetCommitRequest.DEFAULT_GENERATION_ID)


async def member_commit(self: Any, offsets: Mapping[Any, int]) -> bool:
    if not is_member(self._ensure_consumer()):
        log.info("not committing %d offsets: not a member of the group now", len(offsets))
        return False
    committed: bool = await _original_commit(self, offsets)
    return committed


def install_member_commits() -> None:
    setattr(faust_aiokafka.AIOKafkaConsumerThread, "_commit", member_commit)  # noqa: B010
