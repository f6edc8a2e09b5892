"""The internal topics' codec over real batches: what a worker pays per event to write and
read back a ticket batch's scope deltas (one message per dimension) and its changed tickets.

The busy team's first events go through the ticket stage's core in batches of 1,000, as a
worker takes them; each message is then written and read back with ``streams.shell.codec``,
the collector set as a worker sets it, the best of five rounds kept.

python -m tests.bench --only codec
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from itertools import islice
from typing import Any

from streams.commands.cli import fewer_collections
from streams.commands.simulate import encode, generate_events
from streams.core.sla import SlaPolicy
from streams.core.stages import Message, by_dimension, run_ticket_batch
from streams.core.ticket import Ticket
from streams.shell.codec import dumps, loads
from tests.bench_support import busy_team

BATCH = 1000
ROUNDS = 5


def bench_codec(count: int) -> None:
    events = generate_events(busy_team(count / 13_000 + 1))
    lines = [encode(event) for event in islice(events, count)]
    deltas, tickets = _batches(lines)
    thresholds = gc.get_threshold()
    fewer_collections()
    try:
        for label, values in (("scope deltas", deltas), ("changed tickets", tickets)):
            write, read, size = _round_trip(values)
            print(
                f"{label}: write {write / len(lines) * 1e6:.1f} µs, read"
                f" {read / len(lines) * 1e6:.1f} µs, {size / len(lines):,.0f} bytes per event"
                f" ({len(values):,} values over {len(lines):,} events)"
            )
    finally:
        gc.set_threshold(*thresholds)


def _batches(lines: list[bytes]) -> tuple[list[Any], list[Ticket]]:
    """The dimension messages and the changed tickets of each batch of the ticket stage."""
    known: dict[str, Ticket] = {}
    newest: dict[int, int] = {}
    deltas: list[Any] = []
    tickets: list[Ticket] = []
    for start in range(0, len(lines), BATCH):
        messages = [
            Message(0, start + n, None, line) for n, line in enumerate(lines[start : start + BATCH])
        ]
        batch = run_ticket_batch(messages, known.get, newest, 0, SlaPolicy(), 4, {})
        known.update((ticket_id, ticket) for ticket_id, (_, ticket) in batch.changed.items())
        deltas += by_dimension(batch.deltas.values())
        tickets += [ticket for _, ticket in batch.changed.values()]
    return deltas, tickets


def _round_trip(values: Sequence[Any]) -> tuple[float, float, int]:
    """The best seconds to write them all and to read them all back, and their bytes."""
    write = read = float("inf")
    blobs: list[bytes] = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        blobs = [dumps(value) for value in values]
        write = min(write, time.perf_counter() - started)
        started = time.perf_counter()
        for blob in blobs:
            loads(blob)
        read = min(read, time.perf_counter() - started)
    return write, read, sum(map(len, blobs))
