"""A real webhook receiver for the chat tests: aiohttp.web on 127.0.0.1, scripted replies."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# In every receiver's URL, so a test can look for it in the logs.
SECRET = "T0FLOW/B0GAUGE/s3cr3t-webhook-token"


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    at: float  # when the request arrived
    status: int
    body: Any


class Receiver:
    """Answers the scripted ``replies`` in order, then ``then`` forever.

    The port is bound at once; with ``listening=False`` it refuses connections until
    ``listen()``, as a webhook host that is down does.
    """

    def __init__(self, replies: Iterable[Reply] = (), then: Reply | None = None) -> None:
        self.replies = deque(replies)
        self.then = then or Reply()
        self.requests: list[Received] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()

    @property
    def url(self) -> str:
        port = self._socket.getsockname()[1]
        return f"http://127.0.0.1:{port}/hooks/{SECRET}"

    @property
    def delivered(self) -> list[Any]:
        return [request.body for request in self.requests if 200 <= request.status < 300]

    async def listen(self) -> None:
        app = web.Application()
        app.router.add_post(f"/hooks/{SECRET}", self._handle)
        # No access log: these tests look for the URL in what flowgauge logs.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._socket.close()

    async def __aenter__(self) -> Receiver:
        await self.listen()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def wait_delivered(self, count: int, timeout: float) -> None:
        await self.wait_until(lambda: len(self.delivered) >= count, timeout)

    async def wait_requests(self, count: int, timeout: float) -> None:
        """Until ``count`` requests arrived, whatever they were answered."""
        await self.wait_until(lambda: len(self.requests) >= count, timeout)

    async def wait_until(self, enough: Callable[[], bool], timeout: float) -> None:
        """Until ``enough()``, asked again at each request."""

        async def arrivals() -> None:
            while not enough():
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(arrivals(), timeout)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        reply = self.replies.popleft() if self.replies else self.then
        self.requests.append(Received(time.monotonic(), reply.status, body))
        self._arrived.set()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, headers=reply.headers, text="ok")
