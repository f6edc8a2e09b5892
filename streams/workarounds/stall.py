"""Whether a worker's intake stands still while input waits for it: a stall.

Rarely (docs/operations.md, "Known limits") a worker takes in nothing after a rebalance, and a
connection that silently stops carrying data leaves a fetch or an ack waiting for as
long as the request timeout. Either way the numbers freeze while the lag grows. The
shell shows each beat's positions and lags to an ``IntakeWatch``, exports how long the
intake has stood still, and past a limit restarts the worker, which resumes from its
changelogs and committed offsets as after a kill -9.

Only time the worker was seen running counts: a beat that comes late (the process was
paused, or the loop was busy with one long step) starts every clock again. The broker is
asked at most once per limit, and the wait for its answer is the watch's own: it neither
counts as a pause nor stops the clocks.

Works around intake that stops with input waiting: Faust after a rebalance (cause not
found; faust-streaming #175 and #523 report consumers that stop), and a connection that
carries no data while aiokafka waits out its request timeout. Remove once neither is seen.
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
    limit: float | None  # standing still this long, the broker is asked; None: never
    partitions: dict[int, Standing] = field(default_factory=dict)
    last_beat: float | None = None
    asked_at: float | None = None

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

    def to_ask(self, now: float) -> dict[int, int]:
        """The partitions to ask the broker about, with their positions: standing still with
        input waiting for the limit or longer, unless it was asked within the limit."""
        limit = self.limit
        if limit is None or (self.asked_at is not None and now - self.asked_at < limit):
            return {}
        return {
            partition: s.position
            for partition, s in self.partitions.items()
            if s.waiting and now - s.since >= limit
        }

    def alive(self, now: float, margin: float) -> bool:
        """For a liveness probe: False once the watch, which restarts a stalled worker past
        the limit, has itself not run for the limit plus ``margin`` (the worker is stuck
        where its own restart cannot reach). A broker that cannot be reached never makes it
        False: the watch goes on running meanwhile. Always True with no limit."""
        if self.limit is None or self.last_beat is None:
            return True
        return now - self.last_beat <= self.limit + margin

    def asked(self, now: float) -> None:
        """The broker answered, or gave up, at ``now``."""
        self.asked_at = self.last_beat = now
