"""A consumer group as this node sees it: its instances, its committed positions, and its
delivery counts.

Group membership lives in this process (``storage/groups.py``), so every instance of a
group is here, and every commit of the group goes through ``commit``: one at a time, and
only forward. That is what keeps a confirmation final across rebalances. An instance
that confirms events of a partition that has just moved to another instance still
commits them (they were delivered to it and its client says they are done); the new
owner never reads below the group's committed position, and an instance whose
committable position lags behind what another one committed writes nothing. A member
fence (``commit_offsets(member_id=…)``) would refuse the first instance's commit instead,
and the events its client confirmed would be delivered again.

The group also holds what dead-lettering needs (``max_deliveries``: one value for the
whole group) and its figures for ``/metrics`` and the admin API: deliveries,
redeliveries and dead-letters since this node started. It outlives its last instance
here (``ConsumerInstances`` keeps a bounded number of idle groups), so that the lag of a
group whose consumers are all gone is still seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from sluicegate.core.consumers.count_store import DeliveryCountStore
from sluicegate.core.consumers.counts import DeliveryCounts
from sluicegate.core.records import TopicPartition
from sluicegate.storage.base import Log

if TYPE_CHECKING:
    from sluicegate.core.consumers.instance import ConsumerInstance

__all__ = ["LocalGroup"]


class LocalGroup:
    """The instances of one storage group on this node; gone with its last instance."""

    __slots__ = (
        "_committing",
        "committed",
        "count_store",
        "counts",
        "dead_letters",
        "deliveries",
        "instances",
        "max_deliveries",
        "name",
        "redeliveries",
    )

    def __init__(self, name: str, count_store: DeliveryCountStore | None = None) -> None:
        #: The group's name in storage (``Log.join_group``, committed offsets).
        self.name = name
        self.instances: dict[str, ConsumerInstance] = {}
        self.counts = DeliveryCounts()
        #: Where the counts are kept across restarts (``None``: in memory only).
        self.count_store = count_store
        #: Deliveries after which an unconfirmed event goes to the dead stream (0: never).
        self.max_deliveries = 0
        #: Figures since this node started: events handed out, of which redeliveries,
        #: and events written to the dead stream.
        self.deliveries = 0
        self.redeliveries = 0
        self.dead_letters = 0
        #: The committed position of each partition read so far (from the log, then
        #: from this group's own commits): reads never start below it.
        self.committed: dict[TopicPartition, int] = {}
        self._committing: asyncio.Lock | None = None
        self.reload_counts()

    def reload_counts(self) -> None:
        """Take the counts stored in the log (another node's, or before a restart)."""
        if self.count_store is not None:
            for tp, stored in self.count_store.of(self.name).items():
                self.counts.restore(tp, stored)

    async def save_counts(self, partitions: Collection[TopicPartition]) -> None:
        """Durably store the counts of ``partitions`` (a no-op without a store)."""
        if self.count_store is not None and partitions:
            counts = self.counts
            await self.count_store.save(self.name, {tp: counts.snapshot(tp) for tp in partitions})

    def learned(self, tp: TopicPartition, position: int) -> int:
        """Take a committed position read from the log; the group's position now."""
        known = self.committed.get(tp, -1)
        if position > known:
            self.committed[tp] = known = position
        return known

    async def commit(self, log: Log, offsets: Mapping[TopicPartition, int]) -> None:
        """Durably commit every position of ``offsets`` that is ahead of the group's.

        Commits run one at a time, so that a later commit can never land before an
        earlier one and move a partition back.
        """
        if self._committing is None:
            self._committing = asyncio.Lock()
        async with self._committing:
            committed = self.committed
            ahead = {tp: p for tp, p in offsets.items() if p > committed.get(tp, -1)}
            if not ahead:
                return
            await log.commit_offsets(self.name, ahead)
            counts, store = self.counts, self.count_store
            done: list[TopicPartition] = []
            for tp, position in ahead.items():
                if position > committed.get(tp, -1):
                    committed[tp] = position
                counts.committed(tp, position)
                if (
                    store is not None
                    and position >= counts.high(tp)
                    and store.stored(self.name, tp)
                ):
                    done.append(tp)
            # Committed past everything ever delivered: nothing stored is needed any more.
            for tp in done:
                await store.forget(self.name, tp)  # type: ignore[union-attr]

    def changed(self, source: ConsumerInstance | None = None) -> None:
        """Membership or a subscription changed: every other instance looks again now.

        A long-polling instance would otherwise learn of partitions it was just given
        (say, from an instance that was deleted) only at its poll's timeout.
        """
        for instance in self.instances.values():
            if instance is not source:
                instance.wake()
