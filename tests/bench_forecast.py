"""What the drain forecast costs: in-process per scope and whole hour, and one worker's rate
with and without it, all in one run (``make bench BENCH_ARGS="--only forecast"``).

The workload is the ``understaffed`` scenario (seed 1, six weeks): for weeks most scopes are
above their band, so most whole hours read sampled futures and each day draws them anew,
the forecast's dear case. A team inside its band costs a bisection per hour.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from streams.commands.report import run
from streams.commands.scenarios import named
from streams.commands.simulate import encode, generate_events
from streams.config import FlowgaugeConfig
from streams.core import forecast as forecast_module
from streams.core.forecast import QUANTILES, day_end_seconds
from streams.core.scope import Settings
from tests.bench_support import Target
from tests.bench_throughput import worker_rate

OFF = '{"enabled": false}'
PLANNING = ("FLOWGAUGE_FORECAST", "FLOWGAUGE_PULL")


def scenario_lines(name: str = "understaffed", seed: int = 1) -> list[bytes]:
    return [encode(event) for event in generate_events(named(name, seed))]


def _timed_report(lines: list[bytes], settings: Settings, grace_us: int) -> tuple[float, int]:
    """Seconds of CPU ``report``'s pipeline takes, and the forecasts it made."""
    forecast_module.DRAWN.clear()
    started = time.process_time()
    emitted, _ = run(lines, settings, grace_us)
    return time.process_time() - started, sum(1 for item in emitted if item.forecast)


def in_process(lines: list[bytes], step: str) -> None:
    """``report``'s pipeline without planning, with the forecast, and with the pull list
    too, alternated twice; the better of each."""
    config = FlowgaugeConfig(step=step)
    both = config.core()
    variants = {
        "without planning": replace(both, forecast=None, pull=None),
        "with the forecast": replace(both, pull=None),
        "with the forecast and pull lists": both,
    }
    best: dict[str, float] = {}
    made = 0
    for _ in range(2):
        for name, settings in variants.items():
            seconds, found = _timed_report(lines, settings, config.grace_us)
            best[name] = min(best.get(name, seconds), seconds)
            made = max(made, found)
    base = best["without planning"]
    rates = ", ".join(
        f"{name} {len(lines) / seconds:,.0f} events/s ({base / seconds:.2f}x)"
        for name, seconds in best.items()
    )
    cost = (best["with the forecast"] - base) / made
    print(
        f"report, step {step}: {rates}; {made:,} forecasts (scope and whole hour):"
        f" {cost * 1e3:.2f} ms each on average ({both.forecast.paths if both.forecast else 0}"
        " paths)"
    )


@contextmanager
def _planning(on: bool) -> Iterator[None]:
    """Workers started meanwhile run with the forecast and pull lists, or without both."""
    before = {name: os.environ.get(name) for name in PLANNING}
    for name in PLANNING:
        if on:
            os.environ.pop(name, None)
        else:
            os.environ[name] = OFF
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def worker_with_and_without(lines: list[bytes], workdir: Path) -> float:
    """One worker over the same events, without planning and with it, alternated twice."""
    config = FlowgaugeConfig()
    snapshots = len(run(lines, config.core(), config.grace_us)[0])
    rates: dict[bool, list[float]] = {False: [], True: []}
    for turn in range(2):
        for on in (False, True):
            folder = workdir / f"{'with' if on else 'without'}-{turn}"
            folder.mkdir(parents=True)
            with _planning(on):
                rate = worker_rate(lines, folder, 1, snapshots).rate
            rates[on].append(rate)
            print(f"one worker {'with' if on else 'without'} planning: {rate:,.0f} events/s")
    best_with, best_without = max(rates[True]), max(rates[False])
    print(
        f"one worker, best of two each: {best_without:,.0f} events/s without the forecast and"
        f" pull lists, {best_with:,.0f} with them ({best_with / best_without:.2f}x)"
    )
    return best_with / best_without


def bench_forecast(workdir: Path) -> list[Target]:
    lines = scenario_lines()
    print(f"{len(lines):,} events of understaffed, seed 1 (6 weeks)")
    in_process(lines, "1h")
    in_process(lines, "5m")
    ratio = worker_with_and_without(lines, workdir)
    return [Target("one worker with planning / without it", ratio, 2 / 3, "")]


def calibration(scenarios: tuple[str, ...], seeds: range) -> None:
    """How often the backlog was in band by the 85% date, on the alert-quality scenarios.

    A case is a forecast at noon (UTC, the scenarios' zone) of a scope above its band with
    an 85% date; its true date is the first later boundary whose ``open`` is at or under the
    band held at the forecast (``band_tickets``), as ``report`` counts it. A case whose
    85% date is past the end of the run and that was not in band by then is left out
    (censored), and so are forecasts of "not within the horizon", counted apart."""
    config = FlowgaugeConfig(step="1h")
    settings = config.core()
    covered = cases = censored = beyond = back = 0
    for name in scenarios:
        for seed in seeds:
            lines = [encode(event) for event in generate_events(named(name, seed))]
            emitted, _ = run(lines, settings, config.grace_us)
            levels: dict[str, list[tuple[int, int]]] = {}
            for item in emitted:
                levels.setdefault(item.flow.scope, []).append((item.flow.as_of_us, item.flow.open))
            end_us = max(item.flow.as_of_us for item in emitted)
            for item in emitted:
                made = item.forecast
                if made is None or not made.sufficient or made.target_status != "open":
                    continue
                if made.as_of_us % (24 * 3600 * 1_000_000) != 12 * 3600 * 1_000_000:
                    continue
                by = made.in_band_by[QUANTILES.index(0.85)]
                true = next(
                    (at for at, level in levels[made.scope] if at > made.as_of_us
                     and level <= made.band_tickets),
                    None,
                )  # fmt: skip
                if by is None:
                    beyond += 1
                    back += true is not None
                    continue
                deadline = day_end_seconds(by, made.timezone) * 1_000_000
                if true is None and deadline > end_us:
                    censored += 1
                    continue
                cases += 1
                covered += true is not None and true <= deadline
            print(f"  {name} seed {seed}: {cases} cases so far, {covered} in band by the 85% date")
    print(
        f"calibration: in band by the 85% date in {covered} of {cases} cases"
        f" ({covered / max(cases, 1):.0%}); {censored} censored (the run ended first);"
        f" {beyond} forecasts of not within the horizon, of which {back} were back in band"
        " before the run ended (the pace changed: a recovery the history did not hold)"
    )
