"""Faults against the embedded broker: a worker killed under load, and the broker itself lost.

Both tests cut a simulated log at an hour boundary ``CUT``: the first part is published,
the fault happens, then the rest is published. The cut is on a boundary of the 1h step and
every event of the second part is later than it, so a boundary the stream emitted before
the second part arrived is the same row ``report`` computes over the whole log.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from streams.commands.broker import EmbeddedBroker, free_port
from streams.commands.replay import publish as replay
from streams.commands.simulate import Scenario, encode, generate_events
from streams.config import FlowgaugeConfig
from streams.core.topics import AGING, ALERTS, FLOW, INDICATORS, SLA
from streams.workarounds import commits
from tests.cluster import NO_PLANNING, Worker, latest_by_key, read_topic, stacks, start_worker
from tests.proxy import FreezingProxy
from tests.test_pipeline import (
    STEP as PIPELINE_STEP,
)
from tests.test_pipeline import (
    assert_snapshots,
    expected_from_report,
    gauge,
    publish,
    wait_caught_up,
)

STEP = {**PIPELINE_STEP, **NO_PLANNING}

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(240)]
START = datetime(2026, 3, 2, tzinfo=UTC)  # Scenario's default start


def split_log(days: float, cut_days: float) -> tuple[list[bytes], list[bytes]]:
    """A simulated log cut at ``START + cut_days``: events at or before it, and after it."""
    cut = START + timedelta(days=cut_days)
    before: list[bytes] = []
    after: list[bytes] = []
    for event in generate_events(Scenario(days=days)):
        at = datetime.fromisoformat(str(event["occurred_at"]))
        (before if at <= cut else after).append(encode(event))
    assert before, "nothing before the cut"
    assert after, "nothing after the cut"
    return before, after


def samples(worker: Worker, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(worker.metrics())
        for sample in family.samples
        if sample.name == name
    ]


def owned_inputs(worker: Worker) -> set[int]:
    """The input partitions a worker owns now (it reports lag only for those)."""
    return {
        int(labels["partition"]) for labels, _ in samples(worker, "flowgauge_consumer_lag_messages")
    }


def counter(worker: Worker, name: str) -> float:
    return sum(value for _, value in samples(worker, name))


def wait_for(
    what: str, condition: Callable[[], object], timeout: float, worker_logs: list[Worker]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    tails = "\n".join(w.log.read_text(errors="replace")[-2000:] for w in worker_logs)
    pytest.fail(f"{what}: not within {timeout}s\n{tails}\n{stacks(worker_logs)}")


def canonical(records: list[dict[str, Any]]) -> set[str]:
    return {json.dumps(record, sort_keys=True) for record in records}


def check_exact(broker: EmbeddedBroker, lines: list[bytes], running: list[Worker]) -> None:
    """Every derived topic and gauge equals ``report`` over ``lines``, redeliveries allowed.

    As ``test_pipeline.check_against_report``, except that a crash may publish a record
    twice: each copy must then carry the same numbers, on every topic, indicators included.
    """
    wait_caught_up(running)
    wanted = expected_from_report(lines)
    assert_snapshots(broker, wanted)
    alerts = [json.loads(v) for _, v in read_topic(broker, ALERTS, until=len(wanted.alerts))]
    assert {a["alert_id"]: {"state": a["state"], "at": a["at"]} for a in alerts} == wanted.alerts
    indicators = canonical(wanted.indicators)
    got = read_topic(broker, INDICATORS, until=len(indicators))
    assert canonical([json.loads(v) for _, v in got]) == indicators, INDICATORS
    sla = canonical(wanted.sla)
    assert sla, "the log should exercise the SLA clocks"
    assert canonical([json.loads(v) for _, v in read_topic(broker, SLA, until=len(sla))]) == sla
    flow = wanted.flow
    last_all = max(k for k in flow if k[1] == "all")
    scopeless = {"queue": "", "priority": "", "channel": ""}
    assert gauge(running, "flowgauge_open_tickets", **scopeless) == flow[last_all]["open"]
    assert (
        gauge(running, "flowgauge_inflow_tickets", window="24h", **scopeless)
        == flow[last_all]["inflow"]["24h"]
    )
    for queue in ("billing", "tech", "accounts", "sales"):
        last = max(k for k in flow if k[1] == f"queue:{queue}")
        assert (
            gauge(running, "flowgauge_open_tickets", queue=queue, priority="", channel="")
            == flow[last]["open"]
        ), queue


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


def test_kill_9_one_of_two_workers_then_restart_it_stays_exact(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    before, after = split_log(days=9, cut_days=7)
    survivor = start_worker(broker, tmp_path, "worker0", **STEP)
    victim = start_worker(broker, tmp_path, "worker1", **STEP)
    started = [survivor, victim]
    try:
        wait_for(
            "the two workers share the input",
            lambda: owned_inputs(survivor) and owned_inputs(victim),
            60,
            started,
        )
        publish(broker, before)
        partial = read_topic(broker, FLOW, until=200, quiet=0.0)
        victim.stop(signal.SIGKILL)
        assert victim.process.returncode == -signal.SIGKILL
        assert len(partial) < len(expected_from_report(before).flow), "the kill came too late"

        # The survivor takes over every partition and finishes the first part exactly.
        check_exact(broker, before, [survivor])
        assert owned_inputs(survivor) == {0, 1, 2, 3}

        # The killed worker comes back: the group rebalances and both get work again.
        victim = start_worker(broker, tmp_path, "worker1", **STEP)
        started.append(victim)
        wait_for(
            "a rebalance gives the restarted worker input partitions",
            lambda: (
                owned_inputs(victim)
                and owned_inputs(survivor) | owned_inputs(victim) == {0, 1, 2, 3}
            ),
            60,
            started,
        )
        publish(broker, after)
        check_exact(broker, before + after, [survivor, victim])
        assert owned_inputs(victim), "the restarted worker lost its partitions again"
        assert counter(victim, "flowgauge_events_processed_total") > 0, (
            "no work after the rebalance"
        )
    finally:
        for worker in started:
            worker.stop()


def lose_the_broker(tmp_path: Path, replay_first: bool) -> None:
    """The broker forgets everything; the worker keeps running and keeps its tables.

    Phase one publishes the first part of a log and checks it. Then a fresh, empty broker
    takes the old one's port; the first part is published again when ``replay_first``,
    then the rest. What users should get: the worker reconnects by itself; a replayed
    event is recognised as a duplicate (nothing counted twice, the gauges still say what
    ``report`` says over the log); and everything the worker publishes on the new broker
    from then on is the row ``report`` computes over the whole log. Boundaries emitted
    before the loss are not published again: they went with the old broker, and a replay
    brings no new data (to rebuild them, start a fresh worker and replay the whole log).
    """
    before, after = split_log(days=4, cut_days=3)
    old = EmbeddedBroker().start()
    new: EmbeddedBroker | None = None
    worker: Worker | None = None
    try:
        worker = start_worker(old, tmp_path, "worker", **STEP)
        publish(old, before)
        check_exact(old, before, [worker])
        processed = counter(worker, "flowgauge_events_processed_total")
        duplicates = counter(worker, "flowgauge_events_duplicate_total")
        assert processed > 0

        old.stop()
        time.sleep(2.0)  # the worker notices the broker is gone
        new = EmbeddedBroker(old.port).start()
        config = FlowgaugeConfig.model_validate({"broker": new.url})
        first = expected_from_report(before).flow
        last_all = max(k for k in first if k[1] == "all")
        scopeless = {"queue": "", "priority": "", "channel": ""}
        replayed = 0
        if replay_first:
            replayed = asyncio.run(replay(config, before))
            assert replayed == len(before)
            running = worker
            wait_for(
                "the replayed log is read and recognised as duplicates",
                lambda: (
                    counter(running, "flowgauge_events_duplicate_total") >= duplicates + len(before)
                ),
                90,
                [worker],
            )
            assert counter(worker, "flowgauge_events_processed_total") == processed
            assert counter(worker, "flowgauge_events_duplicate_total") == duplicates + replayed
        assert worker.process.poll() is None, "the worker died with the broker"
        assert gauge([worker], "flowgauge_open_tickets", **scopeless) == first[last_all]["open"]

        # New data: what the worker publishes from now on is report's rows.
        asyncio.run(replay(config, after))
        wait_caught_up([worker])
        whole = expected_from_report(before + after)
        for topic, rows in ((FLOW, whole.flow), (AGING, whole.aging)):
            wanted = {k: v for k, v in rows.items() if k[0] > last_all[0]}
            got = latest_by_key(read_topic(new, topic, until=len(wanted), timeout=90))
            assert got == wanted, topic
        alerts = [json.loads(v) for _, v in read_topic(new, ALERTS, until=0, quiet=3.0)]
        wanted_alerts = {
            alert_id: alert for alert_id, alert in whole.alerts.items() if alert["at"] > last_all[0]
        }
        assert {a["alert_id"]: {"state": a["state"], "at": a["at"]} for a in alerts} == (
            wanted_alerts
        )
        wanted_sla = canonical([r for r in whole.sla if r["as_of"] > last_all[0]])
        sla = read_topic(new, SLA, until=len(wanted_sla))
        assert canonical([json.loads(v) for _, v in sla]) == wanted_sla
        last = max(k for k in whole.flow if k[1] == "all")
        assert gauge([worker], "flowgauge_open_tickets", **scopeless) == whole.flow[last]["open"]
        added = counter(worker, "flowgauge_events_processed_total") - processed
        repeats = counter(worker, "flowgauge_events_duplicate_total") - duplicates
        assert added > 0
        assert added + repeats == replayed + len(after)
    finally:
        if worker is not None:
            worker.stop()
        for broker in (old, new):
            if broker is not None:
                broker.stop()


def test_a_fresh_broker_with_the_whole_log_replayed_stays_exact(tmp_path: Path) -> None:
    lose_the_broker(tmp_path, replay_first=True)


def test_a_fresh_broker_with_only_new_events_stays_exact(tmp_path: Path) -> None:
    """New events at offsets the lost log used: positions (streams/core/positions.py) carry on
    after the old log's, or the scope stage would take them as applied already."""
    lose_the_broker(tmp_path, replay_first=False)


def test_the_embedded_broker_breaks_a_topic_created_after_it_was_written() -> None:
    """Why the worker declares its topics again before writing to a broker that may be new
    (streams/workarounds/redeclare.py): on Tansu 0.6, a topic a producer wrote to before anyone
    created it accepts a CreateTopics, and from then on every produce to it fails."""

    async def scenario(old: EmbeddedBroker) -> tuple[int, str]:
        servers = old.url.removeprefix("kafka://")
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await admin.start()
        await admin.create_topics([NewTopic("t", num_partitions=1, replication_factor=1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=servers)
        await producer.start()
        try:
            await producer.send_and_wait("t", b"before", partition=0)
            old.stop()
            with EmbeddedBroker(old.port):
                # The producer still knows "t": it writes to the new broker without asking.
                written = await producer.send_and_wait("t", b"on the new broker", partition=0)
                admin = AIOKafkaAdminClient(bootstrap_servers=servers)
                await admin.start()
                await admin.create_topics([NewTopic("t", num_partitions=1, replication_factor=1)])
                await admin.close()
                try:
                    await asyncio.wait_for(producer.send_and_wait("t", b"after", partition=0), 20)
                except KafkaError as exc:
                    return written.offset, type(exc).__name__
                return written.offset, "accepted"
        finally:
            await producer.stop()

    old = EmbeddedBroker().start()
    try:
        assert asyncio.run(scenario(old)) == (0, "UnknownError")
    finally:
        old.stop()


def test_a_commit_from_outside_the_group_is_taken_and_the_worker_sends_none(
    broker: EmbeddedBroker,
) -> None:
    """Why the worker commits only as a member of its group (streams/workarounds/commits.py).

    A broker that came back empty drops the worker from its group, and Faust commits the
    old logs' offsets as it revokes its partitions. aiokafka sends them with no
    generation, and the broker takes them into the empty group: after the rejoin the
    partitions would resume there, past what the new logs already hold.
    """
    tp = TopicPartition("t", 0)

    async def scenario() -> tuple[bool, int | None, bool, bool]:
        servers = broker.url.removeprefix("kafka://")
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await admin.start()
        await admin.create_topics([NewTopic("t", num_partitions=1, replication_factor=1)])
        await admin.close()
        outsider = AIOKafkaConsumer(bootstrap_servers=servers, group_id="g")
        await outsider.start()
        try:
            outsider.assign([tp])
            outside = commits.is_member(outsider)
            await outsider.commit({tp: 5})  # what aiokafka sends for Faust after the loss
            # The worker's guard, on the same consumer, lets nothing reach the broker.
            sent = await commits.member_commit(
                SimpleNamespace(_ensure_consumer=lambda: outsider), {tp: 7}
            )
        finally:
            await outsider.stop()
        member = AIOKafkaConsumer("t", bootstrap_servers=servers, group_id="g")
        await member.start()
        try:
            joined_by = time.monotonic() + 60  # Tansu takes about 3 s to form a group
            while not member.assignment() and time.monotonic() < joined_by:
                await member.getmany(timeout_ms=500)
            return outside, await member.committed(tp), commits.is_member(member), sent
        finally:
            await member.stop()

    outside, resumed_at, joined, sent = asyncio.run(scenario())
    assert not outside, "a consumer that never joined counts as a member"
    assert resumed_at == 5, "the broker did not take the commit from outside the group"
    assert joined, "a consumer that joined does not count as a member"
    assert sent is False


@pytest.mark.timeout(480)
def test_a_connection_that_silently_stops_carrying_data_ends_in_a_restart(
    tmp_path: Path,
) -> None:
    """Every connection the worker has open goes silent (no reset, no error): the fetch is
    given up after Faust's request timeout (90 s), but the acks the stages wait for would
    take 20 minutes, and a rebalance that follows may wait on them too. The intake watch
    sees the input wait while nothing moves, past a limit longer than a rebalance takes to
    start, asks the broker afresh, and restarts the worker, which carries on exactly."""
    before, after = split_log(days=9, cut_days=7)
    proxy_port = free_port()
    with (
        EmbeddedBroker(advertised_port=proxy_port) as broker,
        FreezingProxy(proxy_port, broker.port) as proxy,
    ):
        worker = start_worker(broker, tmp_path, "worker", **STEP, FLOWGAUGE_STALL_RESTART="60s")
        try:
            publish(broker, before)
            wait_caught_up([worker])
            assert proxy.freeze_open() > 0, "the worker should have connections open"
            publish(broker, after)
            wait_for("the worker restarts itself", lambda: restarted(worker), 300, [worker])
            check_exact(broker, before + after, [worker])
        finally:
            worker.stop()


def restarted(worker: Worker) -> bool:
    """Whether the intake watch has restarted the worker (shell/intake_watch.py logs it)."""
    return b"with messages waiting: restarting" in worker.log.read_bytes()
