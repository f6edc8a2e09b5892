"""Whether a worker's intake stands still while input waits for it: a stall.

Rarely (README, "Known limits") a worker takes in nothing after a rebalance, and a
connection that silently stops carrying data leaves a fetch or an ack waiting for as
long as the request timeout. Either way the numbers freeze while the lag grows. The
shell shows each beat's positions and lags to an ``IntakeWatch``, exports how long the
intake has stood still, and past a limit restarts the worker, which resumes from its
changelogs and committed offsets as after a kill -9.

Only time the worker was seen running counts: a beat that comes late (the process was
paused, or the loop was busy with one long step) starts every clock again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

LATE_BEATS = 3.0  # a beat this many intervals after the previous one comes late


@dataclass(slots=True)
class Standing:
    """An input partition's position and since when it has not moved (monotonic seconds)."""

    position: int
    since: float
    waiting: bool  # input past the position, or not known yet


@dataclass(slots=True)
class IntakeWatch:
    beat_seconds: float
    partitions: dict[int, Standing] = field(default_factory=dict)
    last_beat: float | None = None

    def observe(self, now: float, owned: Mapping[int, tuple[int, int | None]]) -> float:
        """One beat: each owned input partition's position and lag (None: no fetch answered
        yet). How long the intake has stood still with input waiting, 0.0 if it has not."""
        late = self.last_beat is not None and now - self.last_beat > LATE_BEATS * self.beat_seconds
        self.last_beat = now
        standing: dict[int, Standing] = {}
        for partition, (position, lag) in owned.items():
            waiting = lag is None or lag > 0
            seen = self.partitions.get(partition)
            since = now
            # The clock runs on only while the same position had input waiting last beat too.
            if (
                not late
                and waiting
                and seen is not None
                and seen.waiting
                and seen.position == position
            ):
                since = seen.since
            standing[partition] = Standing(position, since, waiting)
        self.partitions = standing
        return self.stood_still(now)

    def stood_still(self, now: float) -> float:
        return max((now - s.since for s in self.partitions.values() if s.waiting), default=0.0)

    def stalled(self, now: float, limit: float) -> dict[int, int]:
        """The partitions standing still with input waiting for ``limit`` seconds or more,
        with their positions."""
        return {
            partition: s.position
            for partition, s in self.partitions.items()
            if s.waiting and now - s.since >= limit
        }
