"""Alert rules scored against ground truth: the scoring functions, and ``flowgauge evaluate``
end to end, on exactly the transitions ``flowgauge report --alerts`` writes."""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.commands.cli import main
from streams.commands.evaluate import RULES, TruthError, parse_truth
from streams.core.alerts import INFLOW_ABOVE_OUTFLOW, AlertState, AlertTransition
from streams.core.scoring import (
    US_PER_HOUR,
    US_PER_WEEK,
    Interval,
    RuleScore,
    ScoringPolicy,
    check_intervals,
    episodes_of,
    score,
)
from streams.core.timeline import iso, to_us
from streams.outputs.truth import EXAMPLE

H = US_PER_HOUR
START = to_us(datetime.fromisoformat("2026-03-02T00:00:00Z"))
END = START + 2 * US_PER_WEEK


def alerts(
    *moments: float, rule: str = INFLOW_ABOVE_OUTFLOW, scope: str = "all"
) -> list[AlertTransition]:
    """Transitions at ``moments`` (hours after START), firing and resolved in turn."""
    made: list[AlertTransition] = []
    fired = 0
    for n, hours in enumerate(moments):
        at = START + round(hours * H)
        state = AlertState.FIRING if n % 2 == 0 else AlertState.RESOLVED
        fired = at if state is AlertState.FIRING else fired
        made.append(AlertTransition(rule, scope, state, at, 0.0, 0.0, fired))
    return made


def hours(start: float, end: float) -> Interval:
    return Interval(START + round(start * H), START + round(end * H))


def only_interval(result: RuleScore) -> Any:
    assert result.intervals is not None
    assert len(result.intervals) == 1
    return result.intervals[0]


# -- scoring, by hand ------------------------------------------------------------------


def test_an_alert_exactly_over_the_interval_detects_it_at_once() -> None:
    result = score(alerts(48, 72), START, END, [hours(48, 72)])
    interval = only_interval(result)
    assert interval.detected
    assert (interval.fire_delay_us, interval.resolve_delay_us) == (0, 0)
    assert interval.covered_share == 1.0
    assert (result.detected, result.false_alarms, result.firings, result.flaps) == (1, 0, 1, 0)


def test_late_firing_and_late_resolution_are_positive_delays() -> None:
    interval = only_interval(score(alerts(53, 80), START, END, [hours(48, 72)]))
    assert interval.fire_delay_us == 5 * H
    assert interval.resolve_delay_us == 8 * H
    assert interval.covered_share == pytest.approx(19 / 24)


def test_already_firing_is_a_negative_delay_and_its_firing_a_false_alarm() -> None:
    """Not delay 0: the alert fired 30 h before anything was true."""
    result = score(alerts(18, 75), START, END, [hours(48, 72)])
    interval = only_interval(result)
    assert interval.fire_delay_us == -30 * H
    assert interval.covered_share == 1.0
    assert result.false_alarms == 1


def test_a_firing_inside_an_earlier_interval_is_no_false_alarm() -> None:
    result = score(alerts(10, 60), START, END, [hours(5, 20), hours(30, 50)])
    assert result.intervals is not None
    first, second = result.intervals
    assert first.fire_delay_us == 5 * H
    assert first.resolve_delay_us == 40 * H  # the same alert went on past its end
    assert second.fire_delay_us == -20 * H
    assert second.resolve_delay_us == 10 * H
    assert result.false_alarms == 0


def test_a_missed_interval_has_no_delays() -> None:
    result = score(alerts(100, 110), START, END, [hours(48, 72)])
    interval = only_interval(result)
    assert not interval.detected
    assert interval.fire_delay_us is interval.resolve_delay_us is None
    assert not interval.still_firing
    assert interval.covered_us == 0
    assert (result.detected, result.false_alarms) == (0, 1)


def test_still_firing_at_the_end_of_the_run_has_no_resolve_delay() -> None:
    result = score(alerts(50), START, END, [hours(48, 72)])
    interval = only_interval(result)
    assert interval.fire_delay_us == 2 * H
    assert interval.resolve_delay_us is None
    assert interval.still_firing
    assert result.episodes[0].resolved_us is None
    assert result.flaps == 0


def test_resolving_before_the_end_is_a_negative_resolve_delay() -> None:
    interval = only_interval(score(alerts(50, 60), START, END, [hours(48, 72)]))
    assert interval.resolve_delay_us == -12 * H
    assert interval.covered_share == pytest.approx(10 / 24)


def test_an_interval_covered_twice_takes_the_first_firing_and_the_last_resolution() -> None:
    result = score(alerts(50, 55, 58, 80), START, END, [hours(48, 72)])
    interval = only_interval(result)
    assert interval.fire_delay_us == 2 * H
    assert interval.resolve_delay_us == 8 * H
    assert interval.covered_us == (5 + 14) * H
    assert (result.false_alarms, result.firings) == (0, 2)


def test_an_interval_is_half_open() -> None:
    """A firing at the interval's end is outside it; one resolved at its start never
    covered it."""
    result = score(alerts(40, 48, 72, 80), START, END, [hours(48, 72)])
    assert not only_interval(result).detected
    assert result.false_alarms == 2


def test_flaps_are_firings_resolved_within_two_hours_or_as_configured() -> None:
    transitions = alerts(30, 31, 40, 42, 50, 53)
    assert score(transitions, START, END, None).flaps == 2  # 1 h and exactly 2 h, not 3 h
    policy = ScoringPolicy(flap_us=3 * H)
    assert score(transitions, START, END, None, policy).flaps == 3


def test_notifications_per_week_count_firings_and_resolutions() -> None:
    result = score(alerts(30, 40, 100, 140, 200), START, END, None)
    assert result.transitions == 5
    assert result.notifications_per_week == 2.5


def test_cold_start_firings_are_those_of_the_first_day_or_as_configured() -> None:
    transitions = alerts(0, 1, 23, 30, 24 + 10, 50)
    assert score(transitions, START, END, None).cold_start_firings == 2
    policy = ScoringPolicy(cold_start_us=48 * H)
    assert score(transitions, START, END, None, policy).cold_start_firings == 3


def test_without_truth_only_firings_flaps_and_notifications_apply() -> None:
    result = score(alerts(10, 11), START, END, None)
    assert result.intervals is None
    assert result.false_alarms is result.detected is None
    assert (result.firings, result.flaps, result.cold_start_firings) == (1, 1, 1)


def test_an_empty_truth_makes_every_firing_a_false_alarm() -> None:
    result = score(alerts(10, 20, 30), START, END, [])
    assert (result.detected, result.false_alarms) == (0, 2)


@pytest.mark.parametrize(
    "transitions",
    [
        alerts(10, 20)[1:],  # a resolution first
        [*alerts(10), *alerts(20)],  # two firings in a row
        list(reversed(alerts(10, 20, 30))),
        [*alerts(10), *alerts(20, 30, scope="queue:tech")[1:]],
    ],
    ids=["resolution first", "two firings", "out of order", "two scopes"],
)
def test_transitions_must_be_one_rule_and_scope_alternating_in_order(
    transitions: list[AlertTransition],
) -> None:
    with pytest.raises(ValueError, match=r"firing|resolution|order|scope"):
        episodes_of(transitions)


@pytest.mark.parametrize(
    "intervals",
    [[hours(5, 5)], [hours(5, 10), hours(8, 12)], [hours(10, 20), hours(1, 2)], [hours(-1, 2)]],
    ids=["empty", "overlapping", "out of order", "before the run"],
)
def test_intervals_are_checked(intervals: list[Interval]) -> None:
    with pytest.raises(ValueError, match="interval"):
        check_intervals(intervals, START, END)
    with pytest.raises(ValueError, match="after the run"):
        check_intervals([hours(10, 24 * 15)], START, END)


# -- scoring, properties ---------------------------------------------------------------

RUN_HOURS = (END - START) // H


@st.composite
def disjoint_intervals(draw: st.DrawFn) -> list[Interval]:
    """Hour marks in the run, taken in pairs: disjoint intervals, possibly touching."""
    marks = draw(st.lists(st.integers(0, RUN_HOURS), min_size=0, max_size=12, unique=True))
    marks.sort()
    return [hours(a, b) for a, b in zip(marks[::2], marks[1::2], strict=False)]


def exactly_over(intervals: list[Interval], shift_us: int = 0) -> list[AlertTransition]:
    made = []
    for interval in intervals:
        fired, resolved = interval.start_us + shift_us, interval.end_us + shift_us
        made.append(AlertTransition("r", "all", AlertState.FIRING, fired, 0, 0, fired))
        made.append(AlertTransition("r", "all", AlertState.RESOLVED, resolved, 0, 0, fired))
    return made


@settings(max_examples=200, deadline=None)
@given(disjoint_intervals())
def test_a_firing_exactly_over_each_interval_detects_all_with_no_delay(
    intervals: list[Interval],
) -> None:
    result = score(exactly_over(intervals), START, END, intervals)
    assert result.intervals is not None
    assert result.detected == len(intervals)
    assert result.false_alarms == 0
    for interval in result.intervals:
        assert (interval.fire_delay_us, interval.resolve_delay_us) == (0, 0)
        assert interval.covered_share == 1.0
    assert result.flaps == sum(1 for i in intervals if i.end_us - i.start_us <= 2 * H)


@settings(max_examples=200, deadline=None)
@given(disjoint_intervals(), st.integers(1, 10 * 3600))
def test_an_alert_late_by_less_than_the_shortest_gap_is_late_by_that_much(
    intervals: list[Interval], late_seconds: int
) -> None:
    late = late_seconds * 1_000_000
    shortest = min((i.end_us - i.start_us for i in intervals), default=late + 1)
    gaps = [b.start_us - a.end_us for a, b in pairwise(intervals)]
    if late >= shortest or any(gap < late for gap in gaps):
        return  # a later alert would run into the next interval
    transitions = [t for t in exactly_over(intervals, late) if t.at_us < END]
    result = score(transitions, START, END, intervals)
    assert result.intervals is not None
    assert result.false_alarms == 0
    for interval in result.intervals:
        assert interval.fire_delay_us == late
        if interval.interval.end_us + late < END:
            assert interval.resolve_delay_us == late
        else:
            assert interval.still_firing


@settings(max_examples=200, deadline=None)
@given(
    disjoint_intervals(),
    st.lists(st.integers(0, RUN_HOURS * 4), min_size=0, max_size=14, unique=True),
)
def test_scores_add_up_for_any_alert(intervals: list[Interval], quarters: list[int]) -> None:
    """Detected or missed; each firing inside an interval or a false alarm; detected
    exactly when covered for some time; never covered more than the interval."""
    transitions = alerts(*(q / 4 for q in sorted(quarters)))
    result = score(transitions, START, END, intervals)
    assert result.intervals is not None
    inside = sum(
        1 for e in result.episodes if any(i.start_us <= e.fired_us < i.end_us for i in intervals)
    )
    assert inside + (result.false_alarms or 0) == result.firings == (len(quarters) + 1) // 2
    for interval in result.intervals:
        length = interval.interval.end_us - interval.interval.start_us
        assert interval.detected == (interval.covered_us > 0)
        assert 0 <= interval.covered_us <= length
        if interval.detected:
            assert interval.fire_delay_us is not None
            assert interval.fire_delay_us < length
    assert result.notifications_per_week == pytest.approx(len(quarters) / 2)


# -- the truth file --------------------------------------------------------------------

TRUTH: dict[str, Any] = {
    "scenario": "hand",
    "seed": 3,
    "start": "2026-03-02T00:00:00Z",
    "end": "2026-03-16T00:00:00Z",
    "imbalance": 0.1,
    "scopes": {
        "all": [{"start": "2026-03-09T00:00:00Z", "end": "2026-03-11T00:00:00Z"}],
        "queue:tech": [],
    },
    "rules": {
        "driver_spike": {
            "means": "by hand",
            "scopes": {
                "all": [],
                "queue:billing": [{"start": "2026-03-10T00:00:00Z", "end": "2026-03-12T00:00:00Z"}],
            },
        },
    },
}


REMOVED = object()


def truth_json(**change: Any) -> str:
    """TRUTH as a JSON document, with ``change``: a key given REMOVED is left out."""
    return json.dumps({k: v for k, v in {**TRUTH, **change}.items() if v is not REMOVED})


def test_a_truth_file_is_read_with_its_intervals() -> None:
    truth = parse_truth(truth_json(scopes={**TRUTH["scopes"], "priority:P1": []}))
    assert (truth.start_us, truth.end_us) == (START, END)
    assert truth.scopes == {"all": (hours(7 * 24, 9 * 24),), "queue:tech": ()}
    assert truth.ignored == ("priority:P1",)  # no rule runs for it
    assert (truth.scenario, truth.seed, truth.imbalance) == ("hand", 3, 0.1)
    assert truth.rules == {"driver_spike": {"all": (), "queue:billing": (hours(8 * 24, 10 * 24),)}}
    assert truth.intervals("inflow_above_outflow", "queue:tech") == ()
    assert truth.intervals("driver_spike", "queue:billing") == (hours(8 * 24, 10 * 24),)
    assert truth.intervals("driver_spike", "queue:tech") is None  # the truth does not say
    assert truth.intervals("reopen_rate_high", "all") is None  # nor of this rule


def test_the_truth_simulate_writes_is_read() -> None:
    """The model simulate --scenario writes (and the schema is made from) is the one read."""
    truth = parse_truth(EXAMPLE.to_text())
    assert truth.scenario == EXAMPLE.scenario
    assert set(truth.scopes) == set(EXAMPLE.scopes)
    first, end = datetime(2026, 3, 10, tzinfo=UTC), datetime(2026, 3, 13, tzinfo=UTC)
    assert truth.scopes["all"] == (Interval(to_us(first), to_us(end)),)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"start": "2026-03-02T00:00:00"}, r"^start: not a UTC time .*: '2026-03-02T00:00:00'$"),
        ({"start": "2026-03-02T00:00:00+01:00"}, "^start: not a UTC time"),
        ({"start": "2026-13-02T00:00:00Z"}, "^start: not a valid date and time"),
        ({"end": "2026-03-01T00:00:00Z"}, "^end is not after start$"),
        ({"scopes": []}, "^scopes: Input should be an object$"),
        (
            {"scopes": {"all": [{"start": "2026-03-05T00:00:00Z"}]}},
            r"^scopes\.all\[0\]\.end: Field required$",
        ),
        (
            {
                "scopes": {
                    "all": [
                        {"start": "2026-03-05T00:00:00Z", "end": "2026-03-07T00:00:00Z"},
                        {"start": "2026-03-06T00:00:00Z", "end": "2026-03-08T00:00:00Z"},
                    ]
                }
            },
            r"^scopes\.all: an interval out of order, overlapping",
        ),
        ({"seed": "3"}, "^seed: Input should be a valid integer: '3'$"),
        ({"seed": True}, "^seed: Input should be a valid integer: True$"),
        ({"imbalance": -0.1}, "^imbalance: Input should be greater than or equal to 0"),
        ({"scenario": REMOVED}, "^scenario: Field required$"),
        ({"extra": 1}, "^extra: Extra inputs are not permitted: 1$"),
        ({"seed": "3", "imbalance": "x"}, r"^seed: .* \(and 1 more\)$"),
        (
            {"rules": {"driver_spike": {"means": "", "scopes": {"all": [{"start": "x"}]}}}},
            r"^rules\.driver_spike\.scopes\.all\[0\]\.start: not a UTC time",
        ),
        (
            {"rules": {"spike": {"means": "", "scopes": {}}}},
            r"^rules\.spike: not one of the other rules: reopen_rate_high, ",
        ),
        (
            {"rules": {"inflow_above_outflow": {"means": "", "scopes": {}}}},
            r"^rules\.inflow_above_outflow: not one of the other rules",
        ),
        (
            {
                "rules": {
                    "driver_spike": {
                        "means": "",
                        "scopes": {
                            "all": [
                                {"start": "2026-03-20T00:00:00Z", "end": "2026-03-21T00:00:00Z"}
                            ]
                        },
                    }
                }
            },
            r"^rules\.driver_spike\.scopes\.all: ",
        ),
    ],
)
def test_a_wrong_truth_file_says_what_is_wrong(change: dict[str, Any], message: str) -> None:
    with pytest.raises(TruthError, match=message):
        parse_truth(truth_json(**change))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "truth.json: Input should be an object\n"),
        ("{", "truth.json: Invalid JSON: EOF while parsing"),
        (None, "truth.json: cannot read it: No such file or directory"),
    ],
    ids=["not an object", "not JSON", "no file"],
)
def test_evaluate_refuses_a_truth_file_that_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    truth = tmp_path / "truth.json"
    if content is not None:
        truth.write_text(content)
    assert main(["evaluate", str(tmp_path / "none.jsonl"), str(truth), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flowgauge evaluate: ")
    assert message in err


@pytest.mark.parametrize("days", [0, 3])
def test_evaluate_refuses_events_that_are_not_the_truth_s_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], days: int
) -> None:
    """Three days scored against two weeks' truth would read as every imbalance missed."""
    events, truth = tmp_path / "events.jsonl", tmp_path / "truth.json"
    truth.write_text(truth_json())
    if days:
        argv = ["simulate", "--days", str(days), "--flat-out", "--output", str(events)]
        assert main(argv) == 0
    else:
        events.write_text("")
    capsys.readouterr()
    assert main(["evaluate", str(events), str(truth), "--step", "1h"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    said = f"flowgauge evaluate: {events}: "
    if days:
        said += (
            "the events run from 2026-03-02T01:00:00Z to 2026-03-05T00:00:00Z, the truth's run"
            " from 2026-03-02T00:00:00Z to 2026-03-16T00:00:00Z: not the run it was made of"
        )
    else:
        said += "no line is an event"
    assert captured.err == said + "\n"


# -- end to end ------------------------------------------------------------------------


def _report_alerts(path: Path) -> dict[tuple[str, str], list[AlertTransition]]:
    """report's alerts CSV as transitions per (rule, scope)."""
    grouped: dict[tuple[str, str], list[AlertTransition]] = defaultdict(list)
    fired: dict[tuple[str, str], int] = {}
    with path.open(newline="") as rows:
        for row in csv.DictReader(rows):
            key = (row["rule"], row["scope"])
            at = to_us(datetime.fromisoformat(row["at"]))
            state = AlertState(row["state"])
            if state is AlertState.FIRING:
                fired[key] = at
            grouped[key].append(AlertTransition(*key, state, at, 0.0, 0.0, fired[key]))
    return grouped


def _hours(us: int | None) -> float | None:
    return None if us is None else round(us / US_PER_HOUR, 3)


@pytest.mark.slow
def test_evaluate_scores_exactly_the_alerts_report_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    events, truth_path = tmp_path / "events.jsonl", tmp_path / "truth.json"
    settings_file = tmp_path / "flowgauge.toml"
    # Not the defaults, so that --config is seen to be read as FLOWGAUGE_CONFIG is.
    settings_file.write_text("[alerts.inflow_above_outflow]\nsustain = 2\nclear = 4\n")
    argv = ["simulate", "--days", "14", "--seed", "3", "--flat-out", "--output", str(events)]
    assert main(argv) == 0
    truth_path.write_text(truth_json())
    monkeypatch.delenv("FLOWGAUGE_CONFIG", raising=False)
    capsys.readouterr()

    argv = ["evaluate", str(events), str(truth_path), "--step", "1h", "--json"]
    assert main([*argv, "--config", str(settings_file)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert "FLOWGAUGE_CONFIG" not in os.environ  # set while reading the settings only

    monkeypatch.setenv("FLOWGAUGE_CONFIG", str(settings_file))
    written = tmp_path / "alerts.csv"
    argv = ["report", str(events), "--step", "1h", "--output", os.devnull]
    assert main([*argv, "--alerts", str(written)]) == 0
    reported = _report_alerts(written)

    scores = {(s["rule"], s["scope"]): s for s in document["scores"]}
    judged = parse_truth(truth_json())
    assert set(reported) <= set(scores)
    assert {rule for rule, _ in scores} == set(RULES)
    for key, item in scores.items():
        transitions = reported.get(key, [])
        assert item["alerts"] == [{"at": iso(a.at_us), "state": a.state.value} for a in transitions]
        assert item["transitions"] == len(transitions)
        expected = score(transitions, START, END, judged.intervals(*key))
        assert item["firings"] == expected.firings
        assert item["flaps"] == expected.flaps
        assert item["cold_start_firings"] == expected.cold_start_firings
        assert item["notifications_per_week"] == round(expected.notifications_per_week, 3)
        assert item["false_alarms"] == expected.false_alarms
        assert item["detected"] == expected.detected
        if expected.intervals is None:
            assert item["intervals"] is None
            continue
        assert [
            (i["detected"], i["fire_delay_hours"], i["resolve_delay_hours"], i["still_firing"])
            for i in item["intervals"]
        ] == [
            (i.detected, _hours(i.fire_delay_us), _hours(i.resolve_delay_us), i.still_firing)
            for i in expected.intervals
        ]
    headline = scores[(INFLOW_ABOVE_OUTFLOW, "all")]
    assert headline["transitions"] > 0  # the simulator makes the headline rule fire
    assert len(headline["intervals"]) == 1
    spike = scores[("driver_spike", "queue:billing")]
    assert spike["intervals"][0]["start"] == "2026-03-10T00:00:00Z"  # scored against its truth
    assert scores[("driver_spike", "queue:tech")]["intervals"] is None
    assert document["rules_with_truth"] == [INFLOW_ABOVE_OUTFLOW, "driver_spike"]
    assert document["summary"][0]["rule"] == INFLOW_ABOVE_OUTFLOW
    assert document["summary"][0]["transitions"] == sum(
        len(t) for (rule, _), t in reported.items() if rule == INFLOW_ABOVE_OUTFLOW
    )
    assert document["step"] == "1h"
    assert document["weeks"] == 2.0
