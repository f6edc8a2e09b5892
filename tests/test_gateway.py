"""``flowgauge gateway`` end to end: a real gateway process before the embedded broker (one
for the module, restarted empty on its port where a test says so), GitHub's real webhook
bodies (tests/fixtures/connectors/github, from octokit/webhooks) signed as GitHub signs
them, what each answer says, and what lands on ``ticket-events`` and
``ticket-events.rejected``, read back from the broker. Last, a worker counts an issue's
life posted through the gateway."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import gzip
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiokafka.structs import TopicPartition
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from streams.commands.broker import EmbeddedBroker
from streams.core.topics import FLOW, INDICATORS, INPUT, REJECTED
from streams.kafka import Kafka
from streams.workarounds import tansu
from tests.cluster import NO_PLANNING, end_process, latest_by_key, read_topic, start_worker
from tests.conftest import ROOT
from tests.test_pipeline import STEP, assert_snapshots, expected_from_report

pytestmark = [pytest.mark.broker]

FIXTURES = ROOT / "tests" / "fixtures" / "connectors" / "github"
SCHEMAS = ROOT / "schemas"
SECRET = b"s3cret"
MAX_BODY = 1024 * 1024  # the default, set so that the 413 and the limit itself are tested
TICKET = "github:acme:Codertocat/Hello-World:1"
SETTINGS = f"""
[gateway]
max_body_bytes = {MAX_BODY}

[[gateway.sources]]
name = "gh"
kind = "github"
account = "acme"
secret = "{SECRET.decode()}"

[[gateway.sources]]
name = "open"
kind = "github"
account = "acme"
insecure = true

[[gateway.sources]]
name = "nosecret"
kind = "github"
account = "acme"
"""
LISTENING = re.compile(rb"flowgauge gateway on (http://\S+) \((\d+) sources\)")
Headers = Mapping[str, str | bytes | tuple[str | bytes, ...]]  # a tuple: the header repeated
# The four real deliveries: the file, its X-GitHub-Event, the answer.
DELIVERIES = [
    ("issues.opened", "issues", 200, {"published": ["created"]}),
    ("issue_comment.created", "issue_comment", 200, {"published": ["comment:492700400"]}),
    (
        "issues.reopened",
        "issues",
        200,
        {"published": ["reopened:2021-10-11T16:40:56Z"]},
    ),
    ("issues.pinned", "issues", 202, {"ignored": "issues pinned"}),
]


# --- the gateway process and its client ---------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.url.removeprefix("http://").rpartition(":")
        return host, int(port)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: Headers | None = None,
        timeout: float = 30.0,
    ) -> Reply:
        """One request on a connection of its own; header values as given, bytes too, a
        tuple as the header repeated. An iterable body goes chunked, without Content-Length."""
        connection = http.client.HTTPConnection(*self.address, timeout=timeout)
        started = time.monotonic()
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                for each in value if isinstance(value, tuple) else (value,):
                    connection.putheader(name, each)
            chunked = body is not None and not isinstance(body, bytes)
            if isinstance(body, bytes):
                connection.putheader("Content-Length", str(len(body)))
            elif chunked:
                connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            if isinstance(body, bytes):
                connection.send(body)
            elif body is not None:
                for chunk in body:
                    connection.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                connection.send(b"0\r\n\r\n")
            response = connection.getresponse()
            answer = response.read()
            return Reply(
                response.status, dict(response.getheaders()), answer, time.monotonic() - started
            )
        finally:
            connection.close()

    def post(self, name: str, body: bytes | Iterable[bytes], headers: Headers) -> Reply:
        return self.request("POST", f"/webhooks/{name}", body, headers)

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics but the ``_created`` ones, by name and labels."""
        reply = self.get("/metrics")
        assert reply.status == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(reply.body.decode())
            for sample in family.samples
            if not sample.name.endswith("_created")
        }

    def stop(self) -> None:
        end_process(self.process, wait=10)


def start_gateway(
    broker: EmbeddedBroker, settings_file: Path, log: Path, timeout: float = 30.0
) -> Gateway:
    """``flowgauge gateway`` on a free loopback port, once it said where it listens."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams.commands.cli",
                "gateway",
                "--broker",
                broker.url,
                "--host",
                "127.0.0.1",
                "--port",
                "0",
            ],
            env={**os.environ, "FLOWGAUGE_CONFIG": str(settings_file)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = LISTENING.search(log.read_bytes())
        if found:
            return Gateway(process, found.group(1).decode(), log)
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited: {log.read_text()[-3000:]}")
        time.sleep(0.05)
    process.kill()
    raise TimeoutError(f"the gateway did not listen in {timeout}s: {log.read_text()[-3000:]}")


def signed(
    body: bytes,
    event: str | bytes | None = None,
    secret: bytes = SECRET,
    content_type: str = "application/json",
) -> dict[str, str | bytes]:
    """The headers GitHub sends with ``body``: X-Hub-Signature-256 over the raw bytes."""
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    headers: dict[str, str | bytes] = {
        "Content-Type": content_type,
        "X-Hub-Signature-256": f"sha256={digest}",
    }
    if event is not None:
        headers["X-GitHub-Event"] = event
    return headers


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


# --- what the broker holds ----------------------------------------------------------------


def _kafka(broker: EmbeddedBroker) -> Kafka:
    return Kafka((broker.url.removeprefix("kafka://"),))


async def _ends(kafka: Kafka, topic: str) -> dict[TopicPartition, int]:
    """The true end of each partition (Tansu's ListOffsets can lag: docs/embedded-broker.md)."""
    consumer = kafka.consumer(group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        reported = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return await tansu.true_highwaters(kafka, partitions, reported)


def log_ends(broker: EmbeddedBroker, topic: str) -> dict[int, int]:
    ends = asyncio.run(_ends(_kafka(broker), topic))
    return {tp.partition: end for tp, end in ends.items()}


def written(
    broker: EmbeddedBroker, topic: str, since: dict[int, int], timeout: float = 30.0
) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic`` after the offsets ``since`` (a ``log_ends``), up to its end
    now; per partition in log order, partitions in turn."""

    async def read() -> list[tuple[bytes | None, bytes]]:
        kafka = _kafka(broker)
        ends = await _ends(kafka, topic)
        todo = {tp: end for tp, end in ends.items() if end > since.get(tp.partition, 0)}
        if not todo:
            return []
        consumer = kafka.consumer(group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100)
        await consumer.start()
        got: dict[TopicPartition, list[tuple[bytes | None, bytes]]] = {tp: [] for tp in todo}
        try:
            consumer.assign(list(todo))
            for tp in todo:
                consumer.seek(tp, since.get(tp.partition, 0))
            deadline = time.monotonic() + timeout
            while [tp for tp, end in todo.items() if await consumer.position(tp) < end]:
                assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout}s"
                batch = await consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    got[tp] += [(r.key, r.value) for r in records if r.offset < todo[tp]]
        finally:
            await consumer.stop()
        return [record for tp in sorted(got) for record in got[tp]]

    return asyncio.run(read())


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return loaded


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def settings_file(workdir: Path) -> Path:
    path = workdir / "flowgauge.toml"
    path.write_text(SETTINGS)
    return path


@pytest.fixture(scope="module")
def gateway(broker: EmbeddedBroker, settings_file: Path, workdir: Path) -> Iterator[Gateway]:
    running = start_gateway(broker, settings_file, workdir / "gateway.log")
    try:
        assert f"flowgauge gateway on {running.url} (3 sources)\n" in running.log.read_text()
        yield running
    finally:
        running.stop()
    assert SECRET.decode() not in running.log.read_text(errors="replace")


def lose(broker: EmbeddedBroker) -> None:
    """The broker dies (killed: Tansu stopping by itself waits 5 s for its clients)."""
    assert broker.process is not None
    broker.process.kill()
    broker.process.wait(5)


def restart_empty(broker: EmbeddedBroker, gateway: Gateway, timeout: float = 30.0) -> None:
    """A fresh, empty broker on the old one's port; until the gateway reaches it."""
    lose(broker)
    broker.start()
    deadline = time.monotonic() + timeout
    while gateway.get("/healthz").status != 200:
        assert time.monotonic() < deadline, "the gateway did not reach the new broker"
        time.sleep(0.2)


# --- deliveries in ------------------------------------------------------------------------


def test_signed_real_deliveries_publish_their_events_once_acknowledged(
    gateway: Gateway, broker: EmbeddedBroker
) -> None:
    since = log_ends(broker, INPUT)
    for name, event, status, answer in DELIVERIES:
        body = fixture(name)
        reply = gateway.post("gh", body, signed(body, event))
        assert (reply.status, reply.json()) == (status, answer), name
        assert reply.headers["Content-Type"].startswith("application/json")
    records = written(broker, INPUT, since)
    # One ticket, so one partition, in the order acknowledged.
    assert [key for key, _ in records] == [TICKET.encode()] * 3
    events = [json.loads(value) for _, value in records]
    for event in events:
        jsonschema.validate(event, schema("ticket-event"))
    assert [(e["event_id"], e["ticket_id"], e["type"], e["occurred_at"]) for e in events] == [
        ("created", TICKET, "created", "2019-05-15T15:20:18Z"),
        ("comment:492700400", TICKET, "agent_replied", "2019-05-15T15:20:21Z"),  # by the OWNER
        ("reopened:2021-10-11T16:40:56Z", TICKET, "reopened", "2021-10-11T16:40:56Z"),
    ]
    assert events[0]["requester_id"] == "github:acme:Codertocat"
    assert {e["queue"] for e in events} == {"Codertocat/Hello-World"}


def test_a_redelivery_and_convert_give_the_same_event_ids(
    gateway: Gateway, broker: EmbeddedBroker
) -> None:
    since = log_ends(broker, INPUT)
    answers = []
    for _ in range(2):  # GitHub redelivers a delivery as it was: same body, same signature
        for name, event, _, _ in DELIVERIES:
            body = fixture(name)
            reply = gateway.post("gh", body, signed(body, event))
            answers.append((name, reply.status, reply.json()))
    assert answers[:4] == answers[4:]
    assert [status for _, status, _ in answers] == [200, 200, 200, 202] * 2
    records = written(broker, INPUT, since)
    assert len(records) == 6
    twice = Counter(records)
    assert set(twice.values()) == {2}, "a redelivery publishes the very same records"
    published = {value for _, value in records}

    files = [str(FIXTURES / f"{name}.json") for name, *_ in DELIVERIES]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.commands.cli",
            "convert",
            "github",
            "--account",
            "acme",
            *files,
        ],
        capture_output=True,
        timeout=60,
        check=False,
        env={key: value for key, value in os.environ.items() if key != "FLOWGAUGE_CONFIG"},
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr.decode().endswith(
        "3 events, 0 skipped, 1 ignored (nothing flowgauge counts)\n"
    )
    converted = done.stdout.splitlines()
    assert sorted(json.loads(line)["event_id"] for line in converted) == sorted(
        json.loads(value)["event_id"] for value in published
    )
    # Not only the ids: the very events, byte for byte.
    assert set(converted) == published


REFUSALS = {
    # case: (source, body, headers, status, the reason's start)
    "signed with another secret": (
        "gh", fixture("issues.opened"), signed(fixture("issues.opened"), "issues", b"other"),
        401, "X-Hub-Signature-256 does not match the body",
    ),
    "a body changed after signing": (
        "gh", fixture("issues.opened").replace(b"Codertocat", b"Codertocaz"),
        signed(fixture("issues.opened"), "issues"),
        401, "X-Hub-Signature-256 does not match the body",
    ),
    "no signature": (
        "gh", fixture("issues.opened"),
        {"Content-Type": "application/json", "X-GitHub-Event": "issues"},
        401, "no X-Hub-Signature-256 header",
    ),
    "a signature that is no hex": (
        "gh", fixture("issues.opened"),
        {**signed(fixture("issues.opened"), "issues"), "X-Hub-Signature-256": b"sha256=\xff"},
        401, "X-Hub-Signature-256 does not match the body",
    ),
    "the signature twice, the right one last": (
        "gh", fixture("issues.opened"),
        {
            **signed(fixture("issues.opened"), "issues"),
            "X-Hub-Signature-256": (
                "sha256=" + "0" * 64,
                signed(fixture("issues.opened"), "issues")["X-Hub-Signature-256"],
            ),
        },
        401, "X-Hub-Signature-256 does not match the body",
    ),
    "a source without a secret": (
        "nosecret", fixture("issues.opened"), signed(fixture("issues.opened"), "issues"),
        401, "no secret is configured for this source",
    ),
    "an unknown source": (
        "nobody", fixture("issues.opened"), signed(fixture("issues.opened"), "issues"),
        404, "no source of that name is configured",
    ),
    "a body over max_body_bytes": (
        "gh", b" " * (MAX_BODY + 1), signed(b" " * (MAX_BODY + 1), "issues"),
        413, f"the body is over {MAX_BODY} bytes",
    ),
    "a chunked body over max_body_bytes": (
        "gh", [b" " * 65536] * (MAX_BODY // 65536 + 1), signed(b"", "issues"),
        413, f"the body is over {MAX_BODY} bytes",
    ),
    "text/plain": (
        "gh", fixture("issues.opened"),
        signed(fixture("issues.opened"), "issues", content_type="text/plain"),
        415, "the body must be application/json",
    ),
    "no Content-Type": (
        "open", fixture("issues.opened"), {"X-GitHub-Event": "issues"},
        415, "the body must be application/json",
    ),
    "signed, not JSON": (
        "gh", b"action=opened&issue=1", signed(b"action=opened&issue=1", "issues"),
        400, "not JSON: Expecting value",
    ),
    "signed JSON that is no object": (
        "gh", b"[1, 2]", signed(b"[1, 2]", "issues"), 400, "not a JSON object",
    ),
    "an integer past Python's 4,300 digits": (
        "open", b'{"issue": ' + b"7" * 5000 + b"}", {"Content-Type": "application/json"},
        400, "not JSON: Exceeds the limit (4300 digits)",
    ),
    "gzip that is not": (
        "open", b'{"action": "opened"}',
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        400, "the body cannot be read",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_delivery_is_answered_so_and_publishes_nothing(
    gateway: Gateway, broker: EmbeddedBroker, case: str
) -> None:
    source, body, headers, status, reason = REFUSALS[case]
    before = {topic: log_ends(broker, topic) for topic in (INPUT, REJECTED)}
    reply = gateway.post(source, body, headers)
    assert reply.status == status, reply.body[:300]
    assert reply.json()["error"].startswith(reason)
    assert {topic: log_ends(broker, topic) for topic in (INPUT, REJECTED)} == before


def test_a_body_that_trickles_in_is_answered_408_and_publishes_nothing(
    gateway: Gateway, broker: EmbeddedBroker
) -> None:
    """A sender that announces a body and never sends it holds a connection for nobody."""
    before = log_ends(broker, INPUT)
    started = time.monotonic()
    with socket.create_connection(gateway.address, timeout=30) as slow:
        slow.sendall(
            b"POST /webhooks/open HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"action"'
        )
        answer = slow.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'{"error": "the body took over 10 s"}' in answer
    assert 10 <= time.monotonic() - started < 20
    assert log_ends(broker, INPUT) == before
    assert gateway.get("/healthz").status == 200


def test_asked_to_stop_it_answers_the_delivery_in_flight_first(
    broker: EmbeddedBroker, settings_file: Path, workdir: Path
) -> None:
    """SIGTERM (a rolling update) while a delivery waits for the broker's acknowledgement:
    the gateway stops listening, answers that delivery once acknowledged, then exits,
    instead of dropping the connection."""
    stopping = start_gateway(broker, settings_file, workdir / "stopping.log")
    body = fixture("issues.opened")
    assert stopping.post("gh", body, signed(body, "issues")).status == 200  # metadata known
    before = sum(log_ends(broker, INPUT).values())
    head = "".join(f"{name}: {value}\r\n" for name, value in signed(body, "issues").items())
    assert broker.process is not None
    broker.process.send_signal(signal.SIGSTOP)  # no acknowledgement until it goes on
    try:
        with socket.create_connection(stopping.address, timeout=30) as sender:
            sender.sendall(
                f"POST /webhooks/gh HTTP/1.1\r\nHost: x\r\n{head}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            time.sleep(0.5)  # its handler waits for the broker
            stopping.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert stopping.process.poll() is None  # waiting for the delivery in flight
            broker.process.send_signal(signal.SIGCONT)
            answer = sender.recv(65536)
    finally:
        broker.process.send_signal(signal.SIGCONT)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
    assert stopping.process.wait(30) == 0
    assert sum(log_ends(broker, INPUT).values()) == before + 1
    assert "Traceback" not in stopping.log.read_text()


def test_the_insecure_source_takes_unsigned_deliveries(
    gateway: Gateway, broker: EmbeddedBroker
) -> None:
    since = log_ends(broker, INPUT)
    body = fixture("issues.opened")
    unsigned = gateway.post("open", body, {"Content-Type": "application/json"})
    # Any signature at all is not looked at either.
    wrong = gateway.post("open", body, signed(body, "issues", b"whatever"))
    for reply in (unsigned, wrong):
        assert (reply.status, reply.json()) == (200, {"published": ["created"]})
    records = written(broker, INPUT, since)
    assert [(key, json.loads(value)["event_id"]) for key, value in records] == [
        (TICKET.encode(), "created")
    ] * 2


_PADDED = (b'{"action":"opened","issue":{"pad":"', b'"},"repository":{}}')
UNMAPPABLE = {
    # case: (body, X-GitHub-Event as sent, as kept, the reason: what the connector says)
    "an issue without its author": (
        b'{"action":"opened","issue":{"number":"x"},"repository":{"full_name":"a/b"}}',
        b"issues",
        "issues",
        "no user",
    ),
    "a body of exactly max_body_bytes": (
        _PADDED[0] + b"p" * (MAX_BODY - len(b"".join(_PADDED))) + _PADDED[1],
        b"issues",
        "issues",
        "no repository",
    ),
    "a lone surrogate in the payload": (
        b'{"action":"opened","issue":{"number":1,"user":{"login":"u"},"created_at":"\\udcff"},'
        b'"repository":{"full_name":"a/b"}}',
        b"issues",
        "issues",
        "timestamp is not ISO 8601",
    ),
}


@pytest.mark.parametrize("case", list(UNMAPPABLE))
def test_an_unmappable_delivery_is_kept_whole_on_the_rejected_topic(
    gateway: Gateway, broker: EmbeddedBroker, case: str
) -> None:
    body, event, kept_event, why = UNMAPPABLE[case]
    inputs = log_ends(broker, INPUT)
    since = log_ends(broker, REJECTED)
    reply = gateway.post("gh", body, signed(body, event))
    assert reply.status == 202, reply.body[:300]
    [(outcome, reason)] = reply.json().items()
    assert outcome == "rejected"
    assert reason.startswith(why)
    [(key, value)] = written(broker, REJECTED, since)
    record = json.loads(value)
    jsonschema.validate(record, schema("rejected"))
    assert key == b"gh"
    assert {k: v for k, v in record.items() if k not in ("received_at", "original_base64")} == {
        "source": "gh",
        "kind": "github",
        "reason": reason.encode("utf-8", "backslashreplace").decode(),  # kept escaped
        "event": kept_event,
    }
    assert base64.b64decode(record["original_base64"]) == body
    received = datetime.fromisoformat(record["received_at"])
    assert abs(received - datetime.now(UTC)) < timedelta(minutes=1)
    assert log_ends(broker, INPUT) == inputs


# --- health and metrics -------------------------------------------------------------------


def _deltas(
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    name: str,
) -> dict[tuple[str, ...], float]:
    """How much each series of ``name`` grew, by its label values."""
    return {
        tuple(value for _, value in labels): after[key] - before.get(key, 0.0)
        for key in after
        for series, labels in [key]
        if series == name
    }


def test_healthz_and_metrics_count_what_was_sent(gateway: Gateway) -> None:
    health = gateway.get("/healthz")
    assert (health.status, health.body) == (200, b"the broker is reachable\n")
    before = gateway.metrics()
    opened, comment, pinned = (fixture(n) for n in ("issues.opened", "issue_comment.created",
                                                    "issues.pinned"))  # fmt: skip
    unmappable = UNMAPPABLE["an issue without its author"][0]
    sent = [
        ("gh", opened, signed(opened, "issues"), 200),
        ("gh", comment, signed(comment, "issue_comment"), 200),
        ("gh", pinned, signed(pinned, "issues"), 202),
        ("gh", unmappable, signed(unmappable, "issues"), 202),
        ("gh", opened, signed(opened, "issues", b"wrong"), 401),
        ("gh", opened, {"Content-Type": "application/json"}, 401),
        ("nosecret", opened, signed(opened, "issues"), 401),
        ("gh", b"{not json", signed(b"{not json", "issues"), 400),
        ("gh", b"{}" + b" " * MAX_BODY, signed(b"{}", "issues"), 413),
        ("gh", opened, signed(opened, "issues", content_type="text/plain"), 415),
        ("nobody", opened, signed(opened, "issues"), 404),
        ("Nobody.else", opened, signed(opened, "issues"), 404),
        ("open", opened, {"Content-Type": "application/json"}, 200),
    ]
    for source, body, headers, status in sent:
        assert gateway.post(source, body, headers).status == status, (source, status)
    after = gateway.metrics()

    deliveries = _deltas(before, after, "flowgauge_gateway_deliveries_total")
    wanted = {
        ("published", "gh"): 2, ("ignored", "gh"): 1, ("rejected", "gh"): 1,
        ("refused", "gh"): 2, ("not_json", "gh"): 1, ("too_large", "gh"): 1,
        ("unsupported_media_type", "gh"): 1, ("refused", "nosecret"): 1,
        ("unknown_source", "unknown"): 2, ("published", "open"): 1,
    }  # fmt: skip
    assert {labels: grown for labels, grown in deliveries.items() if grown} == wanted
    # Every outcome of every configured source is a series from the start.
    assert {("unavailable", s) for s in ("gh", "open", "nosecret")} <= set(deliveries)
    failures = _deltas(before, after, "flowgauge_gateway_signature_failures_total")
    assert failures == {("gh",): 2, ("nosecret",): 1, ("open",): 0}
    published = _deltas(before, after, "flowgauge_gateway_events_published_total")
    assert published == {("gh",): 2, ("open",): 1, ("nosecret",): 0}

    per_source = Counter(source if source in ("gh", "open", "nosecret") else "unknown"
                         for source, *_ in sent)  # fmt: skip
    counts = _deltas(before, after, "flowgauge_gateway_delivery_seconds_count")
    assert {labels: grown for labels, grown in counts.items() if grown} == {
        (source,): count for source, count in per_source.items()
    }
    sums = _deltas(before, after, "flowgauge_gateway_delivery_seconds_sum")
    assert all(sums[(source,)] > 0 for source in per_source)
    buckets = _deltas(before, after, "flowgauge_gateway_delivery_seconds_bucket")
    for source, count in per_source.items():
        mine = sorted(
            (float(le), grown) for (le, label), grown in buckets.items() if label == source
        )
        assert mine[-1] == (float("inf"), count)
        assert [grown for _, grown in mine] == sorted(grown for _, grown in mine)


# --- anything at all ----------------------------------------------------------------------


def mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` four times in five, so that most attempts reach the mapping."""
    return st.sampled_from([usual, usual, usual, usual, rare]).flatmap(lambda chosen: chosen)


# Header values: bytes that are no UTF-8 too; a control character now and then (aiohttp
# answers those 400 itself).
HEADER_BYTES = mostly(
    st.binary(max_size=48).map(lambda raw: raw.translate(None, bytes(range(32)) + b"\x7f")),
    st.binary(max_size=48).map(lambda raw: raw.translate(None, b"\r\n\x00")),
)
TEXT = st.text(st.characters() | st.sampled_from(["\ud800", "\udcff", "\x00", "\u2028"]))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=16,
)
REAL = [json.loads(fixture(name)) for name, *_ in DELIVERIES]


def _paths(document: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _paths(value, (*at, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _paths(value, (*at, index))


PATHS = [[path for path in _paths(document) if path] for document in REAL]


@st.composite
def github_like(draw: st.DrawFn) -> bytes:
    """A real delivery with up to four of its values replaced or removed."""
    index = draw(st.integers(0, len(REAL) - 1))
    document = copy.deepcopy(REAL[index])
    for _ in range(draw(st.integers(0, 4))):
        path = draw(st.sampled_from(PATHS[index]))
        parent = document
        try:
            for step in path[:-1]:
                parent = parent[step]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(JSON_VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change took that path away
    return json.dumps(document).encode()


@dataclass(frozen=True)
class Attempt:
    source: str
    body: bytes
    content_type: str | bytes | None
    event: str | bytes | None
    signature: str | bytes | None  # "valid": signed with the secret
    encoding: str | None

    def send(self, gateway: Gateway) -> Reply:
        headers: dict[str, str | bytes] = {}
        body = self.body
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        if self.event is not None:
            headers["X-GitHub-Event"] = self.event
        if self.signature == "valid":
            headers["X-Hub-Signature-256"] = signed(body)["X-Hub-Signature-256"]
        elif self.signature is not None:
            headers["X-Hub-Signature-256"] = self.signature
        if self.encoding is not None:
            headers["Content-Encoding"] = "gzip"
            body = gzip.compress(body) if self.encoding == "gzip" else body
        return gateway.post(urllib.parse.quote(self.source, safe=""), body, headers)


ATTEMPTS = st.builds(
    Attempt,
    source=mostly(st.sampled_from(["gh", "gh", "open", "nosecret"]), st.text(max_size=12)),
    body=mostly(
        github_like(),
        JSON_VALUES.map(lambda value: json.dumps(value).encode()) | st.binary(max_size=2048),
    ),
    content_type=mostly(
        st.sampled_from(["application/json", "application/vnd.github+json", "text/json"]),
        st.sampled_from(["text/plain", "application/json; charset=latin-1", "", None])
        | HEADER_BYTES,
    ),
    event=mostly(
        st.sampled_from(["issues", "issue_comment", "pinned", "history:issue", "history:event"]),
        st.sampled_from(["ping", "history:comment", None]) | HEADER_BYTES,
    ),
    signature=mostly(
        st.just("valid"),
        st.sampled_from([None, "sha256="])
        | HEADER_BYTES
        | st.binary(min_size=32, max_size=32).map(lambda digest: f"sha256={digest.hex()}"),
    ),
    encoding=mostly(st.none(), st.sampled_from(["gzip", "not gzip"])),
)
ANSWERS = {200, 202, 400, 401, 404, 413, 415}


def test_whatever_is_posted_is_never_a_500_and_counts_add_up(
    gateway: Gateway, broker: EmbeddedBroker
) -> None:
    """Random bodies and headers, the real deliveries with values changed: an answer of the
    documented ones every time, the process alive after, and the topics grown by exactly
    the events and rejections the answers name."""
    before = {topic: log_ends(broker, topic) for topic in (INPUT, REJECTED)}
    replies: list[Reply] = []

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(attempt=ATTEMPTS)
    # What broke it before (streams/shell/gateway.py): a header of bytes that are no
    # UTF-8 on an unmappable body, an integer json refuses, gzip that is not.
    @example(attempt=Attempt("gh", b"{}", "application/json", b"history:x\xff", "valid", None))
    @example(attempt=Attempt("open", b"[" + b"9" * 4400 + b"]", "text/json", None, None, None))
    @example(attempt=Attempt("open", b"{}", "application/json", None, None, "not gzip"))
    def attempt_one(attempt: Attempt) -> None:
        reply = attempt.send(gateway)
        replies.append(reply)
        assert reply.status in ANSWERS, (reply.status, reply.body[:300])
        if reply.headers.get("Content-Type", "").startswith("application/json"):
            assert len(reply.json()) == 1  # the gateway's answer: one key, what happened
        else:
            assert reply.status in (400, 404)  # aiohttp's own: an undecodable request, no route

    attempt_one()
    assert gateway.process.poll() is None
    assert gateway.get("/healthz").status == 200
    statuses = Counter(reply.status for reply in replies)
    print(f"{len(replies)} requests: {dict(sorted(statuses.items()))}")
    events = sum(len(reply.json()["published"]) for reply in replies if reply.status == 200)
    rejected = sum(1 for reply in replies if reply.status == 202 and "rejected" in reply.json())
    for topic, grown in ((INPUT, events), (REJECTED, rejected)):
        ends = log_ends(broker, topic)
        assert sum(ends.values()) - sum(before[topic].values()) == grown, topic


# --- the broker lost and back -------------------------------------------------------------


def _comment(number: int) -> bytes:
    document = json.loads(fixture("issue_comment.created"))
    document["comment"]["id"] = number
    return json.dumps(document).encode()


def test_without_the_broker_deliveries_are_503_then_published_on_a_new_one(
    gateway: Gateway, broker: EmbeddedBroker
) -> None:
    """The acknowledgement bound (gateway.ack_timeout_seconds, 5 s) is the one timed
    assertion: an answer within it, and some slack."""
    bodies = {f"comment:{n}": _comment(n) for n in (9001, 9002, 9003)}
    warm = gateway.post(
        "gh", bodies["comment:9001"], signed(bodies["comment:9001"], "issue_comment")
    )
    assert warm.status == 200
    before = gateway.metrics()
    lose(broker)
    try:
        health = gateway.get("/healthz")
        assert (health.status, health.body) == (503, b"the broker cannot be reached\n")
        with ThreadPoolExecutor(len(bodies)) as pool:
            down = list(
                pool.map(lambda body: gateway.post("gh", body, signed(body, "issue_comment")),
                         bodies.values())
            )  # fmt: skip
        for reply in down:
            assert reply.status == 503, reply.body
            assert reply.headers["Retry-After"] == "5"
            assert reply.json() == {"error": "the broker did not acknowledge: retry"}
            assert reply.seconds < 6.5
    finally:
        broker.start()  # fresh and empty, on the same port
    unavailable = len(down)
    pending = dict(bodies)
    deadline = time.monotonic() + 60
    while pending:
        assert time.monotonic() < deadline, f"still refused: {list(pending)}"
        for event_id, body in list(pending.items()):
            reply = gateway.post("gh", body, signed(body, "issue_comment"))
            if reply.status == 200:
                assert reply.json() == {"published": [event_id]}
                del pending[event_id]
            else:
                assert reply.status == 503, reply.body
                unavailable += 1
        time.sleep(0.2)
    assert gateway.get("/healthz").status == 200
    # All on the new broker: each event at least once, a copy (from a send of the outage
    # that the producer still delivered) the very same record, which the worker drops.
    records = read_topic(broker, INPUT, until=len(bodies), timeout=30, quiet=1.0)
    ids = Counter(json.loads(value)["event_id"] for _, value in records)
    assert set(ids) == set(bodies)
    assert len(set(records)) == len(bodies), "copies differ"
    print(f"on the new broker: {dict(ids)}")
    after = gateway.metrics()
    grown = _deltas(before, after, "flowgauge_gateway_deliveries_total")
    assert grown[("unavailable", "gh")] == unavailable
    assert grown[("published", "gh")] == len(bodies)


def _holds_connection(pid: int, port: int) -> bool:
    """Whether process ``pid`` has an established TCP connection to ``port`` (Linux /proc)."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                sockets.add(target[len("socket:[") : -1])
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rpartition(":")[2], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in sockets:
                return True
    return False


def test_a_broker_lost_before_any_delivery_loses_none_after(
    broker: EmbeddedBroker, gateway: Gateway, settings_file: Path, workdir: Path
) -> None:
    """A gateway that never wrote holds a connection to the broker all the same, so it sees
    the loss and declares its topics on the new broker before the next delivery: the
    empty embedded broker would otherwise acknowledge events for a topic nobody created,
    that no reader ever sees."""
    idle = start_gateway(broker, settings_file, workdir / "idle-gateway.log")
    try:
        deadline = time.monotonic() + 30
        while not _holds_connection(idle.process.pid, broker.port):
            assert time.monotonic() < deadline, "the idle gateway holds no connection"
            time.sleep(0.1)
        restart_empty(broker, idle)
        body = _comment(9101)
        reply = idle.post("gh", body, signed(body, "issue_comment"))
        assert (reply.status, reply.json()) == (200, {"published": ["comment:9101"]})
        [(_, value)] = written(broker, INPUT, {})
        assert json.loads(value)["event_id"] == "comment:9101"
    finally:
        idle.stop()


# --- an issue's life, counted by a worker -------------------------------------------------


def _issue_life(now: datetime) -> tuple[list[tuple[str, bytes]], datetime, datetime, datetime]:
    """Opened by a user, answered by a member 15 min later, closed as completed, reopened,
    closed: the real bodies edited, hours before ``now`` (older than the live horizon, so the
    worker settles the last boundary as soon as it is idle). The deliveries, the opening,
    the answer, the last change."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    opened, answered = start + timedelta(minutes=10), start + timedelta(minutes=25)
    closed, reopened = start + timedelta(hours=1, minutes=10), start + timedelta(hours=2)
    last = start + timedelta(hours=2, minutes=40)

    def stamp(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def issue_of(document: dict[str, Any], state: str, updated: datetime) -> dict[str, Any]:
        issue = document["issue"]
        issue["number"] = 7
        issue["id"] = 7000007
        issue["user"] = {**issue["user"], "login": "octo-user", "id": 99}
        issue["author_association"] = "NONE"
        issue["created_at"] = stamp(opened)
        issue["updated_at"] = stamp(updated)
        issue["state"] = state
        return issue

    deliveries = []
    document = json.loads(fixture("issues.opened"))
    issue_of(document, "open", opened)
    deliveries.append(("issues", document))
    document = json.loads(fixture("issue_comment.created"))
    issue_of(document, "open", answered)
    comment = document["comment"]
    comment.update(id=8000001, author_association="MEMBER", created_at=stamp(answered))
    comment.update(updated_at=stamp(answered), user={**comment["user"], "login": "amy"})
    deliveries.append(("issue_comment", document))
    for action, moment in (("closed", closed), ("reopened", reopened), ("closed", last)):
        document = json.loads(fixture("issues.reopened"))
        document["action"] = action
        issue = issue_of(document, "closed" if action == "closed" else "open", moment)
        issue["closed_at"] = stamp(moment) if action == "closed" else stamp(closed)
        issue["state_reason"] = "completed" if action == "closed" else "reopened"
        deliveries.append(("issues", document))
    return [(event, json.dumps(d).encode()) for event, d in deliveries], opened, answered, last


def _until_published(
    broker: EmbeddedBroker, topic: str, key: tuple[str, str], timeout: float = 90.0
) -> dict[tuple[str, str], dict[str, Any]]:
    """A derived topic's records, latest by (as_of, scope), once the one at ``key`` is out."""
    deadline = time.monotonic() + timeout
    while True:
        rows = latest_by_key(read_topic(broker, topic, until=1, timeout=5, quiet=0.5))
        if key in rows:
            return rows
        assert time.monotonic() < deadline, f"no {key} on {topic}: {sorted(rows)}"


@pytest.mark.timeout(180)
def test_an_issue_life_through_the_gateway_is_counted_by_the_worker(
    gateway: Gateway, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    restart_empty(broker, gateway)  # the worker's history: this issue alone
    deliveries, opened, answered, last = _issue_life(datetime.now(UTC))
    ids = []
    for event, body in deliveries:
        reply = gateway.post("gh", body, signed(body, event))
        assert reply.status == 200, reply.body
        ids += reply.json()["published"]
    # GitHub redelivered by hand: the same ids again, which the worker counts once.
    for index in (1, 2):  # the member's answer and the first close
        event, body = deliveries[index]
        reply = gateway.post("gh", body, signed(body, event))
        assert reply.json()["published"] == [ids[index]]
    ticket = "github:acme:Codertocat/Hello-World:7"
    assert ids == [
        "created", "comment:8000001",
        f"closed:{opened + timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}",
        f"reopened:{opened + timedelta(hours=1, minutes=50):%Y-%m-%dT%H:%M:%SZ}",
        f"closed:{last:%Y-%m-%dT%H:%M:%SZ}",
    ]  # fmt: skip
    # The copies are byte for byte the same: five distinct records, seven in all.
    lines = [value for _, value in read_topic(broker, INPUT, until=len(ids), quiet=1.0)]
    assert [(json.loads(v)["ticket_id"], json.loads(v)["type"]) for v in lines] == [
        (ticket, kind)
        for kind in (
            "created",
            "agent_replied",
            "resolved",
            "reopened",
            "resolved",
            "agent_replied",
            "resolved",
        )
    ]
    # The last boundary: the first at or after the newest event (no wall-clock wait: the
    # newest event is older than the live horizon).
    boundary = last.replace(minute=0, second=0) + timedelta(hours=1)
    as_of = f"{boundary:%Y-%m-%dT%H:%M:%SZ}"
    worker = start_worker(broker, tmp_path, "worker", **STEP, **NO_PLANNING)
    try:
        flow = _until_published(broker, FLOW, (as_of, "all"))
        row = flow[(as_of, "all")]
        assert (row["inflow"]["24h"], row["outflow"]["24h"], row["open"]) == (2, 2, 0)
        assert max(k[0] for k in flow) == as_of
        first = _until_published(broker, INDICATORS, (as_of, "all"))[(as_of, "all")]
        assert first["first_responses"] == 1
        assert first["first_response_p50_seconds"] == (answered - opened).total_seconds() == 900
        assert first["resolutions"] == 2
        # And every row the worker published is the one ``report`` computes from the events.
        assert_snapshots(broker, expected_from_report(lines))
    finally:
        worker.stop()
    assert worker.process.returncode == 0
