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
from dataclasses import dataclass, field
from operator import mul
from typing import Literal, get_args

from streams.core.aging import OpenTicket
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
    bounded = sorted(
        (-(_score(parts, weights) + sla_weight), ticket_id, parts)
        for ticket_id, ticket in tickets.items()
        if not (ticket.traits is not None and ticket.traits.paused)
        for parts in [_cheap_parts(ticket, as_of_us, policy)]
    )
    best: list[tuple[float, str, dict[Part, float]]] = []  # (-score, ticket_id, parts)
    for negative_bound, ticket_id, parts in bounded:
        # Scores are rounded to 6 decimals: a bound this far below the last cannot tie it.
        if len(best) == policy.top and -negative_bound < -best[-1][0] - 1e-6:
            break
        parts["sla"] = round(_sla_used(tickets[ticket_id], as_of_us, sla), 6)
        insort(best, (-_score(parts, weights), ticket_id, parts))
        del best[policy.top :]
    picks = tuple(
        Pick(rank, ticket_id, -negative, parts)
        for rank, (negative, ticket_id, parts) in enumerate(best, 1)
    )
    return PullList(as_of_us, scope, len(tickets), len(bounded), picks)


def _cheap_parts(ticket: OpenTicket, as_of_us: int, policy: PullPolicy) -> dict[Part, float]:
    """Every part, rounded to 6 decimals, but ``sla`` left at 0 (``pull_list`` sets it)."""
    traits = ticket.traits
    sentiment = traits.sentiment if traits is not None else None
    age = min(1.0, max(0.0, (as_of_us - ticket.first_open_us) / policy.age_full_us))
    return {
        "age": round(age, 6),
        "untouched": 0.0 if ticket.replied else 1.0,
        "sla": 0.0,
        "priority": round(PRIORITY_VALUES.get(traits.priority, 0.0), 6) if traits else 0.0,
        "tier": policy.tiers.get((traits.tier or "").lower(), 0.0) if traits else 0.0,
        "sentiment": round(min(1.0, max(0.0, -sentiment)), 6) if sentiment is not None else 0.0,
    }


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


def _score(parts: dict[Part, float], weights: tuple[float, ...]) -> float:
    """The weighted sum of the parts (in ``PARTS`` order, as weighted), rounded to 6 decimals."""
    total: float = sum(map(mul, weights, parts.values()))
    return round(total, 6)
