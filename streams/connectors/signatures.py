"""Checking a delivery's signature on its raw bytes, as vendors sign them: an HMAC of the body
(or of a timestamp and the body) in hex or base64, behind an optional prefix, compared in
constant time; or a static token. Reasons name the header, never the secret or the digest."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from streams.connectors.base import Headers, Refused

Algorithm = Literal["sha1", "sha256"]
Encoding = Literal["hex", "base64"]


@dataclass(frozen=True)
class Hmac:
    """``header`` = ``prefix`` + encode(HMAC(secret, ``signed``)), where ``signed`` is the body,
    or the timestamp header's value, ``separator`` and the body."""

    header: str
    algorithm: Algorithm = "sha256"
    encoding: Encoding = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    separator: bytes = b""

    def verify(
        self, headers: Headers, body: bytes, secret: bytes | None, now: float, tolerance: int
    ) -> None:
        if not secret:  # the empty key signs for anyone (the settings refuse it too)
            raise Refused("no secret is configured for this source")
        given = headers.get(self.header.lower())
        if not given:
            raise Refused(f"no {self.header} header")
        signed = body
        if self.timestamp_header is not None:
            stamp = headers.get(self.timestamp_header.lower())
            if not stamp:
                raise Refused(f"no {self.timestamp_header} header")
            fresh(stamp, now, tolerance, self.timestamp_header)
            signed = _bytes(stamp) + self.separator + body
        digest = hmac.new(secret, signed, getattr(hashlib, self.algorithm)).digest()
        if not matches(digest, given, self.encoding, self.prefix):
            raise Refused(f"{self.header} does not match the body")


@dataclass(frozen=True)
class Token:
    """A static secret in a header (``Authorization: Bearer <token>`` by default, or a header
    of the vendor's), or as the password of basic auth."""

    header: str = "authorization"

    def verify(
        self, headers: Headers, body: bytes, secret: bytes | None, now: float, tolerance: int
    ) -> None:
        """As ``Hmac.verify``; a token covers neither the body nor a time."""
        if not secret:  # the empty key signs for anyone (the settings refuse it too)
            raise Refused("no secret is configured for this source")
        given = headers.get(self.header.lower(), "")
        if self.header.lower() == "authorization":
            given = _authorization_secret(given)
        if not given or not hmac.compare_digest(_bytes(given), secret):
            raise Refused(f"no valid token in {self.header}")


def _authorization_secret(value: str) -> str:
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except ValueError:  # not base64 (binascii.Error), not ASCII, or no UTF-8 inside
            return ""
        # Freshdesk puts its API key as the user name ("key:X"); others the password.
        user, _, password = decoded.partition(":")
        return password if password not in ("", "X") else user
    return ""


def _bytes(header: str) -> bytes:
    """A header's value as the bytes sent: those that are no UTF-8 come as lone surrogates,
    which compare unequal rather than fail."""
    return header.encode("utf-8", "surrogateescape")


def matches(digest: bytes, given: str, encoding: Encoding, prefix: str) -> bool:
    if not given.startswith(prefix):
        return False
    text = given[len(prefix) :].strip()
    try:
        presented = (
            bytes.fromhex(text) if encoding == "hex" else base64.b64decode(text, validate=True)
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(digest, presented)


def fresh(stamp: str, now: float, tolerance_seconds: int, header: str) -> None:
    """Refuse a signed timestamp (epoch seconds or ISO 8601) further than the tolerance
    from now: a replayed delivery, or a clock that is wrong."""
    try:
        moment = float(stamp) if stamp.strip().isdigit() else _iso_seconds(stamp)
    except ValueError:
        raise Refused(f"{header} is not a timestamp") from None
    if abs(now - moment) > tolerance_seconds:
        raise Refused(f"{header} is more than {tolerance_seconds} s from now")


def _iso_seconds(stamp: str) -> float:
    moment = datetime.fromisoformat(stamp.strip())
    if moment.utcoffset() is None:
        raise ValueError(stamp)
    return moment.timestamp()
