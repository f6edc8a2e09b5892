"""Small helpers the benchmark files share: reading counters, percentiles, CPU time, targets."""

from __future__ import annotations

import os
import re
import statistics
from dataclasses import dataclass

from streams.commands.simulate import Scenario

_TAKEN = re.compile(r"^flowgauge_events_(?:processed|duplicate)_total(?:\{[^}]*\})? (\S+)$", re.M)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def busy_team(days: float = 3650.0) -> Scenario:
    """The simulated team ten times the default one: 2,100 tickets a day (~13,000 events)."""
    return Scenario(
        days=days, arrivals_per_day=2100.0, closures_per_day=1900.0, triage_per_weekday=4200.0
    )


def events_taken(metrics_text: str) -> int:
    """Input messages a worker's /metrics says it has taken in: applied, or seen as repeats."""
    return sum(int(float(value)) for value in _TAKEN.findall(metrics_text))


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p99 (inclusive method: both lie within the measured values)."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a live process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass(frozen=True)
class Target:
    """A target of the issue, printed as met or not met, never asserted."""

    name: str
    measured: float
    goal: float
    unit: str
    below: bool = False  # met when the measure is under the goal (latencies)

    @property
    def met(self) -> bool:
        return self.measured < self.goal if self.below else self.measured >= self.goal

    def line(self) -> str:
        verdict = "met" if self.met else "NOT met"
        relation = "<" if self.below else ">="
        return (
            f"{verdict:>7}: {self.name}: {self.measured:,.2f}{self.unit}"
            f" (target {relation} {self.goal:,.2f}{self.unit}; {self.measured / self.goal:.2f}x it)"
        )
