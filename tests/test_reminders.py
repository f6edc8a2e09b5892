"""When reminders of an alert still firing fall due: from backlog.alerts and the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.outputs.records import AlertRecord
from streams.outputs.reminders import Reminders, reminder

HOUR = 3600.0
FIRED = datetime(2026, 12, 7, 9, 0, tzinfo=UTC).timestamp()


def transition(state: str = "firing", at: float = FIRED, incident: str = "i1") -> AlertRecord:
    return AlertRecord(
        alert_id=f"{incident}:{state}",
        incident_id=incident,
        rule="inflow_above_outflow",
        scope="all",
        state="firing" if state == "firing" else "resolved",
        at=datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        value=12.0,
        threshold=2.0,
        summary="Whole backlog: 12 more tickets a day arrive than are closed",
    )


def test_a_live_firing_is_reminded_of_every_interval_until_it_resolves() -> None:
    reminders = Reminders(live_horizon_s=HOUR)
    published = FIRED + 30  # written half a minute after the boundary it fired at
    reminders.take(transition(), published, partition=2)
    assert reminders.due(4 * HOUR, published, published + 4 * HOUR - 1) == []
    [(firing, when)] = reminders.due(4 * HOUR, published, published + 4 * HOUR)
    assert when == published + 4 * HOUR
    assert firing.partition == 2
    # checked again a minute later: nothing new; at the next interval, the next
    assert reminders.due(4 * HOUR, published + 4 * HOUR, published + 4 * HOUR + 60) == []
    [(_, later)] = reminders.due(4 * HOUR, published + 5 * HOUR, published + 8 * HOUR + 1)
    assert later == published + 8 * HOUR
    reminders.take(transition("resolved", FIRED + 9 * HOUR), published + 9 * HOUR, 2)
    assert reminders.due(4 * HOUR, published, published + 100 * HOUR) == []


def test_a_firing_replayed_from_history_is_never_reminded_of() -> None:
    reminders = Reminders(live_horizon_s=HOUR)
    months_later = FIRED + 90 * 24 * HOUR
    reminders.take(transition(), months_later, partition=0)
    assert reminders.firing == {}
    assert reminders.due(HOUR, months_later, months_later + 48 * HOUR) == []


def test_after_a_pause_only_the_latest_due_reminder_is_sent() -> None:
    """A worker down (or a check late) for three intervals sends one reminder, not three."""
    reminders = Reminders(live_horizon_s=HOUR)
    reminders.take(transition(), FIRED, partition=0)
    due = reminders.due(HOUR, FIRED + 0.5 * HOUR, FIRED + 3.5 * HOUR)
    assert [when for _, when in due] == [FIRED + 3 * HOUR]


def test_a_restart_rebuilds_the_same_schedule_from_the_topic() -> None:
    """A worker that reads the topic again after a restart finds the same due times: the one
    sent before the restart is not sent again, the next comes on time."""
    before = Reminders(live_horizon_s=HOUR)
    before.take(transition(), FIRED, partition=1)
    [(_, sent)] = before.due(2 * HOUR, FIRED, FIRED + 2 * HOUR + 5)
    restarted_at = FIRED + 2 * HOUR + 60
    after = Reminders(live_horizon_s=HOUR)
    after.take(transition(), FIRED, partition=1)
    assert after.due(2 * HOUR, restarted_at, restarted_at + 30) == []
    [(firing, when)] = after.due(2 * HOUR, restarted_at, FIRED + 4 * HOUR)
    assert when == sent + 2 * HOUR
    text = reminder(firing, when)
    assert text.alert_id == f"i1:firing:reminder:{when:.0f}"
    assert text.summary.startswith("Still firing, 4 h after it was raised: Whole backlog")
    assert text.state == "firing"
