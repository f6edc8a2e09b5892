"""``flowgauge report`` over 1,000,000 events: events/s and peak memory.

The events are the first million of a simulated team ten times the default one (2,100
tickets a day, about 77 days; 13 scopes), written to a JSONL file first; generating them
is timed apart. Then the real command, ``python -m streams.commands.cli report FILE --output CSV``
(step 5 min), runs in a child process: its wall time (interpreter start, reading the
file, the core, writing the CSV) and its peak RSS (VmHWM).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from streams.commands.simulate import encode, generate_events
from tests.bench_support import busy_team

EVENTS = 1_000_000


@dataclass(frozen=True)
class ReportRun:
    events: int
    generate_seconds: float
    report_seconds: float
    peak_rss_mib: float
    rows: int
    command: str

    @property
    def events_per_second(self) -> float:
        return self.events / self.report_seconds


def bench_million(events: int = EVENTS) -> ReportRun:
    workdir = Path(tempfile.mkdtemp(prefix="flowgauge-report-"))
    source, output = workdir / "events.jsonl", workdir / "report.csv"
    started = time.perf_counter()
    write_events(source, events)
    generated = time.perf_counter() - started
    command = [
        sys.executable,
        "-m",
        "streams.commands.cli",
        "report",
        str(source),
        "--output",
        str(output),
    ]
    elapsed, peak_kib = run_measured(command, workdir / "report.stderr")
    with output.open("rb") as rows:
        count = sum(1 for _ in rows) - 1  # the header
    source.unlink()
    output.unlink()
    return ReportRun(events, generated, elapsed, peak_kib / 1024, count, " ".join(command[1:]))


def write_events(path: Path, count: int) -> None:
    with path.open("wb") as sink:
        for event in itertools.islice(generate_events(busy_team()), count):
            sink.write(encode(event) + b"\n")


def run_measured(command: list[str], stderr: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a child process, which must succeed.

    The peak is the child's own VmHWM, sampled every 50 ms until it exits: the kernel's
    ru_maxrss of a child starts from its parent's RSS at fork, which here can be gigabytes.
    """
    with stderr.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        peak = 0
        while process.poll() is None:
            peak = max(peak, _high_water_kib(process.pid))
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{command[3]} failed ({process.returncode}); see {stderr}")
    return elapsed, peak


def _high_water_kib(pid: int) -> int:
    """Peak resident memory of a live process so far (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
