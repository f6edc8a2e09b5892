"""The ticket stage: per input batch, validate, dedupe and run the state machine
(``streams.core.stages.run_ticket_batch``), send the deltas, progress and contacts on, and
only then write the tables. Tables: ``tickets``, ``input-logs``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from streams.core.positions import SourceLog
from streams.core.stages import Message, contacts_for, run_ticket_batch
from streams.core.topics import DEAD_LETTERS, INPUT
from streams.outputs.records import DeadLetter
from streams.shell import tables
from streams.shell.logs import source_logs
from streams.shell.wiring import Wiring, acked, broadcast, partition_key, to_each


@dataclass
class Intake:
    """How far this worker has taken in each input partition: what the heartbeat and the
    intake watch read."""

    newest: dict[int, int] = field(default_factory=dict)  # event time, per partition
    arrivals: dict[int, float] = field(default_factory=dict)  # monotonic, of the last batch
    offsets: dict[int, int] = field(default_factory=dict)  # the last processed offset
    bases: dict[int, int] = field(default_factory=dict)  # the base of each of those offsets

    def position(self, wiring: Wiring, tp: TP) -> int:
        """The next input offset this worker will process."""
        done = self.offsets.get(tp.partition)
        consumer: Any = wiring.app.consumer
        committed = consumer._committed_offset.get(tp) or 0
        return max(done + 1 if done is not None else 0, committed)

    def standing(self, wiring: Wiring, tp: TP) -> tuple[int, int | None]:
        """An owned input partition's position and lag (None until a fetch has answered)."""
        position = self.position(wiring, tp)
        highwater = wiring.app.consumer.highwater(tp)
        return position, None if highwater is None else max(0, int(highwater) - position)

    def owned(self, wiring: Wiring) -> dict[int, tuple[int, int | None]]:
        """Position and lag of every input partition this worker owns."""
        return {tp.partition: self.standing(wiring, tp) for tp in wiring.owned(INPUT)}


class TicketStage:
    def __init__(self, wiring: Wiring) -> None:
        self.wiring = wiring
        self.events = wiring.raw(INPUT)
        self.dead_letters = wiring.raw(DEAD_LETTERS)
        self.tickets = wiring.table("tickets")
        self.input_logs = wiring.table("input-logs")
        self.intake = Intake()
        wiring.stage(self.events, "tickets", self._batch)

    async def _batch(self, batch: list[Any]) -> None:
        wiring, intake = self.wiring, self.intake
        messages = [
            Message(e.message.partition, e.message.offset, e.message.key, e.message.value)
            for e in batch
        ]
        read = [(m.partition, m.offset) for m in messages]
        logs = await source_logs(self.input_logs, wiring.kafka, INPUT, read)
        result = run_ticket_batch(
            messages,
            lambda key: self.tickets.get(key.encode()),
            intake.newest,
            wiring.config.grace_us,
            wiring.settings.sla,
            wiring.partitions,
            {p: source.base for p, source in logs.items()},
            wiring.config.wall_clock(time.time()),
        )
        sends: list[Any] = await wiring.send_deltas(result.deltas.values())
        sends += [
            await broadcast(wiring.deltas, p, wiring.partitions) for p in result.progress.values()
        ]
        sends += await to_each(wiring.contacts, contacts_for(result, wiring.partitions))
        sends += [
            await self.dead_letters.send(
                key=dl.message.key,
                value=DeadLetter.of(
                    dl.message.value, dl.reason, INPUT, dl.message.partition, dl.message.offset
                ).to_bytes(),
                force=True,
            )
            for dl in result.dead_letters
        ]
        # force=True: sent now, not held for the batch's commit, since the acks are
        # awaited before the batch is acked. The table is written only once everything
        # derived from the batch is on the broker: a crash in between replays the
        # batch, and the scope stage drops what it already applied by source offset.
        await acked(sends)
        for ticket_id, (partition, ticket) in result.changed.items():
            self.tickets.put(partition, ticket_id.encode(), ticket)
        # Only the last message read per partition is remembered: its digest once.
        last_read = {m.partition: m for m in messages}
        for message in last_read.values():
            logs[message.partition].read(message.offset, message.value)
        for partition, source in logs.items():
            self.input_logs.put(partition, partition_key(partition), source)
        await tables.written(self.tickets, self.input_logs)
        # With no await in between, so the heartbeat never pairs an offset of one log
        # with the base of another.
        now = time.monotonic()
        for message in last_read.values():
            intake.arrivals[message.partition] = now
            intake.offsets[message.partition] = message.offset
            intake.bases[message.partition] = logs[message.partition].base
        wiring.metrics.count_ticket_batch(result)

    def base(self, partition: int) -> int:
        """The base of ``partition``'s processed offset; as recovered when nothing was
        processed since start."""
        base = self.intake.bases.get(partition)
        if base is not None:
            return base
        source = self.input_logs.get(partition_key(partition))
        return source.base if isinstance(source, SourceLog) else 0
