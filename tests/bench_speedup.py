"""``flowgauge report`` against a baseline commit, in one run: events/s and their ratio, and
whether every CSV it writes is byte-identical.

The baseline is checked out beside this checkout (a clone at ``BASELINE``, a commit or
tag). Each run is one ``flowgauge report`` process writing every CSV (main, alerts, SLA
events, indicators, forecast, pull) of one input at one step, the baseline's and this
checkout's in turn, ``ROUNDS`` times; the faster of each side's rounds is kept (this
machine is shared: the slower round is the noisier). Inputs: the default simulated team
over ``days`` and a team ten times as busy over a tenth of them.

python -m tests.bench --only speedup    # BASELINE=<commit> in the environment
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streams.commands.simulate import Scenario, encode, generate_events
from tests.bench_support import Target, busy_team

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 2
STEPS = ("5m", "1h")
OUTPUTS = ("output", "alerts", "sla-events", "indicators", "forecast", "pull")


def checkout(baseline: str, workdir: Path) -> Path:
    """The baseline commit checked out beside this one."""
    where = workdir / "baseline"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(where)], check=True)
    subprocess.run(["git", "-C", str(where), "checkout", "--quiet", baseline], check=True)
    return where


def report_seconds(root: Path, events: Path, step: str, out: Path) -> float:
    """One ``flowgauge report`` of the code at ``root``, every CSV to ``out``: its wall time."""
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "streams.commands.cli", "report", str(events), "--step", step]
    for name in OUTPUTS:
        command += [f"--{name}", str(out / f"{name}.csv")]
    env = {**os.environ, "PYTHONPATH": str(root)}
    started = time.perf_counter()
    subprocess.run(command, cwd=root, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def differing(first: Path, second: Path) -> list[str]:
    """The CSVs that differ between two runs' outputs."""
    return [
        name
        for name in OUTPUTS
        if not filecmp.cmp(first / f"{name}.csv", second / f"{name}.csv", shallow=False)
    ]


def bench_speedup(days: float) -> list[Target]:
    baseline = os.environ.get("BASELINE")
    if not baseline:
        print("set BASELINE=<commit> to compare report against it")
        return []
    workdir = Path(tempfile.mkdtemp(prefix="flowgauge-bench-speedup-"))
    sides = ((f"baseline {baseline}", checkout(baseline, workdir)), ("this checkout", ROOT))
    inputs = {
        f"default team, {days:g} days": Scenario(days=days),
        f"busy team, {days / 10:g} days": busy_team(days / 10),
    }
    targets = []
    for number, (label, scenario) in enumerate(inputs.items()):
        lines = [encode(event) + b"\n" for event in generate_events(scenario)]
        events, count = workdir / f"input-{number}.jsonl", len(lines)
        events.write_bytes(b"".join(lines))
        for step in STEPS:
            outs = [workdir / f"input-{number}" / step / str(side) for side in range(2)]
            best = [float("inf")] * 2
            for round_ in range(1, ROUNDS + 1):
                for side, (name, root) in enumerate(sides):
                    seconds = report_seconds(root, events, step, outs[side])
                    best[side] = min(best[side], seconds)
                    print(f"  {label}, step {step}, {name}, round {round_}: {seconds:.1f}s")
            before, after = (count / seconds for seconds in best)
            differ = differing(*outs)
            verdict = f"differ: {', '.join(differ)}" if differ else "byte-identical"
            print(
                f"{label}, step {step}: {count:,} events; {before:,.0f} -> {after:,.0f}"
                f" events/s = {after / before:.2f}x; CSVs {verdict}"
            )
            wanted = 3.0 if step == "1h" else 4.0
            name = f"report, {label}, step {step}: speed-up"
            targets.append(Target(name, after / before, wanted, "x"))
    return targets
