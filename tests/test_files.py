"""What the commands write: never over their input or twice into one file, whole or not at
all, and mistakes said in one line before any work."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.commands.cli import main

STEP = ["--step", "1h"]


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    assert main(["simulate", "--days", "14", "--flat-out", "--output", str(path)]) == 0
    return path


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one line a refused command says, after it exits 2."""
    assert main(list(argv)) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(
    events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim.jsonl"
    victim.write_bytes(events.read_bytes())
    (tmp_path / "sub").mkdir()
    spelled = tmp_path / "sub" / ".." / victim.name  # another name of the same file
    for flag in ("--output", "--alerts", "--html"):
        said = refused(capsys, "report", str(victim), flag, str(spelled))
        assert said == f"flowgauge report: {spelled} is also an input: writing it would destroy it"
        assert victim.read_bytes() == events.read_bytes()
    said = refused(
        capsys, "convert", "jira", str(victim), "--account", "a", "--output", str(victim)
    )
    assert "is also an input" in said
    assert victim.read_bytes() == events.read_bytes()


def test_two_outputs_into_one_file_are_refused_before_any_work(
    events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same = tmp_path / "same.csv"
    said = refused(capsys, "report", str(events), "--output", str(same), "--alerts", str(same))
    assert said.endswith("are the same file")
    assert not same.exists()
    truth = tmp_path / "run.jsonl"
    said = refused(
        capsys, "simulate", "--scenario", "surge", "--output", str(truth), "--truth", str(truth)
    )
    assert said.endswith("are the same file")
    assert not truth.exists()


def test_an_output_nowhere_or_a_directory_is_refused_before_any_work(
    events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = tmp_path / "made.csv"
    missing = tmp_path / "nowhere" / "alerts.csv"
    said = refused(capsys, "report", str(events), "--output", str(made), "--alerts", str(missing))
    assert said == f"flowgauge report: cannot write {missing}: no directory {missing.parent}"
    assert not made.exists()
    said = refused(capsys, "simulate", "--days", "1", "--flat-out", "--output", str(tmp_path))
    assert said == f"flowgauge simulate: {tmp_path} is a directory"


def test_devices_take_any_number_of_outputs(
    events: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(events), *STEP, "--output", os.devnull, "--alerts", os.devnull]) == 0
    assert Path(os.devnull).is_char_device()  # written to, not replaced by a file
    assert "0 invalid" in capsys.readouterr().err


def test_outputs_get_the_permissions_of_a_file_written_in_place(
    events: Path, tmp_path: Path
) -> None:
    kept, new = tmp_path / "kept.csv", tmp_path / "new.csv"
    kept.write_text("before\n")
    kept.chmod(0o640)
    umask = os.umask(0o022)
    try:
        assert (
            main(["report", str(events), *STEP, "--output", str(kept), "--alerts", str(new)]) == 0
        )
    finally:
        os.umask(umask)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    assert stat.S_IMODE(new.stat().st_mode) == 0o644
    assert kept.read_text().startswith("as_of,scope,open,")
    assert new.read_text().startswith("at,rule,scope,state\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept.csv", "new.csv"]


def test_a_run_stopped_halfway_leaves_the_files_it_would_have_replaced(
    events: Path, tmp_path: Path
) -> None:
    rows, alerts = tmp_path / "rows.csv", tmp_path / "alerts.csv"
    rows.write_text("the last complete run\n")
    command = [
        sys.executable, "-m", "streams.commands.cli", "report", str(events), "--step", "5m",
        "--output", str(rows), "--alerts", str(alerts),
    ]  # fmt: skip
    report = subprocess.Popen(command, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    # Stopped once it writes: both outputs open under their temporary names, rows in them.
    while not any(p.name.startswith(".rows.csv.") and p.stat().st_size for p in tmp_path.iterdir()):
        assert report.poll() is None, report.stderr.read() if report.stderr else ""
        assert time.monotonic() < deadline, "the report never started writing"
        time.sleep(0.05)
    report.send_signal(signal.SIGINT)
    _, err = report.communicate(timeout=30)
    assert report.returncode == 130, err
    assert b"Traceback" not in err
    assert rows.read_text() == "the last complete run\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["rows.csv"]


@pytest.mark.parametrize(
    ("environment", "said"),
    [
        ({"FLOWGAUGE_STEP": "7m"}, "window 1h is not a multiple of the step (420s)"),
        ({"FLOWGAUGE_STEP": "0"}, "step: not a positive duration like 5m, 24h or 7d: '0'"),
        ({"FLOWGAUGE_CONFIG": "nowhere.toml"}, "FLOWGAUGE_CONFIG points at no file: nowhere.toml"),
        # A file that is there but cannot be read (as a mounted 0600 file of another user).
        (
            {"FLOWGAUGE_CONFIG": "/proc/self/mem"},
            "FLOWGAUGE_CONFIG /proc/self/mem cannot be read: Input/output error",
        ),
    ],
)
def test_settings_that_cannot_run_are_said_in_one_line(
    events: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    said: str,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    output = tmp_path / "rows.csv"
    assert (
        refused(capsys, "report", str(events), "--output", str(output))
        == f"flowgauge report: {said}"
    )
    assert not output.exists()


def test_a_settings_file_that_is_no_toml_is_named_with_its_reason(
    events: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = tmp_path / "flowgauge.toml"
    broken.write_text("[alerts\n")
    monkeypatch.setenv("FLOWGAUGE_CONFIG", str(broken))
    said = refused(capsys, "report", str(events))
    assert said.startswith(f"flowgauge report: FLOWGAUGE_CONFIG {broken} is no TOML file: ")
    assert "(at line 1, column 8)" in said


def test_a_file_without_a_single_event_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "rows.csv"
    garbage.write_text("as_of,scope,open\n2026-03-02T00:05:00Z,all,3\n")
    assert main(["report", str(garbage), "--output", os.devnull]) == 1
    err = capsys.readouterr().err
    assert "0 events, 2 invalid" in err
    assert err.endswith(f"flowgauge report: no line of {garbage} is an event\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["report", str(empty), "--output", os.devnull]) == 0  # nothing yet is no error
