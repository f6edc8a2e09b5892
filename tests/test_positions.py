"""Positions that keep increasing when a broker loses a log (streams/core/positions.py)."""

from __future__ import annotations

from streams.core.positions import SourceLog
from streams.core.watermark import Watermarks


def read_all(source: SourceLog, values: list[bytes]) -> list[int]:
    positions = []
    for offset, value in enumerate(values):
        positions.append(source.position(offset))
        source.read(offset, value)
    return positions


def test_a_replay_of_the_same_log_keeps_the_positions() -> None:
    source = SourceLog()
    log = [b"a", b"b", b"c"]
    assert read_all(source, log) == [0, 1, 2]
    assert source.rewinds(1)
    assert not source.is_new_log((2, b"c")), "the last message read is still there"
    assert source.position(1) == 1


def test_a_new_log_continues_after_the_old_ones_last_position() -> None:
    source = SourceLog()
    read_all(source, [b"a", b"b", b"c"])
    assert source.is_new_log(None), "shorter than the old log"
    assert source.is_new_log((2, b"x")), "another message at the last offset read"
    assert source.is_new_log((5, b"c")), "the last offset read is gone"
    source.restart()
    assert not source.rewinds(0)
    assert read_all(source, [b"x", b"y"]) == [3, 4]
    source.restart()  # lost again: after the second log's last
    assert source.position(0) == 5


def test_progress_on_a_new_log_replaces_the_old_logs_offset() -> None:
    marks = Watermarks()
    marks.observe(0, 100, next_offset=5000, idle=True)
    marks.observe(0, 90, next_offset=10, idle=True, base=5000)
    assert marks.partitions[0].next_offset == 10
    assert marks.busy({0: 20}) == [marks.partitions[0]], "20 > 10: data not processed yet"
    marks.observe(0, 95, next_offset=4000, idle=False)  # late progress of the old log
    assert (marks.partitions[0].next_offset, marks.partitions[0].base) == (10, 5000)
    assert marks.partitions[0].newest_us == 100
