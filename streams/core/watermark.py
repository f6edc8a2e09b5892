"""Event-time progress across input partitions and the boundaries it lets us emit.

Boundary B is emitted once every input partition that carries data has seen
an event later than B + grace. A partition that is caught up and idle stops
holding the others back; when all are idle the stream is flushed through the
first boundary at or after its newest event, as ``report`` does at end of file,
or in live use through the last one the wall clock has passed by the grace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.core.timeline import boundary_index


@dataclass(slots=True)
class PartitionProgress:
    newest_us: int | None
    idle: bool = False
    next_offset: int = 0
    base: int = 0  # of the partition's positions (streams/core/positions.py)


@dataclass(slots=True)
class Watermarks:
    partitions: dict[int, PartitionProgress] = field(default_factory=dict)

    def observe(
        self,
        partition: int,
        newest_us: int | None,
        next_offset: int = 0,
        idle: bool = False,
        base: int = 0,
    ) -> None:
        """A partition's progress: its newest event time and the next offset it will process.

        Progress from before the broker lost the log (a lower ``base``) says nothing of the
        new log's offsets; progress on a new log replaces the old log's offset.
        """
        progress = self.partitions.setdefault(partition, PartitionProgress(newest_us))
        if newest_us is not None:
            progress.newest_us = max(progress.newest_us or newest_us, newest_us)
        if base > progress.base:
            progress.base, progress.next_offset = base, next_offset
        elif base == progress.base:
            progress.next_offset = max(progress.next_offset, next_offset)
        progress.idle = idle

    @property
    def newest_us(self) -> int | None:
        times = [p.newest_us for p in self.partitions.values() if p.newest_us is not None]
        return max(times, default=None)

    def busy(self, end_offsets: Mapping[int, int] | None = None) -> list[PartitionProgress]:
        """Partitions that hold the watermark back.

        ``end_offsets`` (the input's end per partition) turns an idle partition busy
        again as soon as data arrives that its owner has not processed yet.
        """
        return [p for n, p in self.partitions.items() if not self._idle(n, p, end_offsets)]

    def low_us(self, end_offsets: Mapping[int, int] | None = None) -> int | None:
        """The slowest busy partition's newest event time; None when none is busy."""
        times = [p.newest_us for p in self.busy(end_offsets) if p.newest_us is not None]
        return min(times, default=None)

    @staticmethod
    def _idle(partition: int, progress: PartitionProgress, ends: Mapping[int, int] | None) -> bool:
        pending = ends is not None and ends.get(partition, 0) > progress.next_offset
        return progress.idle and not pending

    def is_late(self, at_us: int, grace_us: int) -> bool:
        low = self.low_us()
        return low is not None and at_us < low - grace_us

    def emit_limit(
        self,
        step_us: int,
        grace_us: int,
        now_us: int | None = None,
        end_offsets: Mapping[int, int] | None = None,
        ceiling_us: int | None = None,
    ) -> int | None:
        """Index of the last boundary that may be emitted now (None: nothing yet).

        ``now_us`` (wall clock) is given only in live use: a boundary is then final only
        once the clock has passed it by the grace, so a partition whose clock runs ahead
        cannot make the others' on-time events late; and when every partition is idle the
        watermark follows the clock, so quiet hours still produce snapshots.
        ``ceiling_us``: no boundary after it, whatever the progress says (the wall clock
        plus the tolerance of ``streams.core.timeline.WallClock``).
        """
        if any(p.newest_us is None for p in self.busy(end_offsets)):
            return None  # a partition has data but no event time yet: wait for it
        low, newest = self.low_us(end_offsets), self.newest_us
        by_clock = None if now_us is None else boundary_index(now_us - grace_us, step_us) - 1
        if low is not None:
            limit = boundary_index(low - grace_us, step_us) - 1  # strictly before low - grace
        elif newest is None:
            return None
        else:  # every partition idle: flushed through the newest event, as report does
            limit = boundary_index(newest, step_us) if by_clock is None else by_clock
        if by_clock is not None:
            limit = min(limit, by_clock)
        if ceiling_us is not None:
            limit = min(limit, ceiling_us // step_us)
        return limit
