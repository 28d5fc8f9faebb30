"""Delivery counts kept in the log, so that they survive a restart and a node's death.

A compacted internal topic (``__sluicegate_delivery_counts``, ``core/state_topic.py``),
keyed by ``<topic>/<partition>/<group>`` (topic names hold no ``/``, so the key splits
back even though group names do). Its value is one partition's ``PartitionCounts``: the
end of what the group delivered, the redelivered events' counts, the dead-lettered ones.

Only groups with ``max_deliveries`` on write (nothing else reads the counts), and only
what a restart must not forget, never a first delivery (that would be a write per batch
on the consume path):

* before a batch holding a *redelivery* is handed out: its counts are durable before
  the client sees the event, so a crash never undercounts a redelivery;
* before an event is confirmed past as dead (``instance.py``): its ``dead`` mark, so a
  re-read after a crash between the two skips it;
* when an instance ends with deliveries unconfirmed (deleted, expired, its connection
  closed, the server stopping): the delivered end, so the next instance's delivery of
  those events counts as a second one;
* a tombstone when the group commits past everything tracked of a partition.

What a hard crash of the gateway can still lose: that events delivered exactly once and
never redelivered were delivered (their next delivery counts 1 instead of 2).

Every node follows the topic (``follow``), so a group that moves to another node (its
node died) finds its counts there.
"""

from __future__ import annotations

from sluicegate.core.consumers.counts import PartitionCounts
from sluicegate.core.records import TopicPartition
from sluicegate.core.state_topic import StateTopic
from sluicegate.storage.base import Log

__all__ = ["COUNTS_STATE", "DeliveryCountStore"]

#: The state topic's name after the internal prefix.
COUNTS_STATE = "delivery_counts"


def _key(group: str, tp: TopicPartition) -> str:
    return f"{tp.topic}/{tp.partition}/{group}"


class DeliveryCountStore:
    """Every group's stored delivery counts, replayed into memory and followed."""

    def __init__(self, log: Log) -> None:
        #: group -> the partitions it has stored counts for (kept by ``_changed``).
        self._by_group: dict[str, set[TopicPartition]] = {}
        self._state: StateTopic[PartitionCounts] = StateTopic(
            log, COUNTS_STATE, PartitionCounts, on_change=self._changed
        )

    async def load(self) -> None:
        """Create the topic if needed and replay it (before consumers are served)."""
        await self._state.load()

    async def follow(self) -> None:
        """Apply other nodes' writes as they arrive; runs until cancelled."""
        await self._state.follow()

    def _changed(self, key: str, value: PartitionCounts | None) -> None:
        topic, partition, group = key.split("/", 2)
        tp = TopicPartition(topic, int(partition))
        if value is not None:
            self._by_group.setdefault(group, set()).add(tp)
            return
        known = self._by_group.get(group)
        if known is not None:
            known.discard(tp)
            if not known:
                del self._by_group[group]

    def of(self, group: str) -> dict[TopicPartition, PartitionCounts]:
        """``group``'s stored counts by partition."""
        out: dict[TopicPartition, PartitionCounts] = {}
        for tp in self._by_group.get(group, ()):
            stored = self._state.get(_key(group, tp))
            if stored is not None:
                out[tp] = stored
        return out

    async def save(self, group: str, items: dict[TopicPartition, PartitionCounts]) -> None:
        """Durably store several partitions' counts of ``group`` at once."""
        if items:
            await self._state.put_many([(_key(group, tp), c) for tp, c in items.items()])

    def stored(self, group: str, tp: TopicPartition) -> bool:
        """Whether ``group`` has counts stored for ``tp``."""
        return _key(group, tp) in self._state

    async def forget(self, group: str, tp: TopicPartition) -> None:
        """Drop ``group``'s stored counts of ``tp`` (a tombstone)."""
        await self._state.delete(_key(group, tp))
