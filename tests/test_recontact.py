"""Recontacts and real deflection: the requester's state worked by hand, its order
independence as a property, and the indicators they feed, through ``report``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.commands.report import run
from streams.config import FlowgaugeConfig
from streams.core.alerts import RECONTACT_RATE_HIGH
from streams.core.recontact import (
    RETENTION_US,
    Contact,
    ContactKind,
    Finding,
    Requester,
    requester_key,
)
from streams.core.ticket import Kind
from streams.core.timeline import US_PER_SECOND
from tests.test_indicators import GRACE_US, event, indicators_at

HOUR = 3600 * US_PER_SECOND
DAY = 24 * HOUR
SCOPES = ("all", "queue:billing")


def opened(ticket: str, at: int) -> Contact:
    return Contact(ContactKind.OPENED, at, ticket, SCOPES)


def resolved(ticket: str, at: int, ai: bool = False) -> Contact:
    return Contact(ContactKind.RESOLVED, at, ticket, SCOPES, ai)


def reopened(ticket: str, at: int) -> Contact:
    return Contact(ContactKind.REOPENED, at, ticket, SCOPES)


def findings(*contacts: Contact) -> list[tuple[Kind, int, str]]:
    requester = Requester()
    return [(f.kind, f.at_us, f.ticket_id) for c in contacts for f in requester.apply(c)]


def test_a_new_ticket_within_7_days_of_a_resolution_is_a_recontact() -> None:
    assert findings(opened("T1", 0), resolved("T1", DAY), opened("T2", 4 * DAY)) == [
        (Kind.RECONTACT, 4 * DAY, "T2")
    ]


def test_exactly_7_days_counts_and_a_moment_later_does_not() -> None:
    assert findings(resolved("T1", 0), opened("T2", 7 * DAY)) == [(Kind.RECONTACT, 7 * DAY, "T2")]
    assert findings(resolved("T1", 0), opened("T2", 7 * DAY + 1)) == []


def test_a_recontact_found_when_the_earlier_resolution_arrives_late() -> None:
    """The new ticket arrives first; the resolution stamped before it completes the finding."""
    assert findings(opened("T2", 3 * DAY), resolved("T1", DAY)) == [(Kind.RECONTACT, 3 * DAY, "T2")]


def test_a_new_ticket_after_several_resolutions_is_one_recontact() -> None:
    assert findings(resolved("T1", 0), resolved("T3", DAY), opened("T2", 2 * DAY)) == [
        (Kind.RECONTACT, 2 * DAY, "T2")
    ]


def test_an_ai_resolution_undone_by_a_new_ticket_within_48_hours() -> None:
    assert findings(resolved("T1", 0, ai=True), opened("T2", 47 * HOUR)) == [
        (Kind.RECONTACT, 47 * HOUR, "T2"),
        (Kind.UNDEFLECTED, 0, "T1"),
    ]
    # After 48 hours it held: still a recontact, but the deflection stands.
    assert findings(resolved("T1", 0, ai=True), opened("T2", 49 * HOUR)) == [
        (Kind.RECONTACT, 49 * HOUR, "T2")
    ]


def test_an_ai_resolution_undone_by_its_reopen_once_even_if_also_recontacted() -> None:
    found = findings(
        resolved("T1", 0, ai=True), reopened("T1", HOUR), opened("T2", 2 * HOUR), reopened("T1", 3)
    )
    assert found == [(Kind.UNDEFLECTED, 0, "T1"), (Kind.RECONTACT, 2 * HOUR, "T2")]


def test_a_reopen_that_arrived_first_undoes_the_ai_resolution_when_it_arrives() -> None:
    assert findings(reopened("T1", 10 * HOUR), resolved("T1", 0, ai=True)) == [
        (Kind.UNDEFLECTED, 0, "T1")
    ]


def test_a_human_resolution_is_never_undeflected() -> None:
    assert findings(resolved("T1", 0), reopened("T1", HOUR)) == []


def test_a_repeated_contact_finds_nothing_more() -> None:
    contacts = (resolved("T1", 0, ai=True), opened("T2", HOUR))
    assert findings(*contacts, *contacts) == findings(*contacts)


def test_a_requester_is_forgotten_only_after_its_retention() -> None:
    requester = Requester()
    requester.apply(resolved("T1", 10 * DAY))
    assert not requester.expired(10 * DAY + RETENTION_US)
    assert requester.expired(10 * DAY + RETENTION_US + 1)


def test_a_contact_older_than_the_retention_behind_the_newest_is_not_remembered() -> None:
    """The one place arrival order matters: later than the retention, a resolution is gone."""
    late = RETENTION_US + 2 * DAY
    assert findings(resolved("T1", 0), opened("T2", DAY), opened("T3", late)) == [
        (Kind.RECONTACT, DAY, "T2")
    ]
    assert findings(opened("T3", late), resolved("T1", 0), opened("T2", DAY)) == []


def test_tickets_without_a_requester_stand_alone() -> None:
    assert requester_key("T1", None) != requester_key("T2", None)
    assert requester_key("T1", "R1") == requester_key("T2", "R1")


@st.composite
def contact_logs(draw: st.DrawFn) -> list[Contact]:
    """One requester's tickets over 11 days (inside the retention, so any order may arrive):
    opened, maybe resolved (maybe by AI), maybe reopened and resolved again."""
    contacts = []
    for number in range(draw(st.integers(1, 6))):
        ticket = f"T{number}"
        at = draw(st.integers(0, 5 * DAY))
        contacts.append(opened(ticket, at))
        for _ in range(draw(st.integers(0, 2))):
            at += draw(st.integers(1, 2 * DAY))
            contacts.append(resolved(ticket, at, draw(st.booleans())))
            if draw(st.booleans()):
                at += draw(st.integers(1, DAY))
                contacts.append(reopened(ticket, at))
    return contacts


@given(contact_logs(), st.randoms())
def test_findings_do_not_depend_on_arrival_order(contacts: list[Contact], rng: object) -> None:
    def found(order: list[Contact]) -> set[Finding]:
        requester = Requester()
        return {finding for contact in order for finding in requester.apply(contact)}

    shuffled = list(contacts)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    in_time = sorted(contacts, key=lambda c: c.at_us)
    assert found(shuffled) == found(in_time)
    assert found(contacts + shuffled) == found(in_time)  # a replay finds nothing twice


def test_recontact_rate_in_the_new_tickets_scopes() -> None:
    lines = [
        event("created", 0, "T1", queue="billing", requester_id="R1"),
        event("resolved", 1, "T1"),
        event("created", 0, "T2", queue="billing", requester_id="R2"),
        event("resolved", 2, "T2"),
        event("created", 30, "T3", queue="tech", requester_id="R1"),  # back within 7 days
        event("created", 40, "T4", queue="tech"),  # no requester: never a recontact
        event("created", 50, "T5", queue="tech", requester_id="R3"),
    ]
    shown = indicators_at(lines, 50)
    assert (shown.resolutions, shown.recontact_rate) == (2, 0.5)
    assert indicators_at(lines, 50, "queue:billing").recontact_rate == 0.0
    # In tech: one recontact against no resolutions there reads 0, not a division by zero.
    assert indicators_at(lines, 50, "queue:tech").recontact_rate == 0.0


def test_deflection_counts_ai_resolutions_once_their_48_hours_have_passed() -> None:
    lines = [
        event("created", 0, "T1", requester_id="R1"),
        event("resolved", 1, "T1", resolution="ai_resolved"),
        event("created", 0, "T2", requester_id="R2"),
        event("resolved", 2, "T2", resolution="ai_resolved"),
        event("created", 0, "T3", requester_id="R3"),
        event("resolved", 3, "T3", resolution="solved"),  # not by AI: not counted
        event("created", 40, "T4", requester_id="R1"),  # R1 back within 48 h of T1
        event("created", 60, "T9"),
    ]
    assert indicators_at(lines, 48).ai_resolutions == 0  # none has had its 48 hours yet
    at_49 = indicators_at(lines, 49)
    assert (at_49.ai_resolutions, at_49.deflection_rate) == (1, 0.0)  # T1 came back
    at_50 = indicators_at(lines, 50)
    assert (at_50.ai_resolutions, at_50.deflection_rate) == (2, 0.5)  # T2 held


def test_recontact_rate_high_fires_and_is_configurable() -> None:
    lines = []
    for number in range(12):
        lines += [
            event("created", number, f"A{number}", requester_id=f"R{number}"),
            event("resolved", number + 0.5, f"A{number}"),
            event("created", number + 10, f"B{number}", requester_id=f"R{number}"),
        ]
    lines.append(event("created", 40, "Z"))

    def fired(threshold: float) -> list[str]:
        config = FlowgaugeConfig.model_validate(
            # Within the rules' warm-up otherwise: the log is under two days long.
            {
                "step": "1h",
                "alerts": {
                    "rules": {"recontact_rate": threshold, "sustain": "2h", "warm_up": "1h"}
                },
            }
        )
        result, _ = run(lines, config.core(), GRACE_US)
        return [
            a.state.value
            for item in result
            for a in item.alerts
            if a.rule == RECONTACT_RATE_HIGH and a.scope == "all"
        ]

    assert fired(0.10) == ["firing"]
    assert fired(1.5) == []
