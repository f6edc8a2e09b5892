"""The TLS and SASL front (tests/kafka_front.py) in front of the embedded broker.

Plain aiokafka clients, configured by hand, produce and consume through it over TLS, mutual
TLS, SASL_PLAINTEXT (PLAIN, SCRAM-SHA-512) and SASL_SSL (SCRAM-SHA-256); and each way of
being refused is shown as aiokafka surfaces it from ``start()``: every client kind tries
each bootstrap address once and raises, it does not retry.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context

from streams.commands.broker import EmbeddedBroker, free_port
from tests.kafka_front import (
    API_VERSIONS,
    AUTHENTICATE_VERSIONS,
    CLIENT_NAME,
    PLAIN_FAILED,
    SASL_AUTHENTICATE,
    SASL_HANDSHAKE,
    CertificateFiles,
    KafkaFront,
    Sasl,
    Session,
    advertise,
    parse_api_versions,
    server_context,
    write_certificates,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]

USERS = {"alice": "alice-secret", "bob": "bob-secret"}
KINDS = ("admin", "producer", "consumer")
MESSAGE = b"through the front"


@dataclass(frozen=True)
class Stack:
    broker: EmbeddedBroker
    port: int  # the front's, which the broker advertises


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    port = free_port()
    with EmbeddedBroker(advertised_port=port) as broker:
        yield Stack(broker, port)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return write_certificates(tmp_path_factory.mktemp("certs"))


def ssl_context(cafile: Path, cert: CertificateFiles | None = None) -> Any:
    """aiokafka's own helper; with ``cert``, the client certificate too."""
    if cert is None:
        return create_ssl_context(cafile=str(cafile))
    return create_ssl_context(
        cafile=str(cafile), certfile=str(cert.client_cert), keyfile=str(cert.client_key)
    )


def new_client(kind: str, port: int, security: dict[str, Any], *topics: str) -> Any:
    common: dict[str, Any] = {
        "bootstrap_servers": f"127.0.0.1:{port}",
        "request_timeout_ms": 5000,
        **security,
    }
    if kind == "admin":
        return AIOKafkaAdminClient(**common)
    if kind == "producer":
        return AIOKafkaProducer(**common)
    return AIOKafkaConsumer(*topics, auto_offset_reset="earliest", **common)


async def stop(kind: str, client: Any) -> None:
    await (client.close() if kind == "admin" else client.stop())


async def round_trip(port: int, security: dict[str, Any]) -> bytes:
    """Create a topic, produce one message and consume it, each client through the front."""
    topic = f"front-{uuid.uuid4().hex[:8]}"
    admin = new_client("admin", port, security)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await stop("admin", admin)
    producer = new_client("producer", port, security)
    await producer.start()
    try:
        await producer.send_and_wait(topic, MESSAGE)
    finally:
        await stop("producer", producer)
    consumer = new_client("consumer", port, security, topic)
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 10)
    finally:
        await stop("consumer", consumer)
    value: bytes = record.value
    return value


def check_round_trip(front: KafkaFront, port: int, security: dict[str, Any]) -> list[Session]:
    assert asyncio.run(round_trip(port, security)) == MESSAGE
    sessions = front.wait_sessions(lambda s: bool(s) and all(x.ended for x in s))
    assert all(s.relayed and s.refused is None for s in sessions), sessions
    return sessions


async def start_error(kind: str, port: int, security: dict[str, Any]) -> BaseException:
    """What ``start()`` raises (it must raise, and soon)."""
    client = new_client(kind, port, security, "any-topic")
    try:
        await asyncio.wait_for(client.start(), 15)
    except Exception as error:
        return error
    finally:
        await stop(kind, client)
    pytest.fail(f"{kind} started")


def refused_everywhere(
    front: KafkaFront, port: int, security: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> tuple[list[str], list[Session]]:
    """Every client kind's ``start()`` raises KafkaConnectionError "Unable to bootstrap";
    the reason is only in aiokafka's log: those log lines, and the front's records."""
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="aiokafka"):
        for kind in KINDS:
            error = asyncio.run(start_error(kind, port, security))
            assert type(error) is KafkaConnectionError, (kind, error)
            assert str(error).startswith("KafkaConnectionError: Unable to bootstrap from [("), str(
                error
            )
    reasons = [r.getMessage() for r in caplog.records if r.name == "aiokafka"]
    assert len(reasons) == len(KINDS), reasons
    return reasons, front.wait_ended(len(KINDS))


# Through the front ------------------------------------------------------------------------


def sasl_login(mechanism: str, username: str, password: str) -> dict[str, Any]:
    """aiokafka's settings for a SASL login over plaintext."""
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": username,
        "sasl_plain_password": password,
    }


def test_tls(stack: Stack, certs: CertificateFiles) -> None:
    with KafkaFront(stack.port, stack.broker.port, tls=server_context(certs)) as front:
        security = {"security_protocol": "SSL", "ssl_context": ssl_context(certs.ca)}
        sessions = check_round_trip(front, stack.port, security)
    assert all(s.client_subject is None and s.mechanism is None for s in sessions)


def test_mutual_tls(stack: Stack, certs: CertificateFiles) -> None:
    tls = server_context(certs, mutual=True)
    with KafkaFront(stack.port, stack.broker.port, tls=tls) as front:
        security = {"security_protocol": "SSL", "ssl_context": ssl_context(certs.ca, certs)}
        sessions = check_round_trip(front, stack.port, security)
    for session in sessions:
        assert session.client_subject is not None
        assert session.client_subject.startswith(f"CN={CLIENT_NAME},"), session


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_sasl_plaintext(stack: Stack, mechanism: str) -> None:
    sasl = Sasl(("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"), USERS)
    with KafkaFront(stack.port, stack.broker.port, sasl=sasl) as front:
        security = sasl_login(mechanism, "bob", USERS["bob"])
        sessions = check_round_trip(front, stack.port, security)
    for session in sessions:
        assert (session.mechanism, session.username, session.authenticated) == (
            mechanism,
            "bob",
            True,
        )


def test_sasl_ssl_scram_sha_256(stack: Stack, certs: CertificateFiles) -> None:
    sasl = Sasl(("SCRAM-SHA-256",), USERS)
    with KafkaFront(stack.port, stack.broker.port, tls=server_context(certs), sasl=sasl) as front:
        security = {
            **sasl_login("SCRAM-SHA-256", "alice", USERS["alice"]),
            "security_protocol": "SASL_SSL",
            "ssl_context": ssl_context(certs.ca),
        }
        sessions = check_round_trip(front, stack.port, security)
    assert all(s.authenticated and s.username == "alice" for s in sessions)


def test_legacy_handshake_v0_raw_tokens(stack: Stack) -> None:
    """Offered only SaslHandshake v0, aiokafka sends SCRAM tokens without Kafka headers."""
    sasl = Sasl(("SCRAM-SHA-256",), USERS, handshake_max_version=0)
    with KafkaFront(stack.port, stack.broker.port, sasl=sasl) as front:
        security = sasl_login("SCRAM-SHA-256", "alice", USERS["alice"])
        sessions = check_round_trip(front, stack.port, security)
    assert all(s.authenticated for s in sessions)


# Refused ----------------------------------------------------------------------------------


def test_mutual_tls_without_client_certificate(
    stack: Stack, certs: CertificateFiles, caplog: pytest.LogCaptureFixture
) -> None:
    """TLS 1.3: the client's handshake completes, the front's fails; the client sees the
    connection close under its first request (ApiVersions)."""
    tls = server_context(certs, mutual=True)
    with KafkaFront(stack.port, stack.broker.port, tls=tls) as front:
        security = {"security_protocol": "SSL", "ssl_context": ssl_context(certs.ca)}
        reasons, sessions = refused_everywhere(front, stack.port, security, caplog)
    assert reasons == [
        f'Unable connect to "127.0.0.1:{stack.port}": KafkaConnectionError: '
        f"Connection at 127.0.0.1:{stack.port} closed"
    ] * len(KINDS)
    for session in sessions:
        assert session.tls_error is not None
        assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in session.tls_error, session


def test_untrusted_ca(
    stack: Stack, certs: CertificateFiles, caplog: pytest.LogCaptureFixture
) -> None:
    with KafkaFront(stack.port, stack.broker.port, tls=server_context(certs)) as front:
        security = {"security_protocol": "SSL", "ssl_context": ssl_context(certs.other_ca)}
        reasons, sessions = refused_everywhere(front, stack.port, security, caplog)
    for reason in reasons:
        assert reason.startswith(
            f'Unable connect to "127.0.0.1:{stack.port}": [SSL: CERTIFICATE_VERIFY_FAILED] '
            "certificate verify failed: unable to get local issuer certificate"
        ), reason
    assert all(s.refused == "TLS handshake failed" for s in sessions), sessions


def test_wrong_plain_password(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    with KafkaFront(stack.port, stack.broker.port, sasl=Sasl(("PLAIN",), USERS)) as front:
        security = sasl_login("PLAIN", "alice", "wrong")
        reasons, sessions = refused_everywhere(front, stack.port, security, caplog)
    assert reasons == [
        f'Unable connect to "127.0.0.1:{stack.port}": [Error 58] SaslAuthenticationFailed: '
        f"{PLAIN_FAILED}"
    ] * len(KINDS)
    for session in sessions:
        assert (session.mechanism, session.username, session.authenticated) == (
            "PLAIN",
            "alice",
            False,
        )


def test_wrong_scram_password_surfaces_key_error_v(stack: Stack) -> None:
    """Server-final ``e=invalid-proof``: aiokafka looks up ``v`` in it and raises KeyError,
    which is no KafkaError: it escapes ``bootstrap()`` and ``start()`` as it is."""
    with KafkaFront(stack.port, stack.broker.port, sasl=Sasl(("SCRAM-SHA-512",), USERS)) as front:
        security = sasl_login("SCRAM-SHA-512", "alice", "wrong")
        for kind in KINDS:
            error = asyncio.run(start_error(kind, stack.port, security))
            assert type(error) is KeyError, (kind, error)
            assert error.args == ("v",)
        sessions = front.wait_ended(len(KINDS))
    assert all(s.username == "alice" and not s.authenticated for s in sessions), sessions
    assert all(s.refused == "e=invalid-proof" for s in sessions), sessions


def test_wrong_scram_password_as_kafka_answers_it(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Apache Kafka answers a wrong proof with SASL_AUTHENTICATION_FAILED instead."""
    sasl = Sasl(("SCRAM-SHA-256",), USERS, scram_failure="error")
    with KafkaFront(stack.port, stack.broker.port, sasl=sasl) as front:
        security = sasl_login("SCRAM-SHA-256", "alice", "wrong")
        reasons, _ = refused_everywhere(front, stack.port, security, caplog)
    assert all("[Error 58] SaslAuthenticationFailed: Authentication failed" in r for r in reasons)


def test_mechanism_not_enabled(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    with KafkaFront(stack.port, stack.broker.port, sasl=Sasl(("PLAIN",), USERS)) as front:
        security = sasl_login("SCRAM-SHA-256", "alice", USERS["alice"])
        reasons, sessions = refused_everywhere(front, stack.port, security, caplog)
    assert all("[Error 33] UnsupportedSaslMechanismError" in r for r in reasons), reasons
    assert all(s.mechanism == "SCRAM-SHA-256" and s.username is None for s in sessions)


# The Kafka protocol before authentication -------------------------------------------------


class RawKafka:
    """A hand-made Kafka connection: requests one at a time, responses as raw bytes."""

    def __init__(self, port: int) -> None:
        self.connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.correlation_id = 0

    def __enter__(self) -> RawKafka:
        return self

    def __exit__(self, *_: object) -> None:
        self.connection.close()

    def request(
        self, api_key: int, version: int, body: bytes = b"", *, flexible: bool = False
    ) -> bytes | None:
        """The response (header included), None if the connection closed instead."""
        self.correlation_id += 1
        header = struct.pack(">hhih", api_key, version, self.correlation_id, 4) + b"test"
        if flexible:
            header += b"\x00"  # request header v2: no tagged fields
        message = header + body
        try:
            self.connection.sendall(struct.pack(">i", len(message)) + message)
            head = self.connection.recv(4, socket.MSG_WAITALL)
        except (ConnectionResetError, BrokenPipeError):
            return None
        if len(head) < 4:
            return None
        (size,) = struct.unpack(">i", head)
        response = self.connection.recv(size, socket.MSG_WAITALL)
        assert struct.unpack(">i", response[:4]) == (self.correlation_id,)
        return response


def kafka_request(
    port: int, api_key: int, version: int, body: bytes = b"", *, flexible: bool = False
) -> bytes | None:
    """One request on a fresh connection."""
    with RawKafka(port) as kafka:
        return kafka.request(api_key, version, body, flexible=flexible)


API_VERSIONS_V3_BODY = b"\x05test\x041.0\x00"  # client software name, version, tagged fields


@pytest.mark.parametrize("version", [0, 3])
def test_api_versions_offer_the_fronts_sasl_and_the_brokers_rest(
    stack: Stack, version: int
) -> None:
    body, flexible = (API_VERSIONS_V3_BODY, True) if version >= 3 else (b"", False)
    direct = kafka_request(stack.broker.port, API_VERSIONS, version, body, flexible=flexible)
    assert direct is not None
    broker = parse_api_versions(direct, version)
    sasl = Sasl(("PLAIN",), USERS, handshake_max_version=0)
    with KafkaFront(stack.port, stack.broker.port, sasl=sasl):
        through = kafka_request(stack.port, API_VERSIONS, version, body, flexible=flexible)
    assert through is not None
    offered = parse_api_versions(through, version)
    assert offered[SASL_HANDSHAKE] == (0, 0)
    assert offered[SASL_AUTHENTICATE] == AUTHENTICATE_VERSIONS
    others = {k: v for k, v in broker.items() if k not in (SASL_HANDSHAKE, SASL_AUTHENTICATE)}
    assert {k: v for k, v in offered.items() if k in others} == others
    assert len(through) == len(direct)  # replaced in place: Tansu 0.6 lists both keys


@pytest.mark.parametrize("version", [0, 1, 3])
def test_advertise_appends_missing_sasl_keys(version: int) -> None:
    """A broker that lists neither key: both are appended, the rest kept byte for byte."""
    flexible = version >= 3
    entry_tags = b"\x00" if flexible else b""
    entries = [(0, 0, 9), (3, 0, 12), (18, 0, 4)]
    count = bytes([len(entries) + 1]) if flexible else struct.pack(">i", len(entries))
    tail = struct.pack(">i", 0) if version >= 1 else b""
    tail += b"\x01\x00\x02\xab\xcd" if flexible else b""  # a tagged field, kept as is
    response = struct.pack(">ih", 42, 0) + count
    response += b"".join(struct.pack(">hhh", *e) + entry_tags for e in entries) + tail
    wanted = {SASL_HANDSHAKE: (0, 1), SASL_AUTHENTICATE: (0, 2)}
    patched = advertise(response, version, wanted)
    assert parse_api_versions(patched, version) == {k: (lo, hi) for k, lo, hi in entries} | wanted
    assert patched.endswith(tail)
    failed = struct.pack(">ihi", 42, 35, 0)  # UNSUPPORTED_VERSION: left alone
    assert advertise(failed, version, wanted) == failed


def test_other_requests_before_authentication_close_the_connection(stack: Stack) -> None:
    with KafkaFront(stack.port, stack.broker.port, sasl=Sasl(("PLAIN",), USERS)) as front:
        metadata_v1_all_topics = struct.pack(">i", -1)
        assert kafka_request(stack.port, 3, 1, metadata_v1_all_topics) is None
        (session,) = front.wait_ended(1)
    assert session.refused == "api key 3 v1 before authentication"
    assert not session.relayed


def authenticate_v2(kafka: RawKafka, password: str) -> tuple[int, str | None]:
    """SaslHandshake v1 then PLAIN in SaslAuthenticate v2 (flexible): error code, message."""
    handshake = kafka.request(SASL_HANDSHAKE, 1, struct.pack(">h", 5) + b"PLAIN")
    assert handshake is not None
    assert handshake[4:] == struct.pack(">hih", 0, 1, 5) + b"PLAIN"
    token = f"\0alice\0{password}".encode()
    body = bytes([len(token) + 1]) + token + b"\x00"  # compact bytes, tagged fields
    response = kafka.request(SASL_AUTHENTICATE, 2, body, flexible=True)
    assert response is not None
    assert response[4] == 0  # response header v1: no tagged fields
    (error,) = struct.unpack(">h", response[5:7])
    size = response[7] - 1  # compact nullable string, short enough for one varint byte
    message = None if size < 0 else response[8 : 8 + size].decode()
    return error, message


def test_sasl_authenticate_v2(stack: Stack) -> None:
    """aiokafka stops at v1; v2 is flexible. Then the connection is the broker's."""
    with KafkaFront(stack.port, stack.broker.port, sasl=Sasl(("PLAIN",), USERS)) as front:
        with RawKafka(stack.port) as kafka:
            assert authenticate_v2(kafka, "wrong") == (58, PLAIN_FAILED)
            assert kafka.request(3, 1, struct.pack(">i", -1)) is None
        with RawKafka(stack.port) as kafka:
            assert authenticate_v2(kafka, USERS["alice"]) == (0, None)
            metadata = kafka.request(3, 1, struct.pack(">i", -1))
            assert metadata is not None
            (brokers,) = struct.unpack(">i", metadata[4:8])
            assert brokers == 1
        sessions = front.wait_ended(2)
    assert [(s.authenticated, s.relayed) for s in sessions] == [(False, False), (True, True)]
