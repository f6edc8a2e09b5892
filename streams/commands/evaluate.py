"""``flowgauge evaluate``: the alert rules of a file of events scored against ground truth.

The rules run exactly as ``flowgauge report --alerts`` runs them (the same ``LocalPipeline``
over the file, with the same configuration and wall clock), their transitions are grouped
by (rule, scope) and scored (``streams.core.scoring``) against a truth file such as
``flowgauge simulate --truth`` writes: per scope (``all``, ``queue:NAME``), the intervals in
which the expected arrivals exceed the expected capacity, for the headline rule,
``inflow_above_outflow``, and those in which the other rules it names should fire; the rules
it does not name get flaps, firings and notifications.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from streams.commands.report import Counters, LocalPipeline, in_order
from streams.config import FlowgaugeConfig
from streams.core.alerts import (
    INDICATOR_RULES,
    INFLOW_ABOVE_OUTFLOW,
    AlertTransition,
    crossing_applies,
)
from streams.core.scope import scope_order
from streams.core.scoring import (
    US_PER_HOUR,
    US_PER_WEEK,
    Interval,
    IntervalScore,
    RuleScore,
    ScoringPolicy,
    check_intervals,
    score,
)
from streams.core.timeline import iso, to_us
from streams.outputs.truth import MOMENT, Truth
from streams.outputs.truth import Interval as TruthInterval

RULES = (INFLOW_ABOVE_OUTFLOW, *INDICATOR_RULES)
TRUTH_RULE = INFLOW_ABOVE_OUTFLOW  # the rule the truth's intervals are about


class TruthError(ValueError):
    """A truth file that cannot be read as one."""


@dataclass(frozen=True, slots=True)
class JudgedTruth:
    """The ground truth of a run as it is scored: per scope the rules run for, the intervals
    of expected imbalance, in microseconds."""

    start_us: int
    end_us: int
    scopes: dict[str, tuple[Interval, ...]]
    scenario: str
    seed: int
    imbalance: float
    ignored: tuple[str, ...] = ()  # scopes no rule runs for
    rules: dict[str, dict[str, tuple[Interval, ...]]] = field(default_factory=dict)

    def intervals(self, rule: str, scope: str) -> tuple[Interval, ...] | None:
        """When ``rule`` should fire on ``scope``; None where the truth does not say."""
        judged = self.scopes if rule == TRUTH_RULE else self.rules.get(rule, {})
        return judged.get(scope)


def _where(loc: tuple[int | str, ...]) -> str:
    """A place in the document, as ``scopes.all[0].end``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _problem(error: ErrorDetails) -> str:
    """One of pydantic's errors as a line: where, what, and the offending value."""
    if error["type"] == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == MOMENT:
        what = "not a UTC time to the second with Z, as 2026-03-02T00:00:00Z"
    else:
        what = error["msg"]
    value = error["input"]
    if error["loc"] and error["type"] != "missing" and isinstance(value, str | int | float | None):
        shown = repr(value)
        what += f": {shown}" if len(shown) <= 64 else f": {shown[:64]}..."
    return f"{_where(error['loc'])}: {what}" if error["loc"] else what


def _us(text: str, where: str) -> int:
    try:
        return to_us(datetime.fromisoformat(text))
    except ValueError:
        raise TruthError(f"{where}: not a valid date and time: {text!r}") from None


def judge(truth: Truth) -> JudgedTruth:
    """The validated truth in microseconds, its intervals checked (``check_intervals``) and
    the scopes no rule runs for set apart."""
    start, end = _us(truth.start, "start"), _us(truth.end, "end")
    if end <= start:
        raise TruthError("end is not after start")
    ignored: list[str] = []
    scopes = _judged(truth.scopes, ("scopes",), start, end, ignored)
    rules = {}
    for rule, found in truth.rules.items():
        if rule not in RULES or rule == TRUTH_RULE:
            others = ", ".join(r for r in RULES if r != TRUTH_RULE)
            raise TruthError(f"rules.{rule}: not one of the other rules: {others}")
        rules[rule] = _judged(found.scopes, ("rules", rule, "scopes"), start, end, ignored)
    return JudgedTruth(
        start,
        end,
        scopes,
        truth.scenario,
        truth.seed,
        truth.imbalance,
        tuple(dict.fromkeys(ignored)),
        rules,
    )


def _judged(
    raw: dict[str, list[TruthInterval]],
    place: tuple[str, ...],
    start: int,
    end: int,
    ignored: list[str],
) -> dict[str, tuple[Interval, ...]]:
    """The intervals of each scope in microseconds, checked; the scopes no rule runs for
    added to ``ignored``."""
    scopes: dict[str, tuple[Interval, ...]] = {}
    for scope, found in raw.items():
        where = _where((*place, scope))
        intervals = tuple(
            Interval(_us(i.start, f"{where}[{n}].start"), _us(i.end, f"{where}[{n}].end"))
            for n, i in enumerate(found)
        )
        try:
            check_intervals(intervals, start, end)
        except ValueError as exc:
            raise TruthError(f"{where}: {exc}") from None
        if crossing_applies(scope):
            scopes[scope] = intervals
        else:
            ignored.append(scope)
    return scopes


def parse_truth(document: str | bytes) -> JudgedTruth:
    """The truth in a JSON document (``streams.outputs.truth.Truth``, strictly: no "3" for a
    number); TruthError, naming the first thing wrong, when it is not one."""
    try:
        truth = Truth.model_validate_json(document, strict=True)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise TruthError(_problem(errors[0]) + more) from None
    return judge(truth)


def read_truth(path: Path) -> JudgedTruth:
    try:
        document = path.read_bytes()
    except OSError as exc:
        raise TruthError(f"cannot read it: {exc.strerror}") from None
    return parse_truth(document)


@contextmanager
def configured(path: Path | None) -> Iterator[None]:
    """``FLOWGAUGE_CONFIG`` pointed at ``path`` (when given) while the settings are read."""
    if path is None:
        yield
        return
    before = os.environ.get("FLOWGAUGE_CONFIG")
    os.environ["FLOWGAUGE_CONFIG"] = str(path)
    try:
        yield
    finally:
        if before is None:
            del os.environ["FLOWGAUGE_CONFIG"]
        else:
            os.environ["FLOWGAUGE_CONFIG"] = before


@dataclass(slots=True)
class RuleRun:
    """What the rules did over a file: transitions per (rule, scope), and the scopes they
    ran for."""

    alerts: dict[tuple[str, str], list[AlertTransition]] = field(
        default_factory=lambda: defaultdict(list)
    )
    scopes: set[str] = field(default_factory=set)
    counters: Counters = field(default_factory=Counters)
    first_us: int | None = None  # the first and last boundaries emitted
    last_us: int | None = None


def run_rules(lines: Iterable[bytes], config: FlowgaugeConfig) -> RuleRun:
    """The rules over the events, as ``flowgauge report --alerts`` runs them."""
    settings = config.core()
    # Its wall clock is "now", as report's: a file of history is never ahead of it.
    pipeline = LocalPipeline(settings, config.grace_us, clock=config.wall_clock(time.time()))
    result = RuleRun(counters=pipeline.counters)
    for item in in_order(lines, pipeline):  # by as_of, so each group is in time order
        if result.first_us is None:
            result.first_us = item.flow.as_of_us
        result.last_us = item.flow.as_of_us
        if crossing_applies(item.flow.scope):
            result.scopes.add(item.flow.scope)
        for alert in item.alerts:
            result.alerts[(alert.rule, alert.scope)].append(alert)
    return result


@dataclass(frozen=True, slots=True)
class Scored:
    rule: str
    scope: str
    score: RuleScore
    transitions: tuple[AlertTransition, ...]


def score_run(run: RuleRun, truth: JudgedTruth, policy: ScoringPolicy) -> list[Scored]:
    """Every rule on every scope it ran for (and every scope of the truth), scored."""
    scopes = sorted(run.scopes.union(truth.scopes, *truth.rules.values()), key=scope_order)
    scored = []
    for rule in RULES:
        for scope in scopes:
            transitions = tuple(run.alerts.get((rule, scope), ()))
            intervals = truth.intervals(rule, scope)
            result = score(transitions, truth.start_us, truth.end_us, intervals, policy)
            scored.append(Scored(rule, scope, result, transitions))
    return scored


def _hours(us: int | None) -> float | None:
    return None if us is None else round(us / US_PER_HOUR, 3)


def _interval_json(s: IntervalScore) -> dict[str, Any]:
    return {
        "start": iso(s.interval.start_us),
        "end": iso(s.interval.end_us),
        "detected": s.detected,
        "fired_at": None if s.fired_us is None else iso(s.fired_us),
        "fire_delay_hours": _hours(s.fire_delay_us),
        "resolved_at": None if s.resolved_us is None else iso(s.resolved_us),
        "resolve_delay_hours": _hours(s.resolve_delay_us),
        "still_firing": s.still_firing,
        "covered_share": round(s.covered_share, 4),
    }


def _counts_json(s: RuleScore | Summary) -> dict[str, Any]:
    """The counts a score of one scope and a rule's summary over all scopes share."""
    return {
        "transitions": s.transitions,
        "firings": s.firings,
        "flaps": s.flaps,
        "cold_start_firings": s.cold_start_firings,
        "notifications_per_week": round(s.notifications_per_week, 3),
        "detected": s.detected,
    }


def _score_json(item: Scored) -> dict[str, Any]:
    s = item.score
    return {
        "rule": item.rule,
        "scope": item.scope,
        **_counts_json(s),
        "false_alarms": s.false_alarms,
        "intervals": None if s.intervals is None else [_interval_json(i) for i in s.intervals],
        "alerts": [{"at": iso(a.at_us), "state": a.state.value} for a in item.transitions],
    }


@dataclass(frozen=True, slots=True)
class Summary:
    """One rule over every scope."""

    rule: str
    scopes: int
    judged_scopes: int  # those with truth
    transitions: int
    firings: int
    flaps: int
    cold_start_firings: int
    notifications_per_week: float
    detected: int | None
    intervals: int | None
    false_alarms: int | None
    median_fire_delay_us: float | None  # over the detected intervals
    median_resolve_delay_us: float | None  # over those resolved


def summarise(scored: list[Scored]) -> list[Summary]:
    summaries = []
    for rule in RULES:
        items = [item.score for item in scored if item.rule == rule]
        judged = [s for s in items if s.intervals is not None]
        intervals = [i for s in judged for i in s.intervals or ()]
        fire = [i.fire_delay_us for i in intervals if i.fire_delay_us is not None]
        resolve = [i.resolve_delay_us for i in intervals if i.resolve_delay_us is not None]
        summaries.append(
            Summary(
                rule,
                len(items),
                len(judged),
                sum(s.transitions for s in items),
                sum(s.firings for s in items),
                sum(s.flaps for s in items),
                sum(s.cold_start_firings for s in items),
                sum(s.notifications_per_week for s in items),
                sum(s.detected or 0 for s in judged) if judged else None,
                len(intervals) if judged else None,
                sum(s.false_alarms or 0 for s in judged) if judged else None,
                statistics.median(fire) if fire else None,
                statistics.median(resolve) if resolve else None,
            )
        )
    return summaries


def _summary_json(s: Summary) -> dict[str, Any]:
    return {
        "rule": s.rule,
        "scopes": s.scopes,
        "scopes_with_truth": s.judged_scopes,
        **_counts_json(s),
        "intervals": s.intervals,
        "false_alarms": s.false_alarms,
        "median_fire_delay_hours": _hours(_int(s.median_fire_delay_us)),
        "median_resolve_delay_hours": _hours(_int(s.median_resolve_delay_us)),
    }


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def document(
    scored: list[Scored],
    truth: JudgedTruth,
    policy: ScoringPolicy,
    counters: Counters,
    paths: tuple[Path, Path],
    step: str,
) -> dict[str, Any]:
    """Everything ``--json`` prints."""
    return {
        "events": str(paths[0]),
        "truth": str(paths[1]),
        "scenario": truth.scenario,
        "seed": truth.seed,
        "imbalance": truth.imbalance,
        "start": iso(truth.start_us),
        "end": iso(truth.end_us),
        "weeks": round((truth.end_us - truth.start_us) / US_PER_WEEK, 4),
        "step": step,
        "truth_rule": TRUTH_RULE,
        "rules_with_truth": [TRUTH_RULE, *truth.rules],
        "flap_hours": policy.flap_us / US_PER_HOUR,
        "cold_start_hours": policy.cold_start_us / US_PER_HOUR,
        "events_read": {
            "processed": counters.processed,
            "invalid": len(counters.invalid),
            "duplicates": counters.duplicates,
            "late": counters.late,
        },
        "scores": [_score_json(item) for item in scored],
        "summary": [_summary_json(s) for s in summarise(scored)],
    }


def _delay(us: int | None) -> str:
    return "-" if us is None else f"{us / US_PER_HOUR:+.1f}"


def _fire_delays(s: RuleScore) -> str:
    return ", ".join(_delay(i.fire_delay_us) for i in s.intervals or () if i.detected)


def _resolve_delays(s: RuleScore) -> str:
    return ", ".join(
        "still firing" if i.still_firing else _delay(i.resolve_delay_us)
        for i in s.intervals or ()
        if i.detected
    )


def render(scored: list[Scored], truth: JudgedTruth, policy: ScoringPolicy) -> None:
    """The scores as rich tables on standard output."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # a file or a pipe: wide enough for the tables
        console = Console(width=max(console.width, 132))
    weeks = (truth.end_us - truth.start_us) / US_PER_WEEK
    about = f" ({truth.scenario}, seed {truth.seed})" if truth.scenario else ""
    console.print(
        f"Run {iso(truth.start_us)} to {iso(truth.end_us)}, {weeks:.1f} weeks{about}. "
        f"Flap: resolved within {policy.flap_us / US_PER_HOUR:g} h; cold start: the first "
        f"{policy.cold_start_us / US_PER_HOUR:g} h; delays in hours, signed (negative: "
        "the alert fired before the interval began, or resolved before it ended).",
        highlight=False,
    )
    headline = _table(f"{TRUTH_RULE} against the truth")
    for item in scored:
        if item.rule == TRUTH_RULE:
            headline.add_row(*_cells(item))
    console.print(headline)
    others = _table(
        "the other rules (against the truth where it names them; scopes with neither a"
        " transition nor a true interval left out)",
        "rule",
    )
    for item in scored:
        if item.rule != TRUTH_RULE and (item.score.transitions or item.score.intervals):
            others.add_row(item.rule, *_cells(item))
    console.print(others)
    for summary in summarise(scored):
        console.print(summary_line(summary), highlight=False)


def _table(title: str, *first: str) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for name in (*first, "scope"):
        table.add_column(name, no_wrap=True)
    table.add_column("detected", justify="right")
    table.add_column("start to firing (h)")
    table.add_column("end to resolved (h)")
    for name in ("false alarms", "flaps", "firings", "notifications /week", "cold start"):
        table.add_column(name, justify="right")
    return table


def _cells(item: Scored) -> tuple[str, ...]:
    s = item.score
    judged = s.intervals is not None
    return (
        item.scope,
        f"{s.detected}/{len(s.intervals or ())}" if judged else "no truth",
        _fire_delays(s),
        _resolve_delays(s),
        str(s.false_alarms) if judged else "-",
        str(s.flaps),
        str(s.firings),
        f"{s.notifications_per_week:.1f}",
        str(s.cold_start_firings),
    )


def summary_line(s: Summary) -> str:
    truth = ""
    if s.intervals == 0:
        truth = (
            f"on the {s.judged_scopes} scopes with truth, no true interval,"
            f" {s.false_alarms} false alarms; "
        )
    elif s.intervals is not None:
        fire = _delay(_int(s.median_fire_delay_us))
        resolve = _delay(_int(s.median_resolve_delay_us))
        truth = (
            f"on the {s.judged_scopes} scopes with truth, detected {s.detected}/{s.intervals},"
            f" median delay to fire {fire} h and to resolve {resolve} h,"
            f" {s.false_alarms} false alarms; "
        )
    return (
        f"{s.rule}: {truth}on all {s.scopes} scopes, {s.firings} firings, {s.flaps} flaps,"
        f" {s.notifications_per_week:.1f} notifications/week,"
        f" {s.cold_start_firings} firings in the cold start"
    )


DAY = 24 * US_PER_HOUR


def _not_the_truths_run(run: RuleRun, truth: JudgedTruth) -> str | None:
    """Why the events cannot be the run the truth was made of (they would be scored as
    missing every imbalance), or None: they cover its span, give or take a day."""
    if run.first_us is None or run.last_us is None:
        return "no line is an event"
    if run.first_us > truth.start_us + DAY or run.last_us < truth.end_us - DAY:
        return (
            f"the events run from {iso(run.first_us)} to {iso(run.last_us)}, the truth's run"
            f" from {iso(truth.start_us)} to {iso(truth.end_us)}: not the run it was made of"
        )
    return None


def evaluate_file(
    config: FlowgaugeConfig,
    events: Path,
    truth_path: Path,
    as_json: bool,
    policy: ScoringPolicy | None = None,
) -> int:
    """``flowgauge evaluate``: 0, or 2 when a file cannot be read or the events are not the
    truth's run."""
    policy = policy or ScoringPolicy()
    try:
        truth = read_truth(truth_path)
    except TruthError as exc:
        print(f"flowgauge evaluate: {truth_path}: {exc}", file=sys.stderr)
        return 2
    try:
        source = events.open("rb")
    except OSError as exc:
        print(f"flowgauge evaluate: cannot read {events}: {exc.strerror}", file=sys.stderr)
        return 2
    with source:
        run = run_rules((line.rstrip(b"\r\n") for line in source), config)
    mismatch = _not_the_truths_run(run, truth)
    if mismatch:
        print(f"flowgauge evaluate: {events}: {mismatch}", file=sys.stderr)
        return 2
    for scope in truth.ignored:
        print(f"flowgauge evaluate: no rule runs for truth scope {scope}", file=sys.stderr)
    outside = sum(
        1
        for alerts in run.alerts.values()
        for a in alerts
        if not truth.start_us <= a.at_us <= truth.end_us
    )
    if outside:
        print(
            f"flowgauge evaluate: {outside} transitions outside the truth's run"
            f" {iso(truth.start_us)} to {iso(truth.end_us)}",
            file=sys.stderr,
        )
    for number, reason in run.counters.invalid:
        print(f"{events}:{number}: skipped: {reason}", file=sys.stderr)
    scored = score_run(run, truth, policy)
    if as_json:
        paths = (events, truth_path)
        doc = document(scored, truth, policy, run.counters, paths, config.step)
        print(json.dumps(doc, indent=2))
    else:
        render(scored, truth, policy)
    return 0
