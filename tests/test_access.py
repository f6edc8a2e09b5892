"""Credentials and secrets: refused in one line when they are empty, compared as the bytes a
caller sent (aiohttp hands over bytes that are no UTF-8 as lone surrogates), never shown."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest

from streams.config import FlowgaugeConfig, SettingsError
from streams.connectors.base import Refused
from streams.connectors.signatures import Hmac, Token
from streams.outputs.access import Access

NO_UTF8 = "\udcff\udcfe"  # how aiohttp gives a header's bytes 0xff 0xfe


def basic(user_password: bytes) -> str:
    return "Basic " + base64.b64encode(user_password).decode()


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {NO_UTF8}", f"Basic {NO_UTF8}", "Bearer é", "Basic é", basic(b"me:\xff")],
)
def test_credentials_that_are_no_utf8_are_refused_not_an_error(authorization: str) -> None:
    access = Access(token=b"right", basic=b"me:right")
    assert access.status("/api/view", authorization) == 401
    assert access.status("/api/view", "Bearer right") == 200
    assert access.status("/api/view", basic(b"me:right")) == 200


def test_access_keeps_its_secrets_out_of_its_repr() -> None:
    shown = repr(Access(token=b"the-token", basic=b"me:the-password"))
    assert "the-token" not in shown
    assert "the-password" not in shown


def test_a_token_header_of_no_utf8_or_no_base64_is_refused() -> None:
    token = Token()
    for given in (f"Bearer {NO_UTF8}", f"Basic {NO_UTF8}", "Basic é", "Bearer é"):
        with pytest.raises(Refused, match="no valid token in authorization"):
            token.verify({"authorization": given}, b"{}", b"secret", 0.0, 300)
    token.verify({"authorization": "Bearer secret"}, b"{}", b"secret", 0.0, 300)


def test_the_empty_key_signs_for_no_one() -> None:
    """An HMAC over the empty key is anyone's to compute: it is no secret."""
    body = b'{"action": "opened"}'
    forged = "sha256=" + hmac.new(b"", body, hashlib.sha256).hexdigest()
    github = Hmac("X-Hub-Signature-256", prefix="sha256=")
    with pytest.raises(Refused, match="no secret is configured"):
        github.verify({"x-hub-signature-256": forged}, body, b"", 0.0, 300)
    with pytest.raises(Refused, match="no secret is configured"):
        Token().verify({"authorization": "Bearer "}, body, b"", 0.0, 300)


@pytest.mark.parametrize(
    ("environment", "refused"),
    [
        ({"FLOWGAUGE_WEB_TOKEN": ""}, "web_token"),
        ({"FLOWGAUGE_WEB_USERNAME": "", "FLOWGAUGE_WEB_PASSWORD": ""}, "web_password"),
        ({"FLOWGAUGE_SECURITY_PROTOCOL": "SASL_SSL", "FLOWGAUGE_SASL_USERNAME": "u",
          "FLOWGAUGE_SASL_PASSWORD": ""}, "sasl_password"),
        ({"FLOWGAUGE_GATEWAY": json.dumps(
            {"sources": [{"name": "g", "kind": "github", "account": "a", "secret": ""}]}
        )}, "gateway.sources.0.secret"),
    ],
)  # fmt: skip
def test_an_empty_secret_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], refused: str
) -> None:
    monkeypatch.delenv("FLOWGAUGE_CONFIG", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"^{re.escape(refused)}: is empty: anyone could"):
        FlowgaugeConfig.load()


def test_the_manifests_placeholder_is_refused_as_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Secret applied as shipped (deploy/kubernetes) would open the pages to a token
    printed in the repository, and sign webhooks with a key anyone has."""
    monkeypatch.delenv("FLOWGAUGE_CONFIG", raising=False)
    monkeypatch.setenv("FLOWGAUGE_WEB_TOKEN", "REPLACE-ME")
    with pytest.raises(SettingsError, match=r"^web_token: is still the manifests' placeholder"):
        FlowgaugeConfig.load()


def test_a_secret_file_holding_only_a_newline_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounted = tmp_path / "zendesk"
    mounted.write_text("\n")  # a Kubernetes Secret created from an empty value
    source = {"name": "z", "kind": "zendesk", "account": "a", "secret_file": str(mounted)}
    monkeypatch.setenv("FLOWGAUGE_GATEWAY", json.dumps({"sources": [source]}))
    monkeypatch.delenv("FLOWGAUGE_CONFIG", raising=False)
    with pytest.raises(SettingsError, match=r"^gateway\.sources\.0\.secret: is empty"):
        FlowgaugeConfig.load()
