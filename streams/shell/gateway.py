"""``flowgauge gateway``: helpdesk webhooks in, ticket events out on ``ticket-events``.

``POST /webhooks/{name}`` answers, in this order: 404 for no configured source of that
name, 415 unless the body is JSON, 413 over the size limit, 400 for a body not in its
Content-Encoding, 401 unless the raw body is signed as the vendor signs it (or the instance
is ``insecure``), 400 for signed bytes that are no JSON object. Then the mapping: a
delivery about nothing flowgauge counts is 202; one that cannot be mapped is kept whole on
``ticket-events.rejected`` and is 202; the events of the rest are 200, once the broker
acknowledged every one of them (acks=all) within the acknowledgement timeout, else 503: the
vendor retries, and the same change carries the same event id, so the worker counts it
once. Nothing refused is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError

from streams.config import FlowgaugeConfig
from streams.connectors.base import (
    Connector,
    Ignored,
    NotJson,
    Refused,
    Unmappable,
    event_json,
)
from streams.core.topics import INPUT, REJECTED
from streams.kafka import Kafka
from streams.outputs.access import METRICS, Access
from streams.outputs.metrics import GatewayMetrics
from streams.outputs.records import Rejected
from streams.outputs.stopping import stop_requested
from streams.shell.topics import ensure_topics
from streams.workarounds import redeclare

log = logging.getLogger(__name__)
JSON_TYPES = frozenset({"application/json", "text/json"})
UNKNOWN = "unknown"  # the metrics' source label for a path that names no source
# A helpdesk sends its few kilobytes at once; a body that trickles in holds a connection
# open for nobody (aiohttp has no such limit of its own).
BODY_SECONDS = 10.0
# Asked to stop, the deliveries in flight get their body's time, the broker's, and this.
SHUTDOWN_MARGIN_SECONDS = 5.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Message = tuple[str, bytes, bytes]  # topic, key, value


class Answer(Exception):
    """How a delivery is answered: status, the metrics' outcome, the reason in the body."""

    def __init__(self, status: int, outcome: str, detail: object) -> None:
        super().__init__(detail)
        self.status = status
        self.outcome = outcome

    def response(self) -> web.Response:
        key = {200: "published", 202: self.outcome}.get(self.status, "error")
        headers = {"Retry-After": "5"} if self.status == 503 else None
        return web.Response(
            status=self.status,
            text=json.dumps({key: self.args[0]}) + "\n",
            content_type="application/json",
            headers=headers,
        )


@dataclass
class Gateway:
    """The sources by name, the producer every accepted delivery goes through, the metrics."""

    sources: dict[str, Connector]
    insecure: frozenset[str]  # names of sources that take unsigned deliveries
    producer: AIOKafkaProducer
    metrics: GatewayMetrics
    access: Access
    max_body_bytes: int
    ack_timeout: float

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes, middlewares=[self.guard])
        app.router.add_post("/webhooks/{name}", self.webhook)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get(METRICS, self.serve_metrics)
        return app

    async def webhook(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        connector = self.sources.get(request.match_info["name"])
        label = UNKNOWN if connector is None else connector.source.name
        try:
            if connector is None:
                raise Answer(404, "unknown_source", "no source of that name is configured")
            answer = await self._deliver(connector, request, started + self.ack_timeout)
        except Answer as refusal:
            answer = refusal
        self.metrics.deliveries.labels(label, answer.outcome).inc()
        self.metrics.latency.labels(label).observe(time.monotonic() - started)
        return answer.response()

    async def _deliver(self, connector: Connector, request: web.Request, deadline: float) -> Answer:
        """How an accepted delivery is answered; a refused one raises its ``Answer``."""
        source = connector.source
        if request.content_type not in JSON_TYPES and not request.content_type.endswith("+json"):
            raise Answer(415, "unsupported_media_type", "the body must be application/json")
        too_large = Answer(413, "too_large", f"the body is over {self.max_body_bytes} bytes")
        if (request.content_length or 0) > self.max_body_bytes:
            raise too_large
        try:
            async with asyncio.timeout(BODY_SECONDS):
                body = await request.read()
        except TimeoutError:
            raise Answer(408, "timeout", f"the body took over {BODY_SECONDS:g} s") from None
        except web.HTTPRequestEntityTooLarge:
            raise too_large from None
        except web.RequestPayloadError as exc:  # a Content-Encoding the bytes are not in
            raise Answer(400, "not_json", f"the body cannot be read: {exc}") from None
        headers = _combined(request.headers.items())
        try:
            if source.name not in self.insecure:
                connector.verify(headers, body, time.time())
            delivery = replace(connector.parse(headers, body), received_at=time.time())
        except Refused as refusal:
            self.metrics.signature_failures.labels(source.name).inc()
            log.info("refused a delivery to %s: %s", source.name, refusal)
            raise Answer(401, "refused", str(refusal)) from None
        except NotJson as exc:
            raise Answer(400, "not_json", str(exc)) from None
        try:
            mapped = connector.events(delivery)
        except Unmappable as exc:
            # A header's bytes that are no UTF-8 come as lone surrogates, and a JSON body
            # may hold them escaped: the record is UTF-8, so they are kept escaped.
            kept = Rejected.of(
                source.name,
                source.kind,
                _encodable(str(exc)),
                _now(),
                None if delivery.event is None else _encodable(delivery.event),
                body,
            )
            await self._acknowledged(deadline, [(REJECTED, source.name.encode(), kept.to_bytes())])
            return Answer(202, "rejected", str(exc))
        if isinstance(mapped, Ignored):
            return Answer(202, "ignored", mapped.reason)
        await self._acknowledged(
            deadline, [(INPUT, event.ticket_id.encode(), event_json(event)) for event in mapped]
        )
        self.metrics.published.labels(source.name).inc(len(mapped))
        return Answer(200, "published", [event.event_id for event in mapped])

    async def _acknowledged(self, deadline: float, messages: list[Message]) -> None:
        """Until the broker acknowledged every message, or 503 at the deadline."""

        async def sent() -> None:
            futures = [
                await self.producer.send(topic, value, key) for topic, key, value in messages
            ]
            await asyncio.gather(*futures)

        try:
            await asyncio.wait_for(sent(), max(0.0, deadline - time.monotonic()))
        except (TimeoutError, KafkaError) as exc:
            log.warning("the broker did not acknowledge a delivery in time: %r", exc)
            raise Answer(503, "unavailable", "the broker did not acknowledge: retry") from None

    async def healthz(self, request: web.Request) -> web.Response:
        """200 while the broker answers a metadata request within 3 s."""
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), 3.0)
        except (TimeoutError, KafkaError, OSError):
            return web.Response(status=503, text="the broker cannot be reached\n")
        return web.Response(text="the broker is reachable\n")

    async def serve_metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": self.metrics.content_type}
        )

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """``/metrics`` asks for the web credentials where ``web_auth_metrics`` is set; the
        webhooks are signed instead."""
        authorization = request.headers.get("Authorization")
        if request.path == METRICS and self.access.status(METRICS, authorization) != 200:
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": self.access.challenge()})
        return await handler(request)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _encodable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (lone surrogates) as backslash escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def max_request_size(max_body_bytes: int) -> int:
    """A producer request large enough for the biggest record the gateway writes: a
    rejected body of ``max_body_bytes`` in base64 (4/3 of it), with its reason, its event
    header (aiohttp takes header fields up to 8 KiB) and the record's other fields."""
    return max(1024 * 1024, 4 * -(-max_body_bytes // 3) + 64 * 1024)


async def _serve(config: FlowgaugeConfig, host: str, port: int) -> None:
    kafka = Kafka.of(config)
    layout = await ensure_topics(config, kafka)
    configs = layout.public_configs()
    # The gateway's producer, like the worker's, declares its topics again on a broker that
    # came back without them (streams/workarounds/redeclare.py).
    redeclare.install(
        redeclare.Declarer(
            kafka,
            [
                NewTopic(
                    name,
                    num_partitions=layout.partitions,
                    replication_factor=layout.replication,
                    topic_configs={**layout.configs, **configs[name]},
                )
                for name in (INPUT, REJECTED)
            ],
        )
    )
    sources = {source.name: source.connector() for source in config.gateway.sources}
    insecure = frozenset(source.name for source in config.gateway.sources if source.insecure)
    if not sources:
        log.warning("no [[gateway.sources]] in the settings: every delivery is answered 404")
    for source in config.gateway.sources:
        if source.insecure:
            log.warning("source %s takes unsigned deliveries (insecure = true)", source.name)
        elif source.secret is None:
            log.warning("source %s has no secret: every delivery to it is refused", source.name)
    producer = kafka.producer(
        linger_ms=0, max_request_size=max_request_size(config.gateway.max_body_bytes)
    )
    await producer.start()
    connected = asyncio.create_task(redeclare.keep_connection(producer))
    gateway = Gateway(
        sources,
        insecure,
        producer,
        GatewayMetrics(list(sources)),
        Access.of(config),
        config.gateway.max_body_bytes,
        config.gateway.ack_timeout_seconds,
    )
    runner = web.AppRunner(
        gateway.application(),
        access_log=None,
        shutdown_timeout=BODY_SECONDS
        + config.gateway.ack_timeout_seconds
        + SHUTDOWN_MARGIN_SECONDS,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    print(f"flowgauge gateway on http://{bound[0]}:{bound[1]} ({len(sources)} sources)", flush=True)
    try:
        await stop_requested().wait()
    finally:  # stops listening, then answers what is in flight
        connected.cancel()
        await runner.cleanup()
        await producer.stop()


def run_gateway(config: FlowgaugeConfig, host: str | None = None, port: int | None = None) -> int:
    """Serve until stopped."""
    logging.basicConfig(level=config.log_level.upper())
    chosen_host = host or config.gateway.host
    chosen_port = config.gateway.port if port is None else port
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config, chosen_host, chosen_port))
    return 0


def _combined(fields: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header fields by lower-case name, a repeated one's values joined as HTTP combines
    them: a second signature header makes the signature fail, instead of one of the two
    being checked."""
    headers: dict[str, str] = {}
    for name, value in fields:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers
