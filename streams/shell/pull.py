"""``GET /pull?queue=NAME``: a queue's latest pull list, from ``backlog.pull``.

Every worker reads the topic itself (no group: from the start of its retention, then
live) and keeps the newest record per queue, so any worker behind a load-balanced Service
answers the same, whichever owns the queue's scope; none reads another's state. At 200
queues and 35 days of hourly records that is about 170,000 records to read at start (a
few seconds); until then a queue answers 404.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web
from aiokafka.errors import KafkaError

from streams.core.topics import PULL
from streams.kafka import Kafka

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0


class PullLists:
    """The newest ``backlog.pull`` record per queue name, as its JSON bytes."""

    def __init__(self) -> None:
        self.latest: dict[str, bytes] = {}  # queue name -> its newest record

    def take(self, key: bytes | None, value: bytes | None) -> None:
        """Keep a record as its queue's newest, in the topic's order (a queue's records are
        on one partition, written as its hours were): last wins, as a compacted topic
        keeps it. What is not a pull list is skipped and logged, never fatal: the topic is
        anyone's to write to."""
        try:
            record = json.loads(value or b"")
            scope = record["scope"]
            if not isinstance(scope, str) or not scope.startswith("queue:"):
                raise ValueError(f"scope {scope!r} is no queue")
        # RecursionError: JSON nested deeper than the interpreter's stack.
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            log.warning("backlog.pull: skipped a record (key %r): %s", key, exc)
            return
        self.latest[scope.removeprefix("queue:")] = value or b""

    def answer(self, queue: str | None) -> web.Response:
        if not queue:
            return web.json_response({"error": "name a queue: /pull?queue=NAME"}, status=400)
        held = self.latest.get(queue)
        if held is None:
            known = sorted(self.latest)
            return web.json_response(
                {"error": f"no pull list for queue {queue!r}", "queues": known}, status=404
            )
        return web.Response(body=held, content_type="application/json")

    async def follow(self, kafka: Kafka) -> None:
        """Read ``backlog.pull`` for ever; on a broker error, start over after a pause."""
        while True:
            consumer = kafka.consumer(PULL, auto_offset_reset="earliest", group_id=None)
            try:
                await consumer.start()
                async for message in consumer:
                    self.take(message.key, message.value)
            except (KafkaError, OSError) as exc:
                log.warning("backlog.pull: %s; reading again in %ss", exc, RETRY_SECONDS)
            finally:
                await consumer.stop()
            await asyncio.sleep(RETRY_SECONDS)


def install_pull_lists(app: Any, kafka: Kafka) -> None:
    lists = PullLists()

    @app.task
    async def follow_pull_lists() -> None:
        await lists.follow(kafka)

    @app.page("/pull")
    async def pull_page(_: Any, request: web.Request) -> web.Response:
        return lists.answer(request.query.get("queue"))
