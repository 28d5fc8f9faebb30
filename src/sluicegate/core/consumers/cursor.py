"""One partition of a consumer instance: where it reads and what it has in flight.

Events of several partitions interleave in an instance's delivery sequence, but within
one partition both the sequence numbers and the offsets of delivered events grow. A
confirmation covers every sequence number up to some ``n``, so in each partition it
confirms a *prefix* of what is in flight there. The position a partition may commit is
therefore the offset of its first unconfirmed delivery — or, with nothing in flight, the
read position, which also covers records the instance's filter skipped and the offsets
Kafka's transaction markers take.

In flight are two parallel ``array('q')`` (sequence numbers, offsets): 16 bytes per
event instead of a tuple's ~100, consumed from the front by moving ``start``, compacted
when the consumed front outgrows the rest.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

__all__ = ["PartitionCursor"]

#: Consumed entries kept at the front before the arrays are compacted.
_COMPACT_AFTER = 1024


class PartitionCursor:
    """Read position and in-flight deliveries of one partition."""

    __slots__ = ("offsets", "position", "sequences", "start")

    def __init__(self, position: int) -> None:
        #: The next offset to read.
        self.position = position
        self.sequences: array[int] | None = None
        self.offsets: array[int] | None = None
        self.start = 0

    def deliver(self, first_sequence: int, offsets: Sequence[int]) -> None:
        """Record ``offsets`` (ascending) as delivered with consecutive sequence numbers."""
        if self.sequences is None or self.offsets is None:
            self.sequences = array("q")
            self.offsets = array("q")
        self.sequences.extend(range(first_sequence, first_sequence + len(offsets)))
        self.offsets.extend(offsets)

    def confirm(self, upto: int) -> int:
        """Confirm every delivery with a sequence number <= ``upto``; how many that was."""
        sequences = self.sequences
        if sequences is None:
            return 0
        start = self.start
        end = bisect_right(sequences, upto, lo=start)
        if end == start:
            return 0
        if end == len(sequences):
            self.sequences = self.offsets = None
            self.start = 0
        elif end > _COMPACT_AFTER and end * 2 > len(sequences):
            assert self.offsets is not None
            del sequences[:end]
            del self.offsets[:end]
            self.start = 0
        else:
            self.start = end
        return end - start

    def skip_to(self, committed: int) -> None:
        """The group committed ``committed``: read from there at least, and forget the
        deliveries before it (another instance's client confirmed them)."""
        if committed <= self.position and (
            self.offsets is None or committed <= self.offsets[self.start]
        ):
            return
        self.position = max(self.position, committed)
        offsets = self.offsets
        if offsets is not None:
            end = bisect_left(offsets, committed, lo=self.start)
            if end == len(offsets):
                self.sequences = self.offsets = None
                self.start = 0
            else:
                self.start = end

    @property
    def unconfirmed(self) -> int:
        """Deliveries not confirmed yet."""
        return 0 if self.sequences is None else len(self.sequences) - self.start

    def committable(self) -> int:
        """The position the group may commit: the first unconfirmed delivery, else the read
        position."""
        if self.offsets is None:
            return self.position
        return self.offsets[self.start]
