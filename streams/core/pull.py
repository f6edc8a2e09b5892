"""The pull list: per queue, the open tickets to work next, by a weighted score of what the
events carry, with the parts of each score (why a ticket ranks where it does).

Each part is a number from 0 to 1, and the score their weighted sum:

- ``age``: time since the ticket first opened, over ``age_full`` (24 h: by then a customer
  has gone elsewhere), at most 1;
- ``untouched``: 1 while no meaningful agent reply has reached it, ever;
- ``sla``: the share of its nearest SLA target used up (business time), 1 once breached;
- ``priority``: P0 1, P1 2/3, P2 1/3, P3 0;
- ``tier``: the account tier's value from ``tiers`` (0 for a tier not named);
- ``sentiment``: how negative the latest sentiment is (-1 gives 1; 0 or above gives 0).

Paused tickets (pending, on hold) wait on someone else and are left out, as are done ones
(they are not in the index). Ties go to the smaller ticket id.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import mul
from typing import Literal, get_args

from sortedcontainers import SortedList

from streams.core.aging import OpenTicket, ScopeAging
from streams.core.sla import TARGETS, SlaPolicy
from streams.core.timeline import US_PER_SECOND

Part = Literal["age", "untouched", "sla", "priority", "tier", "sentiment"]
PARTS: tuple[Part, ...] = get_args(Part)
PRIORITY_VALUES = {"P0": 1.0, "P1": 2 / 3, "P2": 1 / 3, "P3": 0.0}


def _default_weights() -> dict[Part, float]:
    return {
        "age": 0.25,
        "untouched": 0.25,
        "sla": 0.20,
        "priority": 0.15,
        "tier": 0.10,
        "sentiment": 0.05,
    }


def _default_tiers() -> dict[str, float]:
    return {"enterprise": 1.0, "business": 0.5}


@dataclass(frozen=True, slots=True)
class PullPolicy:
    top: int = 10
    weights: dict[Part, float] = field(default_factory=_default_weights)
    tiers: dict[str, float] = field(default_factory=_default_tiers)  # lower-case names
    age_full_us: int = 24 * 3600 * US_PER_SECOND


@dataclass(frozen=True, slots=True)
class Pick:
    """One ticket of a pull list: its rank, score and parts."""

    rank: int
    ticket_id: str
    score: float
    parts: dict[Part, float]


@dataclass(frozen=True, slots=True)
class PullList:
    as_of_us: int
    scope: str  # queue:NAME
    open: int  # open tickets in the queue, paused ones included
    candidates: int  # of them, the ones not paused
    picks: tuple[Pick, ...]


def pull_list(
    scope: str,
    aging: ScopeAging,
    as_of_us: int,
    policy: PullPolicy,
    sla: SlaPolicy,
    rankings: Rankings | None = None,
) -> PullList:
    """The top ``policy.top`` tickets of the queue whose aging index is ``aging`` (settled
    as of ``as_of_us``), highest score first.

    The SLA part is the dear one (a clock brought forward in business time), and the age
    part moves with every hour: tickets are visited by their score with both at their most
    (their weights), which moves only with the ticket's replies and traits and so is kept
    from hour to hour (``Ranking``). The visit stops once that cannot reach the last of the
    top, so a long queue costs about ``top`` clocks, and an hour re-ranks only the tickets
    that changed."""
    weights = tuple(policy.weights.get(name, 0.0) for name in PARTS)
    ranking = (RANKINGS if rankings is None else rankings).of(scope, aging, policy)
    ranking.catch_up(weights)
    tickets = aging.tickets
    best: list[tuple[float, str, dict[Part, float]]] = []  # (-score, ticket_id, parts)
    for entry in ranking.order:
        # No score is above its bound: from here on none can come before the last of the top.
        if len(best) == policy.top and entry > best[-1][:2]:
            break
        ticket_id = entry[1]
        ticket = tickets[ticket_id]
        parts = dict(zip(PARTS, _cheap_parts(ticket, as_of_us, policy), strict=True))
        parts["sla"] = round(_sla_used(ticket, as_of_us, sla), 6)
        insort(best, (-_score(parts.values(), weights), ticket_id, parts))
        del best[policy.top :]
    picks = tuple(
        Pick(rank, ticket_id, -negative, parts)
        for rank, (negative, ticket_id, parts) in enumerate(best, 1)
    )
    return PullList(as_of_us, scope, len(tickets), len(ranking.bounds), picks)


@dataclass(slots=True)
class Ranking:
    """A queue's candidates (open, not paused) in the order the pull list visits them,
    kept between whole hours: by their bound, the score with the age and SLA parts at their
    most, which moves only with the ticket's replies and traits. An hour re-ranks only the
    tickets its aging index says changed (``touched``): ranking every ticket of a backlog
    every hour was most of the pull list's cost."""

    aging: ScopeAging  # the index read: another one (restored, or a new scope) is read afresh
    policy: PullPolicy
    order: SortedList = field(default_factory=SortedList)  # (-bound, ticket_id)
    bounds: dict[str, float] = field(default_factory=dict)

    def catch_up(self, weights: tuple[float, ...]) -> None:
        """Re-rank the tickets that changed since the last read."""
        tickets, touched = self.aging.tickets, self.aging.touched
        assert touched is not None  # set by ``Rankings.of``
        for ticket_id in touched:
            value = self.bounds.pop(ticket_id, None)
            if value is not None:
                self.order.remove((-value, ticket_id))
            ticket = tickets.get(ticket_id)
            if ticket is not None and not (ticket.traits is not None and ticket.traits.paused):
                value = self.bounds[ticket_id] = _bound(ticket, self.policy, weights)
                self.order.add((-value, ticket_id))
        touched.clear()


class Rankings:
    """The ``Ranking`` of each queue read, by scope.

    One reader per index: ``of`` takes the index's ``touched`` over, and ``catch_up`` clears
    it, so a second ``Rankings`` over the same live index would take changes the first has
    yet to read (``RANKINGS`` is the process's; a test gives another one a copy)."""

    def __init__(self) -> None:
        self.by_scope: dict[str, Ranking] = {}

    def of(self, scope: str, aging: ScopeAging, policy: PullPolicy) -> Ranking:
        held = self.by_scope.get(scope)
        if held is None or held.aging is not aging or held.policy is not policy:
            held = self.by_scope[scope] = Ranking(aging, policy)
            aging.touched = set(aging.tickets)  # as if every ticket had just changed
        return held


RANKINGS = Rankings()


def _cheap_parts(ticket: OpenTicket, as_of_us: int, policy: PullPolicy) -> tuple[float, ...]:
    """Every part in ``PARTS`` order, rounded to 6 decimals, but ``sla`` left at 0
    (``pull_list`` sets it)."""
    traits = ticket.traits
    age = round(min(1.0, max(0.0, (as_of_us - ticket.first_open_us) / policy.age_full_us)), 6)
    untouched = 0.0 if ticket.replied else 1.0
    if traits is None:
        return (age, untouched, 0.0, 0.0, 0.0, 0.0)
    sentiment = traits.sentiment
    return (
        age,
        untouched,
        0.0,
        round(PRIORITY_VALUES.get(traits.priority, 0.0), 6),
        policy.tiers.get((traits.tier or "").lower(), 0.0),
        round(min(1.0, max(0.0, -sentiment)), 6) if sentiment is not None else 0.0,
    )


def _bound(ticket: OpenTicket, policy: PullPolicy, weights: tuple[float, ...]) -> float:
    """The ticket's score at its most, a day old and breached: while its replies and traits
    stay the same, no hour's score is above it (the same sum of the same parts, none
    larger, rounded the same way: never more)."""
    parts = dict(zip(PARTS, _cheap_parts(ticket, ticket.first_open_us, policy), strict=True))
    return _score((parts | {"age": 1.0, "sla": 1.0}).values(), weights)


def _sla_used(ticket: OpenTicket, as_of_us: int, sla: SlaPolicy) -> float:
    """The largest share of a target still open to breach used up as of ``as_of_us``."""
    if ticket.clock is None:
        return 0.0
    clock = ticket.clock.advanced(as_of_us, sla)
    used = 0.0
    for target in TARGETS:
        state = clock.of(target)
        if state.final is not None:
            continue  # stopped for good (a first response given): nothing left to risk
        limit = clock.targets.of(target)
        used = max(used, min(1.0, state.elapsed_us / limit) if limit else 1.0)
    return used


def _score(parts: Iterable[float], weights: tuple[float, ...]) -> float:
    """The weighted sum of the parts (in ``PARTS`` order, as weighted), rounded to 6 decimals."""
    total: float = sum(map(mul, weights, parts))
    return round(total, 6)
