"""A production cluster's security end to end: the worker, ``replay`` and a derived-topic
reader over mutual TLS with a SCRAM login give the numbers ``report`` computes (as in
plaintext, tests/test_pipeline.py), and a refusal ends a command with one line.

The embedded broker serves neither TLS nor SASL: a front that speaks both
(tests/kafka_front.py) stands before it, and the broker advertises the front's address, so
every connection a client makes goes through it. The front records each connection's
client certificate and SASL login: a client that bypassed the settings would show there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from streams.commands.broker import EmbeddedBroker, free_port
from streams.config import FlowgaugeConfig
from streams.kafka import Kafka
from tests.cluster import NO_PLANNING, start_worker
from tests.conftest import SHARED_FIXTURES, need_path
from tests.kafka_front import CLIENT_NAME, CertificateFiles, KafkaFront, Sasl, server_context
from tests.kafka_front import write_certificates as certificates_in
from tests.test_pipeline import STEP, assert_snapshots, expected_from_report, wait_caught_up

PASSWORD = "s3cret-scram:password"
TOKEN = "web-token-0123456789"


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(advertised_port=free_port()) as running:
        yield running


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return certificates_in(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    events = need_path(SHARED_FIXTURES / "sample-events.jsonl", "shared fixtures")
    return [line for line in events.read_bytes().splitlines() if line.strip()]


def _front(broker: EmbeddedBroker, **layers: object) -> KafkaFront:
    return KafkaFront(broker.advertised_port, broker.port, **layers)  # type: ignore[arg-type]


def _mutual_tls(files: CertificateFiles, with_certificate: bool = True) -> dict[str, str]:
    env = {"FLOWGAUGE_SECURITY_PROTOCOL": "SSL", "FLOWGAUGE_SSL_CA_FILE": str(files.ca)}
    if with_certificate:
        env |= {
            "FLOWGAUGE_SSL_CERT_FILE": str(files.client_cert),
            "FLOWGAUGE_SSL_KEY_FILE": str(files.client_key),
        }
    return env


def _scram(tmp_path: Path, password: str = PASSWORD) -> dict[str, str]:
    secret = tmp_path / "sasl-password"
    secret.write_text(password + "\n")
    return {
        "FLOWGAUGE_SASL_MECHANISM": "SCRAM-SHA-512",
        "FLOWGAUGE_SASL_USERNAME": "flowgauge",
        "FLOWGAUGE_SASL_PASSWORD_FILE": str(secret),
    }


def _command(broker: EmbeddedBroker, env: dict[str, str], *args: str) -> tuple[int, str]:
    """A flowgauge command in a process of its own: its exit status and stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "streams.commands.cli", *args],
        env={**os.environ, "FLOWGAUGE_BROKER": broker.url, **env},
        capture_output=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stderr.decode()


def _status(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5):
            return 200
    except urllib.error.HTTPError as refused:
        return refused.code


def test_worker_replay_and_reader_over_mutual_tls_and_scram_give_reports_numbers(
    broker: EmbeddedBroker,
    certificates: CertificateFiles,
    lines: list[bytes],
    tmp_path: Path,
) -> None:
    env = {**_mutual_tls(certificates), **_scram(tmp_path)}
    env["FLOWGAUGE_SECURITY_PROTOCOL"] = "SASL_SSL"
    (tmp_path / "token").write_text(TOKEN)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    tls = server_context(certificates, mutual=True)
    sasl = Sasl(("SCRAM-SHA-512",), {"flowgauge": PASSWORD})
    with _front(broker, tls=tls, sasl=sasl) as front:
        token = {"FLOWGAUGE_WEB_TOKEN_FILE": str(tmp_path / "token")}
        worker = start_worker(broker, tmp_path, "worker", **STEP, **env, **token, **NO_PLANNING)
        try:
            assert _command(broker, env, "replay", str(events)) == (
                0, f"published {len(lines)} events from {events} to ticket-events\n",
            )  # fmt: skip
            wait_caught_up([worker])
            settings = {
                name.removeprefix("FLOWGAUGE_").lower(): value for name, value in env.items()
            }
            reader = Kafka.of(FlowgaugeConfig.model_validate({"broker": broker.url, **settings}))
            assert_snapshots(broker, expected_from_report(lines), reader)
            web = f"http://127.0.0.1:{worker.web_port}"
            assert [_status(f"{web}{path}") for path in ("/healthz", "/readyz")] == [200, 200]
            assert _status(f"{web}/table/tickets/") == 401
            assert _status(f"{web}/table/tickets/", TOKEN) == 200
            assert PASSWORD not in worker.log.read_text()
        finally:
            worker.stop()
        sessions = front.sessions
    # The worker's consumer, producer, probes and admin clients, replay's, the reader's.
    assert len(sessions) >= 6
    assert [s for s in sessions if s.refused or s.tls_error] == []
    assert {s.client_subject.split(",")[0] for s in sessions if s.client_subject} == {
        f"CN={CLIENT_NAME}"
    }
    assert all(s.client_subject for s in sessions)
    logins = {(s.mechanism, s.username, s.authenticated) for s in sessions}
    assert logins == {("SCRAM-SHA-512", "flowgauge", True)}


@pytest.mark.parametrize(
    ("command", "case", "line"),
    [
        (
            "replay",
            "untrusted",
            # OpenSSL's words for why vary with the chain the server sends
            "the broker's TLS certificate is not trusted (<reason>): set FLOWGAUGE_SSL_CA_FILE"
            " to the authority that signed it",
        ),
        (
            "worker",
            "no client certificate",
            "the broker closed the TLS connection: it wants a client certificate"
            " (FLOWGAUGE_SSL_CERT_FILE and FLOWGAUGE_SSL_KEY_FILE)",
        ),
        (
            "replay",
            "wrong SCRAM password",
            "SASL SCRAM-SHA-512 login as 'flowgauge' refused: the broker did not accept the"
            " password",
        ),
        (
            "worker",
            "SCRAM refused as Kafka does",
            "SASL SCRAM-SHA-512 login as 'flowgauge' refused: [Error 58] SaslAuthenticationFailed:"
            " Authentication failed during authentication due to invalid credentials with SASL"
            " mechanism SCRAM-SHA-512",
        ),
    ],
)
def test_a_refusal_ends_the_command_with_one_line(
    broker: EmbeddedBroker,
    certificates: CertificateFiles,
    tmp_path: Path,
    command: str,
    case: str,
    line: str,
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("")
    args = {"replay": ["replay", str(events)], "worker": ["worker"]}[command]
    env = _mutual_tls(certificates, with_certificate=case != "no client certificate")
    layers: dict[str, object] = {"tls": server_context(certificates, mutual=True)}
    if case == "untrusted":
        env["FLOWGAUGE_SSL_CA_FILE"] = str(certificates.other_ca)
    if "SCRAM" in case:
        env |= {**_scram(tmp_path, "not-the-password"), "FLOWGAUGE_SECURITY_PROTOCOL": "SASL_SSL"}
        failure: Literal["error", "invalid-proof"] = (
            "error" if "as Kafka does" in case else "invalid-proof"
        )
        layers["sasl"] = Sasl(("SCRAM-SHA-512",), {"flowgauge": PASSWORD}, scram_failure=failure)
    with _front(broker, **layers):
        status, stderr = _command(broker, env, *args)
    pattern = re.escape(f"127.0.0.1:{broker.advertised_port}: {line}\n")
    assert status == 1
    assert re.fullmatch(
        pattern.replace(re.escape("<reason>"), r"[\w -]*certificate[\w -]*"), stderr
    )
