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
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sluicegate.core.consumers.counts import DeliveryCounts
from sluicegate.core.records import TopicPartition
from sluicegate.storage.base import Log

if TYPE_CHECKING:
    from sluicegate.core.consumers.instance import ConsumerInstance

__all__ = ["LocalGroup"]


class LocalGroup:
    """The instances of one storage group on this node; gone with its last instance."""

    __slots__ = ("_committing", "committed", "counts", "instances", "name")

    def __init__(self, name: str) -> None:
        #: The group's name in storage (``Log.join_group``, committed offsets).
        self.name = name
        self.instances: dict[str, ConsumerInstance] = {}
        self.counts = DeliveryCounts()
        #: The committed position of each partition read so far (from the log, then
        #: from this group's own commits): reads never start below it.
        self.committed: dict[TopicPartition, int] = {}
        self._committing: asyncio.Lock | None = None

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
            for tp, position in ahead.items():
                if position > committed.get(tp, -1):
                    committed[tp] = position
                self.counts.committed(tp, position)

    def changed(self, source: ConsumerInstance | None = None) -> None:
        """Membership or a subscription changed: every other instance looks again now.

        A long-polling instance would otherwise learn of partitions it was just given
        (say, from an instance that was deleted) only at its poll's timeout.
        """
        for instance in self.instances.values():
            if instance is not source:
                instance.wake()
