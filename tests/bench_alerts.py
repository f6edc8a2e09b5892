"""The headline rule against the scenarios' ground truth: every named scenario with seeds
1-5, scored as ``flowgauge evaluate`` scores it, for the rule of this version (its
decisions are the same at any step: run at 5 min) and the earlier rule (which counts
boundaries: run at 5 min and at 1 h). Prints the table of BENCHMARKS.md, "Alert quality";
``run_other_rules`` the table of the other rules (``--only rules``)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from streams.commands.evaluate import JudgedTruth, judge, run_rules, score_run
from streams.commands.scenarios import SCENARIOS, named, truth
from streams.commands.simulate import encode, generate_events
from streams.config import FlowgaugeConfig
from streams.core.alerts import INDICATOR_RULES, INFLOW_ABOVE_OUTFLOW
from streams.core.scoring import US_PER_HOUR, US_PER_WEEK, RuleScore, ScoringPolicy

SEEDS = (1, 2, 3, 4, 5)
# Fired within this many hours of an imbalance's start is on time (the targets).
ON_TIME_HOURS = {"surge": 12, "understaffed": 24, "slow-drift": 168, "mixed": 24}
EARLIER = {"sustain": 3, "clear": 3}  # sets the earlier rule, with its defaults
RULES: tuple[tuple[str, str, dict[str, int]], ...] = (
    ("new, 5 min and 1 h", "5m", {}),
    ("earlier, 5 min", "5m", EARLIER),
    ("earlier, 1 h", "1h", EARLIER),
)


@dataclass
class Tally:
    """One scenario, one rule, one kind of scope, over the seeds."""

    scopes: int = 0
    false_per_4_weeks: float = 0.0
    flaps: int = 0
    cold: int = 0
    notifications: list[float] = field(default_factory=list)
    intervals: int = 0
    detected: int = 0
    on_time: int = 0
    resolved: int = 0
    fire_delays: list[float] = field(default_factory=list)
    firings_per_4_weeks: float = 0.0
    judged: bool = False  # some scope had truth

    def add(self, score: RuleScore, weeks: float, on_time_hours: float | None) -> None:
        self.scopes += 1
        self.judged |= score.intervals is not None
        self.firings_per_4_weeks += score.firings / weeks * 4
        self.false_per_4_weeks += (score.false_alarms or 0) / weeks * 4
        self.flaps += score.flaps
        self.cold += score.cold_start_firings
        self.notifications.append(score.notifications_per_week)
        for interval in score.intervals or ():
            self.intervals += 1
            self.detected += interval.detected
            delay = interval.fire_delay_us
            if delay is not None and delay >= 0:
                self.fire_delays.append(delay / US_PER_HOUR)
                if on_time_hours is not None and delay <= on_time_hours * US_PER_HOUR:
                    self.on_time += 1
            resolve = interval.resolve_delay_us
            if (on_time_hours == ON_TIME_HOURS["slow-drift"] and interval.still_firing) or (
                resolve is not None and 0 <= resolve <= 24 * US_PER_HOUR
            ):
                self.resolved += 1

    def row(self) -> str:
        def share(count: int) -> str:
            return f"{count}/{self.intervals}" if self.intervals else "-"

        delay = f"{statistics.median(self.fire_delays):.0f} h" if self.fire_delays else "-"
        return (
            f"{share(self.detected)} | {share(self.on_time)} | {delay} | {share(self.resolved)}"
            f" | {self.false_per_4_weeks / self.scopes:.2f} | {self.flaps} | {self.cold}"
            f" | {statistics.mean(self.notifications):.1f}"
        )

    def other_row(self) -> str:
        """Of a rule scored at one step: detected, delay, resolved in 24 h, false and all
        firings per scope per 4 weeks, flaps, notifications per scope per week."""
        cells = self.row().split(" | ")
        false = cells[4] if self.judged else "-"
        firings = f"{self.firings_per_4_weeks / self.scopes:.2f}"
        return " | ".join([cells[0], cells[2], cells[3], false, firings, cells[5], cells[7]])


def score_scenario(name: str) -> dict[tuple[str, str], Tally]:
    """Per (rule label, all or queues), the headline's scores over the seeds."""
    tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
    for seed in SEEDS:
        scenario = named(name, seed)
        judged: JudgedTruth = judge(truth(name, scenario))
        lines = [encode(event) for event in generate_events(scenario)]
        weeks = (judged.end_us - judged.start_us) / US_PER_WEEK
        for label, step, rule in RULES:
            settings = {"step": step, "alerts": {"inflow_above_outflow": rule}}
            run = run_rules(lines, FlowgaugeConfig.model_validate(settings))
            for scored in score_run(run, judged, ScoringPolicy()):
                if scored.rule == INFLOW_ABOVE_OUTFLOW:
                    where = "all" if scored.scope == "all" else "queues"
                    tallies[label, where].add(scored.score, weeks, ON_TIME_HOURS.get(name))
    return tallies


def run_alerts() -> None:
    print(
        "| scenario | rule, step | scopes | detected | on time | median delay to fire"
        " | resolved in 24 h | false firings per scope per 4 weeks | flaps"
        " | cold-start firings | notifications per scope per week |"
    )
    print("| --- " * 11 + "|")
    for name in SCENARIOS:
        tallies = score_scenario(name)
        for label, _, _ in RULES:
            for where in ("all", "queues"):
                print(f"| {name} | {label} | {where} | {tallies[label, where].row()} |", flush=True)


def run_other_rules() -> None:
    """Every rule but the headline over every scenario, seeds 1-5, at 1 h (their durations
    make them the same at any step), against the truth where it names the rule."""
    print(
        "| scenario | rule | scopes | detected | median delay to fire | resolved in 24 h"
        " | false firings per scope per 4 weeks | firings per scope per 4 weeks | flaps"
        " | notifications per scope per week |"
    )
    print("| --- " * 10 + "|")
    for name in SCENARIOS:
        tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
        for seed in SEEDS:
            scenario = named(name, seed)
            judged = judge(truth(name, scenario))
            lines = [encode(event) for event in generate_events(scenario)]
            weeks = (judged.end_us - judged.start_us) / US_PER_WEEK
            run = run_rules(lines, FlowgaugeConfig.model_validate({"step": "1h"}))
            for scored in score_run(run, judged, ScoringPolicy()):
                if scored.rule in INDICATOR_RULES and scored.scope in judged.scopes:
                    where = "all" if scored.scope == "all" else "queues"
                    tallies[scored.rule, where].add(scored.score, weeks, None)
        for rule in INDICATOR_RULES:
            for where in ("all", "queues"):
                row = tallies[rule, where].other_row()
                print(f"| {name} | {rule} | {where} | {row} |", flush=True)
