"""The worker against the real embedded broker: derived topics equal ``report``, exactly."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path

import pytest
from aiokafka.partitioner import murmur2
from prometheus_client.parser import text_string_to_metric_families

from streams.commands.broker import EmbeddedBroker
from streams.commands.replay import message_key
from streams.commands.report import run
from streams.commands.simulate import Scenario, encode, generate_events
from streams.core.scope import Settings
from streams.core.timeline import US_PER_SECOND, iso, to_us
from streams.core.topics import (
    AGING,
    ALERTS,
    DEAD_LETTERS,
    FLOW,
    FORECAST,
    INDICATORS,
    INPUT,
    PULL,
    SLA,
)
from streams.core.watermark import Watermarks
from streams.kafka import Kafka
from streams.outputs.records import AgingRecord, FlowRecord, SlaRecord, outgoing
from tests.chat_servers import SECRET, Receiver
from tests.cluster import Worker, latest_by_key, produce, read_topic, stacks, start_worker, workers
from tests.conftest import SHARED_FIXTURES, core_settings, need_path

pytestmark = [pytest.mark.broker, pytest.mark.slow]
STEP = {"FLOWGAUGE_STEP": "1h"}
GRACE_US = 600 * 1_000_000


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    events = need_path(SHARED_FIXTURES / "sample-events.jsonl", "shared fixtures")
    return [line for line in events.read_bytes().splitlines() if line.strip()]


@dataclass
class Expected:
    """What ``report`` computes from the same events, as the derived topics carry it."""

    flow: dict[tuple[str, str], dict]
    aging: dict[tuple[str, str], dict]
    alerts: dict[str, dict]
    sla: list[dict]
    indicators: list[dict]
    forecast: list[dict]
    pull: list[dict]


def expected_from_report(lines: list[bytes], settings: Settings | None = None) -> Expected:
    emitted, _ = run(lines, settings or core_settings(3600), GRACE_US)
    flow = [FlowRecord.fields_of(item.flow) for item in emitted]
    aging = [AgingRecord.fields_of(item.aging) for item in emitted if item.aging]
    alerts = [alert for item in emitted for alert in item.alerts]
    sla = [
        SlaRecord.fields_of(change)
        for item in emitted
        for change in (item.aging.sla_changes if item.aging else ())
    ]
    return Expected(
        {(r["as_of"], r["scope"]): r for r in flow},
        {(r["as_of"], r["scope"]): r for r in aging},
        {a.alert_id: {"state": a.state.value, "at": iso(a.at_us)} for a in alerts},
        sla,
        *(
            [
                json.loads(value)
                for item in emitted
                for topic, _, value in outgoing(item, None, "7d", "7d")
                if topic == wanted
            ]
            for wanted in (INDICATORS, FORECAST, PULL)
        ),
    )


TOKEN = "pull-list-reader"


def pull_list(worker: Worker, queue: str, timeout: float = 30.0) -> tuple[int, dict]:
    """``GET /pull?queue=``: status and body, once the worker has read backlog.pull."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{worker.web_port}/pull?queue={queue}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code != 404 or time.monotonic() > deadline or queue == "nowhere":
                return error.code, json.loads(error.read())
        time.sleep(0.5)


def publish(broker: EmbeddedBroker, lines: list[bytes]) -> None:
    produce(broker, INPUT, [(message_key(line), line) for line in lines])


def gauge(workers_: list[Worker], name: str, **labels: str) -> float:
    """The sum over workers of one gauge series, as ``sum()`` in PromQL would give it."""
    total = 0.0
    for worker in workers_:
        for family in text_string_to_metric_families(worker.metrics()):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    total += sample.value
    return total


def wait_caught_up(running: list[Worker], partitions: int = 4, timeout: float = 90.0) -> None:
    """Until every input partition is owned by a worker that has processed all of it."""
    deadline = time.monotonic() + timeout
    lags: dict[str, float] = {}
    while time.monotonic() < deadline:
        lags = {
            sample.labels["partition"]: sample.value
            for worker in running
            for family in text_string_to_metric_families(worker.metrics())
            for sample in family.samples
            if sample.name == "flowgauge_consumer_lag_messages"
        }
        if len(lags) == partitions and not any(lags.values()):
            return
        time.sleep(0.5)
    state = "\n".join(w.metrics() for w in running)
    pytest.fail(f"input lag per partition after {timeout}s: {lags}\n{state}\n{stacks(running)}")


def assert_same_records(got: list[dict], wanted: list[dict], topic: str, context: str = "") -> None:
    """Equal as sets of records; on a difference, say which fields of which rows differ."""
    canonical = {json.dumps(r, sort_keys=True) for r in got}
    if canonical == {json.dumps(r, sort_keys=True) for r in wanted}:
        return
    expected = {(r["as_of"], r["scope"]): r for r in wanted}
    differences = []
    for record in got:
        want = expected.get((record["as_of"], record["scope"]), {})
        fields = {k: (v, want.get(k)) for k, v in record.items() if want.get(k) != v}
        if fields:
            differences.append(f"{record['as_of']} {record['scope']}: {fields}")
    missing = expected.keys() - {(r["as_of"], r["scope"]) for r in got}
    pytest.fail(
        f"{topic} ({context}): {len(differences)} rows differ, {len(missing)} missing;"
        " (got, wanted):\n" + "\n".join(differences[:20]) + f"\nmissing: {sorted(missing)[:10]}"
    )


def assert_snapshots(broker: EmbeddedBroker, wanted: Expected, kafka: Kafka | None = None) -> None:
    """``backlog.flow`` and ``backlog.aging`` hold report's rows, latest per key; a
    redelivered snapshot must repeat the same numbers."""
    for topic, rows in ((FLOW, wanted.flow), (AGING, wanted.aging)):
        messages = read_topic(broker, topic, until=len(rows), kafka=kafka)
        assert_same_records(list(latest_by_key(messages).values()), list(rows.values()), topic)
        for key, value in messages:
            record = json.loads(value)
            assert key == record["scope"].encode(), topic
            assert record == rows[(record["as_of"], record["scope"])], topic


def check_against_report(broker: EmbeddedBroker, lines: list[bytes], running: list[Worker]) -> None:
    wait_caught_up(running)
    wanted = expected_from_report(lines)
    expected = wanted.flow
    assert_snapshots(broker, wanted)
    # A redelivered record after a crash repeats the same numbers: compare as sets.
    indicators = [
        json.loads(v) for _, v in read_topic(broker, INDICATORS, until=len(wanted.indicators))
    ]
    found = {
        kind: gauge(running, "flowgauge_requester_findings_total", kind=kind)
        for kind in ("recontact", "undeflected")
    } | {"tracked": gauge(running, "flowgauge_requesters_tracked")}
    assert_same_records(indicators, wanted.indicators, INDICATORS, f"findings {found}")
    # Each day of history counted once, across a crash too (days_sampled).
    forecast = [json.loads(v) for _, v in read_topic(broker, FORECAST, until=len(wanted.forecast))]
    assert_same_records(forecast, wanted.forecast, FORECAST)
    pull = [json.loads(v) for _, v in read_topic(broker, PULL, until=len(wanted.pull))]
    assert_same_records(pull, wanted.pull, PULL)
    latest = max((r for r in wanted.forecast if r["scope"] == "all"), key=itemgetter("as_of"))
    scopeless = {"queue": "", "priority": "", "channel": ""}
    closes = gauge(running, "flowgauge_closes_needed_per_day", **scopeless)
    assert closes == (latest["closes_needed_per_day_p85"] or 0)
    alerts = [json.loads(v) for _, v in read_topic(broker, ALERTS, until=len(wanted.alerts))]
    assert {a["alert_id"]: {"state": a["state"], "at": a["at"]} for a in alerts} == wanted.alerts
    assert wanted.sla, "the fixture should exercise the SLA clocks"
    sla = [json.loads(v) for _, v in read_topic(broker, SLA, until=len(wanted.sla))]
    assert {json.dumps(r, sort_keys=True) for r in sla} == {
        json.dumps(r, sort_keys=True) for r in wanted.sla
    }
    last_all = max((k for k in expected if k[1] == "all"), key=lambda k: k[0])
    scopeless = {"queue": "", "priority": "", "channel": ""}
    assert gauge(running, "flowgauge_open_tickets", **scopeless) == expected[last_all]["open"]
    assert (
        gauge(running, "flowgauge_inflow_tickets", window="24h", **scopeless)
        == expected[last_all]["inflow"]["24h"]
    )
    billing = max((k for k in expected if k[1] == "queue:billing"), key=lambda k: k[0])
    assert (
        gauge(running, "flowgauge_open_tickets", queue="billing", priority="", channel="")
        == expected[billing]["open"]
    )


@pytest.mark.parametrize("count", [1, 2], ids=["one worker", "two workers in one group"])
def test_workers_publish_exactly_what_report_computes(
    broker: EmbeddedBroker, lines: list[bytes], tmp_path: Path, count: int
) -> None:
    # The fixture's last two days have two weeks of history behind them: forecasts with
    # numbers, not only "insufficient_history".
    forecast = expected_from_report(lines).forecast
    assert any(r["status"] == "ok" and r["closes_needed_per_day_p85"] for r in forecast)
    with workers(broker, tmp_path, count, **STEP, FLOWGAUGE_WEB_TOKEN=TOKEN) as running:
        publish(broker, lines)
        check_against_report(broker, lines, running)
        # Every worker serves every queue's latest pull list, whichever owns the queue.
        pulls = expected_from_report(lines).pull
        latest = max((r for r in pulls if r["scope"] == "queue:billing"), key=itemgetter("as_of"))
        assert latest["picks"], "billing has open tickets at the fixture's end"
        for worker in running:
            assert pull_list(worker, "billing") == (200, latest)
            assert pull_list(worker, "nowhere")[0] == 404
        # Without a crash, each SLA change goes out exactly once.
        sla = [json.loads(v) for _, v in read_topic(broker, SLA, until=1, quiet=0.5)]
        key = itemgetter("ticket_id", "target", "state", "as_of")
        assert sorted(map(key, sla)) == sorted(map(key, expected_from_report(lines).sla))
        # A restart by the skip check (streams/workarounds/gaps.py) would reset the counters
        # below: say so.
        restarted = [w.log.name for w in running if b"after a rebalance" in w.log.read_bytes()]
        assert not restarted, "restarted by the skip check"
        assert gauge(running, "flowgauge_events_dead_lettered_total") == 8
        assert gauge(running, "flowgauge_events_duplicate_total") == 91
        assert gauge(running, "flowgauge_requester_findings_total", kind="recontact") > 0
        assert gauge(running, "flowgauge_requesters_tracked") > 0


def test_invalid_events_go_to_the_dead_letter_topic_with_reason_and_source(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    good = (
        b'{"event_id":"E1","ticket_id":"T1","type":"created","occurred_at":"2026-03-02T08:00:00Z"}'
    )
    bad = [
        (b"T2", b"{not json"),
        (
            b"T3",
            b'{"event_id":"E1","ticket_id":"T3","type":"teleported","occurred_at":"2026-03-02T08:00:00Z"}',
        ),
        (
            b"T4",
            b'{"event_id":"E1","ticket_id":"T4","type":"created","occurred_at":"2026-03-02T08:00:00"}',
        ),
        (None, b'{"event_id":"E1","type":"created","occurred_at":"2026-03-02T08:00:00Z"}'),
        (b"T5", b"\xff\xfe\x00garbage"),
    ]
    with workers(broker, tmp_path, 1, **STEP):
        produce(broker, INPUT, [(b"T1", good), *bad])
        letters = [json.loads(v) for _, v in read_topic(broker, DEAD_LETTERS, until=len(bad))]
    by_original = {base64.b64decode(letter["original_base64"]): letter for letter in letters}
    assert set(by_original) == {value for _, value in bad}
    reasons = {value: by_original[value]["reason"] for _, value in bad}
    assert reasons[b"{not json"].startswith("not JSON")
    assert "type" in reasons[bad[1][1]]
    assert "no UTC offset" in reasons[bad[2][1]]
    assert reasons[bad[3][1]].startswith("ticket_id")
    assert reasons[bad[4][1]].startswith("not UTF-8")
    for letter in letters:
        assert letter["source_topic"] == INPUT
        assert letter["source_offset"] >= 0
        assert 0 <= letter["source_partition"] < 4


_INPUT_ROW = re.compile(
    rf"{INPUT}\[(\d+)\] position=(\d+) highwater=(\d+) .*\| faust: active=(\w+)"
)


def test_the_stall_dump_says_where_each_input_partition_stands(
    broker: EmbeddedBroker, tmp_path: Path, lines: list[bytes]
) -> None:
    """SIGUSR1 ends its task stacks with every assigned partition's state in aiokafka and in
    Faust: for a stall, whether the partition is fetched at all and from where."""
    with workers(broker, tmp_path, 1, **STEP) as running:
        publish(broker, lines)
        wait_caught_up(running)
        dump = stacks(running)
    assert "PARTITIONS flow_active=True can_resume_flow=True" in dump
    rows = {int(p): (int(at), int(end), active) for p, at, end, active in _INPUT_ROW.findall(dump)}
    assert sorted(rows) == [0, 1, 2, 3], dump
    assert sum(end for _, end, _ in rows.values()) == len(lines)
    for at, end, active in rows.values():
        assert (at, active) == (end, "True"), dump


def closing_events(partitions: int = 4) -> tuple[list[bytes], int]:
    """One new ticket per input partition, a day after the fixture's last event, and the
    last boundary (in µs) that closes once every partition has seen it, none idle."""
    at = datetime(2026, 3, 18, 12, tzinfo=UTC)
    chosen: dict[int, bytes] = {}
    for number in itertools.count():
        ticket = f"CLOSE{number}".encode()
        chosen.setdefault((murmur2(ticket) & 0x7FFFFFFF) % partitions, ticket)
        if len(chosen) == partitions:
            break
    events = [
        json.dumps({
            "schema_version": 1, "event_id": f"CLOSE-{ticket.decode()}", "type": "created",
            "ticket_id": ticket.decode(), "occurred_at": at.isoformat(), "queue": "billing",
            "priority": "P2", "channel": "email", "requester_id": "R1",
        }).encode()
        for ticket in chosen.values()
    ]  # fmt: skip
    marks = Watermarks()
    for partition in chosen:
        marks.observe(partition, to_us(at))
    step = 3600 * US_PER_SECOND
    limit = marks.emit_limit(step, GRACE_US)
    assert limit is not None
    return events, limit * step


def test_a_catch_up_beyond_the_snapshot_budget_carries_on_by_itself(
    broker: EmbeddedBroker, lines: list[bytes], tmp_path: Path
) -> None:
    """A few snapshots per batch and no idle heartbeat (a day's idle timeout): every
    boundary the input closes still goes out, because the scope stage resumes itself."""
    closing, limit = closing_events()
    env = {**STEP, "FLOWGAUGE_SNAPSHOTS_PER_BATCH": "100", "FLOWGAUGE_IDLE_TIMEOUT": "1d"}
    wanted = [
        row
        for (as_of, _), row in expected_from_report(lines + closing).flow.items()
        if as_of <= iso(limit)
    ]
    assert len(wanted) > 20 * 100, "the catch-up must take many batches"
    with workers(broker, tmp_path, 1, **env) as running:
        publish(broker, lines + closing)
        wait_caught_up(running)
        messages = read_topic(broker, FLOW, until=len(wanted))
        assert_same_records(list(latest_by_key(messages).values()), wanted, FLOW)
        assert gauge(running, "flowgauge_snapshots_emitted_total") == len(wanted)
    # Keyed by scope, so a compacted topic keeps each scope's newest boundary.
    boundaries: dict[bytes | None, list[str]] = {}
    for key, value in messages:
        boundaries.setdefault(key, []).append(json.loads(value)["as_of"])
    assert all(seen == sorted(seen) for seen in boundaries.values())


def test_kill_9_mid_stream_and_restart_gives_the_unbroken_numbers(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    lines = [encode(event) for event in generate_events(Scenario(days=10))]
    publish(broker, lines)
    first = start_worker(broker, tmp_path, "worker", **STEP)
    try:
        partial = read_topic(broker, FLOW, until=300, quiet=0.0)
        total = len(expected_from_report(lines).flow)
        assert len(partial) < total, "the kill came too late to test anything"
    finally:
        first.stop(signal.SIGKILL)
    second = start_worker(broker, tmp_path, "worker", **STEP)
    try:
        check_against_report(broker, lines, [second])
    finally:
        second.stop()


@contextmanager
def webhook_receiver() -> Iterator[tuple[Receiver, asyncio.AbstractEventLoop]]:
    """A real local webhook endpoint, served from its own thread while the test waits."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    receiver = Receiver()
    asyncio.run_coroutine_threadsafe(receiver.listen(), loop).result(10)
    try:
        yield receiver, loop
    finally:
        asyncio.run_coroutine_threadsafe(receiver.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_alerts_reach_a_configured_chat_webhook(
    broker: EmbeddedBroker, lines: list[bytes], tmp_path: Path
) -> None:
    wanted = expected_from_report(lines).alerts
    assert wanted, "the fixture should make the rule fire"
    with webhook_receiver() as (receiver, loop):
        # A generous rate: the fixture makes dozens of transitions across all rules.
        hook = {"name": "ops", "kind": "webhook", "url": receiver.url, "per_minute": 6000}
        chat = json.dumps([hook])
        with workers(broker, tmp_path, 1, FLOWGAUGE_CHAT=chat, **STEP) as running:
            publish(broker, lines)
            waiting = receiver.wait_delivered(len(wanted), timeout=90)
            asyncio.run_coroutine_threadsafe(waiting, loop).result(100)
            posted = {
                body["alert_id"]: {"state": body["state"], "at": body["at"]}
                for body in receiver.delivered
            }
    assert posted == wanted
    assert SECRET not in running[0].log.read_text()
