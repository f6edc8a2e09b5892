"""``flowgauge convert``: saved payloads and history exports to our events, sorted by time,
with what it skipped on standard error and its exit status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from streams.commands.cli import main
from streams.core.events import parse_event

GITHUB = Path(__file__).parent / "fixtures" / "connectors" / "github"


def run(
    capsysbinary: pytest.CaptureFixture[bytes], *argv: str
) -> tuple[int, list[dict[str, object]], str]:
    status = main(["convert", *argv])
    captured = capsysbinary.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    for line in captured.out.splitlines():
        parse_event(line)  # every line is a valid event of the contract
    return status, events, captured.err.decode()


def test_saved_bodies_become_one_sorted_stream(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    files = [
        GITHUB / name
        for name in (
            "issues.reopened.json",
            "issue_comment.created.json",
            "issues.opened.json",
            "issues.pinned.json",
        )
    ]
    status, events, err = run(capsysbinary, "github", *map(str, files), "--account", "acme")
    assert status == 0
    assert [(e["type"], e["occurred_at"]) for e in events] == [
        ("created", "2019-05-15T15:20:18Z"),
        ("agent_replied", "2019-05-15T15:20:21Z"),
        ("reopened", "2021-10-11T16:40:56Z"),
    ]
    assert "3 events, 0 skipped, 1 ignored" in err


def test_skipped_items_are_listed_with_file_and_position(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    lines = tmp_path / "saved.jsonl"
    opened = json.loads((GITHUB / "issues.opened.json").read_text())
    broken = {**opened, "issue": {**opened["issue"], "created_at": "yesterday"}}
    lines.write_text("\n".join([json.dumps(opened), json.dumps(broken), "{not json"]) + "\n")
    status, events, err = run(capsysbinary, "github", str(lines), "--account", "acme")
    assert status == 1
    assert len(events) == 1
    assert f"{lines}:line 2[0]: timestamp is not ISO 8601: 'yesterday': skipped" in err
    assert f"{lines}:line 3: not JSON" in err


def test_unreadable_input_is_status_2(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    garbage = tmp_path / "export.csv"
    garbage.write_text("id,status\n1,open\n")
    status, events, err = run(capsysbinary, "github", str(garbage), "--account", "acme")
    assert (status, events) == (2, [])
    assert "neither JSON nor JSONL" in err
    status, _, err = run(
        capsysbinary, "github", str(tmp_path / "missing.json"), "--account", "acme"
    )
    assert status == 2
    assert "cannot be read" in err


def test_the_event_header_can_be_given(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """A body saved without its X-GitHub-Event header: the event given names it."""
    saved = tmp_path / "delivery.json"
    shutil.copy(GITHUB / "issue_comment.created.json", saved)
    _, inferred, _ = run(capsysbinary, "github", str(saved), "--account", "acme")
    _, named, _ = run(
        capsysbinary, "github", str(saved), "--account", "acme", "--event", "issue_comment"
    )
    assert inferred == named
    assert named[0]["event_id"] == "comment:492700400"
    _, other, err = run(capsysbinary, "github", str(saved), "--account", "acme", "--event", "star")
    assert other == []
    assert "1 ignored" in err


def test_a_configured_source_names_the_ids(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tmp_path / "flowgauge.toml"
    settings.write_text(
        '[[gateway.sources]]\nname = "gh"\nkind = "github"\naccount = "octo"\nsecret = "x"\n'
    )
    monkeypatch.setenv("FLOWGAUGE_CONFIG", str(settings))
    _, events, _ = run(capsysbinary, "github", str(GITHUB / "issues.opened.json"), "--source", "gh")
    assert events[0]["ticket_id"] == "github:octo:Codertocat/Hello-World:1"
    status, _, err = run(capsysbinary, "jira", str(GITHUB / "issues.opened.json"), "--source", "gh")
    assert status == 2
    assert "no jira source 'gh'" in err


def test_converted_history_feeds_report(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    converted = tmp_path / "events.jsonl"
    files = [str(GITHUB / name) for name in ("issues.opened.json", "issue_comment.created.json")]
    assert main(["convert", "github", *files, "--account", "acme", "--output", str(converted)]) == 0
    capsysbinary.readouterr()
    rows = tmp_path / "flow.csv"
    assert main(["report", str(converted), "--output", str(rows)]) == 0
    header, *body = rows.read_text().splitlines()
    columns = header.split(",")
    last_all = [
        dict(zip(columns, row.split(","), strict=False)) for row in body if ",all," in f",{row},"
    ][-1]
    assert last_all["open"] == "1"


def test_a_per_issue_timeline_needs_its_issue_named(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    timeline = str(GITHUB / "history.timeline.json")  # locked, labeled "beta", renamed, commented
    status, events, err = run(capsysbinary, "github", timeline, "--account", "acme")
    assert status == 1  # the comment names its issue; the other items do not
    assert [e["event_id"] for e in events] == ["comment:1130876857"]
    assert events[0]["ticket_id"] == "github:acme:github/roadmap:493"
    assert err.count("give the issue of a per-issue history") == 3
    status, events, err = run(
        capsysbinary, "github", timeline, "--account", "acme", "--ticket", "github/roadmap#493"
    )
    assert status == 0
    assert [e["event_id"] for e in events] == ["comment:1130876857"]
    assert "1 events, 0 skipped, 3 ignored" in err


def test_generic_needs_its_configured_mapping(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    status, _, err = run(
        capsysbinary, "generic", str(GITHUB / "issues.opened.json"), "--account", "x"
    )
    assert status == 2
    assert "name its [[gateway.sources]] with --source" in err


def test_pull_requests_in_rest_lists_are_not_tickets(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    opened = json.loads((GITHUB / "issues.opened.json").read_text())["issue"]
    rest = {**opened, "repository_url": "https://api.github.com/repos/Codertocat/Hello-World"}
    pull = {
        **rest,
        "number": 2,
        "pull_request": {"url": "https://api.github.com/repos/x/y/pulls/2"},
    }
    listed = tmp_path / "issues.json"
    listed.write_text(json.dumps([rest, pull]))
    status, events, err = run(capsysbinary, "github", str(listed), "--account", "acme")
    assert status == 0
    assert [e["ticket_id"] for e in events] == ["github:acme:Codertocat/Hello-World:1"]
    assert "1 ignored" in err
