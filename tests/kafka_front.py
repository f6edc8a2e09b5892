"""A TLS- and SASL-speaking front for the embedded broker, which speaks neither.

The broker advertises the front's port, so every client connection comes through it: the
front does TLS on the client side, speaks the Kafka protocol itself until the client has
authenticated with SASL, then relays bytes verbatim to the broker over plain TCP.

Before authentication it forwards ApiVersions to the broker (making sure the answer offers
SaslHandshake and SaslAuthenticate in the versions the front serves), answers SaslHandshake
and SaslAuthenticate itself (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; the legacy exchange of raw
tokens after SaslHandshake v0 too), and closes the connection on any other request.

Like ``tests/proxy.py``, it runs an asyncio loop in its own thread and is a context manager.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import secrets
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

import trustme

from tests.proxy import ServedInThread

API_VERSIONS = 18
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
UNSUPPORTED_SASL_MECHANISM = 33
SASL_AUTHENTICATION_FAILED = 58
AUTHENTICATE_VERSIONS = (0, 2)  # v2 is flexible (compact encodings, tagged fields)
SCRAM_ITERATIONS = 4096
SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
MECHANISMS = ("PLAIN", *SCRAM_HASHES)
PLAIN_FAILED = "Authentication failed: Invalid username or password"
MAX_FRAME_BEFORE_AUTH = 1 << 20
CLIENT_NAME = "flowgauge-client"
_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
}


# Certificates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateFiles:
    """PEM files: a CA, a server and a client certificate it signed, and an unrelated CA."""

    ca: Path
    server_cert: Path  # the certificate, then its chain up to (not including) the CA
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # signed nothing here: trusting only it means trusting no one


def write_certificates(directory: Path) -> CertificateFiles:
    """A fresh CA, a server certificate for 127.0.0.1 and localhost, a client certificate.

    The client certificate's subject has ``CN=flowgauge-client`` (``CLIENT_NAME``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = CertificateFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server-cert.pem",
        server_key=directory / "server-key.pem",
        client_cert=directory / "cert.pem",
        client_key=directory / "key.pem",
        other_ca=directory / "other-ca.pem",
    )
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert(CLIENT_NAME, common_name=CLIENT_NAME)
    ca.cert_pem.write_to_path(str(files.ca))
    files.server_cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(files.server_key))
    files.client_cert.write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    client.private_key_pem.write_to_path(str(files.client_key))
    trustme.CA().cert_pem.write_to_path(str(files.other_ca))
    return files


def server_context(files: CertificateFiles, *, mutual: bool = False) -> ssl.SSLContext:
    """The front's TLS context; ``mutual``: clients must present a certificate the CA signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.server_cert, files.server_key)
    if mutual:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=files.ca)
    return context


# What the front enforces and what it saw --------------------------------------------------


@dataclass(frozen=True)
class Sasl:
    """SASL the front requires: the mechanisms it enables and the users it knows."""

    mechanisms: tuple[str, ...]
    users: dict[str, str]  # username: password
    # The highest SaslHandshake version offered. 0 makes clients use the exchange of raw
    # tokens that came before SaslAuthenticate (Kafka < 1.0); it then fails by closing.
    handshake_max_version: int = 1
    # How a wrong SCRAM password fails: "invalid-proof" answers the client's final message
    # with the server-final message ``e=invalid-proof`` (RFC 5802); "error" answers it with
    # SASL_AUTHENTICATION_FAILED as Apache Kafka's ScramSaslServer does.
    scram_failure: Literal["invalid-proof", "error"] = "invalid-proof"

    def __post_init__(self) -> None:
        unknown = set(self.mechanisms) - set(MECHANISMS)
        if unknown:
            raise ValueError(f"unsupported mechanisms {sorted(unknown)}; known: {MECHANISMS}")
        if self.handshake_max_version not in (0, 1):
            raise ValueError("handshake_max_version is 0 or 1")


@dataclass
class Session:
    """One accepted client connection, as far as the front saw it."""

    peer: str
    client_subject: str | None = None  # of a verified TLS client certificate: "CN=..,O=.."
    tls_error: str | None = None  # the TLS handshake failed so
    mechanism: str | None = None  # asked for in SaslHandshake, enabled or not
    username: str | None = None  # tried in PLAIN or SCRAM
    authenticated: bool = False  # SASL succeeded
    relayed: bool = False  # passed every check: bytes went on to the broker
    refused: str | None = None  # why the front closed the connection before relaying
    ended: bool = False


# The front --------------------------------------------------------------------------------


class KafkaFront(ServedInThread):
    """Listens on 127.0.0.1:``port``; relays each connection to 127.0.0.1:``upstream_port``."""

    def __init__(
        self,
        port: int,
        upstream_port: int,
        *,
        tls: ssl.SSLContext | None = None,
        sasl: Sasl | None = None,
    ) -> None:
        super().__init__(port, upstream_port)
        self.tls = tls
        self.sasl = sasl
        self._open: set[asyncio.StreamWriter] = set()
        self._sessions: list[Session] = []
        self._changed = threading.Condition()

    @property
    def sessions(self) -> list[Session]:
        """A copy of every connection's record so far, in the order they were accepted."""
        with self._changed:
            return [replace(session) for session in self._sessions]

    def wait_sessions(
        self, done: Callable[[list[Session]], bool], timeout: float = 10.0
    ) -> list[Session]:
        """The records once ``done(records)`` holds; TimeoutError if not within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done(snapshot := [replace(s) for s in self._sessions]):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"front sessions not as wanted within {timeout}s: {snapshot}"
                    )
                self._changed.wait(left)
            return snapshot

    def wait_ended(self, count: int = 1, timeout: float = 10.0) -> list[Session]:
        """The records once at least ``count`` connections have ended."""
        return self.wait_sessions(lambda s: sum(x.ended for x in s) >= count, timeout)

    def _record(self, session: Session, **changes: Any) -> None:
        with self._changed:
            for name, value in changes.items():
                setattr(session, name, value)
            self._changed.notify_all()

    async def _accept(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        peer = client_out.get_extra_info("peername") or ("?", 0)
        session = Session(peer=f"{peer[0]}:{peer[1]}")
        with self._changed:
            self._sessions.append(session)
            self._changed.notify_all()
        self._open.add(client_out)
        broker_out: asyncio.StreamWriter | None = None
        # Cancelled when the front stops: ending quietly, as asyncio's server expects.
        with contextlib.suppress(asyncio.CancelledError):
            try:
                broker_out = await self._serve(session, client_in, client_out)
            except (OSError, EOFError, ValueError, struct.error) as error:
                if not session.relayed and session.refused is None:
                    self._record(session, refused=f"{type(error).__name__}: {error}")
        for writer in (client_out, broker_out):
            if writer is not None:
                self._open.discard(writer)
                writer.close()
        self._record(session, ended=True)

    async def _serve(
        self, session: Session, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> asyncio.StreamWriter | None:
        """Check the client, then relay; the broker connection, once opened."""
        if self.tls is not None:
            try:
                await client_out.start_tls(self.tls, ssl_handshake_timeout=10)
            except (OSError, TimeoutError) as error:
                self._record(
                    session,
                    tls_error=f"{type(error).__name__}: {error}",
                    refused="TLS handshake failed",
                )
                return None
            ssl_object = client_out.get_extra_info("ssl_object")
            self._record(session, client_subject=_subject(ssl_object))
        broker_in, broker_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._open.add(broker_out)
        if self.sasl is not None:
            exchange = _Authentication(self.sasl, session, self._record)
            if not await exchange.run(client_in, client_out, broker_in, broker_out):
                return broker_out
        self._record(session, relayed=True)
        await asyncio.gather(
            _pump(client_in, broker_out), _pump(broker_in, client_out), return_exceptions=True
        )
        return broker_out

    def _writers(self) -> list[asyncio.StreamWriter]:
        return list(self._open)


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while data := await source.read(65536):
        sink.write(data)
        await sink.drain()
    sink.close()


def _subject(ssl_object: ssl.SSLObject | None) -> str | None:
    if ssl_object is None:
        return None
    certificate = ssl_object.getpeercert()
    if not certificate:
        return None  # none asked for, or none sent
    subject = cast(tuple[tuple[tuple[str, str], ...], ...], certificate.get("subject", ()))
    return ",".join(f"{_SHORT_NAMES.get(k, k)}={v}" for rdn in reversed(subject) for k, v in rdn)


# SASL on the Kafka protocol ---------------------------------------------------------------


class _Authentication:
    """The front's side of one connection until the client is authenticated (or is not)."""

    def __init__(self, sasl: Sasl, session: Session, record: Callable[..., None]) -> None:
        self.sasl = sasl
        self.session = session
        self.record = record
        self.exchange: _Exchange | None = None
        self.legacy = False  # after SaslHandshake v0: raw SASL tokens, no Kafka headers

    def refuse(self, why: str) -> bool:
        self.record(self.session, refused=why)
        return False

    async def run(
        self,
        client_in: asyncio.StreamReader,
        client_out: asyncio.StreamWriter,
        broker_in: asyncio.StreamReader,
        broker_out: asyncio.StreamWriter,
    ) -> bool:
        """True once authenticated; False when the connection is to be closed."""
        while True:
            frame = await _read_frame(client_in)
            if frame is None:
                return self.refuse("client closed before authenticating")
            if self.legacy:
                outcome = await self._legacy_token(frame, client_out)
                if outcome is not None:
                    return outcome
                continue
            request = _Request.parse(frame)
            if request.api_key == API_VERSIONS:
                broker_out.write(_frame(frame))
                await broker_out.drain()
                response = await _read_frame(broker_in)
                if response is None:
                    return self.refuse("broker closed on ApiVersions")
                versions = {
                    SASL_HANDSHAKE: (0, self.sasl.handshake_max_version),
                    SASL_AUTHENTICATE: AUTHENTICATE_VERSIONS,
                }
                await _send(client_out, advertise(response, request.api_version, versions))
            elif request.api_key == SASL_HANDSHAKE and self.exchange is None:
                if not await self._handshake(request, client_out):
                    return False
            elif (
                request.api_key == SASL_AUTHENTICATE
                and self.exchange is not None
                and request.api_version <= AUTHENTICATE_VERSIONS[1]
            ):
                outcome = await self._authenticate(request, client_out)
                if outcome is not None:
                    return outcome
            else:
                return self.refuse(
                    f"api key {request.api_key} v{request.api_version} before authentication"
                )

    async def _handshake(self, request: _Request, client_out: asyncio.StreamWriter) -> bool:
        mechanism = _Reader(request.body).string() or ""
        self.record(self.session, mechanism=mechanism)
        enabled = self.sasl.mechanisms
        error = 0 if mechanism in enabled else UNSUPPORTED_SASL_MECHANISM
        body = struct.pack(">hi", error, len(enabled)) + b"".join(map(_string, enabled))
        await _send(client_out, struct.pack(">i", request.correlation_id) + body)
        if error:
            return self.refuse(f"mechanism {mechanism} not enabled")
        self.exchange = _exchange(mechanism, self.sasl)
        self.legacy = request.api_version == 0
        return True

    async def _authenticate(
        self, request: _Request, client_out: asyncio.StreamWriter
    ) -> bool | None:
        assert self.exchange is not None
        reader = _Reader(request.body)
        flexible = request.api_version >= 2
        token = reader.compact_bytes() if flexible else reader.int32_bytes()
        reply = self.exchange.step(token or b"")
        self.record(self.session, username=self.exchange.username)
        error = 0 if reply.error is None else SASL_AUTHENTICATION_FAILED
        answer = b"" if reply.error is not None else reply.token
        if flexible:
            header = struct.pack(">ib", request.correlation_id, 0)  # response header v1
            body = (
                struct.pack(">h", error)
                + _compact_string(reply.error)
                + _compact_bytes(answer)
                + struct.pack(">qb", 0, 0)
            )
        else:
            header = struct.pack(">i", request.correlation_id)
            body = struct.pack(">h", error) + _string(reply.error) + _bytes(answer)
            if request.api_version >= 1:
                body += struct.pack(">q", 0)  # session_lifetime_ms: no re-authentication
        await _send(client_out, header + body)
        return self._outcome(reply)

    async def _legacy_token(self, token: bytes, client_out: asyncio.StreamWriter) -> bool | None:
        assert self.exchange is not None
        reply = self.exchange.step(token)
        self.record(self.session, username=self.exchange.username)
        if reply.error is not None:
            return self.refuse(reply.error)  # before SaslAuthenticate, failing is closing
        await _send(client_out, reply.token)
        return self._outcome(reply)

    def _outcome(self, reply: _Reply) -> bool | None:
        """None: the exchange goes on; True: authenticated; False: close the connection."""
        assert self.exchange is not None
        if reply.error is not None:
            return self.refuse(reply.error)
        if not self.exchange.done:
            return None
        if self.exchange.ok:
            self.record(self.session, authenticated=True)
            return True
        return self.refuse(reply.token.decode(errors="replace"))


@dataclass(frozen=True)
class _Request:
    api_key: int
    api_version: int
    correlation_id: int
    body: bytes

    @classmethod
    def parse(cls, frame: bytes) -> _Request:
        reader = _Reader(frame)
        api_key, api_version, correlation_id = reader.unpack(">hhi")
        reader.string()  # client_id
        if _flexible_request(api_key, api_version):
            reader.tagged_fields()
        return cls(api_key, api_version, correlation_id, reader.rest())


def _flexible_request(api_key: int, api_version: int) -> bool:
    """Whether the request header has tagged fields (only for the keys read here)."""
    return (api_key == API_VERSIONS and api_version >= 3) or (
        api_key == SASL_AUTHENTICATE and api_version >= 2
    )


def advertise(response: bytes, version: int, versions: dict[int, tuple[int, int]]) -> bytes:
    """An ApiVersions response (header included) offering ``versions`` for those keys.

    Entries for those keys are replaced, or appended if missing; everything else (other
    keys' versions, throttle time, tagged fields) is kept. A response with an error is left
    alone: it is the v0 body a broker sends for a version it does not support.
    """
    reader = _Reader(response)
    (correlation_id, error) = reader.unpack(">ih")  # response header v0, even for v3+
    if error:
        return response
    flexible = version >= 3
    count = reader.uvarint() - 1 if flexible else reader.unpack(">i")[0]
    entries: list[tuple[int, int, int, bytes]] = []
    for _ in range(max(count, 0)):
        key, low, high = reader.unpack(">hhh")
        entries.append((key, low, high, reader.tagged_fields() if flexible else b""))
    rest = reader.rest()  # throttle_time_ms (v1+), tagged fields (v3+)
    missing = dict(versions)
    patched: list[tuple[int, int, int, bytes]] = []
    for key, low, high, tags in entries:
        if key in missing:
            low, high = missing.pop(key)
        patched.append((key, low, high, tags))
    empty_tags = b"\x00" if flexible else b""
    patched += [(key, low, high, empty_tags) for key, (low, high) in missing.items()]
    out = struct.pack(">ih", correlation_id, error)
    out += _uvarint(len(patched) + 1) if flexible else struct.pack(">i", len(patched))
    out += b"".join(struct.pack(">hhh", k, lo, hi) + tags for k, lo, hi, tags in patched)
    return out + rest


def parse_api_versions(response: bytes, version: int) -> dict[int, tuple[int, int]]:
    """The versions in an ApiVersions response (header included): {api_key: (min, max)}."""
    reader = _Reader(response)
    _, error = reader.unpack(">ih")
    if error:
        raise ValueError(f"ApiVersions error {error}")
    flexible = version >= 3
    count = reader.uvarint() - 1 if flexible else reader.unpack(">i")[0]
    versions: dict[int, tuple[int, int]] = {}
    for _ in range(max(count, 0)):
        key, low, high = reader.unpack(">hhh")
        if flexible:
            reader.tagged_fields()
        versions[key] = (low, high)
    return versions


async def _read_frame(source: asyncio.StreamReader) -> bytes | None:
    """One size-prefixed frame; None at a clean end of stream."""
    try:
        head = await source.readexactly(4)
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise
        return None
    (size,) = struct.unpack(">i", head)
    if not 0 <= size <= MAX_FRAME_BEFORE_AUTH:
        raise ValueError(f"frame of {size} bytes before authentication")
    return await source.readexactly(size)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


async def _send(sink: asyncio.StreamWriter, payload: bytes) -> None:
    sink.write(_frame(payload))
    await sink.drain()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, size: int) -> bytes:
        if size < 0 or self.at + size > len(self.data):
            raise ValueError("truncated Kafka message")
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk

    def unpack(self, layout: str) -> tuple[int, ...]:
        return cast(tuple[int, ...], struct.unpack(layout, self.take(struct.calcsize(layout))))

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            (byte,) = self.take(1)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise ValueError("varint too long")

    def string(self) -> str | None:
        (size,) = self.unpack(">h")
        return None if size < 0 else self.take(size).decode()

    def int32_bytes(self) -> bytes | None:
        (size,) = self.unpack(">i")
        return None if size < 0 else self.take(size)

    def compact_bytes(self) -> bytes | None:
        size = self.uvarint() - 1
        return None if size < 0 else self.take(size)

    def tagged_fields(self) -> bytes:
        """Skip tagged fields; their raw encoding."""
        start = self.at
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())
        return self.data[start : self.at]

    def rest(self) -> bytes:
        chunk = self.data[self.at :]
        self.at = len(self.data)
        return chunk


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def _bytes(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def _compact_string(text: str | None) -> bytes:
    return b"\x00" if text is None else _compact_bytes(text.encode())


def _compact_bytes(data: bytes) -> bytes:
    return _uvarint(len(data) + 1) + data


# SASL mechanisms, server side -------------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    token: bytes = b""
    error: str | None = None  # fail: SASL_AUTHENTICATION_FAILED with this message


@dataclass
class _Exchange:
    """One mechanism's server side: each client token gets a reply, until done."""

    users: dict[str, str]
    username: str | None = None
    done: bool = False
    ok: bool = False

    def step(self, token: bytes) -> _Reply:
        raise NotImplementedError


def _exchange(mechanism: str, sasl: Sasl) -> _Exchange:
    if mechanism == "PLAIN":
        return _Plain(sasl.users)
    return _Scram(sasl.users, mechanism=mechanism, failure=sasl.scram_failure)


class _Plain(_Exchange):
    """RFC 4616: one message, ``authzid NUL username NUL password``."""

    def step(self, token: bytes) -> _Reply:
        self.done = True
        parts = token.decode(errors="replace").split("\0")
        if len(parts) != 3:
            return _Reply(error="Authentication failed: Invalid SASL/PLAIN message")
        authzid, self.username, password = parts
        known = self.users.get(self.username)
        if (
            known is not None
            and hmac.compare_digest(known.encode(), password.encode())
            and authzid in ("", self.username)
        ):
            self.ok = True
            return _Reply()
        return _Reply(error=PLAIN_FAILED)


@dataclass
class _Scram(_Exchange):
    """RFC 5802 / 7677, server side, without channel binding."""

    mechanism: str = "SCRAM-SHA-256"
    failure: Literal["invalid-proof", "error"] = "invalid-proof"
    gs2_header: str = ""
    client_first_bare: str = ""
    server_first: str = ""
    nonce: str = ""
    salt: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    def step(self, token: bytes) -> _Reply:
        text = token.decode(errors="replace")
        return self._final(text) if self.server_first else self._first(text)

    def _first(self, text: str) -> _Reply:
        parts = text.split(",", 2)
        if len(parts) != 3 or parts[0] not in ("n", "y"):
            self.done = True
            return _Reply(error="Authentication failed: Invalid SCRAM client first message")
        self.gs2_header = f"{parts[0]},{parts[1]},"
        self.client_first_bare = parts[2]
        attributes = _attributes(self.client_first_bare)
        name, client_nonce = attributes.get("n"), attributes.get("r")
        if not name or not client_nonce:
            self.done = True
            return _Reply(error="Authentication failed: Invalid SCRAM client first message")
        # An unknown user goes on with this made-up salt, to fail at the proof.
        self.username = name.replace("=2C", ",").replace("=3D", "=")
        self.nonce = client_nonce + secrets.token_urlsafe(18)
        salt = base64.b64encode(self.salt).decode()
        self.server_first = f"r={self.nonce},s={salt},i={SCRAM_ITERATIONS}"
        return _Reply(self.server_first.encode())

    def _final(self, text: str) -> _Reply:
        self.done = True
        without_proof, _, proof = text.rpartition(",p=")
        attributes = _attributes(without_proof)
        channel = base64.b64encode(self.gs2_header.encode()).decode()
        if attributes.get("c") != channel or attributes.get("r") != self.nonce:
            return _Reply(error="Authentication failed: Invalid SCRAM client final message")
        digest = SCRAM_HASHES[self.mechanism]
        known = self.users.get(self.username or "")
        password = secrets.token_hex(16) if known is None else known
        salted = hashlib.pbkdf2_hmac(digest, password.encode(), self.salt, SCRAM_ITERATIONS)
        client_key = hmac.digest(salted, b"Client Key", digest)
        stored_key = hashlib.new(digest, client_key).digest()
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        client_signature = hmac.digest(stored_key, auth_message, digest)
        try:
            sent = base64.b64decode(proof, validate=True)
        except binascii.Error:
            sent = b""
        recovered = bytes(a ^ b for a, b in zip(sent, client_signature, strict=False))
        if (
            known is None
            or len(sent) != len(client_signature)
            or not hmac.compare_digest(hashlib.new(digest, recovered).digest(), stored_key)
        ):
            if self.failure == "error":
                return _Reply(
                    error="Authentication failed during authentication due to invalid "
                    f"credentials with SASL mechanism {self.mechanism}"
                )
            return _Reply(b"e=invalid-proof")
        self.ok = True
        server_key = hmac.digest(salted, b"Server Key", digest)
        signature = base64.b64encode(hmac.digest(server_key, auth_message, digest)).decode()
        return _Reply(f"v={signature}".encode())


def _attributes(message: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in message.split(",") if "=" in part)
