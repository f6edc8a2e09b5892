"""Grafana dashboards as code: ``flowgauge dashboards`` writes ``grafana/dashboards/*.json``.

Every panel reads only metrics that ``streams.outputs.metrics`` exports (a test enumerates
them), and sums across workers: a worker exports only the scopes it owns, so ``sum()`` is
exact. Values that do not add up (the leading indicators' ratios, quantiles and flags) are
shown per scope with :func:`per_scope` instead.

Scope gauges carry ``queue``, ``priority`` and ``channel`` labels naming *one* dimension, the
others empty (all three empty is the whole backlog). The template variables of those names
therefore default to "All" = the empty label (``^$``), and a panel sees one dimension at a time:
picking a queue shows that queue; picking a queue *and* a priority shows nothing, as no
metric crosses dimensions. Several values of one variable add up (queues do not overlap).

To run a panel's query outside Grafana, replace its variables with :func:`substitute`
(``DEFAULTS``: every scope variable "All", ``$__rate_interval`` 5m); :func:`panel_expressions`
lists every (dashboard, panel, expression).

To add a panel, add one call to a row of a dashboard below, e.g. in the overview's "Age" row
``single("Untouched", TICKETS, Query(total(scoped("flowgauge_untouched_tickets")), "n"))``;
``graph`` (time series), ``single`` (latest value) and ``state`` (OK / Firing) are the kinds.
A new dashboard is a function returning a ``Board``, added to ``BOARDS``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig, StackingConfig
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode, StackingMode

from streams.core.aging import BANDS

DEFAULT_DIR = Path("grafana/dashboards")
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
SCOPE_VARIABLES = ("queue", "priority", "channel")
# Grafana ignores an empty custom "All" value, so "All" is the regex of the empty label.
ALL = "^$"
DEFAULTS: Mapping[str, str] = {
    **dict.fromkeys(SCOPE_VARIABLES, ALL),
    "__rate_interval": "5m",
}
SCOPE = ", ".join(f'{name}=~"${name}"' for name in SCOPE_VARIABLES)
WHOLE_BACKLOG_BY_PRIORITY = 'queue="", channel="", priority!=""'
CROSSING_WINDOW = "24h"
CAPACITY_WINDOW, CAPACITY_WINDOW_DAYS = "7d", 7
CROSSING_RULE = "inflow_above_outflow"
FIRST_RESPONSE_QUANTILES = (0.5, 0.9)
DAY_SECONDS = 86400
REOPEN_RATE_THRESHOLD = 0.15  # the reopen_rate_high rule's default threshold
# Legend of a per-scope series: the one scope label that is set, nothing for the whole backlog.
SCOPE_LEGEND = "{{queue}}{{priority}}{{channel}}"

# Units: Grafana ids, or "suffix:" for counts Grafana has no unit of.
TICKETS = "suffix: tickets"
TICKETS_PER_DAY = "suffix: tickets/day"
EVENTS_PER_SECOND = "suffix: events/s"
BREACHES = "suffix: breaches"
MESSAGES = "suffix: messages"
TRANSFERS_PER_TICKET = "suffix: transfers/ticket"
TURNS_PER_TICKET = "suffix: turns/ticket"
DAYS = "d"
SECONDS = "s"
RATIO = "percentunit"
DATE = "dateTimeAsIso"  # Grafana reads a date from milliseconds
CLOSES_PER_DAY = "suffix: closes/business day"
STATE = "bool_on_off"

HEIGHT = 8
Steps = Sequence[tuple[float | None, str]]
NEUTRAL: Steps = ((None, "text"),)
# Days of work in the backlog: under half a day the team runs dry, over three it falls behind.
CAPACITY_BAND: Steps = ((None, "orange"), (0.5, "green"), (3, "red"))
REOPEN_BAND: Steps = ((None, "green"), (REOPEN_RATE_THRESHOLD, "red"))


Panel = timeseries.Panel | stat.Panel | statetimeline.Panel
P = TypeVar("P", timeseries.Panel, stat.Panel, statetimeline.Panel)


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Row:
    title: str
    panels: Sequence[Panel]


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    description: str
    variables: Sequence[str]
    rows: Sequence[Row]


# PromQL helpers


def scoped(metric: str, **labels: str) -> str:
    """``metric`` restricted to the scope the template variables select."""
    extra = "".join(f'{name}="{value}", ' for name, value in labels.items())
    return f"{metric}{{{extra}{SCOPE}}}"


def total(selector: str, *, by: str = "") -> str:
    grouping = f" by ({by}) " if by else ""
    return f"sum{grouping}({selector})"


def by_priority(metric: str, *, also: str = "") -> str:
    """``metric`` of the whole backlog per priority (the priority scopes), summed across workers."""
    grouping = f"priority, {also}" if also else "priority"
    return total(f"{metric}{{{WHOLE_BACKLOG_BY_PRIORITY}}}", by=grouping)


def in_band_ms(**labels: str) -> str:
    """The forecast's date back in band (the end of that day), in the milliseconds Grafana
    reads dates from, per scope and quantile."""
    selector = scoped("flowgauge_backlog_in_band_timestamp_seconds", **labels)
    return f"1000 * {per_scope(selector, by='quantile')}"


def per_scope(selector: str, *, by: str = "") -> str:
    """One series per selected scope (and ``by`` labels), for values that do not add up.

    Ratios, quantiles and 0/1 flags of a scope come from the one worker that owns it: ``max``
    across workers is that value where ``sum`` would double it while a moved scope's old series
    goes stale. Several values of a variable show one line each instead of a meaningless sum.
    """
    grouping = ", ".join([*([by] if by else []), *SCOPE_VARIABLES])
    return f"max by ({grouping}) ({selector})"


def first_response(quantile: float) -> str:
    """A quantile of the time to first meaningful response since the workers started.

    Over the cumulative buckets, not their rate(): the workers observe responses as they
    process them, so a replay or catch-up fills the histogram between two scrapes and the
    rate of every bucket is then 0 (the quantile NaN) while the cumulative one is right.
    """
    buckets = "flowgauge_first_response_seconds_bucket"
    return f"histogram_quantile({quantile}, {total(buckets, by='le')})"


def per_second(counter: str) -> str:
    return f"sum(rate({counter}[$__rate_interval]))"


def age(timestamp_selector: str, *, by: str = "", pick: str = "min") -> str:
    """Live age of a timestamp gauge across workers: ``min`` the oldest, ``max`` the newest."""
    grouping = f" by ({by}) " if by else ""
    return f"time() - {pick}{grouping}({timestamp_selector})"


def flow(kind: str, window: str) -> str:
    return total(scoped(f"flowgauge_{kind}_tickets", window=window))


def days_of_capacity() -> str:
    daily_outflow = f"({flow('outflow', CAPACITY_WINDOW)} / {CAPACITY_WINDOW_DAYS})"
    return f"{total(scoped('flowgauge_open_tickets'))} / {daily_outflow}"


# Panel helpers: one per panel kind


def _thresholds(steps: Steps) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def _targets(queries: Sequence[Query]) -> list[Builder[Dataquery]]:
    return [
        prometheus.Dataquery()
        .expr(query.expr)
        .legend_format(query.legend)
        .ref_id(chr(ord("A") + index))
        .datasource(DATASOURCE)
        for index, query in enumerate(queries)
    ]


def _common(
    panel: P, title: str, unit: str, queries: Sequence[Query], description: str, width: int
) -> P:
    return (
        panel.title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .span(width)
        .height(HEIGHT)
    )


def graph(
    title: str,
    unit: str,
    queries: Sequence[Query],
    *,
    description: str = "",
    width: int = 12,
    stacked: bool = False,
    band: Steps | None = None,
) -> timeseries.Panel:
    """A time series; ``band`` draws thresholds behind the lines."""
    panel = _common(timeseries.Panel(), title, unit, queries, description, width).min(0)
    if stacked:
        panel = panel.stacking(StackingConfig().mode(StackingMode.NORMAL)).fill_opacity(60)
    if band is not None:
        panel = panel.thresholds(_thresholds(band)).thresholds_style(
            GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED_AND_AREA)
        )
    return panel


def single(
    title: str,
    unit: str,
    query: Query,
    *,
    description: str = "",
    width: int = 6,
    steps: Steps = NEUTRAL,
) -> stat.Panel:
    """The latest value, coloured by ``steps``."""
    return _common(stat.Panel(), title, unit, [query], description, width).thresholds(
        _thresholds(steps)
    )


def state(
    title: str, query: Query, *, description: str = "", width: int = 6
) -> statetimeline.Panel:
    """A 0/1 gauge (or a count of firing scopes) over time, as OK / Firing."""
    ok = model.ValueMap({"0": model.ValueMappingResult(text="OK", color="green", index=0)})
    firing = model.RangeMap(
        model.DashboardRangeMapOptions(
            from_val=1, result=model.ValueMappingResult(text="Firing", color="red", index=1)
        )
    )
    return _common(statetimeline.Panel(), title, STATE, [query], description, width).mappings(
        [ok, firing]
    )


# Dashboards, rows in the order data flows


def overview() -> Board:
    crossing = f"{flow('inflow', CROSSING_WINDOW)} - {flow('outflow', CROSSING_WINDOW)}"
    return Board(
        "flowgauge-overview",
        "flowgauge / Overview",
        "Inflow against outflow, the backlog they leave and how old it is.",
        ["datasource", *SCOPE_VARIABLES],
        [
            Row(
                "Flow",
                [
                    graph(
                        "Inflow vs outflow per day",
                        TICKETS_PER_DAY,
                        [
                            Query(flow("inflow", CROSSING_WINDOW), "inflow"),
                            Query(flow("outflow", CROSSING_WINDOW), "outflow"),
                        ],
                        description="Opened or reopened vs resolved or closed, rolling 24h.",
                    ),
                    single(
                        "Inflow minus outflow (24h)",
                        TICKETS_PER_DAY,
                        Query(crossing, "net"),
                        description="Above zero: inflow has crossed above outflow.",
                        steps=((None, "green"), (1, "red")),
                    ),
                    state(
                        "Crossing alert",
                        Query(total(scoped("flowgauge_alert_firing", rule=CROSSING_RULE)), "alert"),
                        description="Rule inflow_above_outflow (sustained crossing, with volume).",
                    ),
                ],
            ),
            Row(
                "Backlog",
                [
                    graph(
                        "Open tickets",
                        TICKETS,
                        [Query(total(scoped("flowgauge_open_tickets")), "open")],
                    ),
                    graph(
                        "Backlog in days of capacity",
                        DAYS,
                        [Query(days_of_capacity(), "days")],
                        description="Open / average daily outflow over 7d; healthy: 0.5 to 3 days.",
                        band=CAPACITY_BAND,
                    ),
                ],
            ),
            Row(
                "Plan",
                [
                    single(
                        "Back in band by (85%)",
                        DATE,
                        Query(in_band_ms(quantile="0.85"), "85%"),
                        description="At the pace of the last weeks, 85% of sampled futures are"
                        " back in the band by the end of this day; empty: not within 90 days.",
                    ),
                    single(
                        "Extra closes a business day to the target",
                        CLOSES_PER_DAY,
                        Query(per_scope(scoped("flowgauge_closes_needed_per_day")), "closes"),
                        description="Extra closes per business day that put the backlog in"
                        " its band by the target (10 business days by default), at 85%.",
                    ),
                    graph(
                        "Back in band by, over time",
                        DATE,
                        [Query(in_band_ms(), f"{SCOPE_LEGEND} {{{{quantile}}}}")],
                        description="The forecast's date at 50%, 85% and 95%, as it moved.",
                    ),
                ],
            ),
            Row(
                "Age",
                [
                    graph(
                        "Oldest open ticket age",
                        SECONDS,
                        [
                            Query(
                                age(scoped("flowgauge_oldest_open_ticket_timestamp_seconds")), "age"
                            )
                        ],
                        width=8,
                    ),
                    graph(
                        "SLA breached",
                        TICKETS,
                        [
                            Query(
                                total(scoped("flowgauge_sla_breached_tickets"), by="target"),
                                "{{target}}",
                            )
                        ],
                        description="Open tickets past their first response or resolution target.",
                        width=8,
                    ),
                    graph(
                        "SLA breaches per hour",
                        BREACHES,
                        [
                            Query(
                                total("increase(flowgauge_sla_breaches_total[1h])", by="target"),
                                "{{target}}",
                            )
                        ],
                        description="Targets breached over the past hour, whole backlog.",
                        width=8,
                    ),
                ],
            ),
        ],
    )


def aging() -> Board:
    bands = [
        Query(total(scoped("flowgauge_open_tickets_by_age", band=band)), band)
        for band in (name.removeprefix("age_") for name, _, _ in BANDS)
    ]
    untouched = total(scoped("flowgauge_untouched_tickets"))
    return Board(
        "flowgauge-aging",
        "flowgauge / Aging",
        "How old the open tickets are, and which were never answered.",
        ["datasource", *SCOPE_VARIABLES],
        [
            Row(
                "Age bands",
                [
                    graph(
                        "Open tickets by age band",
                        TICKETS,
                        bands,
                        description="Age counts from when a ticket first opened.",
                        width=24,
                        stacked=True,
                    ),
                ],
            ),
            Row(
                "Untouched",
                [
                    graph("Untouched tickets", TICKETS, [Query(untouched, "untouched")]),
                    graph(
                        "Untouched share of open",
                        RATIO,
                        [
                            Query(
                                f"{untouched} / {total(scoped('flowgauge_open_tickets'))}", "share"
                            )
                        ],
                        description="Open with no meaningful agent reply yet.",
                    ),
                ],
            ),
            Row(
                "By priority (whole backlog)",
                [
                    graph(
                        "Open tickets by priority",
                        TICKETS,
                        [
                            Query(
                                by_priority("flowgauge_open_tickets"),
                                "{{priority}}",
                            )
                        ],
                        width=8,
                    ),
                    graph(
                        "Untouched by priority",
                        TICKETS,
                        [
                            Query(
                                by_priority("flowgauge_untouched_tickets"),
                                "{{priority}}",
                            )
                        ],
                        width=8,
                    ),
                    graph(
                        "Oldest open ticket age by priority",
                        SECONDS,
                        [
                            Query(
                                age(
                                    "flowgauge_oldest_open_ticket_timestamp_seconds"
                                    f"{{{WHOLE_BACKLOG_BY_PRIORITY}}}",
                                    by="priority",
                                ),
                                "{{priority}}",
                            )
                        ],
                        width=8,
                    ),
                ],
            ),
            Row(
                "SLA by priority (whole backlog)",
                [
                    sla_by_priority("SLA at risk by priority", "flowgauge_sla_at_risk_tickets"),
                    sla_by_priority("SLA breached by priority", "flowgauge_sla_breached_tickets"),
                    graph(
                        "Time to first meaningful response",
                        SECONDS,
                        [
                            Query(first_response(q), f"p{q * 100:g}")
                            for q in FIRST_RESPONSE_QUANTILES
                        ],
                        description="From first opening to the first meaningful agent reply, "
                        "over every response the workers counted since they started.",
                        width=8,
                    ),
                ],
            ),
        ],
    )


def sla_by_priority(title: str, gauge: str) -> timeseries.Panel:
    return graph(
        title,
        TICKETS,
        [Query(by_priority(gauge, also="target"), "{{priority}} {{target}}")],
        description="Open tickets, per priority and target (first_response, resolution).",
        width=8,
    )


def pipeline() -> Board:
    def rate_graph(title: str, counter: str, description: str) -> timeseries.Panel:
        return graph(
            title,
            EVENTS_PER_SECOND,
            [Query(per_second(counter), "events/s")],
            description=description,
            width=8,
        )

    whole_backlog = 'flowgauge_snapshot_timestamp_seconds{queue="", priority="", channel=""}'
    return Board(
        "flowgauge-pipeline",
        "flowgauge / Pipeline health",
        "Input topic, ticket stage and scope stage of the flowgauge workers.",
        ["datasource"],
        [
            Row(
                "Input topic",
                [
                    graph(
                        "Consumer lag",
                        MESSAGES,
                        [
                            Query(
                                "sum by (partition) (flowgauge_consumer_lag_messages)",
                                "partition {{partition}}",
                            )
                        ],
                        description="Input messages not yet processed, per partition.",
                        stacked=True,
                    ),
                    graph(
                        "Last event age",
                        SECONDS,
                        [Query(age("flowgauge_last_event_timestamp_seconds", pick="max"), "age")],
                        description="Wall clock minus the newest event time processed.",
                    ),
                ],
            ),
            Row(
                "Ticket stage",
                [
                    graph(
                        "Events processed",
                        EVENTS_PER_SECOND,
                        [
                            Query(
                                "sum by (type) "
                                "(rate(flowgauge_events_processed_total[$__rate_interval]))",
                                "{{type}}",
                            )
                        ],
                        width=24,
                        stacked=True,
                    ),
                    rate_graph(
                        "Dead letters",
                        "flowgauge_events_dead_lettered_total",
                        "Invalid events sent to ticket-events.dlq.",
                    ),
                    rate_graph(
                        "Late events",
                        "flowgauge_events_late_total",
                        "Older than their partition's newest event minus the grace period.",
                    ),
                    rate_graph(
                        "Duplicate events",
                        "flowgauge_events_duplicate_total",
                        "Redelivered (ticket_id, event_id) pairs, ignored.",
                    ),
                ],
            ),
            Row(
                "Scope stage",
                [
                    rate_graph(
                        "Snapshots emitted",
                        "flowgauge_snapshots_emitted_total",
                        "Scope snapshots published to backlog.flow and backlog.aging.",
                    ),
                    rate_graph(
                        "Late transitions",
                        "flowgauge_late_transitions_total",
                        "Arrived after their boundary was emitted; counted in later ones.",
                    ),
                    graph(
                        "Last boundary age",
                        SECONDS,
                        [Query(age(whole_backlog, pick="max"), "age")],
                        description="Wall clock minus the latest emitted boundary (event time).",
                        width=8,
                    ),
                ],
            ),
        ],
    )


def indicators() -> Board:
    def ratio_graph(
        title: str, unit: str, metric: str, legend: str, description: str
    ) -> timeseries.Panel:
        return graph(
            title,
            unit,
            [Query(per_scope(scoped(metric)), f"{legend} {SCOPE_LEGEND}")],
            description=description,
        )

    return Board(
        "flowgauge-indicators",
        "flowgauge / Leading indicators",
        "Signals that move a day or three before the backlog does, per scope over the "
        "indicator window (default 7d; drivers compare the recent 24h with it), and the state "
        "of every rule. Scopes do not add up here: picking several values of a variable shows "
        "one line per scope.",
        ["datasource", *SCOPE_VARIABLES],
        [
            Row(
                "Inflow",
                [
                    graph(
                        "Top drivers: recent vs baseline share",
                        RATIO,
                        [
                            Query(
                                per_scope(scoped("flowgauge_driver_share_ratio"), by="tag, window"),
                                f"{{{{tag}}}} {{{{window}}}} {SCOPE_LEGEND}",
                            )
                        ],
                        description="Share of inflow carrying each of the top 3 tags of recent "
                        "inflow: recent (24h) against baseline (7d).",
                        width=8,
                    ),
                    state(
                        "Driver spikes",
                        Query(
                            per_scope(scoped("flowgauge_driver_spike"), by="tag"),
                            f"{{{{tag}}}} {SCOPE_LEGEND}",
                        ),
                        description="Firing while a top tag's recent share is at least 3x its "
                        "baseline share, with at least 10 recent tickets.",
                        width=8,
                    ),
                    graph(
                        "Reopen rate",
                        RATIO,
                        [
                            Query(
                                per_scope(scoped("flowgauge_reopen_rate_ratio")),
                                f"reopen rate {SCOPE_LEGEND}",
                            )
                        ],
                        description="Reopens within 7 days of resolving / resolutions; "
                        f"reopen_rate_high above {REOPEN_RATE_THRESHOLD:g} (default threshold).",
                        width=8,
                        band=REOPEN_BAND,
                    ),
                ],
            ),
            Row(
                "Response",
                [
                    graph(
                        "First response p50 / p90",
                        SECONDS,
                        [
                            Query(
                                per_scope(
                                    scoped(
                                        "flowgauge_first_response_quantile_seconds",
                                        quantile=f"{q:g}",
                                    )
                                ),
                                f"p{q * 100:g} {SCOPE_LEGEND}",
                            )
                            for q in FIRST_RESPONSE_QUANTILES
                        ],
                        description="From first opening to the first meaningful agent reply, "
                        "over the replies in the indicator window (nearest rank).",
                        width=24,
                    ),
                ],
            ),
            Row(
                "Handling",
                [
                    ratio_graph(
                        "Transfers per resolved ticket",
                        TRANSFERS_PER_TICKET,
                        "flowgauge_transfers_per_resolved_ratio",
                        "transfers",
                        "Queue changes since the ticket last (re)opened, per resolution.",
                    ),
                    ratio_graph(
                        "Turns per resolved ticket",
                        TURNS_PER_TICKET,
                        "flowgauge_turns_per_resolved_ratio",
                        "turns",
                        "Customer replies answered by a meaningful agent reply, per resolution.",
                    ),
                ],
            ),
            Row(
                "Did it stay solved",
                [
                    ratio_graph(
                        "Recontact rate",
                        RATIO,
                        "flowgauge_recontact_rate_ratio",
                        "recontact rate",
                        "New tickets from a requester resolved in the 7 days before, per "
                        "resolution in the window; counted in the new ticket's scopes. "
                        "recontact_rate_high fires above its threshold.",
                    ),
                    ratio_graph(
                        "Real deflection",
                        RATIO,
                        "flowgauge_deflection_ratio",
                        "deflection",
                        "Share of ai_resolved resolutions not reopened, and whose requester "
                        "opened no new ticket, within 48 hours; over the window ending 48 hours "
                        "ago, so every resolution counted has had its 48 hours.",
                    ),
                ],
            ),
            Row(
                "Backlog",
                [
                    graph(
                        "Backlog in days of capacity, per scope",
                        DAYS,
                        [
                            Query(
                                f"{per_scope(scoped('flowgauge_backlog_capacity_seconds'))}"
                                f" / {DAY_SECONDS}",
                                f"days {SCOPE_LEGEND}",
                            )
                        ],
                        description="Open / average daily outflow over 7d, as each scope's "
                        "worker computes it; backlog_below_band under 0.5, above_band over 3.",
                        width=24,
                        band=CAPACITY_BAND,
                    ),
                ],
            ),
            Row(
                "Rules",
                [
                    state(
                        "Indicator rules",
                        Query(
                            total(scoped("flowgauge_alert_firing"), by="rule"),
                            "{{rule}}",
                        ),
                        description="Every rule, OK or Firing (a number: how many of the "
                        "selected scopes fire). Rules run for the whole backlog and each queue.",
                        width=24,
                    ),
                ],
            ),
        ],
    )


BOARDS = (overview, aging, indicators, pipeline)


# Assembly


def _variable(name: str) -> Builder[model.VariableModel]:
    if name == "datasource":
        return dash.DatasourceVariable(name).label("Data source").type("prometheus")
    return (
        dash.QueryVariable(name)
        .label(name.capitalize())
        .description(
            f"All = every {name}. Pick values of one of queue, priority, channel at a time."
        )
        .datasource(DATASOURCE)
        .query(f'label_values(flowgauge_open_tickets{{{name}!=""}}, {name})')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL)
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def build(board: Board) -> model.Dashboard:
    builder = (
        dash.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(["flowgauge"])
        .time("now-7d", "now")
        .refresh("1m")
        .link(
            dash.DashboardLink("flowgauge")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags(["flowgauge"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .variables([_variable(name) for name in board.variables])
    )
    panel_id = 0
    for row in board.rows:
        panel_id += 1
        builder = builder.with_row(dash.Row(row.title).id(panel_id))
        for panel in row.panels:
            panel_id += 1
            builder = builder.with_panel(panel.id(panel_id))
    return builder.build()


def render(board: Board) -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(build(board)) + "\n"


def rendered() -> dict[str, str]:
    """File name to JSON text of every dashboard."""
    return {f"{board.uid.removeprefix('flowgauge-')}.json": render(board) for board in _boards()}


def write(directory: Path = DEFAULT_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in rendered().items():
        path = directory / name
        path.write_text(text)
        paths.append(path)
    return paths


def panel_expressions() -> list[tuple[str, str, str]]:
    """(dashboard title, panel title, PromQL with template variables) of every query."""
    found = []
    for text in rendered().values():
        board = json.loads(text)
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((board["title"], panel["title"], target["expr"]))
    return found


def substitute(expr: str, values: Mapping[str, str] = DEFAULTS) -> str:
    """``expr`` with every ``$variable`` replaced, e.g. ``{**DEFAULTS, "queue": "billing"}``."""
    return re.sub(r"\$(\w+)", lambda match: values[match.group(1)], expr)


def _boards() -> list[Board]:
    return [make() for make in BOARDS]
