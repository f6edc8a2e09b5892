"""The chat agent: posts each ``backlog.alerts`` record the worker owns to every chat
destination, and lets Faust commit an alert's offset only once the alert is finished for all
of them (delivered, rejected or dropped; see ``Notifier.submit``).

Each alerts partition has one owner in the group, so each alert is posted by one worker. An
alert still queued or retried when its worker stops, dies or loses the partition is not
committed: the next owner reads it again and posts it again, with its alert_id for the
receiver to dedupe (at least once). Within one process the notifier posts an alert_id once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any, TypeAlias, cast

import faust
import mode
from faust.types import TP, EventT
from mode.supervisors import CrashingSupervisor

from streams.config import FlowgaugeConfig
from streams.outputs.metrics import PipelineMetrics
from streams.outputs.notifier import Notifier
from streams.outputs.records import AlertRecord

CHAT_DRAIN_SECONDS = 5.0

_Waiting: TypeAlias = deque[tuple[EventT[bytes], asyncio.Future[None]]]


class InOrderAcks:
    """Acks each partition's events in offset order, each once its alert is finished.

    Faust commits the lowest run of consecutive acked offsets. It looks for an unacked offset
    below that run only when the partition has a committed offset other than 0, and then
    misses a single one, so acking out of order could commit past an alert still retried.
    """

    def __init__(self) -> None:
        self._waiting: dict[TP, _Waiting] = {}

    def track(self, event: EventT[bytes], finished: asyncio.Future[None]) -> None:
        waiting = self._waiting.setdefault(event.message.tp, deque())
        waiting.append((event, finished))
        finished.add_done_callback(lambda _: _release(waiting))

    def forget(self, partitions: Iterable[TP]) -> None:
        """Drop, unacked, what a rebalance took away: the partition's next owner (this worker
        too, if it gets it back) reads it again from the committed offset."""
        for tp in partitions:
            waiting = self._waiting.pop(tp, None)
            if waiting is not None:
                waiting.clear()


def _release(waiting: _Waiting) -> None:
    while waiting and waiting[0][1].done():
        event, finished = waiting.popleft()
        if not finished.cancelled():  # cancelled: the notifier closed before finishing it
            event.ack()


def deliver_alerts_to_chat(
    app: faust.App, config: FlowgaugeConfig, alerts: faust.TopicT, metrics: PipelineMetrics
) -> None:
    """Post every ``backlog.alerts`` record the worker owns to each chat destination; its
    offset is committed once the alert is finished for every destination."""
    notifier = Notifier(
        config.chat, config.dashboard_url, on_outcome=metrics.count_chat, silences=config.silences
    )
    acks = InOrderAcks()

    @app.service
    class ChatDelivery(mode.Service):
        async def on_start(self) -> None:
            await notifier.start()

        async def on_stop(self) -> None:
            await notifier.close(drain_seconds=CHAT_DRAIN_SECONDS)

    def forget_revoked(_: faust.App, revoked: set[TP], **__: Any) -> None:
        acks.forget(revoked)

    # mode's handler type (a keyword after *args, from mypy_extensions) matches no function.
    app.on_partitions_revoked.connect(forget_revoked)  # type: ignore[arg-type]

    @app.agent(alerts, name="chat", supervisor_strategy=CrashingSupervisor)
    async def chat_stage(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        # StreamT does not declare noack(); every stream an agent gets is a Stream.
        async for event in cast("faust.Stream[bytes]", stream).noack().events():
            # Faust holds a rebalance or a shutdown until every message it handed to an
            # agent is acked: an alert waiting for a destination that is down must not hold
            # up the worker. Its offset still waits for the ack below.
            app.consumer.unacked.discard(event.message)
            # Bounded by the notifier's queues, so that none drops an alert. A destination
            # down for long stops this agent; Faust buffers stream_buffer_maxsize alerts more
            # before its one fetcher, shared by every agent, waits too.
            await notifier.wait_for_room()
            record = AlertRecord.model_validate_json(event.value)
            acks.track(event, notifier.submit(record))
            yield None
