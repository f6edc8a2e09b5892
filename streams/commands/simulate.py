"""A reproducible support team, as a stream of ticket lifecycle events: ``flowgauge simulate``.

The simulation is a small discrete-event model driven by one ``random.Random(seed)``:

- **Arrivals** around the clock with a daytime peak and a weekday pattern
  (Monday about 40% above the weekly average, weekends low). A share of them
  are *recontacts*: the requester of a resolved ticket comes back 3 to 7 days
  later with a new ticket.
- **Triage** capacity (assignment, first meaningful reply) works weekdays,
  08:00-18:00 UTC, with a skeleton crew at weekends, so weekend tickets wait
  untouched until Monday morning. P0 tickets go to an on-call engineer at any
  hour. A share is answered by an AI assistant instead; some of those come back.
- **Conversation**: auto-acknowledgements, agent and customer replies, pending
  and on-hold periods, transfers between queues, priority changes, escalations,
  customer chasers while a ticket waits.
- **Resolution** capacity (``closures_per_day`` per calendar day in all, including
  automation and stale closures) also follows working hours: a team closing
  about 190 a day against about 210 arriving, so the backlog grows, mostly over
  the weekend. Resolved tickets are later closed by the system, some are
  reopened within days.

With ``per_queue_capacity`` (the named scenarios of ``streams/commands/scenarios.py``)
the team is modelled: each queue has its own resolve queue and its share of the team's
resolve capacity (a transfer at triage sends the ticket to its new queue's), the rates
come from a ``TeamModel`` (arrivals and capacity as parameters, what a ticket asks of the
team worked out from the shares), and ``Effect`` factors change the arrivals (some or all
queues) or the capacity over a span, on top of a weekly growth of the arrivals. Without
it the stream is exactly what it always was for the same scenario and seed.

Every event is emitted at the simulated time its handler runs (or shortly
after, for a bundle of one ticket), through an output heap, so the stream is in
non-decreasing ``occurred_at`` order.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import random
import sys
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.commands.files import replacing

if TYPE_CHECKING:
    from streams.config import FlowgaugeConfig

Weights = tuple[tuple[str, float], ...]
Event = dict[str, Any]

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY
_MONDAY_EPOCH = 4 * DAY  # 1970-01-05 was a Monday

# Share of a day's arrivals per UTC hour (normalised): night low, daytime peak.
ARRIVAL_HOURS = (
    0.35, 0.30, 0.28, 0.28, 0.30, 0.40, 0.60, 0.90, 1.30, 1.60, 1.75, 1.75,
    1.60, 1.65, 1.70, 1.60, 1.45, 1.25, 1.05, 0.90, 0.80, 0.70, 0.55, 0.45,
)  # fmt: skip
# Share of a weekday's team capacity per UTC hour: 08-18 mostly, thin shoulders.
WORK_HOURS = {
    7: 0.15, 8: 0.8, 9: 1.1, 10: 1.2, 11: 1.2, 12: 0.7, 13: 1.0, 14: 1.2, 15: 1.2,
    16: 1.1, 17: 0.9, 18: 0.3, 19: 0.1,
}  # fmt: skip
# Weekend skeleton crew hours.
WEEKEND_HOURS = dict.fromkeys(range(9, 17), 1.0)

NEW, WORK, WAIT, DONE = range(4)
_PRIORITY_ORDER = ("P0", "P1", "P2", "P3")
# How much earlier than its arrival a ticket counts when the team picks the next one.
_TRIAGE_HEAD_START = {"P0": 2 * DAY, "P1": 6 * HOUR, "P2": 1 * HOUR, "P3": 0.0}
_RESOLVE_HEAD_START = {"P0": 7 * DAY, "P1": 2 * DAY, "P2": 12 * HOUR, "P3": 0.0}
_TIER_HEAD_START = {"enterprise": 8 * HOUR, "business": 3 * HOUR}
# A ticket replied to this often has stopped waiting on its customer (the model's tail).
_MAX_TURNS = 40


@dataclass(frozen=True)
class Effect:
    """A factor on the arrivals, on the team's capacity or on the share of resolutions
    reopened, over a span of the run.

    ``start`` and ``end`` are days since the scenario's start (``end`` excluded), taken at
    the hour: an hour is in the span when it begins in it. ``queues`` empty: every queue.
    ``tag`` (arrivals only): the extra tickets carry this tag instead of their own drivers.
    """

    start: float
    end: float
    factor: float
    queues: tuple[str, ...] = ()
    tag: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError("an effect needs 0 <= start < end (days)")
        if self.factor < 0:
            raise ValueError("an effect's factor must not be negative")

    def applies(self, day: float, queue: str) -> bool:
        return self.start <= day < self.end and (not self.queues or queue in self.queues)


@dataclass(frozen=True)
class Scenario:
    """Everything the simulated support team does, with realistic defaults.

    Shares are probabilities per ticket (or per resolution), rates are per
    calendar day averaged over a week.
    """

    days: float = 28.0
    seed: int = 7
    start: datetime = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, 00:00 UTC
    arrivals_per_day: float = 210.0
    closures_per_day: float = 190.0
    # Triage (assignment and first reply) capacity on a working weekday.
    triage_per_weekday: float = 420.0
    # Each weekend day the skeleton crew works this share of a weekday's capacity.
    weekend_capacity: float = 0.1
    # Relative arrivals Monday..Sunday (normalised to a mean of 1).
    weekday_factors: tuple[float, ...] = (1.40, 1.12, 1.05, 1.00, 0.93, 0.78, 0.72)
    queues: Weights = (("billing", 0.32), ("tech", 0.36), ("accounts", 0.20), ("sales", 0.12))
    channels: Weights = (("email", 0.42), ("chat", 0.26), ("web", 0.20), ("phone", 0.12))
    priorities: Weights = (("P0", 0.015), ("P1", 0.10), ("P2", 0.375), ("P3", 0.51))
    account_tiers: Weights = (
        ("free", 0.50),
        ("pro", 0.32),
        ("business", 0.13),
        ("enterprise", 0.05),
    )
    # Drivers per queue: "login" dominates overall (~30% of tickets).
    queue_tags: tuple[tuple[str, Weights], ...] = (
        ("billing", (("invoice", 0.45), ("refund", 0.45), ("login", 0.10))),
        ("tech", (("bug", 0.42), ("login", 0.36), ("outage", 0.22))),
        ("accounts", (("login", 0.75), ("bug", 0.10), ("invoice", 0.15))),
        ("sales", (("pricing", 0.55), ("refund", 0.20), ("invoice", 0.25))),
    )
    untagged_share: float = 0.06
    reopen_share: float = 0.08  # of human resolutions, reopened within days
    recontact_share: float = 0.06  # of resolutions, same requester back in 3-7 days
    auto_ack_share: float = 0.6  # of email/web/chat tickets acknowledged by a bot first
    ai_resolved_share: float = 0.07  # of tickets resolved by the AI assistant
    ai_return_share: float = 0.25  # of AI resolutions reopened within 48 h
    repeat_requester_share: float = 0.12  # of tickets from someone who wrote before
    transfer_share: float = 0.08  # misrouted at triage, moved to another queue
    priority_change_share: float = 0.06
    pending_share: float = 0.45  # an agent reply that waits on the customer
    on_hold_share: float = 0.06  # waits on an internal team
    stale_share: float = 0.10  # of pending waits the customer never answers
    chase_share: float = 0.25  # of waiting tickets whose customer asks for news
    spam_share: float = 0.015
    duplicate_share: float = 0.03
    close_share: float = 0.55  # of resolutions closed by the system 72 h later
    sentiment_mean: float = 0.05
    # The modelled team (``TeamModel``): a resolve queue per ticket queue, each with its
    # share of the team's capacity, and what changes over the run. Off (the default): one
    # resolve queue for the whole team, sized by arrivals_per_day and closures_per_day.
    per_queue_capacity: bool = False
    # Arrivals per day (weekly average) the team keeps up with: its resolve capacity is the
    # work that many tickets bring. None: closures_per_day less the automatic closures.
    capacity_per_day: float | None = None
    # Shares of the team's resolve capacity per queue; empty: the queues' arrival shares.
    capacity_shares: Weights = ()
    arrival_effects: tuple[Effect, ...] = ()
    # On the resolve capacity of the queues named; triage follows the team's total.
    capacity_effects: tuple[Effect, ...] = ()
    # Compounded: arrivals times (1 + growth) ** weeks since the start.
    arrival_growth_per_week: float = 0.0
    # On ``reopen_share`` of the resolutions in the queues named (a bad release, say).
    reopen_effects: tuple[Effect, ...] = ()

    def __post_init__(self) -> None:
        if self.days <= 0:
            raise ValueError("days must be positive")
        if self.start.utcoffset() is None:
            raise ValueError("start must be an aware datetime")
        if self.arrivals_per_day <= 0 or self.closures_per_day <= 0:
            raise ValueError("arrivals_per_day and closures_per_day must be positive")
        if len(self.weekday_factors) != 7 or min(self.weekday_factors) < 0:
            raise ValueError("weekday_factors needs 7 non-negative values, Monday first")
        for name, value in vars(self).items():
            if name.endswith("_share") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        for name in ("queues", "channels", "priorities", "account_tiers"):
            weights: Weights = getattr(self, name)
            if not weights or any(w < 0 for _, w in weights) or sum(w for _, w in weights) <= 0:
                raise ValueError(f"{name} needs positive weights")
        if any(p not in _PRIORITY_ORDER for p, _ in self.priorities):
            raise ValueError("priorities must be P0..P3")
        self._check_team()

    def _check_team(self) -> None:
        changes = (
            self.arrival_effects
            or self.capacity_effects
            or self.reopen_effects
            or self.arrival_growth_per_week
        )
        modelled = self.capacity_per_day is not None or self.capacity_shares or changes
        if modelled and not self.per_queue_capacity:
            raise ValueError(
                "capacity_per_day, capacity_shares, effects and growth need per_queue_capacity"
            )
        if self.capacity_per_day is not None and self.capacity_per_day <= 0:
            raise ValueError("capacity_per_day must be positive")
        if self.arrival_growth_per_week <= -1:
            raise ValueError("arrival_growth_per_week must be above -1")
        names = {name for name, _ in self.queues}
        shares = self.capacity_shares
        if shares and (
            {name for name, _ in shares} != names
            or len(shares) != len(names)
            or any(w < 0 for _, w in shares)
            or sum(w for _, w in shares) <= 0
        ):
            raise ValueError("capacity_shares needs a non-negative weight for each queue")
        for effect in (*self.arrival_effects, *self.capacity_effects, *self.reopen_effects):
            if not set(effect.queues) <= names:
                raise ValueError(f"an effect names unknown queues: {effect.queues}")
        if any(effect.tag for effect in (*self.capacity_effects, *self.reopen_effects)):
            raise ValueError("only arrival effects tag tickets")
        if any(self.reopen_share * effect.factor > 1.0 for effect in self.reopen_effects):
            raise ValueError("a reopen effect would reopen more than every resolution")


Matrix = tuple[tuple[float, ...], ...]


def _normalised(weights: Weights) -> tuple[float, ...]:
    total = sum(w for _, w in weights)
    return tuple(w / total for _, w in weights)


def _transfer_matrix(s: Scenario) -> Matrix:
    """Where a triaged ticket goes: row = its queue, column = the queue it is worked in."""
    names, shares = [n for n, _ in s.queues], _normalised(s.queues)
    rows = []
    for a, share in enumerate(shares):
        row = [0.0] * len(names)
        if len(names) == 1:
            row[a] = 1.0
            rows.append(tuple(row))
            continue
        row[a] = 1.0 - s.transfer_share
        # ``other_queue``: up to 8 weighted picks for another queue, then the first other.
        missed = share**8
        for b, other in enumerate(shares):
            if b != a and share < 1.0:
                row[b] += s.transfer_share * (1.0 - missed) * other / (1.0 - share)
        row[next(b for b in range(len(names)) if b != a)] += s.transfer_share * missed
        rows.append(tuple(row))
    return tuple(rows)


def _paths(s: Scenario) -> tuple[tuple[float, float], tuple[float, float]]:
    """Per arriving ticket, in expectation: (resolutions the team's resolve queue does,
    resolutions that may bring the requester back), on the path that never meets triage
    (P0 on call, AI answers) and on the path through triage (where it may be transferred).

    It follows the handlers below: ``agent_reply`` waits on the customer (``pending_share``
    / turns, of which ``stale_share`` never come back), holds (``on_hold_share``, first two
    turns) or makes the ticket ready; ``solve`` marks ``duplicate_share`` of first
    resolutions and reopens ``reopen_share`` of the rest (at most twice).
    """
    replies: dict[tuple[int, int], tuple[float, float]] = {}

    def reply(turns: int, reopens: int) -> tuple[float, float]:
        if (turns, reopens) not in replies:
            now = turns + 1
            pending = s.pending_share / now if now < _MAX_TURNS else 0.0
            hold = min(s.on_hold_share, 1.0 - pending) if now <= 2 else 0.0
            again = pending * (1.0 - s.stale_share) + hold
            back = reply(now, reopens) if again else (0.0, 0.0)
            ready = 1.0 - pending - hold
            work, ends = solve(now, reopens)
            replies[turns, reopens] = (
                again * back[0] + ready * (1.0 + work),
                again * back[1] + ready * ends,
            )
        return replies[turns, reopens]

    def solve(turns: int, reopens: int) -> tuple[float, float]:
        duplicate = s.duplicate_share if reopens == 0 else 0.0
        reopen = (1.0 - duplicate) * s.reopen_share if reopens < 2 else 0.0
        work, ends = reply(turns, reopens + 1) if reopen else (0.0, 0.0)
        return reopen * work, reopen * ends + 1.0 - duplicate - reopen

    p0 = dict(s.priorities).get("P0", 0.0) / sum(w for _, w in s.priorities)
    ai = (1.0 - p0) * s.ai_resolved_share
    human = (1.0 - p0) * (1.0 - s.ai_resolved_share) * (1.0 - s.spam_share)
    on_call, returned, fresh = solve(0, 0), reply(0, 1), reply(0, 0)
    untriaged = (p0 * on_call[0], p0 * on_call[1] + ai * (1.0 - s.ai_return_share))
    triaged = tuple(ai * s.ai_return_share * returned[i] + human * fresh[i] for i in (0, 1))
    return untriaged, (triaged[0], triaged[1])


class TeamModel:
    """The expected rates of a ``per_queue_capacity`` scenario, from its parameters alone.

    Per day, as a weekly average (without the weekday and hour factors), at a moment
    ``day`` days into the run; lists follow ``Scenario.queues``:

    - ``arrivals``: tickets created per queue, recontacts included (taken at their level
      for the present arrivals; in the run they echo resolutions 3-7 days back);
    - ``fresh``: the part that is not a recontact, what the simulation draws;
    - ``work``: resolutions the team's resolve queue of each queue has to do for them, after
      transfers, reopens included (at the reopen share of the queue they are worked in);
    - ``capacity``: resolutions that queue's share of the team can do.

    The team's resolve capacity is the work of ``capacity_per_day`` arrivals: a team
    whose arrivals equal ``capacity_per_day`` keeps up exactly, on the weekly average.
    """

    def __init__(self, scenario: Scenario) -> None:
        s = self.scenario = scenario
        self.names = tuple(name for name, _ in s.queues)
        self.shares = _normalised(s.queues)
        self.capacity_shares = _normalised(s.capacity_shares) if s.capacity_shares else self.shares
        (own_work, own_ends), (moved_work, moved_ends) = _paths(s)
        self.moves = moves = _transfer_matrix(s)
        n = range(len(self.names))
        self._work_of: dict[tuple[float, ...], Matrix] = {}
        # Recontacts echo resolutions at the scenario's own reopen share.
        self.recontacts_of: Matrix = tuple(
            tuple(s.recontact_share * (own_ends * (a == b) + moved_ends * moves[a][b]) for b in n)
            for a in n
        )
        self.work_per_ticket = own_work + moved_work
        if s.capacity_per_day is not None:
            self.team = s.capacity_per_day * self.work_per_ticket
        else:
            self.team = _team_per_day(s)

    def arrivals(self, day: float) -> list[float]:
        s = self.scenario
        level = s.arrivals_per_day * (1.0 + s.arrival_growth_per_week) ** (day / 7.0)
        rates = []
        for name, share in zip(self.names, self.shares, strict=True):
            rate = level * share
            for effect in s.arrival_effects:
                if effect.applies(day, name):
                    rate *= effect.factor
            rates.append(rate)
        return rates

    def fresh(self, day: float) -> list[float]:
        arrivals, echo = self.arrivals(day), self.recontacts_of
        return [
            max(arrivals[b] - sum(arrivals[a] * echo[a][b] for a in range(len(arrivals))), 0.0)
            for b in range(len(arrivals))
        ]

    def reopen_factors(self, day: float) -> tuple[float, ...]:
        """Per queue, the factor the reopen effects put on its share of resolutions reopened."""
        factors = []
        for name in self.names:
            factor = 1.0
            for effect in self.scenario.reopen_effects:
                if effect.applies(day, name):
                    factor *= effect.factor
            factors.append(factor)
        return tuple(factors)

    def reopen_share(self, day: float, queue: str) -> float:
        """The share of the resolutions in ``queue`` reopened, ``day`` days into the run."""
        return self.scenario.reopen_share * self.reopen_factors(day)[self.names.index(queue)]

    def work_of(self, factors: tuple[float, ...]) -> Matrix:
        """Resolutions per ticket arriving in a queue (row) done by each queue's resolve queue
        (column), at the reopen shares ``factors`` give each of them."""
        if factors not in self._work_of:
            s, n = self.scenario, range(len(self.names))
            paths = {f: _paths(replace(s, reopen_share=s.reopen_share * f)) for f in set(factors)}
            work = [(paths[f][0][0], paths[f][1][0]) for f in factors]
            self._work_of[factors] = tuple(
                tuple(work[b][0] * (a == b) + work[b][1] * self.moves[a][b] for b in n) for a in n
            )
        return self._work_of[factors]

    def work(self, day: float) -> list[float]:
        arrivals, work = self.arrivals(day), self.work_of(self.reopen_factors(day))
        return [
            sum(arrivals[a] * work[a][b] for a in range(len(arrivals)))
            for b in range(len(arrivals))
        ]

    def capacity(self, day: float) -> list[float]:
        rates = []
        for name, share in zip(self.names, self.capacity_shares, strict=True):
            rate = self.team * share
            for effect in self.scenario.capacity_effects:
                if effect.applies(day, name):
                    rate *= effect.factor
            rates.append(rate)
        return rates

    def tagged(self, day: float, queue: str) -> tuple[float, str]:
        """The share of a queue's fresh arrivals that an effect adds, and the tag it gives."""
        factor, tag = 1.0, ""
        for effect in self.scenario.arrival_effects:
            if effect.tag and effect.factor > 1.0 and effect.applies(day, queue):
                factor *= effect.factor
                tag = tag or effect.tag
        return 1.0 - 1.0 / factor, tag


def _team_per_day(s: Scenario) -> float:
    """The pooled team's resolve capacity: closures less what closes without it."""
    p0 = dict(s.priorities).get("P0", 0.0) / sum(w for _, w in s.priorities)
    human = 1.0 - p0 - s.ai_resolved_share
    automatic = s.arrivals_per_day * (
        p0
        + s.ai_resolved_share
        + human * s.spam_share
        + human * s.pending_share * s.stale_share * 0.8
    )
    return max(s.closures_per_day - automatic, 0.0)


@dataclass(slots=True, eq=False)
class _Ticket:
    id: str
    requester: str
    tier: str
    queue: str
    priority: str
    channel: str
    tags: list[str]
    sentiment: float
    events: int = 0
    gen: int = 0  # bumped on every state change: stale agenda entries are skipped
    state: int = NEW
    turns: int = 0
    reopens: int = 0
    by_ai: bool = False
    quiet_from: float = 0.0  # when the bot's acknowledgement, if any, has gone out


_NOBODY = _Ticket("-", "-", "-", "-", "P3", "-", [], 0.0)

Handler = Callable[[float, _Ticket], None]


class _Picker:
    """Weighted choice with precomputed cumulative weights."""

    __slots__ = ("cum", "names", "total")

    def __init__(self, weights: Weights) -> None:
        self.names = [name for name, _ in weights]
        self.cum: list[float] = []
        total = 0.0
        for _, weight in weights:
            total += weight
            self.cum.append(total)
        self.total = total

    def pick(self, rng: random.Random) -> str:
        index = bisect_right(self.cum, rng.random() * self.total)
        return self.names[min(index, len(self.names) - 1)]


def stamp(seconds: float) -> str:
    """Seconds since the epoch as ISO 8601 UTC, to the second: ``2026-03-02T08:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.floor(seconds)))


class _Simulation:
    """The model's state: the agenda of things to do, the output heap and the team's queues."""

    def __init__(self, scenario: Scenario) -> None:
        s = self.scenario = scenario
        self.rng = random.Random(s.seed)
        self.t0 = s.start.timestamp()
        self.end = self.t0 + s.days * DAY
        self.agenda: list[tuple[float, int, Handler, _Ticket, int]] = []
        self.out: list[tuple[float, int, Event]] = []
        self.unassigned: list[tuple[float, int, _Ticket, int]] = []
        self.ready: list[tuple[float, int, _Ticket, int]] = []
        self.seq = 0
        self.tickets = 0
        self.requesters: list[tuple[str, str]] = []
        self._queues = _Picker(s.queues)
        self._channels = _Picker(s.channels)
        self._priorities = _Picker(s.priorities)
        self._tiers = _Picker(s.account_tiers)
        self._queue_tags = {queue: _Picker(tags) for queue, tags in s.queue_tags}
        mean = sum(s.weekday_factors) / 7
        self._day_factor = [f / mean if mean else 0.0 for f in s.weekday_factors]
        hour_mean = sum(ARRIVAL_HOURS) / 24
        self._arrival_hour = [h / hour_mean for h in ARRIVAL_HOURS]
        work_total = sum(WORK_HOURS.values())
        self._work_hour = {h: w / work_total for h, w in WORK_HOURS.items()}
        weekend_total = sum(WEEKEND_HOURS.values())
        self._weekend_hour = {h: w / weekend_total for h, w in WEEKEND_HOURS.items()}
        # Recontacts are arrivals too: the fresh stream makes up the rest.
        recontacts = s.recontact_share * s.closures_per_day
        self.arrival_per_day = max(s.arrivals_per_day - recontacts, 0.0)
        # Outflow the team does not spend capacity on: on-call P0, AI, spam, stale.
        team_per_day = _team_per_day(s)
        self.resolve_per_weekday = 7 * team_per_day / (5 + 2 * s.weekend_capacity)
        # The modelled team: a resolve queue per ticket queue, rates from a TeamModel.
        self.model: TeamModel | None = None
        self.pools: dict[str, list[tuple[float, int, _Ticket, int]]] = {}
        self._arrive_in: list[Handler] = []
        self._resolve_in: list[Handler] = []
        if s.per_queue_capacity:
            self.model = TeamModel(s)
            self.pools = {name: [] for name in self.model.names}
            self._arrive_in = [self._arriver(name) for name in self.model.names]
            self._resolve_in = [self._resolver(self.pools[name]) for name in self.model.names]
            self.resolve_per_weekday = 7 * self.model.team / (5 + 2 * s.weekend_capacity)

    # -- agenda and output ---------------------------------------------------

    def at(self, when: float, handler: Handler, ticket: _Ticket = _NOBODY) -> None:
        self.seq += 1
        heapq.heappush(self.agenda, (when, self.seq, handler, ticket, ticket.gen))

    def emit(self, when: float, ticket: _Ticket, kind: str, **fields: Any) -> None:
        ticket.events += 1
        self.seq += 1
        event: Event = {
            "schema_version": 1,
            "event_id": f"{ticket.id}-{ticket.events}",
            "ticket_id": ticket.id,
            "type": kind,
            "occurred_at": "",
        }
        event.update(fields)
        heapq.heappush(self.out, (when, self.seq, event))

    def run(self) -> Iterator[Event]:
        self.at(self.t0, self.hour if self.model is None else self.hour_by_queue)
        agenda, out = self.agenda, self.out
        while agenda:
            when, _, handler, ticket, gen = heapq.heappop(agenda)
            if when >= self.end:
                break
            while out and out[0][0] <= when:
                yield self._stamped(heapq.heappop(out))
            if gen == ticket.gen:
                handler(when, ticket)
        while out and out[0][0] < self.end:
            yield self._stamped(heapq.heappop(out))

    @staticmethod
    def _stamped(item: tuple[float, int, Event]) -> Event:
        event = item[2]
        event["occurred_at"] = stamp(item[0])
        return event

    # -- calendar --------------------------------------------------------------

    @staticmethod
    def weekday_hour(when: float) -> tuple[int, int]:
        since_monday = (when - _MONDAY_EPOCH) % WEEK
        return int(since_monday // DAY), int(since_monday % DAY // HOUR)

    def agent_time(self, when: float) -> float:
        """When an agent gets to something that came in at ``when``."""
        day, hour = self.weekday_hour(when)
        if day < 5 and 8 <= hour < 18:
            return when
        rng = self.rng
        if day < 5 and 7 <= hour < 21 and rng.random() < 0.25:
            return when  # someone answers before or after hours
        if day >= 5 and 9 <= hour < 17 and rng.random() < 2 * self.scenario.weekend_capacity:
            return when  # the weekend skeleton crew
        return self.next_shift(when) + rng.uniform(0, 90 * MINUTE)

    @staticmethod
    def next_shift(when: float) -> float:
        """08:00 UTC of the next weekday at or after ``when``."""
        midnight = when - (when % DAY)
        for offset in range(8):
            shift = midnight + offset * DAY + 8 * HOUR
            day = int(((shift - _MONDAY_EPOCH) % WEEK) // DAY)
            if day < 5 and shift >= when:
                return shift
        raise AssertionError("unreachable: a weekday within 8 days")

    def poisson_times(self, start: float, rate_per_hour: float) -> Iterator[float]:
        if rate_per_hour <= 0:
            return
        rng, lam = self.rng, rate_per_hour / HOUR
        moment = start + rng.expovariate(lam)
        while moment < start + HOUR:
            yield moment
            moment += rng.expovariate(lam)

    # -- drivers: arrivals and capacity, hour by hour -------------------------

    def hour(self, when: float, _: _Ticket) -> None:
        s = self.scenario
        day, hour = self.weekday_hour(when)
        arrivals = self.arrival_per_day * self._day_factor[day] * self._arrival_hour[hour] / 24
        for moment in self.poisson_times(when, arrivals):
            self.at(moment, self.arrive)
        if day < 5:
            share = self._work_hour.get(hour, 0.0)
            resolve, triage = self.resolve_per_weekday * share, s.triage_per_weekday * share
        else:
            share = self._weekend_hour.get(hour, 0.0) * s.weekend_capacity
            resolve, triage = self.resolve_per_weekday * share, s.triage_per_weekday * share
        for moment in self.poisson_times(when, triage):
            self.at(moment, self.triage)
        for moment in self.poisson_times(when, resolve):
            self.at(moment, self.resolve)
        if when + HOUR < self.end:
            self.at(when + HOUR, self.hour)

    def hour_by_queue(self, when: float, _: _Ticket) -> None:
        """``hour`` for the modelled team: arrivals and resolve capacity per queue."""
        model, s = self.model, self.scenario
        assert model is not None
        for handler, rate in zip(self._arrive_in, self.fresh_rates(when, model), strict=True):
            for moment in self.poisson_times(when, rate):
                self.at(moment, handler)
        capacity = model.capacity(self.run_day(when))
        staffing = sum(capacity) / model.team if model.team > 0 else 1.0
        triage = s.triage_per_weekday * self.work_share(when) * staffing
        for moment in self.poisson_times(when, triage):
            self.at(moment, self.triage)
        for handler, rate in zip(self._resolve_in, self.resolve_rates(when, model), strict=True):
            for moment in self.poisson_times(when, rate):
                self.at(moment, handler)
        if when + HOUR < self.end:
            self.at(when + HOUR, self.hour_by_queue)

    def fresh_rates(self, when: float, model: TeamModel) -> list[float]:
        """Per queue, the fresh tickets ``model`` expects in the hour starting at ``when``."""
        day, hour = self.weekday_hour(when)
        season = self._day_factor[day] * self._arrival_hour[hour] / 24
        return [rate * season for rate in model.fresh(self.run_day(when))]

    def resolve_rates(self, when: float, model: TeamModel) -> list[float]:
        """Per queue, the resolve attempts ``model`` gives the hour starting at ``when`` (an
        attempt on an empty resolve queue resolves nothing)."""
        to_weekday = 7 / (5 + 2 * self.scenario.weekend_capacity)
        share = self.work_share(when)
        return [rate * to_weekday * share for rate in model.capacity(self.run_day(when))]

    def work_share(self, when: float) -> float:
        """The share of a weekday's work done in the hour starting at ``when``."""
        day, hour = self.weekday_hour(when)
        if day < 5:
            return self._work_hour.get(hour, 0.0)
        return self._weekend_hour.get(hour, 0.0) * self.scenario.weekend_capacity

    def run_day(self, when: float) -> float:
        """Days since the start to the beginning of the run's hour ``when`` is in."""
        return math.floor((when - self.t0) / HOUR) / 24

    def _arriver(self, queue: str) -> Handler:
        def arrive_in(when: float, _: _Ticket) -> None:
            assert self.model is not None
            share, tag = self.model.tagged(self.run_day(when), queue)
            extra = share > 0 and self.rng.random() < share
            self.open_ticket(when, _NOBODY, queue, tag if extra else "")

        return arrive_in

    def _resolver(self, pool: list[tuple[float, int, _Ticket, int]]) -> Handler:
        def resolve_in(when: float, _: _Ticket) -> None:
            ticket = self.take(pool, WORK)
            if ticket is not None:
                self.solve(when, ticket)

        return resolve_in

    def new_requester(self) -> tuple[str, str]:
        rng = self.rng
        if self.requesters and rng.random() < self.scenario.repeat_requester_share:
            return self.requesters[rng.randrange(len(self.requesters))]
        requester = (f"C{len(self.requesters) + 1:06d}", self._tiers.pick(rng))
        self.requesters.append(requester)
        return requester

    def arrive(self, when: float, source: _Ticket) -> None:
        self.open_ticket(when, source, None, "")

    def open_ticket(self, when: float, source: _Ticket, queue: str | None, tag: str) -> None:
        """A new ticket: fresh (in ``queue``, or one picked, tagged ``tag`` if given), or
        a recontact of ``source``."""
        rng, s = self.rng, self.scenario
        self.tickets += 1
        ticket_id = f"T{self.tickets:06d}"
        if source is _NOBODY:
            requester, tier = self.new_requester()
            if queue is None:
                queue = self._queues.pick(rng)
            tags = [tag] if tag else self.pick_tags(queue)
            priority = self._priorities.pick(rng)
            if tier == "enterprise" and priority in ("P2", "P3") and rng.random() < 0.4:
                priority = "P1" if priority == "P2" else "P2"
            if "outage" in tags and priority in ("P2", "P3") and rng.random() < 0.35:
                priority = "P1"
            sentiment = rng.gauss(s.sentiment_mean, 0.35) - (0.25 if priority < "P2" else 0.0)
        else:  # a recontact: same requester and problem, less patience
            requester, tier, queue = source.requester, source.tier, source.queue
            tags = list(source.tags)
            priority = source.priority
            if priority == "P3" and rng.random() < 0.3:
                priority = "P2"
            sentiment = source.sentiment - rng.uniform(0.1, 0.4)
        ticket = _Ticket(
            ticket_id,
            requester,
            tier,
            queue,
            priority,
            self._channels.pick(rng),
            tags,
            _clip(sentiment),
        )
        self.emit(
            when,
            ticket,
            "created",
            queue=queue,
            priority=priority,
            channel=ticket.channel,
            requester_id=requester,
            account_tier=tier,
            tags=tags,
            sentiment=ticket.sentiment,
            actor="customer",
        )
        if ticket.channel != "phone" and rng.random() < s.auto_ack_share:
            ticket.quiet_from = when + rng.uniform(2, 90)
            self.emit(ticket.quiet_from, ticket, "agent_replied", actor="bot", meaningful=False)
        if priority == "P0":
            self.at(when + rng.uniform(3, 12) * MINUTE, self.on_call, ticket)
        elif rng.random() < s.ai_resolved_share:
            self.at(when + rng.uniform(1, 15) * MINUTE, self.ai_answer, ticket)
        else:
            self.queue_for_triage(when, ticket)

    def pick_tags(self, queue: str) -> list[str]:
        rng = self.rng
        if rng.random() < self.scenario.untagged_share:
            return []
        picker = self._queue_tags.get(queue)
        return [picker.pick(rng)] if picker is not None else []

    def queue_for_triage(self, when: float, ticket: _Ticket) -> None:
        ticket.state = NEW
        ticket.gen += 1
        key = when - _TRIAGE_HEAD_START[ticket.priority] - _TIER_HEAD_START.get(ticket.tier, 0.0)
        self.seq += 1
        heapq.heappush(self.unassigned, (key, self.seq, ticket, ticket.gen))

    def make_ready(self, when: float, ticket: _Ticket) -> None:
        """Answered and waiting for the work that solves it: the team's resolve queue."""
        ticket.state = WORK
        ticket.gen += 1
        key = when - _RESOLVE_HEAD_START[ticket.priority] - _TIER_HEAD_START.get(ticket.tier, 0.0)
        self.seq += 1
        pool = self.pools[ticket.queue] if self.pools else self.ready
        heapq.heappush(pool, (key, self.seq, ticket, ticket.gen))
        if self.rng.random() < self.scenario.chase_share:
            self.at(when + self.rng.uniform(20, 60) * HOUR, self.chase, ticket)

    @staticmethod
    def take(pool: list[tuple[float, int, _Ticket, int]], state: int) -> _Ticket | None:
        while pool:
            _, _, ticket, gen = heapq.heappop(pool)
            if ticket.gen == gen and ticket.state == state:
                return ticket
        return None

    # -- the paths of a ticket ---------------------------------------------------

    def on_call(self, when: float, ticket: _Ticket) -> None:
        """P0: the on-call engineer takes it at any hour and solves it within hours."""
        rng = self.rng
        ticket.state, ticket.gen = WORK, ticket.gen + 1
        self.emit(when, ticket, "assigned", actor="agent")
        self.emit(
            when + rng.uniform(2, 8) * MINUTE,
            ticket,
            "agent_replied",
            actor="agent",
            meaningful=True,
        )
        if rng.random() < 0.6:
            self.emit(when + rng.uniform(8, 12) * MINUTE, ticket, "escalated", actor="agent")
        done = when + 15 * MINUTE + min(rng.expovariate(1 / (70 * MINUTE)), 6 * HOUR)
        self.at(done, self.solve, ticket)

    def ai_answer(self, when: float, ticket: _Ticket) -> None:
        rng, s = self.rng, self.scenario
        ticket.by_ai = True
        self.emit(when, ticket, "agent_replied", actor="bot", meaningful=True)
        done = when + rng.uniform(1, 5) * MINUTE
        self.finish(done, ticket, "ai_resolved", "bot")
        if rng.random() < s.ai_return_share:
            self.at(done + rng.uniform(1, 48) * HOUR, self.reopen, ticket)
        else:
            self.after_resolution(done, ticket)

    def triage(self, when: float, _: _Ticket) -> None:
        ticket = self.take(self.unassigned, NEW)
        if ticket is None:
            return
        rng, s = self.rng, self.scenario
        self.emit(when, ticket, "assigned", actor="agent")
        ticket.state, ticket.gen = WORK, ticket.gen + 1
        if rng.random() < s.spam_share and ticket.reopens == 0:
            self.finish(max(when, ticket.quiet_from) + rng.uniform(10, 60), ticket, "spam", "agent")
            return
        later = when + rng.uniform(20, 120)
        if rng.random() < s.transfer_share:
            ticket.queue = self.other_queue(ticket.queue)
            self.emit(later, ticket, "transferred", queue=ticket.queue, actor="agent")
            later += rng.uniform(10, 60)
        if rng.random() < s.priority_change_share:
            index = _PRIORITY_ORDER.index(ticket.priority)
            up = rng.random() < 0.55 and index > 1
            ticket.priority = _PRIORITY_ORDER[index - 1 if up else min(index + 1, 3)]
            self.emit(later, ticket, "priority_changed", priority=ticket.priority, actor="agent")
        reply = later + 60 + min(rng.expovariate(1 / (20 * MINUTE)), 2 * HOUR)
        self.at(reply, self.agent_reply, ticket)

    def other_queue(self, queue: str) -> str:
        for _ in range(8):
            other = self._queues.pick(self.rng)
            if other != queue:
                return other
        names = [name for name, _ in self.scenario.queues if name != queue]
        return names[0] if names else queue

    def agent_reply(self, when: float, ticket: _Ticket) -> None:
        rng, s = self.rng, self.scenario
        self.emit(when, ticket, "agent_replied", actor="agent", meaningful=True)
        ticket.turns += 1
        pending = s.pending_share / ticket.turns
        roll = rng.random()
        soon = when + rng.uniform(5, 60)
        if roll < pending:
            ticket.state, ticket.gen = WAIT, ticket.gen + 1
            self.emit(soon, ticket, "status_changed", status="pending", actor="agent")
            if rng.random() < s.stale_share:
                self.at(soon + 7 * DAY, self.stale, ticket)
            else:
                wait = min(max(rng.lognormvariate(math.log(5 * HOUR), 1.0), 10 * MINUTE), 4 * DAY)
                self.at(soon + wait, self.customer_reply, ticket)
        elif roll < pending + s.on_hold_share and ticket.turns <= 2:
            ticket.state, ticket.gen = WAIT, ticket.gen + 1
            self.emit(soon, ticket, "status_changed", status="on_hold", actor="agent")
            if ticket.priority in ("P0", "P1") or rng.random() < 0.3:
                self.emit(soon + 30, ticket, "escalated", actor="agent")
            self.at(soon + rng.uniform(4, 72) * HOUR, self.hold_over, ticket)
        else:
            self.make_ready(soon, ticket)

    def customer_reply(self, when: float, ticket: _Ticket) -> None:
        rng = self.rng
        ticket.sentiment = _clip(ticket.sentiment + rng.gauss(-0.03, 0.15))
        ticket.state, ticket.gen = WORK, ticket.gen + 1
        self.emit(when, ticket, "customer_replied", actor="customer", sentiment=ticket.sentiment)
        self.emit(when + rng.uniform(1, 5), ticket, "status_changed", status="open", actor="system")
        delay = min(rng.expovariate(1 / (45 * MINUTE)), 6 * HOUR)
        self.at(max(self.agent_time(when + delay), when + 10), self.agent_reply, ticket)

    def hold_over(self, when: float, ticket: _Ticket) -> None:
        moment = self.agent_time(when)
        ticket.state, ticket.gen = WORK, ticket.gen + 1
        self.emit(moment, ticket, "status_changed", status="open", actor="agent")
        self.at(moment + self.rng.uniform(5, 40) * MINUTE, self.agent_reply, ticket)

    def chase(self, when: float, ticket: _Ticket) -> None:
        """The customer asks for news while the ticket waits in the resolve queue."""
        rng = self.rng
        ticket.sentiment = _clip(ticket.sentiment - rng.uniform(0.05, 0.25))
        self.emit(when, ticket, "customer_replied", actor="customer", sentiment=ticket.sentiment)
        if rng.random() < 0.5:
            self.at(self.agent_time(when + rng.uniform(10, 120) * MINUTE), self.update, ticket)
        if rng.random() < 0.35:
            self.at(when + rng.uniform(20, 60) * HOUR, self.chase, ticket)

    def update(self, when: float, ticket: _Ticket) -> None:
        """A holding reply ("we are on it"): the ticket stays in the resolve queue."""
        self.emit(when, ticket, "agent_replied", actor="agent", meaningful=True)

    def resolve(self, when: float, _: _Ticket) -> None:
        ticket = self.take(self.ready, WORK)
        if ticket is not None:
            self.solve(when, ticket)

    def solve(self, when: float, ticket: _Ticket) -> None:
        rng, s = self.rng, self.scenario
        duplicate = ticket.reopens == 0 and rng.random() < s.duplicate_share
        self.finish(when, ticket, "duplicate" if duplicate else "solved", "agent")
        if not duplicate and ticket.reopens < 2 and rng.random() < self.reopen_share(when, ticket):
            delay = min(max(rng.lognormvariate(math.log(20 * HOUR), 0.9), 30 * MINUTE), 6 * DAY)
            self.at(when + delay, self.reopen, ticket)
        elif not duplicate:
            self.after_resolution(when, ticket)

    def reopen_share(self, when: float, ticket: _Ticket) -> float:
        if self.model is None:
            return self.scenario.reopen_share
        return self.model.reopen_share(self.run_day(when), ticket.queue)

    def stale(self, when: float, ticket: _Ticket) -> None:
        self.finish(when, ticket, "stale", "system")

    def finish(self, when: float, ticket: _Ticket, resolution: str, actor: str) -> None:
        ticket.state, ticket.gen = DONE, ticket.gen + 1
        self.emit(when, ticket, "resolved", resolution=resolution, actor=actor)
        if self.rng.random() < self.scenario.close_share:
            self.at(when + 72 * HOUR + self.rng.uniform(0, HOUR), self.close, ticket)

    def close(self, when: float, ticket: _Ticket) -> None:
        self.emit(when, ticket, "closed", actor="system")

    def after_resolution(self, when: float, ticket: _Ticket) -> None:
        """Some requesters come back with a new ticket: the problem was not solved."""
        rng = self.rng
        if rng.random() < self.scenario.recontact_share:
            self.at(when + rng.uniform(3, 7) * DAY, self.arrive, _recontact_of(ticket))

    def reopen(self, when: float, ticket: _Ticket) -> None:
        rng = self.rng
        ticket.reopens += 1
        ticket.sentiment = _clip(ticket.sentiment - rng.uniform(0.1, 0.3))
        self.emit(when, ticket, "reopened", actor="customer", sentiment=ticket.sentiment)
        if ticket.by_ai:  # back from the bot: a person has to pick it up now
            ticket.by_ai = False
            self.queue_for_triage(when, ticket)
            return
        ticket.state, ticket.gen = WORK, ticket.gen + 1
        delay = min(rng.expovariate(1 / HOUR), 8 * HOUR)
        self.at(max(self.agent_time(when + delay), when + 10), self.agent_reply, ticket)


def _recontact_of(ticket: _Ticket) -> _Ticket:
    """A frozen copy: the source keeps changing, the recontact takes it as it was."""
    return _Ticket(
        ticket.id,
        ticket.requester,
        ticket.tier,
        ticket.queue,
        ticket.priority,
        ticket.channel,
        list(ticket.tags),
        ticket.sentiment,
    )


def _clip(value: float) -> float:
    return round(max(-1.0, min(1.0, value)), 2)


def generate_events(scenario: Scenario) -> Iterator[Event]:
    """The scenario's events as TicketEvent dicts, in non-decreasing occurred_at order.

    Deterministic: the same scenario (and seed) always gives the same events.
    """
    return _Simulation(scenario).run()


def encode(event: Mapping[str, Any]) -> bytes:
    """One event as compact JSON bytes, as it goes on the topic or in a JSONL line."""
    return json.dumps(event, separators=(",", ":")).encode()


def _event_seconds(event: Mapping[str, Any]) -> float:
    return datetime.fromisoformat(str(event["occurred_at"])).timestamp()


async def paced(
    events: Iterable[Mapping[str, Any]], speed: float | None, chunk: float = 0.2
) -> AsyncIterator[bytes]:
    """Encoded events, released at ``speed`` simulated seconds per real second.

    The first event goes at once; each later one when the real time elapsed
    matches its event-time distance from the first. Waits are cut into sleeps
    of at most ``chunk`` seconds so cancellation is prompt. ``speed=None``
    releases everything at once, yielding to the loop now and then.
    """
    if speed is not None and speed <= 0:
        raise ValueError("speed must be positive (or None for flat out)")
    loop = asyncio.get_running_loop()
    origin: tuple[float, float] | None = None
    for count, event in enumerate(events):
        if speed is None:
            if count % 500 == 0:
                await asyncio.sleep(0)
        else:
            moment = _event_seconds(event)
            if origin is None:
                origin = (moment, loop.time())
            due = origin[1] + (moment - origin[0]) / speed
            while (wait := due - loop.time()) > 0:
                await asyncio.sleep(min(wait, chunk))
        yield encode(event)


@dataclass(slots=True)
class _Tally:
    events: int = 0
    tickets: int = 0
    last: str = ""

    def count(self, events: Iterable[Event]) -> Iterator[Event]:
        for event in events:
            self.events += 1
            if event["type"] == "created":
                self.tickets += 1
            self.last = event["occurred_at"]
            yield event


def run_simulator(
    config: FlowgaugeConfig, scenario: Scenario, speed: float | None, output: Path | None
) -> int:
    """Write the scenario as JSONL to ``output``, or publish it to the input topic, paced."""
    tally = _Tally()
    events = tally.count(generate_events(scenario))
    what = (
        f"{scenario.days:g} simulated days from {scenario.start.isoformat()}, seed {scenario.seed}"
    )
    if output is not None:
        with replacing(output, "wb") as sink:
            for event in events:
                sink.write(encode(event) + b"\n")
        print(
            f"wrote {tally.events} events of {tally.tickets} tickets ({what}) to {output}",
            file=sys.stderr,
        )
        return 0

    from streams.commands.replay import publish

    pace = "flat out" if speed is None else f"{speed:g}x"
    try:
        sent = asyncio.run(publish(config, paced(events, speed)))
    except KeyboardInterrupt:
        print(
            f"stopped after {tally.events} events of {tally.tickets} tickets "
            f"(event time {tally.last or 'none'})",
            file=sys.stderr,
        )
        return 130
    print(
        f"published {sent} events of {tally.tickets} tickets ({what}, {pace}) to ticket-events",
        file=sys.stderr,
    )
    return 0
