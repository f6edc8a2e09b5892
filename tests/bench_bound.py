"""What the events allow the headline rule (``--only bound``): a bound on how soon any rule
can detect ``surge`` and ``understaffed`` without firing in ``steady``.

The bound is a CUSUM that knows what no rule reading the events can: the exact hourly rate
of each queue's new tickets (recontacts left out), or of the team's resolve attempts (which
the events show only when one resolves something), and the size of the change (+60%
arrivals, -25% capacity). A CUSUM is the fastest detector of such a change for a given
rate of false alarms (Lorden, Moustakides). Its bar, per scope, is set just above the
highest value it reached in ``steady`` seeds 1-5 (8 weeks each): no false firing there,
and the lowest bar that allows, which favours it. Printed: the hours from each change to
its firing, in seeds 1-5, and how many were within the issue's targets.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from streams.commands.scenarios import named
from streams.commands.simulate import (
    _NOBODY,
    HOUR,
    Effect,
    Handler,
    Scenario,
    TeamModel,
    _Simulation,
    _Ticket,
)

SEEDS = (1, 2, 3, 4, 5)
Counts = defaultdict[int, Counter[str]]  # hour of the run -> queue -> count
FRESH, ATTEMPTS = "new tickets", "resolve attempts"  # what the bound counts


class _Counting(_Simulation):
    """The simulation, counting per hour what the bound reads: fresh tickets per queue and
    resolve attempts per queue."""

    def __init__(self, scenario: Scenario) -> None:
        self.counted: dict[str, Counts] = {
            FRESH: defaultdict(Counter),
            ATTEMPTS: defaultdict(Counter),
        }
        super().__init__(scenario)

    def hour_of(self, when: float) -> int:
        return int((when - self.t0) // HOUR)

    def open_ticket(self, when: float, source: _Ticket, queue: str | None, tag: str) -> None:
        if source is _NOBODY and queue is not None:  # fresh, in a modelled queue
            self.counted[FRESH][self.hour_of(when)][queue] += 1
        super().open_ticket(when, source, queue, tag)

    def _resolver(self, pool: list[tuple[float, int, _Ticket, int]]) -> Handler:
        resolve = super()._resolver(pool)
        queue = next(name for name, kept in self.pools.items() if kept is pool)

        def counted(when: float, ticket: _Ticket) -> None:
            self.counted[ATTEMPTS][self.hour_of(when)][queue] += 1
            resolve(when, ticket)

        return counted


@dataclass(frozen=True)
class Change:
    scenario: str
    reading: str  # what the bound counts
    target_hours: int  # the target for detecting it
    effect: Callable[[Scenario], Effect]  # the scenario's change: when it starts, its size
    rates: Callable[[_Counting, float, TeamModel], list[float]]  # what is expected per queue


CHANGES = (
    Change("surge", FRESH, 12, lambda s: s.arrival_effects[0], _Counting.fresh_rates),
    Change("understaffed", ATTEMPTS, 24, lambda s: s.capacity_effects[0], _Counting.resolve_rates),
)


def cusum_path(change: Change, name: str, seed: int) -> dict[str, list[float]]:
    """Per scope (``all`` and each queue), the CUSUM after each hour of the run, against the
    rates of the scenario without its change."""
    simulation = _Counting(named(name, seed))
    for _ in simulation.run():
        pass
    usual = TeamModel(named("steady"))
    counts, queues = simulation.counted[change.reading], list(usual.names)
    factor = change.effect(named(change.scenario)).factor
    log_factor = math.log(factor)
    paths: dict[str, list[float]] = {scope: [] for scope in ("all", *queues)}
    level = dict.fromkeys(paths, 0.0)
    for hour in range(int(simulation.scenario.days * 24)):
        rates = change.rates(simulation, simulation.t0 + hour * HOUR, usual)
        seen = counts[hour]
        for scope in paths:
            rate = sum(rates) if scope == "all" else rates[queues.index(scope)]
            count = sum(seen.values()) if scope == "all" else seen[scope]
            step = count * log_factor - (factor - 1.0) * rate
            level[scope] = max(0.0, level[scope] + step)
            paths[scope].append(level[scope])
    return paths


def run_bound() -> None:
    print(
        "| change | what the bound counts | scope | bar (highest in steady) |"
        " hours to fire, seeds 1-5 | within target |"
    )
    print("| --- " * 6 + "|")
    for change in CHANGES:
        bars: dict[str, float] = defaultdict(float)
        for seed in SEEDS:
            for scope, path in cusum_path(change, "steady", seed).items():
                bars[scope] = max(bars[scope], max(path))
        delays: dict[str, list[int | None]] = defaultdict(list)
        start = round(change.effect(named(change.scenario)).start * 24)
        for seed in SEEDS:
            for scope, path in cusum_path(change, change.scenario, seed).items():
                fired = next((h for h in range(start, len(path)) if path[h] > bars[scope]), None)
                delays[scope].append(None if fired is None else fired + 1 - start)
        for scope, hours in delays.items():
            within = sum(1 for h in hours if h is not None and h <= change.target_hours)
            shown = ", ".join("-" if h is None else str(h) for h in hours)
            print(
                f"| {change.scenario} | {change.reading} | {scope} | {bars[scope]:.1f} |"
                f" {shown} | {within}/{len(hours)} within {change.target_hours} h |",
                flush=True,
            )
