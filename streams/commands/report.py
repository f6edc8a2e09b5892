"""The whole pipeline in one process over a file of events: ``flowgauge report``.

It runs the same core as the stream, in file order and with the same lateness
rule, so its CSV is what the worker's derived topics must equal.
"""

from __future__ import annotations

import csv
import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO

from streams.core.aging import BANDS, PERCENTILES
from streams.core.catalog import Catalog, Decision, dimension_of, event_order
from streams.core.events import InvalidEvent, TicketEvent, parse_event
from streams.core.pull import PARTS
from streams.core.recontact import Requester, contact_of
from streams.core.scope import Emitted, ScopeState, Settings, scope_order
from streams.core.ticket import Ticket, Transition, apply_event
from streams.core.timeline import WallClock, iso
from streams.core.watermark import Watermarks
from streams.outputs.records import REPORTED_DAYS, forecast_fields


@dataclass(slots=True)
class Counters:
    processed: int = 0
    duplicates: int = 0
    late: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)
    folded: dict[str, int] = field(default_factory=dict)  # transitions counted in other


@dataclass(slots=True)
class LocalPipeline:
    """Ticket, requester and scope stages wired together directly, one input partition."""

    settings: Settings
    grace_us: int
    tickets: dict[str, Ticket] = field(default_factory=dict)
    requesters: dict[str, Requester] = field(default_factory=dict)
    scopes: dict[str, ScopeState] = field(default_factory=dict)
    watermarks: Watermarks = field(default_factory=Watermarks)
    counters: Counters = field(default_factory=Counters)
    emitted: int | None = None
    clock: WallClock | None = None  # when the file is read: "now", so history is unaffected
    catalogs: dict[str, Catalog[tuple[int, Transition]]] = field(default_factory=dict)
    own: set[str] = field(default_factory=set)  # scopes whose transitions count as their own
    # Whether a value was held or a scope first seen since the last limit was handled: with
    # neither, and the same limit, nothing can be decided or due (most events).
    changed: bool = True
    handled: int | None = None

    def ingest(self, event: TicketEvent) -> Iterator[Emitted]:
        at = event.occurred_us
        applied = apply_event(self.tickets.get(event.ticket_id), event, self.settings.sla)
        if applied is None:  # a repeat is ignored entirely, watermark included
            self.counters.duplicates += 1
            return
        if self.watermarks.is_late(at, self.grace_us):
            self.counters.late += 1
        self.watermarks.observe(0, at)
        ticket, transitions = applied
        self.tickets[event.ticket_id] = ticket
        self.counters.processed += 1
        for scope in ticket.scopes():
            self._see(scope, at)
        for transition in [*transitions, *self._findings(ticket, event, transitions)]:
            self._add(transition)
        yield from self._emit_through(self._limit())

    def finish(self) -> Iterator[Emitted]:
        """End of input: every partition is idle, so flush through the newest event."""
        self.watermarks.observe(0, None, idle=True)
        yield from self._emit_through(self._limit())

    def _limit(self) -> int | None:
        ceiling = self.clock.not_after_us if self.clock is not None else None
        step = self.settings.windows.step_us
        return self.watermarks.emit_limit(step, self.grace_us, ceiling_us=ceiling)

    def final_through(self) -> int | None:
        """The last boundary no scope can add a row to any more, if any: a scope emits only
        past its own last row, and a scope found later starts past the last one emitted."""
        lasts = [state.flow.emitted for state in self.scopes.values()]
        # A value not decided yet is a scope-to-be: rows after the boundary it came after.
        lasts += [u.after for c in self.catalogs.values() for u in c.undecided.values()]
        if self.emitted is None or None in lasts:
            return None  # a scope with no row yet may still get rows for any boundary
        return min(last for last in lasts if last is not None)

    def _emit_through(self, limit: int | None) -> Iterator[Emitted]:
        if limit is None or (limit == self.handled and not self.changed):
            return
        self.handled, self.changed = limit, False
        self._decide(limit * self.settings.windows.step_us)  # before: new scopes start after
        self.emitted = max(limit, self.emitted if self.emitted is not None else limit)
        for state in self.scopes.values():
            if state.flow.due(limit):
                yield from state.emit_through(limit, self.settings)

    def _findings(
        self, ticket: Ticket, event: TicketEvent, transitions: list[Transition]
    ) -> Iterator[Transition]:
        contact = contact_of(ticket, event, transitions)
        if contact is None:
            return
        key, fact = contact
        requester = self.requesters.setdefault(key, Requester())
        for finding in requester.apply(fact):
            yield from finding.transitions()

    def _catalog(self, dimension: str) -> Catalog[tuple[int, Transition]]:
        catalog = self.catalogs.get(dimension)
        if catalog is None:
            catalog = self.catalogs[dimension] = Catalog(dimension, self.settings.scope_cap)
        return catalog

    def _target(self, scope: str) -> str | None:
        """Where ``scope``'s transitions count now; None while its value is undecided."""
        if scope in self.own:
            return scope
        dimension = dimension_of(scope)
        target = self._catalog(dimension).target(scope) if dimension is not None else scope
        if target == scope:  # for good: all, other and the values admitted, at most the cap
            self.own.add(scope)
        return target

    def _see(self, scope: str, at_us: int) -> None:
        target = self._target(scope)
        if target is None:
            self._hold(scope, at_us, [])
            return
        flow = self._scope(target).flow
        self.changed |= flow.first_seen_us is None
        flow.see(at_us)

    def _add(self, transition: Transition) -> None:
        scope = transition.scope
        target = self._target(scope)
        if target is None:
            self._hold(scope, None, [(self.counters.processed, transition)])
        else:
            self._count_in(target, [transition])

    def _hold(self, scope: str, seen_us: int | None, held: list[tuple[int, Transition]]) -> None:
        """Keep a transition of a value not decided yet (or only its sighting)."""
        self.changed = True
        self._catalog(scope.partition(":")[0]).hold(scope, seen_us, held, self.emitted)

    def _decide(self, through_us: int) -> None:
        """Decide the values first seen by ``through_us``; each target takes the held
        transitions of its values merged in event order."""
        by_target: dict[str, list[Decision[tuple[int, Transition]]]] = defaultdict(list)
        for catalog in self.catalogs.values():
            for decision in catalog.decide(through_us):
                by_target[decision.target].append(decision)
        for target, decisions in by_target.items():
            after = _earliest(d.after for d in decisions)
            state = self.scopes.get(target) or self._made(target, after)
            for seen in (d.first_seen_us for d in decisions if d.first_seen_us is not None):
                state.flow.see(seen)
            held = sorted(
                (item for d in decisions for item in d.held),
                key=lambda item: event_order(item[0], item[1].kind),
            )
            self._count_in(target, [transition for _, transition in held])

    def _count_in(self, target: str, transitions: list[Transition]) -> None:
        """Count transitions in ``target``: those of a value folded into it as its own."""
        state = self._scope(target)
        for transition in transitions:
            if transition.scope != target:
                dimension = target.partition(":")[0]
                self.counters.folded[dimension] = self.counters.folded.get(dimension, 0) + 1
                transition = replace(transition, scope=target)
            state.add(transition, self.settings)

    def _scope(self, scope: str) -> ScopeState:
        return self.scopes.get(scope) or self._made(scope, self.emitted)

    def _made(self, scope: str, after: int | None) -> ScopeState:
        """A new scope, with rows after boundary ``after``."""
        state = self.scopes[scope] = ScopeState.new(scope, self.settings, after)
        return state


def _earliest(boundaries: Iterable[int | None]) -> int | None:
    """The earliest of some "last boundary emitted" values; None (none yet) is earliest."""
    values = list(boundaries)
    return None if None in values else min(v for v in values if v is not None)


def in_order(lines: Iterable[bytes], pipeline: LocalPipeline) -> Iterator[Emitted]:
    """Every emitted boundary of every scope, ordered by as_of then scope, as the lines are
    read: a row is held only until no scope can emit one before it."""
    held: list[tuple[int, tuple[bool, str], Emitted]] = []  # (as_of, scope order) is unique
    step_us = pipeline.settings.windows.step_us
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = parse_event(line, pipeline.clock)
        except InvalidEvent as exc:
            pipeline.counters.invalid.append((number, str(exc)))
            continue
        if _hold(held, pipeline.ingest(event)):
            final = pipeline.final_through()
            while held and final is not None and held[0][0] <= final * step_us:
                yield heapq.heappop(held)[2]
    _hold(held, pipeline.finish())
    while held:
        yield heapq.heappop(held)[2]


def _hold(held: list[tuple[int, tuple[bool, str], Emitted]], emitted: Iterable[Emitted]) -> bool:
    """Add ``emitted`` to the heap; whether there was any."""
    count = len(held)
    for item in emitted:
        heapq.heappush(held, (item.flow.as_of_us, scope_order(item.flow.scope), item))
    return len(held) > count


def run(
    lines: Iterable[bytes], settings: Settings, grace_us: int, clock: WallClock | None = None
) -> tuple[list[Emitted], Counters]:
    """Every emitted boundary of every scope, ordered by as_of then scope."""
    pipeline = LocalPipeline(settings, grace_us, clock=clock)
    return list(in_order(lines, pipeline)), pipeline.counters


@dataclass(frozen=True)
class CsvOutput:
    """One CSV ``report`` writes: its header and the rows of one emitted snapshot."""

    header: list[str]
    rows: Callable[[Emitted], Iterable[list[object]]]


def write_csv(outputs: Iterable[tuple[IO[str], CsvOutput]], emitted: Iterable[Emitted]) -> None:
    """Write every output in one pass over ``emitted``."""
    writers = [(csv.writer(out, lineterminator="\n"), output) for out, output in outputs]
    for writer, output in writers:
        writer.writerow(output.header)
    for item in emitted:
        for writer, output in writers:
            writer.writerows(output.rows(item))


def flow_columns(window_names: Iterable[str]) -> list[str]:
    names = list(window_names)
    leading = [f"{kind}_{w}" for w in names for kind in ("inflow", "outflow")]
    transfers = [f"{kind}_{w}" for w in names for kind in ("transfers_in", "transfers_out")]
    return ["as_of", "scope", "open", *leading, *transfers]


AGING_COLUMNS = [name for name, _, _ in BANDS] + ["oldest_age_seconds", "untouched"]
PERCENTILE_COLUMNS = [f"p{p}_age_seconds" for p in PERCENTILES]


def snapshot_rows(settings: Settings) -> CsvOutput:
    """The report's main CSV: flow, then aging when tracked, one row per scope and boundary."""
    names = list(settings.windows.steps)
    header = flow_columns(names)
    if settings.track_aging:
        header += AGING_COLUMNS + PERCENTILE_COLUMNS

    def rows(item: Emitted) -> list[list[object]]:
        flow = item.flow
        row: list[object] = [iso(flow.as_of_us), flow.scope, flow.open]
        row += [count for w in names for count in (flow.inflow[w], flow.outflow[w])]
        row += [count for w in names for count in (flow.transfers_in[w], flow.transfers_out[w])]
        if item.aging is not None:
            aging = item.aging
            row += [aging.bands[name] for name, _, _ in BANDS]
            row += [aging.oldest_age_seconds, aging.untouched]
            row += [aging.percentiles[p] for p in PERCENTILES]
        return [row]

    return CsvOutput(header, rows)


def _alert_rows(item: Emitted) -> list[list[object]]:
    return [[iso(a.at_us), a.rule, a.scope, a.state.value] for a in item.alerts]


ALERTS = CsvOutput(["at", "rule", "scope", "state"], _alert_rows)


def _sla_rows(item: Emitted) -> list[list[object]]:
    """The ``ticket.sla`` records in the order they happened (scope ``all`` holds them)."""
    changes = item.aging.sla_changes if item.aging is not None else ()
    return [
        [c.ticket_id, c.target.value, c.state.value, iso(c.due_us), iso(c.as_of_us)]
        for c in changes
    ]


SLA_EVENTS = CsvOutput(["ticket_id", "target", "state", "due_at", "as_of"], _sla_rows)

INDICATOR_COLUMNS = [
    "as_of",
    "scope",
    "resolutions",
    "reopen_rate",
    "first_response_p50_seconds",
    "first_response_p90_seconds",
    "transfers_per_resolved",
    "turns_per_resolved",
    "top_drivers",
    "recontact_rate",
    "ai_resolutions_settled",
    "deflection_rate",
]


def _indicator_rows(item: Emitted) -> list[list[object]]:
    """The leading indicators per boundary and scope; drivers as tag:count, spikes marked !."""
    ind = item.indicators
    if ind is None:
        return []
    drivers = " ".join(f"{d.tag}:{d.recent}{'!' if d.spike else ''}" for d in ind.drivers)
    row: list[object] = [iso(ind.as_of_us), ind.scope, ind.resolutions, f"{ind.reopen_rate:.4f}"]
    row += [ind.first_response_p50_seconds, ind.first_response_p90_seconds]
    row += [f"{ind.transfers_per_resolved:.4f}", f"{ind.turns_per_resolved:.4f}", drivers]
    row += [f"{ind.recontact_rate:.4f}", ind.ai_resolutions, f"{ind.deflection_rate:.4f}"]
    return [row]


INDICATORS = CsvOutput(INDICATOR_COLUMNS, _indicator_rows)


FORECAST_COLUMNS = [
    "as_of",
    "scope",
    "open",
    "band_tickets",
    *(f"p_in_band_d{day}" for day in range(1, REPORTED_DAYS + 1)),
    "in_band_by_p50",
    "in_band_by_p85",
    "in_band_by_p95",
    "closes_needed_per_day_p85",
    # beyond the columns the planning issue named: the rest of the record
    "inflow_reduction_per_day_p85",
    "target_by",
    "target_status",
    "status",
]


def _forecast_rows(item: Emitted) -> list[list[object]]:
    """``backlog.forecast`` per whole hour and scope; empty cells where the record has null."""
    if item.forecast is None:
        return []
    fields = forecast_fields(item.forecast)
    return [["" if fields[c] is None else fields[c] for c in FORECAST_COLUMNS]]


FORECAST = CsvOutput(FORECAST_COLUMNS, _forecast_rows)


PULL_COLUMNS = ["as_of", "queue", "rank", "ticket_id", "score", *PARTS]


def _pull_rows(item: Emitted) -> list[list[object]]:
    """``backlog.pull`` per whole hour and queue: a row per ticket, the parts after it."""
    pull = item.pull
    if pull is None:
        return []
    queue = pull.scope.removeprefix("queue:")
    return [
        [iso(pull.as_of_us), queue, pick.rank, pick.ticket_id, pick.score]
        + [pick.parts[part] for part in PARTS]
        for pick in pull.picks
    ]


PULL = CsvOutput(PULL_COLUMNS, _pull_rows)
