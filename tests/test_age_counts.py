"""The age counts a scope keeps between snapshots (streams/core/aging.py, ``AgeCounts``)
against a fresh bisection of the first-open times, for any order of tickets opening and
closing, snapshots, and time moving on (or back)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from sortedcontainers import SortedList

from streams.core.aging import _BAND_STARTS_US, PERCENTILES, AgeCounts, _nearest_rank

HOUR_US = 3_600_000_000
# Whole hours over 40 days: tickets share first-open instants, and crossing every band's
# start (the last is 30 days) is common.
INSTANTS = st.integers(0, 40 * 24).map(lambda hours: hours * HOUR_US)
STEPS = st.lists(
    st.tuples(st.sampled_from(("open", "close", "look")), INSTANTS), min_size=1, max_size=80
)


def fresh(opens: SortedList, as_of_us: int) -> tuple[list[int], tuple[int, ...] | None]:
    count = len(opens)
    at_least = [opens.bisect_right(as_of_us - start) for start in _BAND_STARTS_US]
    if not count:
        return at_least, None
    return at_least, (opens[0], *(opens[count - _nearest_rank(p, count)] for p in PERCENTILES))


@given(STEPS)
def test_kept_counts_equal_a_fresh_bisection(steps: list[tuple[str, int]]) -> None:
    opens: SortedList = SortedList()
    ages = AgeCounts()
    for step, instant in steps:
        if step == "open":
            opens.add(instant)
            ages.opened(instant)
        elif step == "close" and opens:
            closing = opens[instant // HOUR_US % len(opens)]
            opens.remove(closing)
            ages.closed(closing)
        elif step == "look":  # a snapshot as of ``instant``
            at_least, ranked = fresh(opens, instant)
            assert ages.at_least(opens, instant) == at_least
            if ranked is not None:
                assert ages.ranked_opens(opens) == ranked
