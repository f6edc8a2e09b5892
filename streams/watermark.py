"""Event-time progress across input partitions and the boundaries it lets us emit.

Boundary B is emitted once every input partition that carries data has seen
an event later than B + grace. A partition that is caught up and idle stops
holding the others back; when all are idle the stream is flushed through the
first boundary at or after its newest event, as ``report`` does at end of file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.timeline import boundary_index


@dataclass(slots=True)
class PartitionProgress:
    newest_us: int
    idle: bool = False


@dataclass(slots=True)
class Watermarks:
    partitions: dict[int, PartitionProgress] = field(default_factory=dict)

    def observe(self, partition: int, newest_us: int) -> None:
        progress = self.partitions.get(partition)
        if progress is None:
            self.partitions[partition] = PartitionProgress(newest_us)
        else:
            progress.newest_us = max(progress.newest_us, newest_us)
            progress.idle = False

    def set_idle(self, partition: int, idle: bool) -> None:
        progress = self.partitions.get(partition)
        if progress is not None:
            progress.idle = idle

    @property
    def low_us(self) -> int | None:
        """The slowest busy partition's newest event time (None before any data)."""
        busy = [p.newest_us for p in self.partitions.values() if not p.idle]
        return min(busy) if busy else None

    @property
    def newest_us(self) -> int | None:
        return max((p.newest_us for p in self.partitions.values()), default=None)

    def is_late(self, at_us: int, grace_us: int) -> bool:
        low = self.low_us
        return low is not None and at_us < low - grace_us

    def emit_limit(self, step_us: int, grace_us: int, now_us: int | None = None) -> int | None:
        """Index of the last boundary that may be emitted now.

        ``now_us`` (wall clock) is given only in live use: when every partition
        is idle it lets the watermark follow the clock, so quiet hours still
        produce snapshots.
        """
        low = self.low_us
        if low is not None:
            return boundary_index(low - grace_us, step_us) - 1  # strictly before low - grace
        newest = self.newest_us
        if newest is None:
            return None
        flushed = boundary_index(newest, step_us)
        if now_us is None:
            return flushed
        return max(flushed, boundary_index(now_us - grace_us, step_us) - 1)
