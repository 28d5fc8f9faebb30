"""What the node knows of each partition's end, and the long polls waiting for it to move.

The end (one past the last committed record) grows from three sources: the node's own
acknowledged appends, the tail consumer's fetches, and watermark queries. A wait whose
position is already behind a known end returns at once; the others park in the shared
``storage.waiters``.

It also keeps the watermarks last asked of each partition, with when they were asked, for
callers content with an answer of a moment ago (``Log.watermarks``' ``max_age``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from sluicegate.core.records import Watermarks
from sluicegate.storage.waiters import Waiters

__all__ = ["PartitionEnds"]

_Key = tuple[str, int]


class PartitionEnds:
    """The highest end seen per (Kafka topic, partition), and the waiters it wakes."""

    def __init__(self) -> None:
        self.waiters: Waiters[_Key] = Waiters()
        self._highs: dict[_Key, int] = {}
        #: The last watermarks asked per partition, and the monotonic time of asking.
        self._asked: dict[_Key, tuple[Watermarks, float]] = {}

    def high(self, key: _Key) -> int:
        """The highest end known of ``key``: records exist below it (0: nothing known)."""
        return self._highs.get(key, 0)

    def passed(self, positions: Mapping[_Key, int]) -> bool:
        """Whether some partition is already known to hold a record at its position."""
        highs = self._highs
        return any(highs.get(key, 0) > position for key, position in positions.items())

    def advanced(self, highs: Mapping[_Key, int]) -> None:
        """Record new ends and wake the waiters they passed."""
        for key, high in highs.items():
            self.advance(key, high)

    def advance(self, key: _Key, high: int) -> None:
        """Record a new end of one partition and wake the waiters it passed."""
        known = self._highs
        if high > known.get(key, 0):
            known[key] = high
            self.waiters.advanced(key, high)

    def asked(self, key: _Key, marks: Watermarks, at: float) -> None:
        """Watermarks of ``key`` the broker gave to a question sent at ``at`` (monotonic)."""
        self._asked[key] = (marks, at)
        self.advance(key, marks.high)

    def recent(self, key: _Key, max_age: float) -> Watermarks | None:
        """The watermarks asked at most ``max_age`` seconds ago, with the high raised to
        what the node learned since (its own appends, the tail); None if there are none."""
        entry = self._asked.get(key)
        if entry is None or time.monotonic() - entry[1] > max_age:
            return None
        marks = entry[0]
        high = self._highs.get(key, 0)
        return marks if high <= marks.high else Watermarks(low=marks.low, high=high)

    def purged(self, keys: Iterable[_Key]) -> None:
        """This node purged ``keys``: the watermarks asked before no longer hold."""
        for key in keys:
            self._asked.pop(key, None)

    def forget(self, keys: Iterable[_Key]) -> None:
        """Wake everyone waiting on ``keys`` (a deleted topic) and drop what is known."""
        keys = list(keys)
        for key in keys:
            self._highs.pop(key, None)
            self._asked.pop(key, None)
        self.waiters.wake(keys, arrived=True)
