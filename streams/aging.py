"""Age of the open tickets of one scope, as of a boundary, from an ordered index.

Transitions are held back until their boundary settles, then applied in event
time order, so the index always describes the scope exactly as of the last
settled boundary. Band counts, the oldest age and percentiles are bisections
of the sorted first-open times: no scan of the open tickets.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from streams.ticket import CLOSING_KINDS, OPENING_KINDS, Kind, Transition
from streams.timeline import US_PER_SECOND

HOUR = 3600
DAY = 86400
# Half-open [lo, hi) age bands, in seconds, named as the report's columns.
BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("age_lt_1h", 0, HOUR),
    ("age_1h_4h", HOUR, 4 * HOUR),
    ("age_4h_12h", 4 * HOUR, 12 * HOUR),
    ("age_12h_24h", 12 * HOUR, DAY),
    ("age_1d_3d", DAY, 3 * DAY),
    ("age_3d_7d", 3 * DAY, 7 * DAY),
    ("age_7d_30d", 7 * DAY, 30 * DAY),
    ("age_ge_30d", 30 * DAY, None),
)
PERCENTILES = (50, 85, 95)


@dataclass(frozen=True, slots=True)
class AgingSnapshot:
    as_of_us: int
    scope: str
    open: int
    bands: dict[str, int]
    oldest_age_seconds: int
    untouched: int
    percentiles: dict[int, int]
    oldest_open_us: int | None


@dataclass(slots=True)
class OpenTicket:
    first_open_us: int
    replied: bool


@dataclass(slots=True)
class ScopeAging:
    scope: str
    settled_us: int | None = None
    tickets: dict[str, OpenTicket] = field(default_factory=dict)
    first_opens: SortedList = field(default_factory=SortedList)
    untouched: int = 0
    # Held-back transitions as a heap of (event time, arrival number, transition):
    # applied in event-time order, ties in arrival order.
    pending: list[tuple[int, int, Transition]] = field(default_factory=list)
    arrivals: int = 0

    def add(self, transition: Transition) -> None:
        if self.settled_us is not None and transition.at_us <= self.settled_us:
            self._apply(transition)  # late: it still counts from now on
        else:
            heapq.heappush(self.pending, (transition.at_us, self.arrivals, transition))
            self.arrivals += 1

    def settle(self, as_of_us: int) -> AgingSnapshot:
        """Apply every held transition stamped <= ``as_of_us``; the scope's age as of then."""
        while self.pending and self.pending[0][0] <= as_of_us:
            self._apply(heapq.heappop(self.pending)[2])
        self.settled_us = as_of_us
        return self._snapshot(as_of_us)

    def _apply(self, transition: Transition) -> None:
        ticket_id = transition.ticket_id
        current = self.tickets.get(ticket_id)
        if transition.kind in OPENING_KINDS and current is None:
            replied = (
                transition.replied_us is not None and transition.replied_us <= transition.at_us
            )
            self.tickets[ticket_id] = OpenTicket(transition.first_open_us, replied)
            self.first_opens.add(transition.first_open_us)
            self.untouched += not replied
        elif transition.kind in CLOSING_KINDS and current is not None:
            del self.tickets[ticket_id]
            self.first_opens.remove(current.first_open_us)
            self.untouched -= not current.replied
        elif transition.kind is Kind.REPLIED and current is not None and not current.replied:
            current.replied = True
            self.untouched -= 1

    def _snapshot(self, as_of_us: int) -> AgingSnapshot:
        opens = self.first_opens
        count = len(opens)
        bands = {name: self._count_aged(as_of_us, lo, hi) for name, lo, hi in BANDS}
        oldest = (as_of_us - opens[0]) // US_PER_SECOND if count else 0
        percentiles = {
            p: (as_of_us - opens[count - _nearest_rank(p, count)]) // US_PER_SECOND if count else 0
            for p in PERCENTILES
        }
        first = opens[0] if count else None
        return AgingSnapshot(
            as_of_us, self.scope, count, bands, oldest, self.untouched, percentiles, first
        )

    def _count_aged(self, as_of_us: int, lo: int, hi: int | None) -> int:
        """Open tickets whose age is in [lo, hi) seconds: first opened in (B - hi, B - lo]."""
        newest = self.first_opens.bisect_right(as_of_us - lo * US_PER_SECOND)
        oldest = 0 if hi is None else self.first_opens.bisect_right(as_of_us - hi * US_PER_SECOND)
        return int(newest - oldest)


def _nearest_rank(percent: int, count: int) -> int:
    return max(1, -(-percent * count // 100))
