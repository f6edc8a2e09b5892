"""Every Kafka client goes through ``streams.kafka``; the security settings it applies and
the secrets it keeps out of sight; who may read the HTTP pages (``streams.outputs.access``)."""

from __future__ import annotations

import ast
import asyncio
import base64
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from streams.config import FlowgaugeConfig
from streams.kafka import Kafka
from streams.outputs.access import Access
from streams.workarounds.stall import IntakeWatch

STREAMS = Path(__file__).resolve().parent.parent / "streams"
CLIENT_MODULE = STREAMS / "kafka.py"
SECRET = "pa55-w0rd:with colons"


def _client_calls(tree: ast.AST) -> list[str]:
    """``AIOKafka*(``, ``faust.App(``, ``App(`` and aiokafka's ``create_conn(`` calls."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name.startswith("AIOKafka") or name in ("App", "create_conn"):
            found.append(f"{name}( at line {node.lineno}")
    return found


def test_no_kafka_client_is_made_outside_the_module_that_applies_the_settings() -> None:
    offenders = {
        str(path.relative_to(STREAMS)): calls
        for path in sorted(STREAMS.rglob("*.py"))
        if path != CLIENT_MODULE and (calls := _client_calls(ast.parse(path.read_text())))
    }
    assert offenders == {}
    assert len(_client_calls(ast.parse(CLIENT_MODULE.read_text()))) == 5  # the check sees them


def _config(**settings: Any) -> FlowgaugeConfig:
    return FlowgaugeConfig.model_validate({"broker": "kafka://a:9093,kafka://b:9093", **settings})


def test_sasl_over_tls_reaches_every_kind_of_client(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text(SECRET + "\n")  # as a mounted Kubernetes Secret may end
    kafka = Kafka.of(
        _config(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="flowgauge",
            sasl_password_file=str(password),
        )
    )
    assert kafka.servers == ("a:9093", "b:9093")

    async def clients() -> tuple[Any, Any, Any]:  # aiokafka makes them in a running loop
        return kafka.producer(), kafka.consumer("t"), kafka.admin()

    producer, consumer, admin = asyncio.run(clients())
    for client in (producer.client, consumer._client, admin._client):
        assert client._bootstrap_servers == "a:9093,b:9093"
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "flowgauge"
        assert client._sasl_plain_password == SECRET
        assert isinstance(client._ssl_context, ssl.SSLContext)
    assert producer._sender._acks == -1  # acks=all
    app = kafka.app("flowgauge-test")
    assert app.conf.producer_acks == -1
    assert [str(url) for url in app.conf.broker] == ["kafka://a:9093", "kafka://b:9093"]
    credentials: Any = app.conf.broker_credentials
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("flowgauge", SECRET)
    assert SECRET not in repr(kafka)
    assert SECRET not in repr(credentials)


def test_a_producer_cannot_ask_for_fewer_acks() -> None:
    async def fewer() -> None:
        Kafka.of(_config()).producer(acks=1)

    with pytest.raises(TypeError, match="acks"):
        asyncio.run(fewer())


def test_tls_without_sasl_and_plaintext(tmp_path: Path) -> None:
    tls = Kafka.of(_config(security_protocol="SSL"))
    assert (tls.security_protocol, tls.sasl_mechanism) == ("SSL", None)
    assert tls.ssl_context is not None
    assert tls.ssl_context.verify_mode == ssl.CERT_REQUIRED
    tls_credentials: Any = tls.app("x").conf.broker_credentials
    assert tls_credentials.protocol.value == "SSL"
    plain = Kafka.of(_config())
    assert (plain.ssl_context, plain.app("y").conf.broker_credentials) == (None, None)
    with pytest.raises(SystemExit, match="TLS files cannot be used"):
        Kafka.of(_config(security_protocol="SSL", ssl_ca_file=str(tmp_path / "absent.pem")))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"security_protocol": "SASL_SSL", "sasl_username": "u"}, "needs sasl_username and"),
        ({"ssl_ca_file": "/ca.pem"}, "need security_protocol SSL or SASL_SSL"),
        ({"security_protocol": "SSL", "ssl_cert_file": "/c.pem"}, "both ssl_cert_file and"),
        ({"sasl_password": SECRET, "sasl_password_file": "/p"}, "not both"),
        ({"sasl_password_file": "/nonexistent/p"}, "/nonexistent/p cannot be read"),
        ({"web_username": "u"}, "needs both web_username and web_password"),
        ({"web_auth_metrics": True}, "web_auth_metrics needs"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
    ],
)
def test_security_settings_are_checked_up_front(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        _config(**settings)
    assert SECRET not in str(refused.value)


def test_secrets_are_never_printed_or_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = tmp_path / "token"
    token.write_text(SECRET)
    with caplog.at_level(logging.DEBUG):
        config = _config(
            security_protocol="SASL_PLAINTEXT",
            sasl_username="u",
            sasl_password=SECRET,
            web_token_file=str(token),
        )
        kafka = Kafka.of(config)
    shown = [repr(config), str(config), config.model_dump_json(), repr(kafka), caplog.text]
    assert not [text for text in shown if SECRET in text]
    assert config.web_token is not None
    assert config.web_token.get_secret_value() == SECRET
    with pytest.raises(ValidationError) as refused:  # a bad value beside a secret
        _config(sasl_password=SECRET, partitions=0)
    assert SECRET not in str(refused.value)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_who_may_read_which_page() -> None:
    nobody = Access.of(_config())
    assert [nobody.status(p, None) for p in ("/healthz", "/readyz", "/metrics")] == [200] * 3
    assert nobody.status("/table/tickets/", "Bearer anything") == 403
    guarded = Access.of(
        _config(web_token=SECRET, web_username="sre", web_password="p", web_auth_metrics=True)
    )
    assert guarded.status("/readyz", None) == 200
    assert guarded.status("/metrics", None) == 401
    assert guarded.status("/metrics", f"Bearer {SECRET}") == 200
    assert guarded.status("/metrics", f"bearer  {SECRET} ") == 200
    assert guarded.status("/metrics", "Bearer " + SECRET[:-1]) == 401
    assert guarded.status("/metrics", _basic("sre", "p")) == 200
    assert guarded.status("/metrics", _basic("sre", "q")) == 401
    assert guarded.status("/metrics", "Basic !!not-base64") == 401
    assert guarded.status("/metrics", f"Token {SECRET}") == 401
    assert guarded.challenge() == 'Bearer realm="flowgauge", Basic realm="flowgauge"'
    token_only = Access.of(_config(web_token=SECRET))
    assert token_only.status("/metrics", None) == 200  # open, as exporters are
    assert token_only.status("/metrics", _basic("sre", "p")) == 200
    assert token_only.status("/table/x/", _basic("sre", "p")) == 401


def test_liveness_fails_only_once_the_intake_watch_itself_stopped() -> None:
    watch = IntakeWatch(1.0, limit=300.0)
    assert watch.alive(0.0, margin=120.0)  # before the first beat: starting or recovering
    watch.observe(10.0, {0: (5, 100)})
    for now in (200.0, 430.0):  # stalled, input waiting: the worker restarts itself first
        watch.observe(now, {0: (5, 100)})
        assert watch.alive(now, margin=120.0)
    assert watch.alive(430.0 + 420.0, margin=120.0)
    assert not watch.alive(430.0 + 420.5, margin=120.0)
    assert IntakeWatch(1.0, limit=None).alive(1e9, margin=0.0)
