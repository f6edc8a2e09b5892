"""shared/fixtures: expected outputs computed independently from DESIGN.md, to the last digit."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_FIXTURES, need_path

EVENTS = SHARED_FIXTURES / "sample-events.jsonl"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    need_path(EVENTS, "the shared fixtures sit beside the checkout")
    out = tmp_path_factory.mktemp("report")
    rows, alerts = out / "rows.csv", out / "alerts.csv"
    # The expected alerts were made with the earlier headline rule's defaults: setting its
    # sustain and clear runs that rule, exactly.
    config = out / "earlier-rule.toml"
    config.write_text("[alerts.inflow_above_outflow]\nsustain = 3\nclear = 3\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.commands.cli",
            "report",
            str(EVENTS),
            "--step",
            "1h",
            "--output",
            str(rows),
            "--alerts",
            str(alerts),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "FLOWGAUGE_CONFIG": str(config)},
    )
    return rows, alerts, done.stderr


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("name", ["flow", "aging"])
def test_report_reproduces_expected_rows_for_scope_all(
    report: tuple[Path, Path, str], name: str
) -> None:
    expected = _read(SHARED_FIXTURES / f"sample-expected-{name}-1h.csv")
    got = [row for row in _read(report[0]) if row["scope"] == "all"]
    columns = list(expected[0])
    assert [{c: row[c] for c in columns} for row in got] == expected


def test_report_leads_with_the_contracted_columns(report: tuple[Path, Path, str]) -> None:
    header = report[0].read_text().splitlines()[0].split(",")
    assert header[:9] == [
        "as_of",
        "scope",
        "open",
        "inflow_1h",
        "outflow_1h",
        "inflow_24h",
        "outflow_24h",
        "inflow_7d",
        "outflow_7d",
    ]


def test_report_reproduces_expected_alert_transitions(report: tuple[Path, Path, str]) -> None:
    expected = _read(SHARED_FIXTURES / "sample-expected-alerts-1h.csv")
    rows = _read(report[1])
    got = [r for r in rows if r["scope"] == "all" and r["rule"] == "inflow_above_outflow"]
    assert got == expected


def test_report_names_every_invalid_line_on_stderr(report: tuple[Path, Path, str]) -> None:
    skipped = [line for line in report[2].splitlines() if ": skipped: " in line]
    numbers = [int(line.split(":")[1]) for line in skipped]
    assert numbers == [55, 56, 57, 58, 959, 960, 961, 962]
    assert "91 duplicates" in report[2]


def test_report_rows_are_ordered_by_as_of_then_scope_with_all_first(
    report: tuple[Path, Path, str],
) -> None:
    rows = _read(report[0])
    keys = [(row["as_of"], row["scope"] != "all", row["scope"]) for row in rows]
    assert keys == sorted(keys)
    assert {row["scope"].split(":")[0] for row in rows} == {"all", "queue", "priority", "channel"}


def test_report_of_an_unreadable_file_exits_non_zero(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams.commands.cli", "report", str(tmp_path / "missing.jsonl")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "cannot read" in done.stderr
