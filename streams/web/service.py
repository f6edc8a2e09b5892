"""``flowgauge web``: the page, live, fed by the derived topics and nothing else.

It reads every derived topic from the start of its retention, then live, with a consumer
of no group (so any number of these serve the same page and none moves a worker's
offsets), and never reads the workers' state. It counts and skips what is not a record.
When the broker is lost it keeps serving what it has, marked stale, and reads on when
the broker is back; a consumer that fails outright is made again and reads from the
start, which the history takes as a repeat (a boundary replaces itself).

The page shows aggregates to anyone who can reach it. Ticket ids (the pull list, SLA
changes) are shown only when credentials are configured (``FLOWGAUGE_WEB_TOKEN`` or
``FLOWGAUGE_WEB_USERNAME``/``_PASSWORD``), and then every page but ``/healthz`` asks for
them, as the worker's pages do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from aiohttp import web
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from streams.config import FlowgaugeConfig
from streams.core.timeline import parse_duration
from streams.kafka import Kafka, read_to_highwaters
from streams.outputs.access import Access, guard
from streams.web.history import TOPICS, History, Thinning
from streams.web.page import STATIC, live_page
from streams.web.view import Freshness, ViewSettings, view

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0
PROBE_SECONDS = 5.0
RANGES = {"day": 86400, "week": 7 * 86400, "month": 30 * 86400, "all": None}
# The page runs only its own files, and loads nothing from elsewhere: should a record's text
# ever reach the page as markup, no script of it runs. The data: icon is the page's own;
# the charts (uPlot) size and place their parts with style attributes.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass
class Feed:
    """How fresh what the service holds is: wall-clock instants."""

    received_at: float | None = None
    lost_since: float | None = None  # the broker did not answer since then
    caught_up: bool = False  # has read every topic to its end once: ready

    def staleness(self, now: float, stale_after: float, zone: ZoneInfo) -> str | None:
        if self.lost_since is not None:
            since = datetime.fromtimestamp(self.lost_since, zone).strftime("%H:%M:%S")
            return f"broker unreachable since {since}"
        if self.received_at is None:
            return "no records received yet"
        quiet = now - self.received_at
        return f"no new records for {quiet / 60:.0f} min" if quiet > stale_after else None


def view_settings(config: FlowgaugeConfig, show_tickets: bool) -> ViewSettings:
    rules, calendar = config.alerts.rules, config.sla.calendar
    return ViewSettings(
        timezone=config.ui_timezone or (calendar.timezone if calendar else "UTC"),
        step_seconds=config.step_seconds,
        windows=config.windows,
        band_low_days=rules.band_low_days,
        band_high_days=rules.band_high_days,
        capacity_window=config.core().rules.capacity_window,
        show_tickets=show_tickets,
    )


def history_of(config: FlowgaugeConfig) -> History:
    """An empty history, thinned as configured."""
    thinning = Thinning(
        parse_duration(config.ui_fine),
        parse_duration(config.ui_hourly),
        parse_duration(config.ui_retention),
    )
    return History(thinning)


@dataclass
class WebService:
    config: FlowgaugeConfig
    kafka: Kafka
    history: History = field(init=False)
    feed: Feed = field(default_factory=Feed)

    def __post_init__(self) -> None:
        self.history = history_of(self.config)

    @property
    def access(self) -> Access:
        return Access.of(self.config)

    def app(self) -> web.Application:
        access = self.access
        guarded = access.token is not None or access.basic is not None
        app = web.Application(middlewares=[guard(access)] if guarded else [])
        app.on_response_prepare.append(_secured)
        settings = view_settings(self.config, show_tickets=guarded)
        page = live_page(self.config.ui_refresh_seconds)
        given = self.config.ui_stale_after
        stale_after = parse_duration(given) if given else 3 * self.config.step_seconds
        zone = ZoneInfo(settings.timezone)

        async def index(_: web.Request) -> web.Response:
            return web.Response(text=page, content_type="text/html")

        async def view_of(request: web.Request) -> web.Response:
            scope = request.query.get("scope", "all")
            span = request.query.get("range", "all")
            if span not in RANGES:
                return web.json_response({"error": f"range is one of {list(RANGES)}"}, status=400)
            now = time.time()
            freshness = Freshness(
                now, self.feed.received_at, self.feed.staleness(now, stale_after, zone), True
            )
            body = view(self.history, scope, settings, freshness, RANGES[span])
            return web.json_response(body, headers={"Cache-Control": "no-store"})

        async def healthz(_: web.Request) -> web.Response:
            return web.Response(text="ok\n")

        async def readyz(_: web.Request) -> web.Response:
            """Ready once it has read every derived topic to its end: a new replica then
            shows what the others show. It stays ready without a broker (stale, marked)."""
            if self.feed.caught_up:
                return web.Response(text="ready\n")
            return web.Response(status=503, text="reading the derived topics\n")

        app.router.add_get("/", index)
        app.router.add_get("/api/view", view_of)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_static("/static/", STATIC, follow_symlinks=False)
        app.cleanup_ctx.append(self._following)
        return app

    async def _following(self, _: web.Application) -> AsyncIterator[None]:
        """Read the topics while the app runs (aiohttp's cleanup context)."""
        task = asyncio.create_task(self.follow())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def follow(self) -> None:
        """Read the derived topics for ever; a consumer that fails is made again."""
        while True:
            # Metadata asked for often: a topic the workers create after this starts (a
            # fresh cluster, make demo) is read within seconds, not Kafka's five minutes.
            consumer = self.kafka.consumer(
                *TOPICS, auto_offset_reset="earliest", group_id=None, metadata_max_age_ms=5000
            )
            probe = None
            try:
                await consumer.start()
                probe = asyncio.create_task(self._probe(consumer))
                while True:
                    batches = await consumer.getmany(timeout_ms=1000)
                    for messages in batches.values():
                        for message in messages:
                            self.history.take(message.topic, message.value)
                        self.feed.received_at = time.time()
                    self.feed.caught_up = self.feed.caught_up or await read_to_highwaters(consumer)
            except (KafkaError, OSError) as exc:
                self.feed.lost_since = self.feed.lost_since or time.time()
                log.warning("derived topics: %s; reading again in %ss", exc, RETRY_SECONDS)
            except Exception:  # a bug must not leave the page stale for good: say, read again
                self.feed.lost_since = self.feed.lost_since or time.time()
                log.exception("derived topics: reading failed; reading again in %ss", RETRY_SECONDS)
            finally:
                if probe is not None:
                    probe.cancel()
                await consumer.stop()
            await asyncio.sleep(RETRY_SECONDS)

    async def _probe(self, consumer: AIOKafkaConsumer) -> None:
        """Ask the broker for its topics every few seconds: a consumer waiting on a lost
        broker retries quietly, and the page must say its data is stale meanwhile."""
        while True:
            try:
                await asyncio.wait_for(consumer.topics(), PROBE_SECONDS)
            except (KafkaError, OSError, TimeoutError):
                self.feed.lost_since = self.feed.lost_since or time.time()
            else:
                self.feed.lost_since = None
            await asyncio.sleep(PROBE_SECONDS)


async def _secured(_: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(HEADERS)
