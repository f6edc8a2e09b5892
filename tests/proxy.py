"""A TCP proxy in front of the broker whose open connections can be frozen, or cut.

A frozen connection stays open and carries nothing more, either way, as behind a network
path that silently drops a flow (a NAT or firewall that forgot it): no reset, no error,
only requests that are never answered. Connections made afterwards pass. The broker
advertises the proxy's port, so every client connection goes through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class Link:
    """One client connection and its connection to the broker."""

    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    frozen: bool = False


class ServedInThread:
    """A server on 127.0.0.1:``port`` for the broker on ``upstream_port``, run by an event
    loop in a thread of its own, so that a test drives it from its own thread. A subclass
    answers each connection (``_accept``) and says which writers are open (``_writers``)."""

    def __init__(self, port: int, upstream_port: int) -> None:
        self.port = port
        self.upstream_port = upstream_port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None

    def __enter__(self) -> Self:
        self.thread.start()
        self.server = self._call(asyncio.start_server(self._accept, "127.0.0.1", self.port))
        return self

    def __exit__(self, *_: object) -> None:
        self._call(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    async def _accept(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        raise NotImplementedError

    def _writers(self) -> list[asyncio.StreamWriter]:
        raise NotImplementedError

    async def _close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self._writers():
            writer.close()
        # Cancelled here, the connections' tasks end quietly, as asyncio's server expects.
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()


class FreezingProxy(ServedInThread):
    def __init__(self, port: int, upstream_port: int) -> None:
        super().__init__(port, upstream_port)
        self.links: set[Link] = set()

    def sever(self) -> None:
        """The broker gone, as a network path that fails: every connection closed and new
        ones refused, until ``restore``."""

        async def close() -> None:
            assert self.server is not None
            self.server.close()
            for writer in self._writers():
                writer.close()
            await self.server.wait_closed()

        self._call(close())

    def restore(self) -> None:
        self.server = self._call(asyncio.start_server(self._accept, "127.0.0.1", self.port))

    def freeze_open(self) -> int:
        """Freeze every connection open now; how many there were."""

        async def freeze() -> int:
            for link in self.links:
                link.frozen = True
            return len(self.links)

        return self._call(freeze())

    def _writers(self) -> list[asyncio.StreamWriter]:
        return [writer for link in self.links for writer in link.writers]

    async def _accept(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        link = Link([client_out])
        try:
            broker_in, broker_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_out.close()
            return
        link.writers.append(broker_out)
        self.links.add(link)
        # Cancelled when the proxy stops: ending quietly, as asyncio's server expects.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pump(client_in, broker_out, link),
                self._pump(broker_in, client_out, link),
                return_exceptions=True,
            )
        self.links.discard(link)
        for writer in link.writers:
            writer.close()

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: Link) -> None:
        while data := await source.read(65536):
            if link.frozen:
                await asyncio.Event().wait()  # held open, carrying nothing, until the proxy stops
            sink.write(data)
            await sink.drain()
        sink.close()
