"""Which values of a dimension are scopes of their own: at most a cap, the rest ``other``.

Queue, priority and channel come from input, and each distinct value would be a scope
with a snapshot per boundary, forever. At most ``cap`` values of a dimension become
scopes, in the order of their first sighting in event time (ties by name); the rest fold
into ``<dimension>:other``, which then counts as the sum of the scopes folded into it
(a transfer between two folded values is a transfer out of and into ``other``). The value
``other`` itself is always a scope and takes no place under the cap.

A value is decided when the first boundary at or after its first sighting goes out, since
none of its rows exists before; until then its transitions are held here. So which values
are scopes is a function of the events and the boundaries, not of the order in which
partitions or workers deliver them: ``report`` and the stream fold the same values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from streams.core.ticket import Kind

OTHER = "other"
Held = TypeVar("Held")


def dimension_of(scope: str) -> str | None:
    """``queue`` of ``queue:billing``; None for ``all``, which no input can multiply."""
    dimension, colon, _ = scope.partition(":")
    return dimension if colon else None


def other_scope(dimension: str) -> str:
    return f"{dimension}:{OTHER}"


def event_order(position: int, kind: int) -> tuple[int, bool]:
    """How to merge the held transitions of several values: by input position, and within
    one event a transfer out first, so a ticket moving between two values folded into one
    ``other`` leaves it before it enters again."""
    return position, kind != Kind.TRANSFER_OUT


@dataclass(slots=True)
class Undecided(Generic[Held]):
    """A value not decided yet: when a ticket was first seen in it (None until one is: a
    transfer out of it or a finding about it may come first), its transitions, and the last
    boundary emitted when it first appeared: its rows start after that, as a scope's do."""

    first_seen_us: int | None = None
    held: list[Held] = field(default_factory=list)
    after: int | None = None


@dataclass(frozen=True, slots=True)
class Decision(Generic[Held]):
    scope: str
    target: str  # the scope itself, or the dimension's ``other``
    first_seen_us: int | None
    held: list[Held]
    after: int | None


@dataclass(slots=True)
class Catalog(Generic[Held]):
    dimension: str
    cap: int
    admitted: set[str] = field(default_factory=set)  # values, at most ``cap``
    undecided: dict[str, Undecided[Held]] = field(default_factory=dict)  # by scope

    @property
    def full(self) -> bool:
        return len(self.admitted) >= self.cap

    def target(self, scope: str) -> str | None:
        """Where a transition of ``scope`` counts now; None while the value is undecided."""
        value = scope[len(self.dimension) + 1 :]
        if value == OTHER or value in self.admitted:
            return scope
        return other_scope(self.dimension) if self.full else None

    def hold(
        self, scope: str, seen_us: int | None, held: Iterable[Held], after: int | None
    ) -> None:
        """Keep an undecided value's transitions, and the earliest time it was seen;
        ``after``: the last boundary emitted now."""
        undecided = self.undecided.get(scope)
        if undecided is None:
            undecided = self.undecided[scope] = Undecided(after=after)
        first = undecided.first_seen_us
        if seen_us is not None and (first is None or seen_us < first):
            undecided.first_seen_us = seen_us
        undecided.held.extend(held)

    def decide(self, through_us: int) -> list[Decision[Held]]:
        """Decide the values first seen at or before ``through_us``, earliest first; once
        the cap is reached, every value still undecided folds at once."""
        due = sorted(
            (u.first_seen_us, scope) for scope, u in self.undecided.items()
            if u.first_seen_us is not None and u.first_seen_us <= through_us
        )  # fmt: skip
        decisions = [self._decide(scope) for _, scope in due]
        if self.full:
            decisions += [self._decide(scope) for scope in sorted(self.undecided)]
        return decisions

    def _decide(self, scope: str) -> Decision[Held]:
        undecided = self.undecided.pop(scope)
        if not self.full:
            self.admitted.add(scope[len(self.dimension) + 1 :])
        target = self.target(scope)
        assert target is not None  # decided values are admitted or folded
        return Decision(scope, target, undecided.first_seen_us, undecided.held, undecided.after)
