"""Declare the worker's topics again before it writes to a broker that may have lost them.

A broker that comes back empty (Tansu keeps nothing in memory; or a new cluster at the
old address) has none of the worker's topics, and Faust declares them only once, at
start. Tansu 0.6 then stores what a producer sends to a topic nobody created, and a
later CreateTopics for it succeeds but breaks it: every produce fails with UnknownError
and every offset commit with UNKNOWN_TOPIC_OR_PARTITION, which aiokafka retries forever.
A later declaration does come: Faust declares its internal topics again after a failed
attempt, and ``flowgauge replay`` creates the public ones.

So once the producer's connection to a broker breaks, no produce request leaves, new or
retried, until every topic the worker writes to has been created where missing. On a
broker that kept them this costs one CreateTopics answered "already exists".

Works around Tansu 0.6 accepting produce to, then CreateTopics for, a topic nobody
created, and Faust declaring topics only at start. Remove once the broker refuses produce
to a missing topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka import client as aiokafka_client
from aiokafka.admin import NewTopic
from aiokafka.conn import CloseReason
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
)
from aiokafka.producer import sender as aiokafka_sender

from streams.kafka import Kafka

log = logging.getLogger(__name__)
TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno
# Set on an aiokafka client whose connection broke: its broker may be a new, empty one.
_SUSPECT = "_flowgauge_broker_suspect"
_original_closed = aiokafka_client.AIOKafkaClient._on_connection_closed
_original_produce = aiokafka_sender.Sender._send_produce_req


class Declarer:
    """The worker's topics, created where missing, at most one attempt at a time."""

    def __init__(self, kafka: Kafka, topics: Iterable[NewTopic]) -> None:
        self.kafka = kafka
        self.topics = list(topics)
        self.lock = asyncio.Lock()

    async def until_declared(self, client: Any) -> None:
        """Until the broker answered; retried only while it cannot be reached. A refusal
        (no right to create topics, say) lets produce go on as it would have."""
        async with self.lock:
            while getattr(client, _SUSPECT, False):
                setattr(client, _SUSPECT, False)  # a break from now on sets it again
                try:
                    await self._declare()
                except (KafkaConnectionError, RequestTimedOutError, OSError) as exc:
                    setattr(client, _SUSPECT, True)
                    log.warning("topics not declared yet, retrying: %r", exc)
                    await asyncio.sleep(0.5)

    async def _declare(self) -> None:
        admin = self.kafka.admin(request_timeout_ms=10_000)
        await admin.start()
        try:
            response = await admin.create_topics(self.topics)
        finally:
            await admin.close()
        answers = {topic: code for topic, code, *_ in response.topic_errors}
        created = sorted(topic for topic, code in answers.items() if code == 0)
        refused = {t: code for t, code in answers.items() if code not in (0, TOPIC_ALREADY_EXISTS)}
        if created:
            log.warning("the broker had lost these topics; declared again: %s", created)
        if refused:
            log.warning("topics not declared (error codes): %s", refused)


_declarer: Declarer | None = None


def _on_connection_closed(self: Any, conn: Any, reason: Any) -> None:
    if reason in (CloseReason.CONNECTION_BROKEN, CloseReason.CONNECTION_TIMEOUT):
        setattr(self, _SUSPECT, True)
    _original_closed(self, conn, reason)


async def _send_produce_req(self: Any, node_id: int, batches: Any) -> None:
    if _declarer is not None and getattr(self.client, _SUSPECT, False):
        await _declarer.until_declared(self.client)
    await _original_produce(self, node_id, batches)


def install(declarer: Declarer) -> None:
    """For this process's worker: guard every producer's requests with ``declarer``."""
    global _declarer
    _declarer = declarer
    setattr(aiokafka_client.AIOKafkaClient, "_on_connection_closed", _on_connection_closed)  # noqa: B010
    setattr(aiokafka_sender.Sender, "_send_produce_req", _send_produce_req)  # noqa: B010


async def keep_connection(producer: AIOKafkaProducer, every: float = 10.0) -> None:
    """A metadata request every ``every`` s, so that a producer that may sit idle (the
    webhook gateway's) always holds a connection to the cluster: a broker lost while nothing
    is written then shows as a broken connection, after which the guard above declares the
    topics again before the next write. An idle connection is dropped after 9 minutes, and
    without one the loss went unnoticed: an empty embedded broker took the next delivery's
    events for a topic nobody created, acknowledged them, and no reader ever saw them."""
    while True:
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            await asyncio.wait_for(producer.client.fetch_all_metadata(), every)
        await asyncio.sleep(every)
