"""Named scenarios of the simulator and their ground truth: the truth is what the flow does."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from streams.commands.cli import main
from streams.commands.scenarios import RATE, SCENARIOS, named, truth
from streams.commands.simulate import (
    Effect,
    Scenario,
    TeamModel,
    encode,
    generate_events,
)
from streams.outputs.truth import Interval, Truth
from tests.conftest import ROOT

Event = dict[str, Any]
START = datetime(2026, 3, 2, tzinfo=UTC)
QUEUES = ("billing", "tech", "accounts", "sales")
SCOPES = ("all", *(f"queue:{queue}" for queue in QUEUES))
# sha256 of `flowgauge simulate --days 3 --seed 11 --flat-out --output F` (4,321 events),
# taken before scenarios existed: a run without --scenario must never change.
LEGACY_3_DAYS_SEED_11 = "88ed0a938e4837ad2c990d38e72d8345261b1d4087d0768bb8db8465d5068a31"
LEGACY_7_DAYS_SEED_1 = "9e738b60cd80857ed81c1d80ac13b1ac8aecf58f38bd92064932d6e67a811417"


def _day(day: float) -> str:
    return (START + timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(start: float, end: float) -> Interval:
    return Interval(start=_day(start), end=_day(end))


def _digest(lines: list[bytes]) -> str:
    return hashlib.sha256(b"".join(line + b"\n" for line in lines)).hexdigest()


class Backlog:
    """Open tickets per scope at each midnight of the run, counted from the events: created
    and reopened add one to the ticket's queue, resolved takes one off, a transfer moves it."""

    def __init__(self, events: list[Event]) -> None:
        self.at_day: list[Counter[str]] = [Counter()]
        self.created: list[Counter[str]] = [Counter()]
        open_now: Counter[str] = Counter()
        created: Counter[str] = Counter()
        queue_of: dict[str, str] = {}
        is_open: dict[str, bool] = {}
        for event in events:
            moment = datetime.fromisoformat(event["occurred_at"])
            while moment >= START + timedelta(days=len(self.at_day)):
                self.at_day.append(Counter(open_now))
                self.created.append(Counter(created))
            ticket, kind = event["ticket_id"], event["type"]
            queue = queue_of.get(ticket, "")
            if kind == "created":
                queue_of[ticket], is_open[ticket] = event["queue"], True
                open_now.update(("all", event["queue"]))
                created.update(("all", event["queue"]))
            elif kind == "transferred":
                queue_of[ticket] = event["queue"]
                if is_open[ticket]:
                    open_now[queue] -= 1
                    open_now[event["queue"]] += 1
            elif kind == "resolved" and is_open[ticket]:
                is_open[ticket] = False
                open_now.subtract(("all", queue))
            elif kind == "reopened" and not is_open[ticket]:
                is_open[ticket] = True
                open_now.update(("all", queue))
        self.at_day.append(Counter(open_now))
        self.created.append(Counter(created))

    def net(self, scope: str, start: int, end: int) -> int:
        """Net inflow (created + reopened + transferred in - resolved - out), days start..end."""
        return self.at_day[end][scope] - self.at_day[start][scope]

    def arrived(self, scope: str, start: int, end: int) -> int:
        return self.created[end][scope] - self.created[start][scope]


@pytest.fixture(scope="module")
def steady() -> Backlog:
    return Backlog(list(generate_events(named("steady", seed=1))))


@pytest.fixture(scope="module")
def surge() -> list[Event]:
    return list(generate_events(named("surge", seed=1)))


@pytest.fixture(scope="module")
def understaffed() -> Backlog:
    return Backlog(list(generate_events(named("understaffed", seed=1))))


# Legacy output


def test_simulate_without_a_scenario_is_byte_for_byte_what_it_was(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    args = ["simulate", "--days", "3", "--seed", "11", "--flat-out", "--output", str(events)]
    assert main(args) == 0
    assert hashlib.sha256(events.read_bytes()).hexdigest() == LEGACY_3_DAYS_SEED_11
    assert [path.name for path in tmp_path.iterdir()] == ["events.jsonl"]  # no truth
    week = [encode(event) for event in generate_events(Scenario(days=7, seed=1))]
    assert _digest(week) == LEGACY_7_DAYS_SEED_1


# Truth


def test_surge_truth_is_exactly_days_8_to_11_everywhere() -> None:
    found = truth("surge", named("surge", seed=1))
    assert (found.scenario, found.seed, found.imbalance) == ("surge", 1, 0.1)
    assert (found.start, found.end) == ("2026-03-02T00:00:00Z", "2026-03-23T00:00:00Z")
    assert tuple(found.scopes) == SCOPES
    for scope in SCOPES:
        assert found.scopes[scope] == [_span(8, 11)], scope


def test_steady_has_no_truth() -> None:
    found = truth("steady", named("steady", seed=1))
    assert found.end == "2026-04-27T00:00:00Z"
    assert found.scopes == {scope: [] for scope in SCOPES}
    assert set(found.rules) == {"driver_spike", "reopen_rate_high"}
    for rule in found.rules.values():
        assert rule.scopes == {scope: [] for scope in SCOPES}  # every firing a false alarm


def test_an_outage_is_a_driver_spike_where_outages_are_rare() -> None:
    """The surge's extra tickets are tagged outage: three times their usual share and more in
    billing, accounts and sales (which have none) and in all, not in tech (a fifth outages)."""
    found = truth("surge", named("surge", seed=1))
    spikes = found.rules["driver_spike"]
    assert "3 times" in spikes.means
    assert spikes.scopes == {
        scope: [] if scope == "queue:tech" else [_span(8, 11)] for scope in SCOPES
    }
    assert found.rules["reopen_rate_high"].scopes == {scope: [] for scope in SCOPES}


def test_the_outage_share_the_truth_computes_is_the_flow_s(surge: list[Event]) -> None:
    """Counted from the events: the outage share of new tickets in the surge's days against
    the week before, over 3 in all and billing, under 3 in tech."""

    def outage_share(queue: str | None, first: int, last: int) -> float:
        created = [
            event
            for event in surge
            if event["type"] == "created"
            and (queue is None or event["queue"] == queue)
            and _day(first) <= event["occurred_at"] < _day(last)
        ]
        return sum("outage" in event["tags"] for event in created) / len(created)

    for queue, spike in ((None, True), ("billing", True), ("tech", False)):
        ratio = outage_share(queue, 8, 11) / max(outage_share(queue, 1, 8), 1e-9)
        assert (ratio >= 3) is spike, (queue, ratio)


@pytest.fixture(scope="module")
def bad_release() -> list[Event]:
    return list(generate_events(named("bad-release", seed=1)))


def test_a_bad_release_is_reopens_and_more_work_in_tech_alone() -> None:
    found = truth("bad-release", named("bad-release", seed=1))
    tech = {scope: [_span(15, 29)] if scope == "queue:tech" else [] for scope in SCOPES}
    assert found.rules["reopen_rate_high"].scopes == tech
    # Each reopen is work tech's capacity was not sized for: tech's work rises by more than
    # 10%, the team's by about 7% (tech does about a third of it), so all is not in imbalance.
    assert found.scopes == tech
    assert found.rules["driver_spike"].scopes == {scope: [] for scope in SCOPES}


def test_the_reopen_share_the_truth_computes_is_the_flow_s(bad_release: list[Event]) -> None:
    """Counted from the events: reopens per resolution in tech triple during the release's
    two weeks (days 16-28, their reopens in), and billing's do not move."""
    queue_of: dict[str, str] = {}
    counts: Counter[tuple[str, bool, str]] = Counter()
    for event in bad_release:
        queue_of[event["ticket_id"]] = event.get("queue") or queue_of[event["ticket_id"]]
        during = _day(16) <= event["occurred_at"] < _day(28)
        before = _day(1) <= event["occurred_at"] < _day(14)
        if event["type"] in ("resolved", "reopened") and (during or before):
            counts[(queue_of[event["ticket_id"]], during, event["type"])] += 1

    def rate(queue: str, during: bool) -> float:
        return counts[(queue, during, "reopened")] / counts[(queue, during, "resolved")]

    assert rate("tech", False) < 0.11
    assert rate("billing", False) < 0.11
    assert rate("tech", True) > 0.2
    assert rate("billing", True) < 0.11


def test_understaffed_truth_is_the_reduced_capacity_not_the_recovery() -> None:
    found = truth("understaffed", named("understaffed", seed=1))
    assert found.scopes == {scope: [_span(8, 22)] for scope in SCOPES}
    recovery = SCENARIOS["understaffed"].capacity_effects[1]
    assert (recovery.start, recovery.end, recovery.factor) == (22.0, 39.5, 1.2)


def test_slow_drift_crosses_ten_percent_in_its_sixth_week_and_stays() -> None:
    found = truth("slow-drift", named("slow-drift", seed=1))
    (crossing,) = found.scopes["all"]
    # 1.04 x 1.01 ** (h / 168) >= 1.10 from hour h = 947.007: the first whole hour is 948.
    first = math.ceil(168 * math.log(1.10 / 1.04) / math.log(1.01))
    assert first == 948
    assert crossing == Interval(start=_day(first / 24), end=_day(56))
    for scope in SCOPES:
        assert [interval.end for interval in found.scopes[scope]] == [_day(56)], scope
    flat = replace(named("slow-drift"), arrivals_per_day=RATE)
    assert truth("slow-drift", flat).scopes["all"] == []  # 1.01 ** 8 = 1.083


def test_mixed_runs_the_episodes_in_turn_and_one_queue_alone() -> None:
    found = truth("mixed", named("mixed", seed=1))
    episodes = [_span(8, 11), _span(22, 29)]
    assert found.scopes["all"] == [*episodes, _span(43, 46)]
    assert found.scopes["queue:billing"] == [*episodes, _span(43, 46)]
    for queue in ("tech", "accounts", "sales"):
        assert found.scopes[f"queue:{queue}"] == episodes


def test_truth_follows_the_threshold_and_the_days_given() -> None:
    short = truth("surge", named("surge", days=9.5), imbalance=0.10)
    assert short.scopes["all"] == [_span(8, 9.5)]
    assert truth("surge", named("surge"), imbalance=0.70).scopes["all"] == []
    with pytest.raises(ValueError, match="per_queue_capacity"):
        truth("legacy", Scenario(days=3))


def test_arrivals_equal_capacity_unless_a_scenario_changes_them() -> None:
    model = TeamModel(named("steady"))
    assert sum(model.arrivals(3.0)) == pytest.approx(RATE)
    assert sum(model.work(3.0)) == pytest.approx(sum(model.capacity(3.0)))
    assert model.work_per_ticket == pytest.approx(0.94, abs=0.01)
    for work, capacity in zip(model.work(3.0), model.capacity(3.0), strict=True):
        assert work == pytest.approx(capacity)  # in every queue, transfers included
    # The default capacity shares are the arrival shares: transfers leave sales short.
    plain = TeamModel(replace(named("steady"), capacity_shares=()))
    sales = plain.work(3.0)[3] / plain.capacity(3.0)[3]
    assert 1.01 < sales < 1.04


# Realised flow agrees with the truth


def test_steady_backlog_ends_where_it_started(steady: Backlog) -> None:
    # Mondays 00:00 a week in and at the end: the same point of the weekly rhythm.
    for scope in ("all", *QUEUES):
        arrived = steady.arrived(scope, 7, 56)
        tolerance = 0.05 if scope == "all" else 0.10
        assert abs(steady.net(scope, 7, 56)) < tolerance * arrived, scope


def test_surge_backlog_grows_in_every_queue(surge: list[Event]) -> None:
    backlog = Backlog(surge)
    # Days 8 to 15: the surge and the rest of its week (Tuesday to Tuesday).
    assert backlog.net("all", 8, 15) > 0.15 * backlog.arrived("all", 8, 15)
    for queue in QUEUES:
        assert backlog.net(queue, 8, 15) > 0.05 * backlog.arrived(queue, 8, 15), queue


def test_understaffed_backlog_grows_in_every_queue_then_drains(understaffed: Backlog) -> None:
    for scope in ("all", *QUEUES):
        assert understaffed.net(scope, 8, 22) > 0.1 * understaffed.arrived(scope, 8, 22), scope
        # Two weeks of the recovery (Tuesday to Tuesday) take back most of it.
        assert understaffed.net(scope, 22, 36) < -0.5 * understaffed.net(scope, 8, 22), scope


def test_surge_tickets_are_tagged_outage(surge: list[Event]) -> None:
    outage = Counter(
        datetime.fromisoformat(event["occurred_at"]).date()
        for event in surge
        if event["type"] == "created" and event["tags"] == ["outage"]
    )
    during = [outage[(START + timedelta(days=day)).date()] for day in (8, 9, 10)]
    before = [outage[(START + timedelta(days=day)).date()] for day in (1, 2, 3)]
    assert min(during) > 2 * max(before)


def test_seed_matters_and_repeats() -> None:
    def lines(seed: int) -> list[bytes]:
        return [encode(e) for e in generate_events(named("surge", seed=seed, days=2))]

    assert lines(1) == lines(1)
    assert lines(1) != lines(2)


# The truth file and the command


def test_truth_defaults_next_to_the_output_and_validates(tmp_path: Path) -> None:
    events = tmp_path / "surge.jsonl"
    args = ["simulate", "--scenario", "surge", "--days", "12", "--seed", "2", "--flat-out"]
    assert main([*args, "--output", str(events)]) == 0
    written = tmp_path / "surge.jsonl.truth.json"
    document = json.loads(written.read_text())
    schema = json.loads((ROOT / "schemas" / "truth.schema.json").read_text())
    jsonschema.validate(document, schema)
    assert Truth.model_validate(document) == truth("surge", named("surge", seed=2, days=12))
    assert document["scopes"]["all"] == [
        {"start": "2026-03-10T00:00:00Z", "end": "2026-03-13T00:00:00Z"}
    ]
    assert document["end"] == "2026-03-14T00:00:00Z"
    lines = events.read_bytes().splitlines()
    assert lines == [encode(e) for e in generate_events(named("surge", seed=2, days=12))]
    del document["scopes"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_truth_path_and_imbalance_given(tmp_path: Path) -> None:
    given = tmp_path / "given.json"
    args = ["simulate", "--scenario", "understaffed", "--days", "1", "--flat-out"]
    args += ["--output", str(tmp_path / "e.jsonl"), "--truth", str(given), "--imbalance", "0.5"]
    assert main(args) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["e.jsonl", "given.json"]
    assert json.loads(given.read_text())["imbalance"] == 0.5


def test_a_scenario_published_to_the_broker_writes_its_truth_where_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streams.commands.replay

    received: list[bytes] = []

    async def fake_publish(config: object, values: AsyncIterator[bytes]) -> int:
        received.extend([value async for value in values])
        return len(received)

    monkeypatch.setattr(streams.commands.replay, "publish", fake_publish)
    given = tmp_path / "truth.json"
    args = ["simulate", "--scenario", "surge", "--days", "1", "--seed", "4", "--flat-out"]
    assert main([*args, "--truth", str(given)]) == 0
    assert received == [encode(e) for e in generate_events(named("surge", seed=4, days=1))]
    assert Truth.model_validate_json(given.read_text()).end == "2026-03-03T00:00:00Z"


def test_a_scenario_without_output_needs_a_truth_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--scenario", "steady", "--flat-out"]) == 2
    assert "--truth" in capsys.readouterr().err
    assert main(["simulate", "--truth", str(tmp_path / "t.json"), "--flat-out"]) == 2
    assert "--scenario" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_scenario_rejects_a_team_it_cannot_model() -> None:
    with pytest.raises(ValueError, match="per_queue_capacity"):
        Scenario(arrival_effects=(Effect(1, 2, 1.5),))
    with pytest.raises(ValueError, match="unknown queues"):
        Scenario(per_queue_capacity=True, capacity_effects=(Effect(1, 2, 0.5, ("nope",)),))
    with pytest.raises(ValueError, match="capacity_shares"):
        Scenario(per_queue_capacity=True, capacity_shares=(("billing", 1.0),))
    with pytest.raises(ValueError, match="start < end"):
        Effect(3, 2, 1.5)
    with pytest.raises(ValueError, match="no scenario"):
        named("calm")
    with pytest.raises(ValueError, match="reopen more than every resolution"):
        Scenario(per_queue_capacity=True, reopen_effects=(Effect(1, 2, 20.0),))
    with pytest.raises(ValueError, match="only arrival effects tag"):
        Scenario(per_queue_capacity=True, reopen_effects=(Effect(1, 2, 2.0, tag="bug"),))
    with pytest.raises(ValueError, match="per_queue_capacity"):
        Scenario(reopen_effects=(Effect(1, 2, 2.0),))
