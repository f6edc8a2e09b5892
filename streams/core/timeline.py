"""Event time: integer microseconds since the UTC epoch, durations and step boundaries.

Integers keep every boundary and age exact; floats would round ages at whole seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

US_PER_SECOND = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Seconds in a duration such as ``90s``, ``5m``, ``24h``, ``7d`` or ``2w``."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) <= 0:
        raise ValueError(f"not a positive duration like 5m, 24h or 7d: {text!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


# A boundary's instant is written in every record of every scope, and in report's rows.
@lru_cache(maxsize=4096)
def iso(us: int) -> str:
    """ISO 8601 in UTC with a Z, to the second, or to the microsecond when it has them."""
    text = from_us(us).isoformat()
    return text.removesuffix("+00:00") + "Z"


def iso_seconds(text: str) -> int:
    """The instant of an ISO 8601 UTC text as ``iso`` writes it, in whole seconds."""
    return to_us(datetime.fromisoformat(text)) // US_PER_SECOND


def forget_before(by_key: dict[int, Any], oldest: int) -> None:
    """Drop the keys below ``oldest`` of a dict filled in increasing key order: they are
    at its front, so this reads only what it drops (a rule's hours, kept for weeks, are
    pruned every hour)."""
    while by_key:
        first = next(iter(by_key))
        if first >= oldest:
            return
        del by_key[first]


def boundary_index(us: int, step_us: int) -> int:
    """Index of the first boundary at or after ``us``: boundary i is at ``i * step_us``."""
    return -(-us // step_us)


@dataclass(frozen=True, slots=True)
class WallClock:
    """The wall clock when input is read, and how far ahead of it an event may be dated.

    No producer can see the future: an event dated later than ``not_after_us`` comes from a
    wrong clock, and one such event would drag event time years ahead. History is never
    that far ahead, so a replay of it gives the same results whenever it runs."""

    now_us: int
    tolerance_us: int

    @property
    def not_after_us(self) -> int:
        return self.now_us + self.tolerance_us
