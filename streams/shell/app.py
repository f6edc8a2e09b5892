"""The Faust app: the three stages, the heartbeat, the intake watch, chat delivery,
/metrics and the probes, composed. It holds no business rule: every decision is in
``streams.core``."""

from __future__ import annotations

import time
from typing import Any

import faust
from aiohttp import web

from streams.config import FlowgaugeConfig
from streams.core.topics import (
    AGING,
    ALERTS,
    DEAD_LETTERS,
    FLOW,
    FORECAST,
    INDICATORS,
    PULL,
    SLA,
)
from streams.kafka import Kafka
from streams.outputs.access import Access, guard
from streams.outputs.delivery import deliver_alerts_to_chat
from streams.shell import codec
from streams.shell.heartbeat import install_heartbeat
from streams.shell.intake_watch import install_intake_watch, liveness_margin
from streams.shell.pull import install_pull_lists
from streams.shell.requester import RequesterStage
from streams.shell.scope import ScopeStage
from streams.shell.ticket import TicketStage
from streams.shell.topics import Layout
from streams.shell.wiring import STATE_MESSAGE_BYTES, Wiring
from streams.workarounds.metadata import track_topics


def build_app(config: FlowgaugeConfig, layout: Layout, kafka: Kafka) -> faust.App:
    """A Faust app wired to the core, its topics laid out as the input's (``ensure_topics``)."""
    codec.register()
    app = kafka.app(
        config.app_id,
        store="memory://",
        datadir=str(config.data_dir),
        topic_partitions=layout.partitions,
        topic_replication_factor=layout.replication,
        topic_allow_declare=config.create_topics,
        broker_rebalance_timeout=config.rebalance_timeout,
        broker_session_timeout=config.rebalance_timeout * 1.5,
        broker_heartbeat_interval=1.0,
        table_standby_replicas=0,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=max(4 * config.batch_size, 4096),
        producer_max_request_size=STATE_MESSAGE_BYTES,
        web_enabled=True,
        web_host=config.web_host,
        web_bind=config.web_host,
        web_port=config.web_port,
        web_in_thread=False,
        web_application_options={"middlewares": [guard(Access.of(config))]},
    )
    wiring = Wiring.of(app, config, layout, kafka)
    tickets = TicketStage(wiring)
    RequesterStage(wiring)
    scopes = ScopeStage(wiring)
    install_heartbeat(wiring, tickets)
    watch = install_intake_watch(wiring, tickets)
    margin = liveness_margin(layout.partitions)
    if wiring.settings.pull is not None:
        install_pull_lists(app, kafka)

    @app.task
    async def track_produced_topics() -> None:
        produced = [DEAD_LETTERS, FLOW, AGING, ALERTS, SLA, INDICATORS, FORECAST, PULL]
        produced += [wiring.deltas.get_topic_name(), wiring.contacts.get_topic_name()]
        produced += sorted(app.tables.changelog_topics)
        await track_topics(app.producer, produced)

    if config.chat:
        deliver_alerts_to_chat(app, config, wiring.raw(ALERTS), wiring.metrics, kafka)

    @app.page("/metrics")
    async def metrics_page(_: Any, request: Any) -> Any:
        body = wiring.metrics.render(scopes.owned())
        return web.Response(body=body, headers={"Content-Type": wiring.metrics.content_type})

    @app.page("/healthz")
    async def live(_: Any, request: Any) -> Any:
        """Fails only where the worker's own restart cannot reach (IntakeWatch.alive)."""
        if watch.alive(time.monotonic(), margin):
            return web.Response(text="alive\n")
        return web.Response(status=503, text="the intake watch has not run: stuck\n")

    @app.page("/readyz")
    async def ready(_: Any, request: Any) -> Any:
        """Ready once this worker's tables are recovered, and not while they recover again."""
        tables: Any = app.tables  # its recovery is not in Faust's TableManagerT
        if tables.recovery.completed.is_set() and not app.in_recovery:
            return web.Response(text="ready\n")
        return web.Response(status=503, text="recovering tables\n")

    return app
