"""``flowgauge web`` and ``report --html``: the page, live or in one file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from aiohttp import web

from streams.commands.files import replacing
from streams.config import FlowgaugeConfig
from streams.core.scope import Emitted
from streams.kafka import Kafka, KafkaUnreachable
from streams.outputs.stopping import stop_requested
from streams.web.history import History
from streams.web.page import report_page
from streams.web.service import WebService, view_settings
from streams.web.view import Freshness, view

log = logging.getLogger(__name__)
Records = Callable[[Emitted], Iterable[tuple[str, bytes, bytes]]]


def run_web(config: FlowgaugeConfig) -> int:
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop, without a traceback
        asyncio.run(_serve(config))
    return 0


async def start_web(config: FlowgaugeConfig) -> tuple[web.AppRunner, str]:
    """The web service listening (``ui_host``, ``ui_port``), and its address. A broker that
    refuses this client (TLS, SASL) stops it with one line, as every command; one that
    cannot be reached yet does not: the page says so and fills once it can."""
    kafka = Kafka.of(config)
    try:
        await kafka.connect(attempts=1)
    except KafkaUnreachable as unreachable:
        log.warning("%s; serving the page meanwhile", unreachable)
    runner = web.AppRunner(WebService(config, kafka).app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.ui_host, config.ui_port).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/"


async def _serve(config: FlowgaugeConfig) -> None:
    runner, url = await start_web(config)
    print(f"flowgauge web: {url}", flush=True)
    try:
        await stop_requested().wait()
    finally:
        await runner.cleanup()


def recorded(emitted: Iterable[Emitted], history: History, records: Records) -> Iterator[Emitted]:
    """``emitted`` as it is, each boundary's records kept in ``history`` on the way."""
    for item in emitted:
        history.take_all((topic, value) for topic, _, value in records(item))
        yield item


def write_html(path: Path, history: History, config: FlowgaugeConfig) -> int:
    """Every scope's view in one self-contained page; its size in bytes."""
    settings = view_settings(config, show_tickets=True)
    freshness = Freshness(now=time.time())
    views = {scope: view(history, scope, settings, freshness) for scope in history.scope_names()}
    page = report_page(views).encode()
    with replacing(path, "wb") as out:
        out.write(page)
    return len(page)
