"""The intake watch: exports the input lag and how long the intake has stood still with
input waiting, and past ``stall_restart`` restarts the worker
(``streams.workarounds.stall``)."""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka.errors import KafkaError

from streams.core.topics import INPUT
from streams.kafka import Kafka
from streams.shell.ticket import TicketStage
from streams.shell.wiring import Wiring
from streams.workarounds import gaps
from streams.workarounds.restart import restart_worker
from streams.workarounds.stall import IntakeWatch

log = logging.getLogger(__name__)
# How often the intake watch looks, and how long it waits for the broker to say whether
# input waits (first_message_at gives up after 30 s itself).
WATCH_SECONDS = 1.0
WATCH_ASK_SECONDS = 40.0
# What a liveness probe adds to ``stall_restart`` before it fails: one broker question per
# input partition may hold the watch (WATCH_ASK_SECONDS each), and a restart takes a while.
LIVENESS_MARGIN_SECONDS = 120.0


def liveness_margin(partitions: int) -> float:
    return LIVENESS_MARGIN_SECONDS + WATCH_ASK_SECONDS * partitions


def install_intake_watch(wiring: Wiring, tickets: TicketStage) -> IntakeWatch:
    app, config, metrics, intake = wiring.app, wiring.config, wiring.metrics, tickets.intake
    watch = IntakeWatch(WATCH_SECONDS, config.stall_restart_seconds)

    # Its own timer: the heartbeat may be awaiting acks on the very connection that stalled,
    # and the lag it would export meanwhile is the last one before the wait.
    @app.timer(interval=WATCH_SECONDS)
    async def intake_watch() -> None:
        """Past ``stall_restart``, ask the broker afresh; restart the worker if input waits
        and nothing moved meanwhile."""
        owned = intake.owned(wiring)
        metrics.set_lag({p: lag for p, (_, lag) in owned.items() if lag is not None})
        # Recovering tables legitimately takes long; a rebalance does not, and one waiting
        # on the stalled connection is as stuck as the intake.
        now = time.monotonic()
        metrics.intake_stalled.set(watch.observe(now, {} if app.in_recovery else owned))
        asked = watch.to_ask(now)
        if not asked:
            return
        waits = await _input_waits(wiring.kafka, asked)
        watch.asked(time.monotonic())
        unmoved = {p: position for p, (position, _) in intake.owned(wiring).items() if p in asked}
        if waits and unmoved == asked and not app.in_recovery:
            log.error(
                "input partitions %s stood still for %ss with messages waiting: restarting",
                sorted(asked),
                config.stall_restart_seconds,
            )
            restart_worker()

    return watch


async def _input_waits(kafka: Kafka, positions: dict[int, int]) -> bool:
    """Whether the broker, asked afresh, holds input at or past any of the positions. A
    broker that does not answer says no: a restart would not reach it either."""
    for partition, position in positions.items():
        try:
            found = await asyncio.wait_for(
                gaps.first_message_at(kafka, INPUT, partition, position), WATCH_ASK_SECONDS
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning(
                "intake stood still; no answer whether input waits at %d: %r", partition, exc
            )
            continue
        if found is not None:
            return True
    return False
