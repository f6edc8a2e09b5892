"""Publishing events to ``ticket-events``: the replay command and the simulator use it."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterable, Iterable
from pathlib import Path

from streams.config import FlowgaugeConfig
from streams.core.topics import INPUT
from streams.kafka import Kafka
from streams.shell.topics import ensure_topics


def message_key(value: bytes) -> bytes | None:
    """The ticket_id of an event, as the message key; None when it has none."""
    try:
        ticket = json.loads(value).get("ticket_id")
    except (ValueError, AttributeError, RecursionError):  # hostile nesting is not a key
        return None
    return ticket.encode() if isinstance(ticket, str) else None


async def publish(config: FlowgaugeConfig, values: AsyncIterable[bytes] | Iterable[bytes]) -> int:
    """Send every value keyed by its ticket_id, in order; the count sent."""
    kafka = Kafka.of(config)
    await ensure_topics(config, kafka)
    producer = kafka.producer(linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    sent = 0
    try:
        if isinstance(values, AsyncIterable):
            async for value in values:
                await producer.send(INPUT, value, key=message_key(value))
                sent += 1
        else:
            for value in values:
                await producer.send(INPUT, value, key=message_key(value))
                sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def replay_file(config: FlowgaugeConfig, path: Path) -> int:
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    sent = asyncio.run(publish(config, lines))
    print(f"published {sent} events from {path} to {INPUT}", file=sys.stderr)
    return 0
