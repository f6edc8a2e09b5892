"""The intake watch (streams/workarounds/stall.py): when a worker's intake counts as stalled.

The worker restarts itself on what it says, so each way of standing still for a good
reason must not count. test_faults.py runs the watch in a real worker.
"""

from __future__ import annotations

from streams.workarounds.stall import IntakeWatch

BEAT = 5.0
LIMIT = 20.0


def beats(watch: IntakeWatch, owned: dict[int, tuple[int, int | None]], count: int) -> float:
    """``count`` regular beats after the watch's last one, the same each time."""
    now = watch.last_beat or 0.0
    stood = 0.0
    for _ in range(count):
        now += BEAT
        stood = watch.observe(now, owned)
    return stood


def test_input_waiting_at_a_position_that_does_not_move_counts_from_the_first_beat() -> None:
    watch = IntakeWatch(BEAT, LIMIT)
    assert watch.observe(100.0, {0: (40, 7), 1: (10, 0)}) == 0.0
    assert beats(watch, {0: (40, 7), 1: (10, 0)}, 3) == 3 * BEAT
    assert watch.to_ask(115.0) == {}
    assert beats(watch, {0: (40, 7), 1: (10, 0)}, 1) == LIMIT
    assert watch.to_ask(120.0) == {0: 40}


def test_an_intake_that_moves_every_beat_never_stands_still() -> None:
    watch = IntakeWatch(BEAT, LIMIT)
    for beat in range(50):
        assert watch.observe(beat * BEAT, {0: (beat * 100, 5000), 1: (beat, 3)}) == 0.0
    assert watch.to_ask(49 * BEAT) == {}


def test_a_caught_up_partition_is_not_stalled_however_long_it_stays() -> None:
    watch = IntakeWatch(BEAT, LIMIT)
    assert beats(watch, {0: (40, 0)}, 100) == 0.0
    assert watch.to_ask(watch.last_beat or 0.0) == {}


def test_input_arriving_at_a_caught_up_partition_starts_the_clock_then() -> None:
    watch = IntakeWatch(BEAT, LIMIT)
    beats(watch, {0: (40, 0)}, 100)
    assert beats(watch, {0: (40, 3)}, 1) == 0.0
    assert beats(watch, {0: (40, 3)}, 2) == 2 * BEAT


def test_a_partition_whose_end_is_not_known_yet_counts_as_waiting() -> None:
    """A fetch that never answered leaves no highwater: that is how a stall may look."""
    watch = IntakeWatch(BEAT, LIMIT)
    assert beats(watch, {0: (0, None)}, 5) == 4 * BEAT


def test_a_late_beat_starts_every_clock_again() -> None:
    """The process was stopped, or the loop busy: the worker was not seen standing still."""
    watch = IntakeWatch(BEAT, LIMIT)
    beats(watch, {0: (40, 7)}, 5)
    assert watch.observe((watch.last_beat or 0.0) + 60.0, {0: (40, 7)}) == 0.0
    assert beats(watch, {0: (40, 7)}, 2) == 2 * BEAT


def test_a_beat_on_time_keeps_the_clock_even_when_slow() -> None:
    watch = IntakeWatch(BEAT, LIMIT)
    watch.observe(0.0, {0: (40, 7)})
    assert watch.observe(3 * BEAT, {0: (40, 7)}) == 3 * BEAT


def test_partitions_no_longer_owned_are_forgotten_and_come_back_with_a_new_clock() -> None:
    """While the worker rebalances or recovers, the shell shows the watch no partition."""
    watch = IntakeWatch(BEAT, LIMIT)
    beats(watch, {0: (40, 7), 1: (5, 2)}, 5)
    assert beats(watch, {1: (5, 2)}, 1) == 5 * BEAT
    assert watch.to_ask(watch.last_beat or 0.0) == {1: 5}
    assert beats(watch, {}, 1) == 0.0
    assert beats(watch, {0: (40, 7), 1: (5, 2)}, 1) == 0.0
    assert beats(watch, {0: (40, 7), 1: (5, 2)}, 1) == BEAT


def test_the_broker_is_asked_once_per_limit_and_its_wait_is_no_pause() -> None:
    """An answer may take 40 s: that beat comes late through the watch's own doing, and
    the clock, the exported figure and the alert on it must run on."""
    watch = IntakeWatch(BEAT, LIMIT)
    watch.observe(0.0, {0: (40, 7)})
    beats(watch, {0: (40, 7)}, 4)
    assert watch.to_ask(LIMIT) == {0: 40}
    watch.asked(LIMIT + 40.0)
    assert watch.observe(LIMIT + 41.0, {0: (40, 7)}) == LIMIT + 41.0
    assert watch.to_ask(LIMIT + 41.0) == {}
    assert watch.to_ask(2 * LIMIT + 40.0) == {0: 40}


def test_a_watch_without_a_limit_never_asks() -> None:
    watch = IntakeWatch(BEAT, None)
    assert beats(watch, {0: (40, 7)}, 1000) == 999 * BEAT
    assert watch.to_ask(watch.last_beat or 0.0) == {}
