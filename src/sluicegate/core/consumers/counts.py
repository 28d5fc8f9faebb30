"""How many times each event was delivered in a consumer group.

Dead-lettering after N deliveries (a poison event that crashes its consumer again and
again) needs a count per event, but counting every delivery in a map would cost a dict
entry per event at 100,000 events/s. Almost every delivery is a first one, so only
*re*deliveries are kept: per partition, the end of what was ever delivered (``high``);
an offset at or past it is delivered for the first time (count 1, nothing stored), one
below it is a redelivery whose count goes into a small map. Entries below the group's
committed position are dropped when a commit passes them: a committed event is never
delivered again. Events written to the dead stream are remembered (``dead``) until a
commit passes them, so that a re-read after a crash skips them instead of writing them
to the dead stream again.

The counts are bounded: a group that never confirms and keeps replacing its instances
re-reads its whole backlog, so at most ``MAX_TRACKED`` redelivered events per partition
are counted; past that, a redelivery that is not tracked reports 2.

``snapshot`` and ``restore`` carry one partition's counts to and from the log
(``count_store.py``), so that they survive a restart.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import msgspec

from sluicegate.core.records import TopicPartition

__all__ = ["MAX_TRACKED", "DeliveryCounts", "PartitionCounts"]

#: Redelivered events whose count is kept, per partition.
MAX_TRACKED = 10_000


class PartitionCounts(msgspec.Struct, frozen=True, kw_only=True):
    """One partition's counts as stored: the delivered end, redeliveries, dead events."""

    high: int
    again: dict[int, int] = msgspec.field(default_factory=dict)
    dead: list[int] = msgspec.field(default_factory=list)
    #: The id of the topic counted (0: unknown, as stored before ids were): counts of a
    #: topic deleted and made again under its name are not the new topic's.
    topic_id: int = 0


class DeliveryCounts:
    """Deliveries per event of one group, stored only for events delivered again."""

    __slots__ = ("_again", "_dead", "_high")

    def __init__(self) -> None:
        self._high: dict[TopicPartition, int] = {}
        self._again: dict[TopicPartition, dict[int, int]] = {}
        self._dead: dict[TopicPartition, set[int]] = {}

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

    def dead(self, tp: TopicPartition, offset: int) -> None:
        """The event at ``offset`` was written to the dead stream: never deliver it again.

        The counts of the events after it are dropped: delivered behind it, they could
        not be confirmed without it, so they failed nothing yet.
        """
        self._dead.setdefault(tp, set()).add(offset)
        again = self._again.get(tp)
        if again is not None:
            for later in [o for o in again if o >= offset]:
                del again[later]

    def is_dead(self, tp: TopicPartition, offset: int) -> bool:
        """Whether the event at ``offset`` went to the dead stream (and is not committed)."""
        dead = self._dead.get(tp)
        return dead is not None and offset in dead

    def committed(self, tp: TopicPartition, position: int) -> None:
        """Forget the events before ``position``: committed, they are never delivered again."""
        again = self._again.get(tp)
        if again:
            for offset in [o for o in again if o < position]:
                del again[offset]
            if not again:
                del self._again[tp]
        dead = self._dead.get(tp)
        if dead:
            dead.difference_update([o for o in dead if o < position])
            if not dead:
                del self._dead[tp]

    def tracked(self, tp: TopicPartition) -> bool:
        """Whether ``tp`` has redeliveries or dead events that a restart must not forget."""
        return bool(self._again.get(tp) or self._dead.get(tp))

    def snapshot(self, tp: TopicPartition, topic_id: int = 0) -> PartitionCounts:
        """``tp``'s counts, to store (``topic_id``: the id of the topic counted)."""
        return PartitionCounts(
            high=self._high.get(tp, 0),
            again=dict(self._again.get(tp, {})),
            dead=sorted(self._dead.get(tp, ())),
            topic_id=topic_id,
        )

    def restore(self, tp: TopicPartition, stored: PartitionCounts) -> None:
        """Take ``tp``'s stored counts; what is known here already is never lowered."""
        self._high[tp] = max(self._high.get(tp, -1), stored.high)
        if stored.again:
            again = self._again.setdefault(tp, {})
            for offset, count in stored.again.items():
                if count > again.get(offset, 0):
                    again[offset] = count
        if stored.dead:
            self._dead.setdefault(tp, set()).update(stored.dead)
            tracked = self._again.get(tp)
            if tracked:
                for offset in stored.dead:
                    tracked.pop(offset, None)

    def forget(self, partitions: Collection[TopicPartition]) -> None:
        """Drop every count of ``partitions`` (their topic is gone)."""
        for tp in partitions:
            self._high.pop(tp, None)
            self._again.pop(tp, None)
            self._dead.pop(tp, None)

    def partitions(self) -> list[TopicPartition]:
        """The partitions with a known delivered end."""
        return list(self._high)

    def high(self, tp: TopicPartition) -> int:
        """The end of what the group ever delivered from ``tp`` (0 if nothing)."""
        return max(self._high.get(tp, 0), 0)

    @property
    def redelivered(self) -> int:
        """Events delivered more than once and not committed yet (for /metrics)."""
        return sum(len(again) for again in self._again.values())
