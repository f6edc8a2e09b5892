"""Chat delivery across worker stops: an alert's offset waits until the alert is finished."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from streams.commands.broker import EmbeddedBroker
from streams.core.topics import ALERTS
from streams.kafka import Kafka
from streams.outputs.delivery import InOrderAcks
from streams.outputs.records import AlertRecord
from streams.workarounds import tansu
from tests.chat_servers import Receiver, Reply
from tests.cluster import NO_PLANNING, produce, read_topic, stacks, start_worker
from tests.conftest import SHARED_FIXTURES, need_path
from tests.test_pipeline import STEP, expected_from_report, publish, webhook_receiver


@dataclass(frozen=True)
class FakeMessage:
    tp: tuple[str, int]
    offset: int


@dataclass
class FakeEvent:
    message: FakeMessage
    acks: list[int] = field(default_factory=list)

    def ack(self) -> bool:
        self.acks.append(self.message.offset)
        return True


def test_events_are_acked_in_offset_order_once_finished() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        acks = InOrderAcks()
        events = {
            (partition, offset): FakeEvent(FakeMessage(("alerts", partition), offset))
            for partition in (0, 1)
            for offset in range(3)
        }
        finished = {key: loop.create_future() for key in events}
        for key, event in events.items():
            acks.track(event, finished[key])

        def acked() -> set[tuple[int, int]]:
            return {key for key, event in events.items() if event.acks}

        finished[0, 1].set_result(None)
        finished[1, 0].set_result(None)
        await asyncio.sleep(0)
        assert acked() == {(1, 0)}  # 0/1 waits for 0/0
        finished[0, 0].set_result(None)
        await asyncio.sleep(0)
        assert acked() == {(1, 0), (0, 0), (0, 1)}
        finished[0, 2].cancel()  # the notifier closed: never acked
        acks.forget([("alerts", 1)])  # revoked: read again by the next owner
        finished[1, 1].set_result(None)
        await asyncio.sleep(0)
        assert acked() == {(1, 0), (0, 0), (0, 1)}
        assert all(len(event.acks) <= 1 for event in events.values())

    asyncio.run(scenario())


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


def in_loop(loop: asyncio.AbstractEventLoop, waiting: Coroutine[Any, Any, None]) -> None:
    """Run ``waiting`` in the receiver's loop; it has a timeout of its own."""
    asyncio.run_coroutine_threadsafe(waiting, loop).result()


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(150)
def test_alerts_outlive_worker_stops_while_the_destination_is_down(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    events = need_path(SHARED_FIXTURES / "sample-events.jsonl", "shared fixtures")
    lines = [line for line in events.read_bytes().splitlines() if line.strip()]
    wanted = set(expected_from_report(lines).alerts)
    with webhook_receiver() as (receiver, loop):
        receiver.then = Reply(503)  # down: every alert is retried, none is finished
        hook = {"name": "ops", "kind": "webhook", "url": receiver.url, "per_minute": 6000}
        env = {"FLOWGAUGE_CHAT": json.dumps([hook]), **STEP, **NO_PLANNING}

        first = start_worker(broker, tmp_path, "first", **env)
        try:
            publish(broker, lines)
            assert len(read_topic(broker, ALERTS, len(wanted), timeout=60, quiet=1)) >= len(wanted)
            in_loop(loop, receiver.wait_requests(2, timeout=30))
        finally:
            first.stop()
        assert first.process.returncode == 0

        # The alerts come again to the next worker, which dies while still retrying.
        seen = len(receiver.requests)
        second = start_worker(broker, tmp_path, "second", **env)
        try:
            in_loop(loop, receiver.wait_requests(seen + 1, timeout=30))
        except TimeoutError:  # an intermittent stall under load: say where it waits
            raise AssertionError(f"the second worker posted nothing:\n{stacks([second])}") from None
        finally:
            second.stop(signal.SIGKILL)

        loop.call_soon_threadsafe(setattr, receiver, "then", Reply())
        # The topic is anyone's to write to: a record that is no alert is passed over (and
        # committed), not the end of every worker that owns its partition.
        produce(broker, ALERTS, [(b"all", b'{"not": "an alert"}')])
        third = start_worker(broker, tmp_path, "third", **env)
        try:
            in_loop(loop, receiver.wait_until(lambda: wanted <= posted(receiver), timeout=60))
        finally:
            third.stop()
    assert posted(receiver) == wanted
    committed, ends = committed_offsets(broker, "flowgauge", ALERTS)
    assert committed == ends, "delivered alerts should be committed"
    extra = len(receiver.delivered) - len(wanted)
    print(f"{len(wanted)} alerts; {extra} posts were repeats, for the receiver to dedupe")


def posted(receiver: Receiver) -> set[str]:
    return {body["alert_id"] for body in receiver.delivered}


def committed_offsets(
    broker: EmbeddedBroker, group: str, topic: str
) -> tuple[dict[int, int | None], dict[int, int]]:
    """The group's committed offset and the end offset of each partition of ``topic``."""

    async def read() -> tuple[dict[int, int | None], dict[int, int]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=broker.url.removeprefix("kafka://"),
            group_id=group,
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            await consumer.topics()
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            committed = {tp.partition: await consumer.committed(tp) for tp in partitions}
            reported = await consumer.end_offsets(partitions)
            # Tansu's ListOffsets can lag the log (docs/embedded-broker.md): read the true
            # ends as the worker's recovery does.
            kafka = Kafka((broker.url.removeprefix("kafka://"),))
            ends = await tansu.true_highwaters(kafka, partitions, reported)
        finally:
            await consumer.stop()
        return committed, {tp.partition: offset for tp, offset in ends.items()}

    return asyncio.run(read())


def alert_record(incident: str, state: str, at: datetime) -> tuple[bytes, bytes]:
    record = AlertRecord(
        alert_id=f"{incident}:{state}",
        incident_id=incident,
        rule="inflow_above_outflow",
        scope="all",
        state="firing" if state == "firing" else "resolved",
        at=at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        value=12.0,
        threshold=2.0,
        summary="Whole backlog: 12 more tickets a day arrive than are closed",
    )
    return incident.encode(), record.to_bytes()


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_live_alert_still_firing_is_reminded_of_across_a_restart_and_a_replayed_one_never(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Reminders every 3 s while the live incident fires: they go on after the worker is
    replaced (rebuilt from backlog.alerts; the firing itself is not posted again) and stop
    at its resolution. An incident replayed from March is posted once and never reminded."""
    now = datetime.now(UTC)
    live = alert_record("live", "firing", now)
    history = alert_record("march", "firing", datetime(2026, 3, 2, 14, tzinfo=UTC))

    def ids(receiver: Receiver) -> list[str]:
        return [body["props"]["alert_id"] for body in receiver.delivered]

    def reminded(receiver: Receiver) -> int:
        return sum(":reminder:" in posted for posted in ids(receiver))

    with webhook_receiver() as (receiver, loop):
        hook = {"name": "ops", "kind": "mattermost", "url": receiver.url, "per_minute": 6000}
        env = {"FLOWGAUGE_CHAT": json.dumps([hook | {"remind_every": "3s"}]), **NO_PLANNING}
        first = start_worker(broker, tmp_path, "first", **env)
        try:
            produce(broker, ALERTS, [history, live])
            in_loop(loop, receiver.wait_until(lambda: reminded(receiver) >= 2, timeout=30))
        finally:
            first.stop()
        second = start_worker(broker, tmp_path, "second", **env)
        try:
            before = reminded(receiver)
            in_loop(loop, receiver.wait_until(lambda: reminded(receiver) > before, timeout=30))
            produce(broker, ALERTS, [alert_record("live", "resolved", datetime.now(UTC))])
            in_loop(loop, receiver.wait_until(lambda: "live:resolved" in ids(receiver), 30))
            after = reminded(receiver)
            time.sleep(7)  # two intervals more
            assert reminded(receiver) == after
        finally:
            second.stop()
    posted = ids(receiver)
    assert posted.count("live:firing") == 1  # committed: not posted again by the second
    assert posted.count("march:firing") == 1
    assert not any(p.startswith("march:") and ":reminder:" in p for p in posted)
    reminders = [p for p in posted if ":reminder:" in p]
    assert len(reminders) == len(set(reminders))  # none sent twice across the restart
