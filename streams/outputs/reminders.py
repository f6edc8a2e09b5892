"""Reminders for an alert still firing: when they are due, from ``backlog.alerts`` alone.

An incident is reminded of while its latest transition is a firing that was published live:
its Kafka timestamp (the wall clock when the worker wrote it) within the live horizon of the
event time it fired at. A firing replayed from history was written long after its event
time, so it is never reminded of, however long it stays unresolved.

Reminders fall at the firing's publication plus whole multiples of a destination's
``remind_every``, by the wall clock. That schedule needs no state beyond the topic: a
worker that restarts reads ``backlog.alerts`` again and finds the same due times, so it
neither repeats a reminder sent before it stopped nor sends late the ones it missed while
down (the next one comes on time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from streams.core.timeline import iso_seconds
from streams.outputs.records import AlertRecord


@dataclass(frozen=True, slots=True)
class Firing:
    record: AlertRecord
    published_s: float  # the firing's Kafka timestamp
    partition: int  # of backlog.alerts: its owner in the chat group reminds of it


@dataclass(slots=True)
class Reminders:
    live_horizon_s: float
    firing: dict[str, Firing] = field(default_factory=dict)  # by incident_id

    def take(self, record: AlertRecord, published_s: float, partition: int) -> None:
        """One ``backlog.alerts`` record, in its partition's order."""
        if record.state != "firing":
            self.firing.pop(record.incident_id, None)
        elif abs(published_s - iso_seconds(record.at)) <= self.live_horizon_s:
            self.firing[record.incident_id] = Firing(record, published_s, partition)
        else:  # replayed: a firing written long after it fired is history
            self.firing.pop(record.incident_id, None)

    def due(self, every_s: float, after_s: float, now_s: float) -> list[tuple[Firing, float]]:
        """Each firing with a reminder due in (``after_s``, ``now_s``], and when: only the
        latest such time, so a pause between checks never makes a burst."""
        found = []
        for firing in self.firing.values():
            count = math.floor((now_s - firing.published_s) / every_s)
            when = firing.published_s + count * every_s
            if count >= 1 and when > after_s:
                found.append((firing, when))
        return found


def reminder(firing: Firing, when_s: float) -> AlertRecord:
    """The message of a reminder: the firing, said to be still on, with an id of its own."""
    record = firing.record
    hours = (when_s - firing.published_s) / 3600
    lasted = f"{hours:.0f} h" if hours >= 1 else f"{hours * 60:.0f} min"
    return record.model_copy(
        update={
            "alert_id": f"{record.alert_id}:reminder:{when_s:.0f}",
            "summary": f"Still firing, {lasted} after it was raised: {record.summary}",
        }
    )
