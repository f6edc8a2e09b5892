"""Who may read what flowgauge serves over HTTP: one rule for every surface it serves.

The probes (``/healthz``, ``/readyz``) are always open, for the kubelet. ``/metrics`` is
open unless ``web_auth_metrics`` is set, as Prometheus exporters are. Every other page
asks for the configured bearer token or basic-auth pair, and with none configured is
refused: Faust's own pages (``/table/...`` shows table values) are not meant for anyone.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from streams.config import FlowgaugeConfig

PROBES = frozenset({"/healthz", "/readyz"})
METRICS = "/metrics"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Access:
    token: bytes | None = field(default=None, repr=False)  # bearer
    basic: bytes | None = field(default=None, repr=False)  # ``user:password``
    metrics_open: bool = True

    @classmethod
    def of(cls, config: FlowgaugeConfig) -> Access:
        token = config.web_token.get_secret_value().encode() if config.web_token else None
        basic = None
        if config.web_username is not None and config.web_password is not None:
            basic = f"{config.web_username}:{config.web_password.get_secret_value()}".encode()
        return cls(token, basic, not config.web_auth_metrics)

    def status(self, path: str, authorization: str | None) -> int:
        """200 to serve ``path``, 401 to ask for credentials, 403 where none can open it."""
        if path in PROBES or (path == METRICS and self.metrics_open):
            return 200
        if self.token is None and self.basic is None:
            return 403
        return 200 if self._presented(authorization) else 401

    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of a 401: the schemes configured."""
        schemes = [("Bearer", self.token), ("Basic", self.basic)]
        return ", ".join(f'{name} realm="flowgauge"' for name, value in schemes if value)

    def _presented(self, authorization: str | None) -> bool:
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        # Bytes that are no UTF-8 come as lone surrogates: compared as sent, never a 500.
        given = credentials.strip().encode("utf-8", "surrogateescape")
        if scheme.lower() == "bearer" and self.token is not None:
            return hmac.compare_digest(given, self.token)
        if scheme.lower() == "basic" and self.basic is not None:
            try:
                decoded = base64.b64decode(given, validate=True)
            except binascii.Error:
                return False
            return hmac.compare_digest(decoded, self.basic)
        return False


def guard(access: Access) -> Middleware:
    """An aiohttp middleware applying ``access`` to every request."""

    @web.middleware
    async def checked(request: web.Request, handler: Handler) -> web.StreamResponse:
        status = access.status(request.path, request.headers.get("Authorization"))
        if status == 401:
            raise web.HTTPUnauthorized(
                text="credentials required\n", headers={"WWW-Authenticate": access.challenge()}
            )
        if status == 403:
            raise web.HTTPForbidden(
                text="not served: set FLOWGAUGE_WEB_TOKEN (or FLOWGAUGE_WEB_USERNAME and"
                " FLOWGAUGE_WEB_PASSWORD) to open the pages beyond /metrics and the probes\n"
            )
        return await handler(request)

    return checked
