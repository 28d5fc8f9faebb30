"""A batch of deliveries: records, their sequence numbers, and their delivery counts."""

from __future__ import annotations

from sluicegate.core.records import Record

__all__ = ["Batch"]


class Batch:
    """Records delivered to one instance with consecutive sequence numbers from ``first``.

    The sequence number is what the CloudEvents dialect calls an event's ``offset``.
    """

    __slots__ = ("_counts", "first", "records", "woken_at")

    def __init__(
        self, first: int, records: list[Record], counts: dict[int, int] | None = None
    ) -> None:
        self.first = first
        self.records = records
        self._counts = counts
        #: ``time.perf_counter()`` when the wait that ended in this batch was woken (by
        #: the log moving, mostly); 0.0 when the records were there at the first look.
        self.woken_at = 0.0

    def __len__(self) -> int:
        return len(self.records)

    def __bool__(self) -> bool:
        return bool(self.records)

    @property
    def last(self) -> int:
        """The sequence number of the last record (``first - 1`` when empty)."""
        return self.first + len(self.records) - 1

    def deliveries(self, index: int) -> int:
        """How many times the group has been handed ``records[index]``, this time included."""
        return 1 if self._counts is None else self._counts.get(index, 1)

    def __repr__(self) -> str:
        return f"Batch(first={self.first}, records={len(self.records)})"
