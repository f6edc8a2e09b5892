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
import logging
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterable
from typing import Any, TypeAlias, cast

import faust
import mode
from aiokafka.errors import KafkaError
from faust.types import TP, EventT
from mode.supervisors import CrashingSupervisor
from pydantic import ValidationError

from streams.config import FlowgaugeConfig
from streams.core.timeline import parse_duration
from streams.core.topics import ALERTS
from streams.kafka import Kafka, read_to_highwaters
from streams.outputs.metrics import PipelineMetrics
from streams.outputs.notifier import Notifier
from streams.outputs.records import AlertRecord
from streams.outputs.reminders import Firing, Reminders, reminder

log = logging.getLogger(__name__)
CHAT_DRAIN_SECONDS = 5.0
REMIND_CHECK_SECONDS = 30.0

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


class FiringFollower:
    """Every incident firing now, read from the whole of ``backlog.alerts`` (no group, from
    the start, then live), for the reminders: what a restarted worker rebuilds them from."""

    def __init__(self, kafka: Kafka, live_horizon_s: float) -> None:
        self.kafka = kafka
        self.reminders = Reminders(live_horizon_s)
        self.caught_up = False

    async def follow(self) -> None:
        """Read for ever; on a broker error, start over from the start after a pause."""
        while True:
            self.reminders.firing.clear()
            self.caught_up = False
            consumer = self.kafka.consumer(ALERTS, auto_offset_reset="earliest", group_id=None)
            try:
                await consumer.start()
                while True:
                    batches = await consumer.getmany(timeout_ms=1000)
                    for messages in batches.values():
                        for message in messages:
                            self._take(message.value, message.timestamp / 1000, message.partition)
                    # Once: a record arriving later must not skip (and so lose) a due reminder.
                    self.caught_up = self.caught_up or await read_to_highwaters(consumer)
            except (KafkaError, OSError) as exc:
                log.warning("backlog.alerts (reminders): %s; reading again in 5s", exc)
            finally:
                await consumer.stop()
            await asyncio.sleep(5)

    def _take(self, value: bytes | None, published_s: float, partition: int) -> None:
        try:
            record = AlertRecord.model_validate_json(value or b"")
        except ValidationError as exc:
            log.warning("backlog.alerts (reminders): skipped a record: %s", exc.errors()[0]["msg"])
            return
        self.reminders.take(record, published_s, partition)


def deliver_alerts_to_chat(
    app: faust.App,
    config: FlowgaugeConfig,
    alerts: faust.TopicT,
    metrics: PipelineMetrics,
    kafka: Kafka,
) -> None:
    """Post every ``backlog.alerts`` record the worker owns to each chat destination; its
    offset is committed once the alert is finished for every destination. Destinations
    with ``remind_every`` are reminded of the incidents still firing on those partitions."""
    notifier = Notifier(
        config.chat, config.dashboard_url, on_outcome=metrics.count_chat, silences=config.silences
    )
    acks = InOrderAcks()
    if any(destination.remind_every for destination in config.chat):
        _remind(app, config, notifier, FiringFollower(kafka, parse_duration(config.live_horizon)))

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
            acks.track(event, _posted(notifier, event.value))
            yield None


def _posted(notifier: Notifier, value: bytes | None) -> asyncio.Future[None]:
    """The alert submitted to the chat destinations; a record that is no alert is skipped,
    finished at once: the topic is anyone's to write to, and one bad record must not stop
    every worker that owns its partition, again after each restart."""
    try:
        record = AlertRecord.model_validate_json(value or b"")
    except ValidationError as exc:
        log.warning("backlog.alerts (chat): skipped a record: %s", exc.errors()[0]["msg"])
        skipped: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        skipped.set_result(None)
        return skipped
    return notifier.submit(record)


def _remind(
    app: faust.App, config: FlowgaugeConfig, notifier: Notifier, follower: FiringFollower
) -> None:
    every = {d.name: parse_duration(d.remind_every) for d in config.chat if d.remind_every}
    checked = [time.time()]  # reminders due before this worker started are not sent late

    # Faust's decorators are not typed (pyproject.toml lets the shell use them freely).
    @app.task  # type: ignore[untyped-decorator]
    async def follow_firing() -> None:
        await follower.follow()

    @app.timer(max(1.0, min(REMIND_CHECK_SECONDS, min(every.values()) / 4)))  # type: ignore[untyped-decorator]
    async def remind() -> None:
        now, after = time.time(), checked[0]
        checked[0] = now
        if not follower.caught_up:  # a resolution not read yet would be reminded of
            return
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == ALERTS}
        due: dict[tuple[str, float], list[str]] = defaultdict(list)
        firing: dict[str, Firing] = {}
        for name, seconds in every.items():
            for one, when in follower.reminders.due(seconds, after, now):
                if one.partition in owned:
                    firing[one.record.incident_id] = one
                    due[(one.record.incident_id, when)].append(name)
        for (incident, when), names in due.items():
            notifier.submit(reminder(firing[incident], when), to=names)
