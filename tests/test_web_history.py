"""The web view's memory of the derived topics: thinning, repeats, junk, and the view."""

from __future__ import annotations

import itertools
import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.commands.report import run
from streams.core.timeline import iso
from streams.core.topics import ALERTS, FLOW
from streams.outputs.records import outgoing
from streams.web.history import DAY, HOUR, Columns, History, Thinning
from streams.web.view import Freshness, ViewSettings, view
from tests.conftest import SHARED_FIXTURES, core_settings

SETTINGS = ViewSettings("Europe/Berlin", 3600, ("1h", "24h", "7d"), 0.5, 3.0, "7d", True)
FRESH = Freshness(now=0.0)


def oracle(times: set[int], newest: int, thinning: Thinning) -> list[int]:
    """A boundary goes past retention, or when a later one of its bucket is thinned at
    that later one's grain (the later one is as old or younger, so its grain is as fine)."""

    def grain(at: int) -> int:
        # the cutoffs fall on whole hours and days
        if at <= (newest - thinning.hourly) // DAY * DAY:
            return DAY
        return HOUR if at <= (newest - thinning.fine) // HOUR * HOUR else 0

    def bucket(at: int, g: int) -> int:
        return -(-at // g)

    return [
        at
        for at in sorted(times)
        if newest - at <= thinning.retention
        and not any(
            t > at and grain(t) and bucket(t, grain(t)) == bucket(at, grain(t)) for t in times
        )
    ]


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.sets(st.integers(0, 400), min_size=1, max_size=120),
    shuffle=st.randoms(use_true_random=False),
    thin_every=st.integers(1, 40),
)
def test_thinning_as_it_goes_keeps_what_thinning_at_the_end_would(
    offsets: set[int], shuffle: random.Random, thin_every: int
) -> None:
    """Boundaries 15 min apart over 100 hours, arriving in any order, thinned now and then
    against the newest seen: the same boundaries as thinning all of them once at the end
    (except that a bucket thinned already takes its latest boundary however late)."""
    thinning = Thinning(fine=6 * HOUR, hourly=2 * DAY, retention=4 * DAY)
    times = [1_700_000_000 // DAY * DAY + 900 * offset for offset in offsets]
    in_order = sorted(times)
    columns = Columns()
    newest = None
    for count, at in enumerate(in_order, 1):
        columns.put(at, {"open": at})
        newest = at
        if count % thin_every == 0:
            columns.thin(newest, thinning)
    assert newest is not None
    # then every one again, shuffled: a consumer reading from the start after a failure
    again = list(in_order)
    shuffle.shuffle(again)
    for at in again:
        columns.put(at, {"open": at})
    columns.thin(newest, thinning)
    assert columns.t == oracle(set(times), newest, thinning)
    assert columns.values["open"] == columns.t  # each row stayed with its boundary


def test_a_boundary_read_twice_is_kept_once_and_junk_is_counted() -> None:
    history = History()
    record = {
        "as_of": "2026-03-02T10:00:00Z",
        "scope": "all",
        "open": 5,
        "inflow": {"24h": 3},
        "outflow": {"24h": 1},
        "transfers_in": {"24h": 0},
        "transfers_out": {"24h": 0},
    }
    assert history.take(FLOW, json.dumps(record).encode())
    assert history.take(FLOW, json.dumps({**record, "open": 6}).encode())
    assert not history.take(FLOW, b"{not json")
    assert not history.take(FLOW, json.dumps({**record, "open": "many"}).encode())
    assert not history.take(ALERTS, json.dumps(record).encode())
    assert history.skipped == 3
    shown = view(history, "all", SETTINGS, FRESH)
    assert shown["flow"]["t"] == [1772445600]
    assert shown["flow"]["open"] == [6]  # the later copy replaced the earlier
    assert shown["skipped"] == 3


def fixture_history() -> tuple[History, list]:
    lines = (SHARED_FIXTURES / "sample-events.jsonl").read_bytes().splitlines()
    emitted, _ = run(lines, core_settings(3600), 600 * 1_000_000)
    history = History()
    for item in emitted:
        for topic, _, value in outgoing(item, None, "7d", "7d"):
            history.take(topic, value)
    return history, emitted


def test_the_view_is_the_records_and_the_flow_diagram_counts_each_ticket_once() -> None:
    history, emitted = fixture_history()
    flows = [item.flow for item in emitted if item.flow.scope == "all"]
    shown = view(history, "all", SETTINGS, FRESH)
    assert shown["latest"]["flow"]["open"] == flows[-1].open
    assert shown["as_of_text"] == iso(flows[-1].as_of_us)
    assert shown["flow"]["open"] == [flow.open for flow in flows]
    assert shown["flow"]["inflow"]["24h"] == [flow.inflow["24h"] for flow in flows]
    assert "1h" not in shown["flow"]["inflow"]  # the hour's window is not drawn
    # departures: every resolution or transfer out, each counted once, from the first hour
    departed = sum(f.outflow["1h"] + f.transfers_out["1h"] for f in flows[1:])
    cfd = shown["cfd"]
    assert cfd["departures"][-1] == departed
    assert [a - d for a, d in zip(cfd["arrivals"], cfd["departures"], strict=True)] == [
        flow.open for flow in flows
    ]
    # the headline's intervals pair each firing with its resolution
    headline = [a for item in emitted for a in item.alerts if a.rule == "inflow_above_outflow"]
    headline = [a for a in headline if a.scope == "all"]
    assert len(shown["alerts"]["headline"]) == sum(a.state.value == "firing" for a in headline)
    firing_now = headline and headline[-1].state.value == "firing"
    assert (shown["alerts"]["headline"][-1][1] is None) == bool(firing_now)


def test_tickets_are_left_out_without_credentials_and_sla_changes_are_all_s() -> None:
    history, _ = fixture_history()
    hidden = ViewSettings(**{**SETTINGS.__dict__, "show_tickets": False})
    queue = next(scope for scope in history.scope_names() if scope.startswith("queue:"))
    assert view(history, queue, SETTINGS, FRESH)["latest"]["pull"] is not None
    assert view(history, queue, hidden, FRESH)["latest"]["pull"] is None
    assert view(history, "all", hidden, FRESH)["sla_tickets"] is None
    changes = view(history, "all", SETTINGS, FRESH)["sla_tickets"]
    assert changes
    assert changes == sorted(changes, key=lambda c: c["as_of"], reverse=True)
    assert view(history, queue, SETTINGS, FRESH)["sla_tickets"] is None
    indicators = view(history, "all", SETTINGS, FRESH)["indicators"]
    assert all(at % HOUR == 0 for at in indicators["t"])


def test_the_flow_diagram_counts_each_departure_once_across_the_thinned_history() -> None:
    """A hundred days of one departure an hour, fed hour by hour: past 90 days only the
    midnights are kept, then every hour, then (the last week) every boundary; the
    departures line still ends at one per hour since its first point."""
    history = History()
    start = 1_767_225_600  # a midnight
    hours = 100 * 24
    for hour in range(hours):
        at = start + hour * HOUR
        counts = {"1h": 1, "24h": 24, "7d": 168}
        record = {
            "as_of": iso(at * 1_000_000),
            "scope": "all",
            "open": 50,
            "inflow": counts,
            "outflow": counts,
            "transfers_in": dict.fromkeys(counts, 0),
            "transfers_out": dict.fromkeys(counts, 0),
        }
        assert history.take(FLOW, json.dumps(record).encode())
    cfd = view(history, "all", SETTINGS, FRESH)["cfd"]
    gaps = {later - earlier for earlier, later in itertools.pairwise(cfd["t"])}
    assert gaps == {HOUR, DAY}  # thinned to days, then hours, with no seam between
    assert cfd["departures"][-1] == (cfd["t"][-1] - cfd["t"][0]) // HOUR
    assert cfd["arrivals"][-1] - cfd["departures"][-1] == 50


def test_what_is_past_retention_is_forgotten_scopes_and_alerts_too() -> None:
    history = History(Thinning(fine=HOUR, hourly=DAY, retention=2 * DAY))
    start = 1_767_225_600

    def flow(scope: str, at: int) -> bytes:
        counts = {"24h": 1}
        record = {
            "as_of": iso(at * 1_000_000),
            "scope": scope,
            "open": 1,
            "inflow": counts,
            "outflow": counts,
            "transfers_in": counts,
            "transfers_out": counts,
        }
        return json.dumps(record).encode()

    alert = {
        "alert_id": "a:firing",
        "incident_id": "a",
        "rule": "inflow_above_outflow",
        "scope": "all",
        "state": "firing",
        "at": iso(start * 1_000_000),
        "value": 1.0,
        "threshold": 0.0,
        "summary": "s",
    }
    assert history.take(ALERTS, json.dumps(alert).encode())
    assert history.take(FLOW, flow("queue:gone", start))
    for hour in range(5 * 24):
        history.take(FLOW, flow("all", start + hour * HOUR))
    assert set(history.scopes) == {"all"}
    assert history.alerts_of("all") == []
    assert view(history, "all", SETTINGS, FRESH)["flow"]["t"][0] >= start + 2 * DAY
