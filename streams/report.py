"""The whole pipeline in one process over a file of events: ``flowgauge report``.

It runs the same core as the stream, in file order and with the same lateness
rule, so its CSV is what the worker's derived topics must equal.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

from streams.aging import BANDS, PERCENTILES
from streams.events import InvalidEvent, TicketEvent, parse_event
from streams.recontact import Requester, contact_of
from streams.scope import Emitted, ScopeState, Settings, scope_order
from streams.ticket import Ticket, Transition, apply_event
from streams.timeline import iso
from streams.watermark import Watermarks


@dataclass(slots=True)
class Counters:
    processed: int = 0
    duplicates: int = 0
    late: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)


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
            self._scope(scope).flow.see(at)
        for transition in [*transitions, *self._findings(ticket, event, transitions)]:
            self._scope(transition.scope).add(transition, self.settings)
        limit = self.watermarks.emit_limit(self.settings.windows.step_us, self.grace_us)
        yield from self._emit_through(limit)

    def finish(self) -> Iterator[Emitted]:
        """End of input: every partition is idle, so flush through the newest event."""
        self.watermarks.observe(0, None, idle=True)
        yield from self._emit_through(
            self.watermarks.emit_limit(self.settings.windows.step_us, self.grace_us)
        )

    def _emit_through(self, limit: int | None) -> Iterator[Emitted]:
        if limit is None:
            return
        self.emitted = max(limit, self.emitted if self.emitted is not None else limit)
        for state in self.scopes.values():
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

    def _scope(self, scope: str) -> ScopeState:
        state = self.scopes.get(scope)
        if state is None:
            state = self.scopes[scope] = ScopeState.new(scope, self.settings, self.emitted)
        return state


def run(
    lines: Iterable[bytes], settings: Settings, grace_us: int
) -> tuple[list[Emitted], Counters]:
    """Every emitted boundary of every scope, ordered by as_of then scope."""
    pipeline = LocalPipeline(settings, grace_us)
    emitted: list[Emitted] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = parse_event(line)
        except InvalidEvent as exc:
            pipeline.counters.invalid.append((number, str(exc)))
            continue
        emitted.extend(pipeline.ingest(event))
    emitted.extend(pipeline.finish())
    emitted.sort(key=lambda e: (e.flow.as_of_us, scope_order(e.flow.scope)))
    return emitted, pipeline.counters


def flow_columns(window_names: Iterable[str]) -> list[str]:
    names = list(window_names)
    leading = [f"{kind}_{w}" for w in names for kind in ("inflow", "outflow")]
    transfers = [f"{kind}_{w}" for w in names for kind in ("transfers_in", "transfers_out")]
    return ["as_of", "scope", "open", *leading, *transfers]


AGING_COLUMNS = [name for name, _, _ in BANDS] + ["oldest_age_seconds", "untouched"]
PERCENTILE_COLUMNS = [f"p{p}_age_seconds" for p in PERCENTILES]


def write_rows(out: IO[str], emitted: list[Emitted], settings: Settings) -> None:
    names = list(settings.windows.steps)
    header = flow_columns(names)
    if settings.track_aging:
        header += AGING_COLUMNS + PERCENTILE_COLUMNS
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for item in emitted:
        flow = item.flow
        row: list[object] = [iso(flow.as_of_us), flow.scope, flow.open]
        row += [count for w in names for count in (flow.inflow[w], flow.outflow[w])]
        row += [count for w in names for count in (flow.transfers_in[w], flow.transfers_out[w])]
        if item.aging is not None:
            aging = item.aging
            row += [aging.bands[name] for name, _, _ in BANDS]
            row += [aging.oldest_age_seconds, aging.untouched]
            row += [aging.percentiles[p] for p in PERCENTILES]
        writer.writerow(row)


def write_alerts(out: IO[str], emitted: list[Emitted]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["at", "rule", "scope", "state"])
    for item in emitted:
        for alert in item.alerts:
            writer.writerow([iso(alert.at_us), alert.rule, alert.scope, alert.state.value])


SLA_COLUMNS = ["ticket_id", "target", "state", "due_at", "as_of"]


def write_sla_events(out: IO[str], emitted: list[Emitted]) -> None:
    """The ``ticket.sla`` records in the order they happened (scope ``all`` holds them)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SLA_COLUMNS)
    for item in emitted:
        for change in item.aging.sla_changes if item.aging is not None else ():
            due, as_of = iso(change.due_us), iso(change.as_of_us)
            writer.writerow([change.ticket_id, change.target.value, change.state.value, due, as_of])


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


def write_indicators(out: IO[str], emitted: list[Emitted]) -> None:
    """The leading indicators per boundary and scope; drivers as tag:count, spikes marked !."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(INDICATOR_COLUMNS)
    for item in emitted:
        ind = item.indicators
        if ind is None:
            continue
        drivers = " ".join(f"{d.tag}:{d.recent}{'!' if d.spike else ''}" for d in ind.drivers)
        row = [iso(ind.as_of_us), ind.scope, ind.resolutions, f"{ind.reopen_rate:.4f}"]
        row += [ind.first_response_p50_seconds, ind.first_response_p90_seconds]
        row += [f"{ind.transfers_per_resolved:.4f}", f"{ind.turns_per_resolved:.4f}", drivers]
        row += [f"{ind.recontact_rate:.4f}", ind.ai_resolutions, f"{ind.deflection_rate:.4f}"]
        writer.writerow(row)
