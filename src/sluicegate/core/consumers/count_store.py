"""Delivery counts kept in the log, so that they survive a restart and a node's death.

A compacted internal topic (``__sluicegate_delivery_counts``, ``core/state_topic.py``),
keyed by ``<topic>/<partition>/<group>`` (topic names hold no ``/``, so the key splits
back even though group names do): a ``PartitionCounts`` with the end of what the group
delivered and the dead-lettered events; the redelivered events' counts are in blocks of
``BLOCK`` offsets, keyed ``<topic>#<block>/<partition>/<group>``, so that storing a
batch's redeliveries writes only the blocks the batch touches (the whole map of a
partition, up to ``MAX_TRACKED`` counts, before every such batch was the worst case of
``bench/delivery_counting.py``).

Only groups with ``max_deliveries`` on write (nothing else reads the counts), and only
what a restart must not forget, never a first delivery (that would be a write per batch
on the consume path):

* before a batch holding a *redelivery* is handed out: the blocks of its offsets are
  durable before the client sees the event, so a crash never undercounts a redelivery;
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

__all__ = ["BLOCK", "COUNTS_STATE", "DeliveryCountStore"]

#: The state topic's name after the internal prefix.
COUNTS_STATE = "delivery_counts"


#: Offsets per stored block of redelivery counts.
BLOCK = 1024


def _key(group: str, tp: TopicPartition, block: int = -1) -> str:
    # Topic names hold no ``/`` and no ``#``: the block goes with the topic, so the key
    # still splits back into topic, partition and a group that may hold ``/``.
    topic = tp.topic if block < 0 else f"{tp.topic}#{block}"
    return f"{topic}/{tp.partition}/{group}"


def _parse(key: str) -> tuple[str, TopicPartition, int]:
    """(group, partition, block) of a key; block -1 is the partition's own key."""
    head, partition, group = key.split("/", 2)
    topic, _, block = head.partition("#")
    return group, TopicPartition(topic, int(partition)), int(block) if block else -1


class DeliveryCountStore:
    """Every group's stored delivery counts, replayed into memory and followed.

    Layout: a partition's own key holds the delivered end and the dead events; its
    redelivery counts are kept in blocks of ``BLOCK`` offsets, a key each
    (``<topic>#<block>/<partition>/<group>``), so that a batch holding a redelivery
    writes the blocks its offsets fall in, not every count the partition has.
    """

    def __init__(self, log: Log) -> None:
        #: group -> partition -> the blocks stored (-1: the partition's own key).
        self._by_group: dict[str, dict[TopicPartition, set[int]]] = {}
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
        group, tp, block = _parse(key)
        if value is not None:
            self._by_group.setdefault(group, {}).setdefault(tp, set()).add(block)
            return
        known = self._by_group.get(group)
        if known is None:
            return
        blocks = known.get(tp)
        if blocks is not None:
            blocks.discard(block)
            if not blocks:
                del known[tp]
        if not known:
            del self._by_group[group]

    def of(self, group: str) -> dict[TopicPartition, PartitionCounts]:
        """``group``'s stored counts by partition, its blocks merged."""
        out: dict[TopicPartition, PartitionCounts] = {}
        for tp, blocks in self._by_group.get(group, {}).items():
            high = 0
            again: dict[int, int] = {}
            dead: list[int] = []
            found = False
            for block in blocks:
                stored = self._state.get(_key(group, tp, block))
                if stored is None:
                    continue
                found = True
                high = max(high, stored.high)
                again.update(stored.again)
                dead.extend(stored.dead)
            if found:
                out[tp] = PartitionCounts(high=high, again=again, dead=sorted(set(dead)))
        return out

    def blocks(self, group: str, tp: TopicPartition) -> set[int]:
        """The blocks of redelivery counts stored for ``group`` and ``tp``."""
        stored = self._by_group.get(group, {}).get(tp, ())
        return {block for block in stored if block >= 0}

    async def save(self, group: str, items: dict[TopicPartition, PartitionCounts]) -> None:
        """Durably store several partitions' whole counts of ``group`` at once (a block
        stored before and empty now is stored empty)."""
        writes: list[tuple[str, PartitionCounts]] = []
        for tp, counts in items.items():
            blocks: dict[int, dict[int, int]] = {block: {} for block in self.blocks(group, tp)}
            for offset, count in counts.again.items():
                blocks.setdefault(offset // BLOCK, {})[offset] = count
            writes += self._writes(group, tp, counts.high, counts.dead, blocks)
        if writes:
            await self._state.put_many(writes)

    async def save_blocks(
        self,
        group: str,
        tp: TopicPartition,
        high: int,
        dead: list[int],
        blocks: dict[int, dict[int, int]],
    ) -> None:
        """Durably store ``tp``'s delivered end, dead events and the given blocks of its
        redelivery counts (``blocks``: block -> its counts now); other blocks stay."""
        await self._state.put_many(self._writes(group, tp, high, dead, blocks))

    @staticmethod
    def _writes(
        group: str,
        tp: TopicPartition,
        high: int,
        dead: list[int],
        blocks: dict[int, dict[int, int]],
    ) -> list[tuple[str, PartitionCounts]]:
        writes = [(_key(group, tp), PartitionCounts(high=high, dead=dead))]
        writes += [
            (_key(group, tp, block), PartitionCounts(high=0, again=again))
            for block, again in sorted(blocks.items())
        ]
        return writes

    def stored(self, group: str, tp: TopicPartition) -> bool:
        """Whether ``group`` has counts stored for ``tp``."""
        return tp in self._by_group.get(group, {})

    async def forget(self, group: str, tp: TopicPartition) -> None:
        """Drop ``group``'s stored counts of ``tp`` (tombstones, its blocks' first)."""
        for block in sorted(self._by_group.get(group, {}).get(tp, ()), reverse=True):
            await self._state.delete(_key(group, tp, block))
