"""Positions in a partition that keep increasing when a broker loses the log.

The scope stage applies each delta once, by the position its source had reached: a
redelivered delta is at or below what it applied. Offsets alone would do until a
broker is replaced by an empty one: it numbers every partition from 0 again, and the
new messages would look already applied. So a stage remembers, per partition it reads,
the last offset it read and a digest of that message. When it reads at or before that
offset again, either the log is being replayed (after a crash or a rebalance: the same
message still sits there) or the log is a new one; then positions continue after the
old log's last one, the same way on every worker and on every retry.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


def digest(value: bytes) -> int:
    return zlib.crc32(value)


@dataclass(slots=True)
class SourceLog:
    """What a stage remembers of one partition it reads."""

    base: int = 0  # added to an offset to make its position
    last_offset: int = -1
    last_digest: int | None = None

    def position(self, offset: int) -> int:
        return self.base + offset

    def rewinds(self, offset: int) -> bool:
        """Reading ``offset`` goes back to or before the last message read."""
        return offset <= self.last_offset

    def is_new_log(self, found: tuple[int, bytes] | None) -> bool:
        """Given the first message now at or after the last offset read (None: none there),
        whether it is another log than the one read before."""
        if found is None:
            return True
        offset, value = found
        return offset != self.last_offset or digest(value) != self.last_digest

    def restart(self) -> None:
        """The log begins again at offset 0: every later position follows the old ones."""
        self.base += self.last_offset + 1
        self.last_offset = -1
        self.last_digest = None

    def read(self, offset: int, value: bytes) -> None:
        """The last message of a batch was read (earlier ones need not be told)."""
        if offset > self.last_offset:
            self.last_offset = offset
            self.last_digest = digest(value)
