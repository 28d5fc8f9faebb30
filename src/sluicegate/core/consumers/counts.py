"""How many times each event was delivered in a consumer group (on this node).

Dead-lettering after N deliveries (a poison event that crashes its consumer again and
again) needs a count per event, but counting every delivery in a map would cost a dict
entry per event at 100,000 events/s. Almost every delivery is a first one, so only
*re*deliveries are kept: per partition, the end of what was ever delivered (``high``);
an offset at or past it is delivered for the first time (count 1, nothing stored), one
below it is a redelivery whose count goes into a small map. Entries below the group's
committed position are dropped when a commit passes them: a committed event is never
delivered again.

The counts live in memory, per group, for as long as the group has an instance on this
node, and are bounded: a group that never confirms and keeps replacing its instances
re-reads its whole backlog, so at most ``MAX_TRACKED`` redelivered events per partition
are counted; past that, a redelivery that is not tracked reports 2.
"""

from __future__ import annotations

from collections.abc import Sequence

from sluicegate.core.records import TopicPartition

__all__ = ["MAX_TRACKED", "DeliveryCounts"]

#: Redelivered events whose count is kept, per partition.
MAX_TRACKED = 10_000


class DeliveryCounts:
    """Deliveries per event of one group, stored only for events delivered again."""

    __slots__ = ("_again", "_high")

    def __init__(self) -> None:
        self._high: dict[TopicPartition, int] = {}
        self._again: dict[TopicPartition, dict[int, int]] = {}

    def delivered(self, tp: TopicPartition, offsets: Sequence[int]) -> dict[int, int] | None:
        """Count a delivery of ``offsets`` (ascending); ``{index: count}`` of redeliveries.

        ``None`` when every one of them is delivered for the first time (the usual case).
        """
        if not offsets:
            return None
        high = self._high.get(tp, -1)
        self._high[tp] = max(high, offsets[-1] + 1)
        if offsets[0] >= high:
            return None
        again = self._again.setdefault(tp, {})
        counts: dict[int, int] = {}
        for index, offset in enumerate(offsets):
            if offset >= high:
                break
            count = again.get(offset, 1) + 1
            if count > 2 or len(again) < MAX_TRACKED:
                again[offset] = count
            counts[index] = count
        return counts

    def count(self, tp: TopicPartition, offset: int) -> int:
        """Deliveries of the event at ``offset`` so far (0 if never delivered)."""
        if offset >= self._high.get(tp, 0):
            return 0
        return self._again.get(tp, {}).get(offset, 1)

    def committed(self, tp: TopicPartition, position: int) -> None:
        """Forget the events before ``position``: committed, they are never delivered again."""
        again = self._again.get(tp)
        if again:
            for offset in [o for o in again if o < position]:
                del again[offset]
            if not again:
                del self._again[tp]

    def forget(self, tp: TopicPartition) -> None:
        """Drop what is known of ``tp`` (a topic deleted)."""
        self._high.pop(tp, None)
        self._again.pop(tp, None)

    @property
    def redelivered(self) -> int:
        """Events delivered more than once and not committed yet (for /metrics)."""
        return sum(len(again) for again in self._again.values())
