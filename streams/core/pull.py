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

import heapq
from bisect import insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import mul
from typing import Literal, get_args

from streams.core.aging import OpenTicket
from streams.core.sla import TARGETS, SlaPolicy
from streams.core.ticket import Traits
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
    tickets: dict[str, OpenTicket],
    as_of_us: int,
    policy: PullPolicy,
    sla: SlaPolicy,
) -> PullList:
    """The top ``policy.top`` tickets of ``tickets`` (the queue's open tickets as of
    ``as_of_us``), highest score first.

    The SLA part is the dear one (a clock brought forward in business time): tickets are
    visited by their score without it plus its most (its weight), and the visit stops once
    that cannot reach the last of the top, so a long queue costs about ``top`` clocks."""
    weights = tuple(policy.weights.get(name, 0.0) for name in PARTS)
    sla_weight = policy.weights.get("sla", 0.0)
    # A ticket a day old has the whole age part: its bound moves only with its replies
    # and traits, and is kept from the last hour while those stay the same objects.
    aged_since = as_of_us - policy.age_full_us
    kept = AGED_BOUNDS.of(scope, policy)
    bounds: dict[str, AgedBound] = {}

    def bound(ticket_id: str, ticket: OpenTicket) -> float:
        aged = ticket.first_open_us <= aged_since
        known = kept.get(ticket_id) if aged else None
        if known is None or not known.holds(ticket):
            value = _score(_cheap_parts(ticket, as_of_us, policy), weights) + sla_weight
            if not aged:
                return value
            known = AgedBound(ticket, ticket.replied, ticket.traits, value)
        bounds[ticket_id] = known
        return known.value

    # A heap, not a sort: the visit reads about ``top`` of them. (-bound, ticket_id) is
    # unique, so it pops in the order a sort would give.
    bounded = [
        (-bound(ticket_id, ticket), ticket_id)
        for ticket_id, ticket in tickets.items()
        if not (ticket.traits is not None and ticket.traits.paused)
    ]
    AGED_BOUNDS.keep(scope, policy, bounds)
    heapq.heapify(bounded)
    candidates = len(bounded)
    best: list[tuple[float, str, dict[Part, float]]] = []  # (-score, ticket_id, parts)
    while bounded:
        negative_bound, ticket_id = heapq.heappop(bounded)
        # Scores are rounded to 6 decimals: a bound this far below the last cannot tie it.
        if len(best) == policy.top and -negative_bound < -best[-1][0] - 1e-6:
            break
        ticket = tickets[ticket_id]
        parts = dict(zip(PARTS, _cheap_parts(ticket, as_of_us, policy), strict=True))
        parts["sla"] = round(_sla_used(ticket, as_of_us, sla), 6)
        insort(best, (-_score(parts.values(), weights), ticket_id, parts))
        del best[policy.top :]
    picks = tuple(
        Pick(rank, ticket_id, -negative, parts)
        for rank, (negative, ticket_id, parts) in enumerate(best, 1)
    )
    return PullList(as_of_us, scope, len(tickets), candidates, picks)


@dataclass(frozen=True, slots=True)
class AgedBound:
    """A day-old ticket's bound, and what it was worked out from."""

    ticket: OpenTicket
    replied: bool
    traits: Traits | None
    value: float

    def holds(self, ticket: OpenTicket) -> bool:
        return (
            self.ticket is ticket
            and self.replied == ticket.replied
            and (self.traits is ticket.traits)
        )


class AgedBounds:
    """Per queue, the bounds of its day-old tickets at the last hour read, and the policy
    they were worked out with: most of a backlog is older than a day, and scoring each of
    its tickets every hour was most of the pull list's cost."""

    def __init__(self) -> None:
        self.by_scope: dict[str, tuple[PullPolicy, dict[str, AgedBound]]] = {}

    def of(self, scope: str, policy: PullPolicy) -> dict[str, AgedBound]:
        held = self.by_scope.get(scope)
        return held[1] if held is not None and held[0] is policy else {}

    def keep(self, scope: str, policy: PullPolicy, bounds: dict[str, AgedBound]) -> None:
        self.by_scope[scope] = (policy, bounds)


AGED_BOUNDS = AgedBounds()


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
