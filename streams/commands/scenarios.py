"""Named scenarios of the simulator, with their ground truth: ``flowgauge simulate --scenario``.

Each scenario is a ``Scenario`` with a resolve queue per ticket queue
(``per_queue_capacity``), each with its share of the team's capacity, and the usual
weekday and hourly rhythm. On the weekly average arrivals equal the team's capacity
(210 a day), in every queue, unless the scenario changes one of them:

- ``steady`` (8 weeks): nothing changes.
- ``surge`` (3 weeks): an outage: arrivals +60% in every queue for three days from day 8
  (a Tuesday, after a week of history); the extra tickets are tagged ``outage``.
- ``understaffed`` (6 weeks): capacity -25% for two weeks from day 8, then 20% above the
  arrivals until the work left undone is expected to be done (0.25 x 14 / 0.2 = 17.5
  days), then normal.
- ``slow-drift`` (8 weeks): arrivals grow 1% a week from 1.04 times capacity, so they
  reach 1.10 times it after 5.6 weeks (from 1.0 they would reach only 1.08 in 8 weeks).
- ``bad-release`` (6 weeks): a release breaks fixes in tech: its share of resolutions
  reopened triples (8% to 24%) for two weeks from day 15 (a Tuesday). The reopened tickets
  are work tech's capacity was not sized for.
- ``mixed`` (8 weeks): a surge (days 8-11), a week understaffed (days 22-29) and its
  recovery (to day 37.75), and an invoicing incident in billing alone (+80%, days 43-46,
  tagged ``invoice``), with steady weeks between.

**Truth.** Of the headline: for the scope ``all`` and each ``queue:NAME``, the intervals
in which the expected arrival rate is at least ``1 + imbalance`` times the expected closing
capacity, both from the scenario's parameters (``TeamModel``), not from the random draws,
and without the weekday and hour factors; evaluated for every hour of the run (at its start,
as the simulation sets its rates) and merged.

Of ``driver_spike``: the hours in which a tag's expected share of a scope's new tickets is
at least ``SPIKE_FACTOR`` times its share without the effects (an outage in every queue is
one in billing, accounts, sales and ``all``, but not in tech, where a fifth of the tickets
are outages anyway). Of ``reopen_rate_high``: the hours in which the expected share of
resolutions reopened is above the rule's default threshold.

What closing capacity is: part of the outflow needs nobody (P0 tickets go to the on-call
engineer, the AI assistant resolves some, spam and stale tickets close) and grows with
the arrivals; the rest waits in a queue's resolve queue for its share of the team's
resolutions, and reopened tickets come back to it. So a scope's closing capacity is the
arrival rate whose expected resolve work (after transfers, reopens included: about 0.94
resolutions a ticket by default) its resolve capacity covers exactly:

    arrivals >= (1 + imbalance) x capacity  <=>  work >= (1 + imbalance) x resolve capacity

(for ``all``: the sums over the queues). Below 1 the backlog comes back to its level week
after week; above 1 it grows structurally, by about (1 - automatic share) x (arrivals -
capacity) a day. The named scenarios give each queue the share of the capacity its work
takes after transfers (``Scenario``'s default, the arrival shares, would leave sales 2%
and accounts 1% short while transfers move tickets towards them), so arrivals equal
capacity in every queue and the truth of a queue changes when the scenario changes it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from streams.commands.files import replacing
from streams.commands.simulate import DAY, HOUR, Effect, Scenario, TeamModel, stamp
from streams.core.alerts import DRIVER_SPIKE, REOPEN_RATE_HIGH, RulesPolicy
from streams.core.indicators import SPIKE_FACTOR
from streams.outputs.truth import Interval, RuleTruth, Truth

DEFAULT_IMBALANCE = 0.10
REOPEN_RATE = RulesPolicy().reopen_rate  # reopen_rate_high's default threshold
# Arrivals and capacity (arrivals per day the team keeps up with), weekly averages.
RATE = 210.0
# Enough triage for a surge: first replies are not what these scenarios are about.
TRIAGE_PER_WEEKDAY = 560.0


def _balanced(scenario: Scenario) -> Scenario:
    """Each queue's share of the capacity matched to its work after transfers (which move
    tickets towards the smaller queues), so that arrivals equal capacity in every queue."""
    model = TeamModel(scenario)
    shares = tuple(zip(model.names, model.work(0.0), strict=True))
    return replace(scenario, capacity_shares=shares)


_BASE = _balanced(
    Scenario(
        per_queue_capacity=True,
        arrivals_per_day=RATE,
        capacity_per_day=RATE,
        triage_per_weekday=TRIAGE_PER_WEEKDAY,
    )
)


def _recovery(start: float, days: float, low: float, high: float) -> tuple[Effect, Effect]:
    """Capacity ``low`` for ``days``, then ``high`` until the work left undone is done."""
    drain = (1.0 - low) * days / (high - 1.0)
    return Effect(start, start + days, low), Effect(start + days, start + days + drain, high)


SCENARIOS: dict[str, Scenario] = {
    "steady": replace(_BASE, days=56.0),
    "surge": replace(_BASE, days=21.0, arrival_effects=(Effect(8.0, 11.0, 1.6, tag="outage"),)),
    "understaffed": replace(_BASE, days=42.0, capacity_effects=_recovery(8.0, 14.0, 0.75, 1.2)),
    "slow-drift": replace(
        _BASE, days=56.0, arrivals_per_day=1.04 * RATE, arrival_growth_per_week=0.01
    ),
    "bad-release": replace(
        _BASE, days=42.0, reopen_effects=(Effect(15.0, 29.0, 3.0, queues=("tech",)),)
    ),
    "mixed": replace(
        _BASE,
        days=56.0,
        arrival_effects=(
            Effect(8.0, 11.0, 1.6, tag="outage"),
            Effect(43.0, 46.0, 1.8, queues=("billing",), tag="invoice"),
        ),
        capacity_effects=_recovery(22.0, 7.0, 0.75, 1.2),
    ),
}


def named(name: str, seed: int = 7, days: float | None = None) -> Scenario:
    """The scenario ``name`` with ``seed``, over ``days`` (default: the scenario's length)."""
    try:
        scenario = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"no scenario {name!r}: one of {', '.join(SCENARIOS)}") from None
    return replace(scenario, seed=seed, days=scenario.days if days is None else days)


Hits = Callable[[float], list[bool]]  # per scope, ``all`` first: whether a day is inside
Shares = defaultdict[str, float]  # of new tickets, by tag


def truth(name: str, scenario: Scenario, imbalance: float = DEFAULT_IMBALANCE) -> Truth:
    """When each scope's expected arrivals are at least ``1 + imbalance`` times its capacity,
    and when ``driver_spike`` and ``reopen_rate_high`` should fire."""
    if imbalance < 0:
        raise ValueError("imbalance must not be negative")
    if not scenario.per_queue_capacity:
        raise ValueError("truth needs a scenario with per_queue_capacity")
    model = TeamModel(scenario)
    t0 = scenario.start.timestamp()
    scopes = ["all", *(f"queue:{name}" for name in model.names)]
    return Truth(
        scenario=name,
        seed=scenario.seed,
        start=stamp(t0),
        end=stamp(t0 + scenario.days * DAY),
        imbalance=imbalance,
        scopes=_intervals(scenario, scopes, _imbalanced(model, 1.0 + imbalance)),
        rules={
            DRIVER_SPIKE: RuleTruth(
                means=f"a tag's expected share of new tickets is at least {SPIKE_FACTOR:g} times"
                " its share without the scenario's effects (from the queues' tag weights;"
                " transfers and recontacts left out)",
                scopes=_intervals(scenario, scopes, _spiking(model, SPIKE_FACTOR)),
            ),
            REOPEN_RATE_HIGH: RuleTruth(
                means=f"the expected share of resolutions reopened is above {REOPEN_RATE:g}"
                " (each queue's reopen share, weighted by its resolutions)",
                scopes=_intervals(scenario, scopes, _reopening(model, REOPEN_RATE)),
            ),
        },
    )


def _intervals(scenario: Scenario, scopes: list[str], hits: Hits) -> dict[str, list[Interval]]:
    """Every hour of the run (at its start, as the simulation sets its rates) for which
    ``hits`` holds, merged into intervals, per scope."""
    t0 = scenario.start.timestamp()
    end = t0 + scenario.days * DAY
    spans: dict[str, list[tuple[float, float]]] = {scope: [] for scope in scopes}
    for hour in range(math.ceil(scenario.days * 24)):
        begin = t0 + hour * HOUR
        for scope, hit in zip(scopes, hits(hour / 24), strict=True):
            if not hit:
                continue
            found = spans[scope]
            if found and found[-1][1] == begin:
                found[-1] = (found[-1][0], min(begin + HOUR, end))
            else:
                found.append((begin, min(begin + HOUR, end)))
    return {
        scope: [Interval(start=stamp(a), end=stamp(b)) for a, b in found]
        for scope, found in spans.items()
    }


def _imbalanced(model: TeamModel, threshold: float) -> Hits:
    def hits(day: float) -> list[bool]:
        work, capacity = model.work(day), model.capacity(day)
        above = [sum(work) >= threshold * sum(capacity)]
        return above + [w >= threshold * c for w, c in zip(work, capacity, strict=True)]

    return hits


def _reopening(model: TeamModel, limit: float) -> Hits:
    def hits(day: float) -> list[bool]:
        work = model.work(day)
        shares = [model.reopen_share(day, name) for name in model.names]
        whole = sum(w * r for w, r in zip(work, shares, strict=True)) / sum(work)
        return [whole > limit, *(share > limit for share in shares)]

    return hits


def _spiking(model: TeamModel, factor: float) -> Hits:
    """A scope's new tickets by tag: the extra tickets of a tagged arrival effect carry its
    tag, the rest the queue's tags (``Scenario.queue_tags``; ``untagged_share`` carry none)."""
    s = model.scenario
    weights = dict(s.queue_tags)
    usual = [_tag_shares(weights.get(name, ()), s.untagged_share) for name in model.names]
    usual_all = _mixed(model.shares, usual)

    def hits(day: float) -> list[bool]:
        arrivals, now = model.arrivals(day), []
        for name, tags in zip(model.names, usual, strict=True):
            extra, tag = model.tagged(day, name)
            shares = Shares(float, {t: (1.0 - extra) * share for t, share in tags.items()})
            if tag:
                shares[tag] += extra
            now.append(shares)
        total = sum(arrivals)
        now_all = _mixed([a / total for a in arrivals], now)
        pairs = [(now_all, usual_all), *zip(now, usual, strict=True)]
        return [_spike(shares, before, factor) for shares, before in pairs]

    return hits


def _tag_shares(weights: tuple[tuple[str, float], ...], untagged: float) -> Shares:
    total = sum(w for _, w in weights)
    return Shares(float, {tag: (1.0 - untagged) * w / total for tag, w in weights})


def _mixed(shares: list[float] | tuple[float, ...], tags: list[Shares]) -> Shares:
    """The tag shares of queues together, each weighted by its share of the arrivals."""
    mixed = Shares(float)
    for share, each in zip(shares, tags, strict=True):
        for tag, part in each.items():
            mixed[tag] += share * part
    return mixed


def _spike(shares: Shares, usual: Shares, factor: float) -> bool:
    return any(share > 0 and share >= factor * usual.get(tag, 0.0) for tag, share in shares.items())


def write_truth(path: Path, found: Truth) -> None:
    with replacing(path) as out:
        out.write(found.to_text())
