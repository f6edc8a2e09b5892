"""Rolling inflow/outflow windows and the open level of one scope, as bucket counts.

Bucket ``i`` holds the transitions stamped in ``((i-1)*step, i*step]``, so the
snapshot at boundary ``i`` sums buckets ``i-n+1 .. i`` for a window of ``n`` steps.
Window sums slide one bucket per emitted boundary instead of being re-summed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from streams.core.ticket import FLOW_KINDS, Kind
from streams.core.timeline import boundary_index

_NET = {Kind.INFLOW: 1, Kind.OUTFLOW: -1, Kind.TRANSFER_IN: 1, Kind.TRANSFER_OUT: -1}


@dataclass(frozen=True, slots=True)
class Windows:
    """The step and the rolling windows, in steps; every window is a whole number of steps."""

    step_us: int
    steps: dict[str, int]

    @classmethod
    def of(cls, step_seconds: int, windows: dict[str, int]) -> Windows:
        for name, seconds in windows.items():
            if seconds % step_seconds:
                raise ValueError(f"window {name} is not a multiple of the step ({step_seconds}s)")
        steps = {name: seconds // step_seconds for name, seconds in windows.items()}
        return cls(step_seconds * 1_000_000, steps)

    @property
    def longest(self) -> int:
        return max(self.steps.values())


@dataclass(frozen=True, slots=True)
class FlowSnapshot:
    """Flow of one scope as of one boundary: counts per kind per window name."""

    as_of_us: int
    scope: str
    open: int
    inflow: dict[str, int]
    outflow: dict[str, int]
    transfers_in: dict[str, int]
    transfers_out: dict[str, int]
    # The boundary's own step, transfers counted: the daily history of the forecast.
    step_in: int = 0
    step_out: int = 0


def _zeros() -> list[int]:
    return [0, 0, 0, 0]


@dataclass(slots=True)
class ScopeFlow:
    """Window state of one scope; ``emitted`` is the last boundary index snapshotted."""

    scope: str
    first_seen_us: int | None = None
    emitted: int | None = None
    open: int = 0
    sums: dict[str, list[int]] = field(default_factory=dict)
    buckets: dict[int, list[int]] = field(default_factory=dict)

    def see(self, at_us: int) -> None:
        """The scope occurs in an event at ``at_us``: it gets rows from then on."""
        if self.first_seen_us is None or at_us < self.first_seen_us:
            self.first_seen_us = at_us

    def add(self, kind: Kind, at_us: int, windows: Windows) -> bool:
        """Count one transition; True when it lands in an already emitted boundary (late)."""
        index = boundary_index(at_us, windows.step_us)
        late = self.emitted is not None and index <= self.emitted
        if self.emitted is not None and index <= self.emitted:
            self._count_late(kind, index, self.emitted, windows)
            if index <= self.emitted - windows.longest:
                return True  # no window will cover this bucket again
        self.buckets.setdefault(index, _zeros())[kind] += 1
        return late

    def _count_late(self, kind: Kind, index: int, emitted: int, windows: Windows) -> None:
        self.open += _NET[kind]
        for name, steps in windows.steps.items():
            if index > emitted - steps:
                self.sums.setdefault(name, _zeros())[kind] += 1

    def due(self, limit: int) -> bool:
        """Whether ``emit_through(limit)`` may have a boundary to emit: a scope visited per
        event by every stage skips the generator when it has not (most events)."""
        return self.first_seen_us is not None and (self.emitted is None or self.emitted < limit)

    def emit_through(self, limit: int, windows: Windows) -> Iterator[FlowSnapshot]:
        """Snapshots for every boundary not emitted yet, up to index ``limit``."""
        if self.first_seen_us is None:
            return
        start = boundary_index(self.first_seen_us, windows.step_us)
        if self.emitted is not None:
            start = max(start, self.emitted + 1)
        if limit < start:
            return
        # Buckets stamped before the scope's first row (a transfer out that arrived
        # after the event it precedes) slide in silently: open(B) counts them all.
        if self.emitted is not None:
            first = self.emitted + 1
        else:
            first = min(min(self.buckets, default=start), start)
        for index in range(first, limit + 1):
            self._slide(index, windows)
            self.emitted = index
            if index >= start:
                yield self._snapshot(index, windows)

    def _slide(self, index: int, windows: Windows) -> None:
        entering = self.buckets.get(index)
        if entering is not None:
            self.open += sum(_NET[kind] * entering[kind] for kind in FLOW_KINDS)
        for name, steps in windows.steps.items():
            sums = self.sums.get(name)
            if sums is None:
                sums = self.sums[name] = _zeros()
            leaving = self.buckets.get(index - steps)
            if entering is None and leaving is None:
                continue
            for kind in FLOW_KINDS:
                sums[kind] += (entering[kind] if entering else 0) - (
                    leaving[kind] if leaving else 0
                )
        self.buckets.pop(index - windows.longest, None)

    def _snapshot(self, index: int, windows: Windows) -> FlowSnapshot:
        inflow, outflow, moved_in, moved_out = (
            {name: self.sums[name][kind] for name in windows.steps} for kind in FLOW_KINDS
        )
        step = self.buckets.get(index) or _zeros()
        came = step[Kind.INFLOW] + step[Kind.TRANSFER_IN]
        went = step[Kind.OUTFLOW] + step[Kind.TRANSFER_OUT]
        return FlowSnapshot(
            index * windows.step_us, self.scope, self.open, inflow, outflow, moved_in, moved_out,
            came, went,
        )  # fmt: skip
