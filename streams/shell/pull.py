"""``GET /pull?queue=NAME``: a queue's latest pull list, from ``backlog.pull``.

Every worker reads the topic itself (no group: from the start of its retention, then
live) and keeps the newest record per queue, so any worker behind a load-balanced Service
answers the same, whichever owns the queue's scope; none reads another's state.
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
        self.latest: dict[str, tuple[str, bytes]] = {}  # queue -> (as_of, record)

    def take(self, key: bytes | None, value: bytes | None) -> None:
        """Keep a record if it is the queue's newest; skip what is not one (counted in the
        log, never fatal: the topic is anyone's to write to)."""
        try:
            record = json.loads(value or b"")
            scope, as_of = record["scope"], record["as_of"]
        except (ValueError, TypeError, KeyError):
            log.warning("backlog.pull: skipped a record that is not a pull list (key %r)", key)
            return
        if not isinstance(scope, str) or not scope.startswith("queue:"):
            return
        queue = scope.removeprefix("queue:")
        held = self.latest.get(queue)
        if held is None or as_of >= held[0]:
            self.latest[queue] = (str(as_of), value or b"")

    def answer(self, queue: str | None) -> web.Response:
        if not queue:
            return web.json_response({"error": "name a queue: /pull?queue=NAME"}, status=400)
        held = self.latest.get(queue)
        if held is None:
            known = sorted(self.latest)
            return web.json_response(
                {"error": f"no pull list for queue {queue!r}", "queues": known}, status=404
            )
        return web.Response(body=held[1], content_type="application/json")

    async def follow(self, kafka: Kafka) -> None:
        """Read ``backlog.pull`` for ever; on a broker error, start over after a pause."""
        while True:
            consumer = kafka.consumer(PULL, auto_offset_reset="earliest", group_id=None)
            try:
                await consumer.start()
                async for message in consumer:
                    self.take(message.key, message.value)
            except KafkaError as exc:
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
