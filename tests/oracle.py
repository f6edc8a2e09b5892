"""A deliberately naive oracle for DESIGN.md "Flow semantics", written from the text alone.

It shares nothing with ``streams/`` but the event parser: every snapshot is recomputed
from the full list of transitions by brute force (no buckets, no sliding sums, no
sorted index), so a disagreement with the core points at one of the two.

Model, straight from the spec:

* Per ticket, in arrival order: dedup by (ticket_id, event_id); attributes apply
  first; a change of queue, priority or channel of an OPEN ticket is a transfer
  (out of the old scope, into the new one; ``all`` never transfers); then the
  lifecycle: created/any non-terminal on an unknown ticket opens it (inflow);
  resolved/closed on an open ticket closes it (outflow), on a done or unknown
  ticket records it done with no flow; only ``reopened`` reopens a done ticket.
* A snapshot as of B uses transitions stamped <= B; windows are (B - W, B].
* A ticket is open in scope S at B when its latest transition into/out of S at or
  before B (by time, ties by arrival) opened it; its age is B minus the time it
  first became open (a reopen does not reset it).
* Lateness: the watermark is the largest occurred_at of the events applied so far;
  boundary B is emitted as soon as B < watermark - grace, or at end of input
  through the first boundary at or after the newest event. A snapshot only sees
  the events that had arrived when it was emitted. A repeat does not move the
  watermark ("ignored entirely").
* Rows of a scope start at the first boundary at or after its first sighting (the
  time of the first applied event that leaves a ticket in it). Interpretation, as
  ``report`` does it: a scope first seen through a late event gets its rows for
  already emitted boundaries at that moment, so they include that late event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from streams.core.events import TicketEvent

US = 1_000_000
HOUR = 3600
DAY = 86400
BANDS = (
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
TERMINAL = ("resolved", "closed")
OPENING = ("inflow", "transfer_in")
SIGN = {"inflow": 1, "transfer_in": 1, "outflow": -1, "transfer_out": -1}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


@dataclass(frozen=True)
class Policy:
    window: str = "24h"
    min_volume: int = 10
    sustain: int = 3
    clear: int = 3


@dataclass(frozen=True)
class Move:
    """One transition: ``seq`` is its global generation order, ``k`` the event's arrival."""

    seq: int
    k: int
    ticket: str
    scope: str
    kind: str
    at: int


@dataclass
class Row:
    as_of: int
    scope: str
    open: int
    inflow: dict[str, int]
    outflow: dict[str, int]
    transfers_in: dict[str, int]
    transfers_out: dict[str, int]
    bands: dict[str, int]
    oldest: int
    untouched: int
    percentiles: dict[int, int]
    aging_open: int


@dataclass(frozen=True)
class Alert:
    at: int
    scope: str
    state: str
    value: int
    fired_at: int


@dataclass
class Result:
    rows: list[Row]
    alerts: list[Alert]
    processed: int
    duplicates: int
    late: int


@dataclass
class _Ticket:
    status: str | None = None  # None (unknown), "open", "done"
    queue: str = "default"
    priority: str = "P3"
    channel: str = "other"
    seen: set[str] = field(default_factory=set)

    def scopes(self) -> list[str]:
        return [
            "all",
            f"queue:{self.queue}",
            f"priority:{self.priority}",
            f"channel:{self.channel}",
        ]


def replay(events: list[TicketEvent]):
    """Transitions, meaningful replies, scope sightings and applied flags, in arrival order."""
    tickets: dict[str, _Ticket] = {}
    moves: list[Move] = []
    replies: list[tuple[str, int, int]] = []  # (ticket, at, k)
    sightings: list[tuple[str, int, int]] = []  # (scope, at, k)
    applied: list[bool] = []
    first_open: dict[str, int] = {}

    def move(k: int, ticket_id: str, scope: str, kind: str, at: int) -> None:
        moves.append(Move(len(moves), k, ticket_id, scope, kind, at))

    for k, ev in enumerate(events):
        at = micros(ev.occurred_at)
        t = tickets.setdefault(ev.ticket_id, _Ticket())
        if ev.event_id in t.seen:
            applied.append(False)
            continue
        t.seen.add(ev.event_id)
        applied.append(True)
        before = t.scopes()
        if ev.queue is not None:
            t.queue = ev.queue
        if ev.priority is not None:
            t.priority = ev.priority
        if ev.channel is not None:
            t.channel = ev.channel
        after = t.scopes()
        for scope in after:
            sightings.append((scope, at, k))
        if t.status == "open":
            for old, new in zip(before[1:], after[1:], strict=True):
                if old != new:
                    move(k, ev.ticket_id, old, "transfer_out", at)
                    move(k, ev.ticket_id, new, "transfer_in", at)
        kind = str(ev.type)
        if kind in TERMINAL:
            if t.status == "open":
                for scope in after:
                    move(k, ev.ticket_id, scope, "outflow", at)
            t.status = "done"
        elif t.status is None or (t.status == "done" and kind == "reopened"):
            t.status = "open"
            first_open.setdefault(ev.ticket_id, at)
            for scope in after:
                move(k, ev.ticket_id, scope, "inflow", at)
        if kind == "agent_replied" and ev.meaningful is not False:
            replies.append((ev.ticket_id, at, k))
    return moves, replies, sightings, applied, first_open


def _open_at(scope: str, b: int, prefix: int, moves: list[Move]) -> set[str]:
    """Tickets whose latest transition in ``scope`` at or before ``b`` opened them.

    DESIGN decides a ticket's transitions in arrival order, so "latest" is by arrival:
    a transition stamped before one that arrived ahead of it (producers' clocks apart)
    takes effect when that one did, never earlier.
    """
    effective: dict[str, int] = {}
    latest: dict[str, Move] = {}
    for m in moves:  # generated in arrival order
        if m.scope != scope or m.k >= prefix:
            continue
        effective[m.ticket] = max(m.at, effective.get(m.ticket, m.at))
        if effective[m.ticket] <= b:
            latest[m.ticket] = m
    return {t for t, m in latest.items() if m.kind in OPENING}


def snapshot(
    scope: str,
    b: int,
    prefix: int,
    moves: list[Move],
    replies: list[tuple[str, int, int]],
    first_open: dict[str, int],
    windows: dict[str, int],
) -> Row:
    """Brute force: everything about ``scope`` as of ``b``, from the events with k < prefix."""
    mine = [m for m in moves if m.scope == scope and m.k < prefix and m.at <= b]
    level = sum(SIGN[m.kind] for m in mine)
    counts = {}
    for kind in ("inflow", "outflow", "transfer_in", "transfer_out"):
        counts[kind] = {
            name: sum(1 for m in mine if m.kind == kind and b - w * US < m.at)
            for name, w in windows.items()
        }
    open_tickets = sorted(_open_at(scope, b, prefix, moves))
    ages = [b - first_open[t] for t in open_tickets]
    bands = {}
    for name, lo, hi in BANDS:
        bands[name] = sum(1 for a in ages if a >= lo * US and (hi is None or a < hi * US))
    oldest = max(ages) // US if ages else 0
    untouched = sum(
        1
        for t in open_tickets
        if not any(rt == t and rat <= b and rk < prefix for rt, rat, rk in replies)
    )
    secs = sorted(a // US for a in ages)
    pct = {}
    for p in PERCENTILES:
        if not secs:
            pct[p] = 0
        else:
            rank = max(1, math.ceil(p * len(secs) / 100))
            pct[p] = secs[rank - 1]
    return Row(
        b,
        scope,
        level,
        counts["inflow"],
        counts["outflow"],
        counts["transfer_in"],
        counts["transfer_out"],
        bands,
        oldest,
        untouched,
        pct,
        len(open_tickets),
    )


def run_oracle(
    events: list[TicketEvent],
    step_seconds: int,
    windows: dict[str, int],
    grace_us: int,
    policy: Policy | None = None,
) -> Result:
    """Rows for every boundary and scope, alert transitions and counters."""
    policy = policy or Policy()
    step = step_seconds * US
    moves, replies, sightings, applied, first_open = replay(events)
    n = len(events)
    times = [micros(e.occurred_at) for e in events]

    # Watermark after each event (applied events only: a repeat is ignored entirely),
    # the last boundary index emittable after it, and the late count.
    late = 0
    wm: int | None = None
    limits: list[int | None] = []
    for k in range(n):
        if applied[k]:
            if wm is not None and times[k] < wm - grace_us:
                late += 1
            wm = times[k] if wm is None else max(wm, times[k])
        limits.append(None if wm is None else ceil_div(wm - grace_us, step) - 1)
    if wm is None:
        return Result([], [], 0, n, 0)
    final = ceil_div(wm, step)

    def emitted_after(i: int) -> int:
        """Number of events ingested when boundary index i was (first) emittable."""
        for k in range(n):
            if limits[k] is not None and limits[k] >= i:
                return k + 1
        return n

    # Each scope: rows from the first boundary at or after its first sighting, but never
    # at a boundary already emitted when the scope appeared (a late event that reveals a
    # new scope does not add rows to boundaries gone out).
    scopes = sorted({s for s, _, _ in sightings}, key=lambda s: (s != "all", s))
    rows: list[Row] = []
    alerts: list[Alert] = []
    for scope in scopes:
        mine = [(at, k) for s, at, k in sightings if s == scope]
        created = min(k for _, k in mine)
        prior = limits[created - 1] if created > 0 else None

        def first_row(seen: int, prior: int | None = prior) -> int:
            return ceil_div(seen, step) if prior is None else max(ceil_div(seen, step), prior + 1)

        begin_k, start = n, None
        for k in range(created, n):
            first = first_row(min(at for at, kk in mine if kk <= k))
            if limits[k] is not None and limits[k] >= first:
                begin_k, start = k + 1, first
                break
        if start is None:
            start = first_row(min(at for at, _ in mine))
        scope_rows = [
            snapshot(
                scope, i * step, max(begin_k, emitted_after(i)), moves, replies, first_open, windows
            )
            for i in range(start, final + 1)
        ]
        rows += scope_rows
        if scope == "all" or scope.startswith("queue:"):
            alerts += crossing(scope_rows, policy)
    rows.sort(key=lambda r: (r.as_of, r.scope != "all", r.scope))
    alerts.sort(key=lambda a: (a.at, a.scope != "all", a.scope))
    return Result(rows, alerts, sum(applied), n - sum(applied), late)


def crossing(rows: list[Row], policy: Policy) -> list[Alert]:
    """inflow_above_outflow, one boundary at a time."""
    out: list[Alert] = []
    firing = False
    streak = 0
    fired_at = 0
    for row in rows:
        inflow = row.inflow[policy.window]
        outflow = row.outflow[policy.window]
        if not firing:
            streak = streak + 1 if (inflow > outflow and inflow >= policy.min_volume) else 0
            if streak >= policy.sustain:
                firing, streak, fired_at = True, 0, row.as_of
                out.append(Alert(row.as_of, row.scope, "firing", inflow - outflow, fired_at))
        else:
            streak = streak + 1 if outflow >= inflow else 0
            if streak >= policy.clear:
                firing, streak = False, 0
                out.append(Alert(row.as_of, row.scope, "resolved", inflow - outflow, fired_at))
    return out
