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

Positions are a topic's, not a name's: a topic deleted and made again under its name
(CloudEvents makes a type's topic again with its next event) starts at offset 0 with new
events, so every read first checks the ids of the topics it reads (``check_topics``) and
a topic whose id changed, or that is gone, leaves the group's positions, its instances'
cursors and its delivery counts; the group's committed offsets in storage went with the
old topic (``Log.delete_topic``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

from sluicegate.core.consumers.count_store import DeliveryCountStore
from sluicegate.core.consumers.counts import DeliveryCounts
from sluicegate.core.records import TopicPartition
from sluicegate.errors import UnknownTopic
from sluicegate.storage.base import Log

if TYPE_CHECKING:
    from sluicegate.core.consumers.instance import ConsumerInstance

__all__ = ["LocalGroup"]


class LocalGroup:
    """The instances of one storage group on this node; gone with its last instance."""

    __slots__ = (
        "_committing",
        "_flusher",
        "_pending",
        "_replaced",
        "_replacements",
        "_writing",
        "committed",
        "count_store",
        "counts",
        "dead_letters",
        "deliveries",
        "fence",
        "instances",
        "max_deliveries",
        "name",
        "redeliveries",
        "taking_over",
        "topic_ids",
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
        #: The id of each topic read so far: the topic ``committed``, the instances'
        #: cursors and ``counts`` hold positions of (``check_topics``).
        self.topic_ids: dict[str, int] = {}
        #: Topics deleted (and maybe made again) under the group so far, and the number of
        #: the last such change of each: a commit waiting meanwhile leaves them out.
        self._replacements = 0
        self._replaced: dict[str, int] = {}
        self._committing: asyncio.Lock | None = None
        #: Confirmations committed in the background (``commit_soon``): the round being
        #: written, the one gathering for after it, and the task that writes them.
        self._writing: _Round | None = None
        self._pending: _Round | None = None
        self._flusher: asyncio.Task[None] | None = None
        #: Instances waiting for another to confirm what it owes of a partition they
        #: were given (``ConsumerInstance._held_elsewhere``): woken by each commit.
        self.taking_over: set[ConsumerInstance] = set()
        #: Raises unless this node still serves the group (``GroupShards.check_held``):
        #: called before every write of the group's position or counts. ``None``: one node.
        self.fence: Callable[[str], None] | None = None
        self.reload_counts()

    def reload_counts(self) -> None:
        """Take the counts stored in the log (another node's, or before a restart)."""
        if self.count_store is not None:
            for tp, stored in self.count_store.of(self.name).items():
                self.counts.restore(tp, stored)

    async def save_counts(self, partitions: Collection[TopicPartition]) -> None:
        """Durably store the counts of ``partitions`` (a no-op without a store)."""
        if self.count_store is not None and partitions:
            if self.fence is not None:
                self.fence(self.name)
            counts, ids = self.counts, self.topic_ids
            await self.count_store.save(
                self.name, {tp: counts.snapshot(tp, ids.get(tp.topic, 0)) for tp in partitions}
            )

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
        seen = self._replacements
        async with self._committing:
            # A topic that went since these positions were taken (while this commit waited
            # its turn, or before: a moved partition's cursor nobody read since): they are
            # the old topic's, which one made again under its name must not start from.
            await self.check_topics(log, {tp.topic for tp in offsets})
            offsets = self._current(offsets, seen)
            seen = self._replacements
            committed = self.committed
            ahead = {tp: p for tp, p in offsets.items() if p > committed.get(tp, -1)}
            if not ahead:
                return
            if self.fence is not None:
                # Not atomic with the commit: see "Consumer groups across nodes" in the
                # design notes for what a node cut off in mid-commit can still do.
                self.fence(self.name)
            await log.commit_offsets(self.name, ahead)
            for waiting in self.taking_over:
                waiting.wake()
            # Gone while it was written: stored all the same (see the design notes,
            # "A topic made again under a live group"), but not taken here.
            taken = self._current(ahead, seen)
            counts, store = self.counts, self.count_store
            done: list[TopicPartition] = []
            for tp, position in taken.items():
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

    def _current(
        self, offsets: Mapping[TopicPartition, int], seen: int
    ) -> Mapping[TopicPartition, int]:
        """``offsets`` but those of topics gone since replacement number ``seen``."""
        if self._replacements == seen:
            return offsets
        replaced = self._replaced
        return {tp: p for tp, p in offsets.items() if replaced.get(tp.topic, 0) <= seen}

    async def check_topics(self, log: Log, names: Collection[str]) -> None:
        """Before a read of ``names``: forget what the group holds of a topic that was
        deleted, or deleted and made again (its id changed), since it was last read."""
        ids = self.topic_ids
        for name in names:
            try:
                now: int | None = (await log.get_topic(name)).id
            except UnknownTopic:
                now = None
            known = ids.get(name)
            if now == known:
                continue
            if now is None:
                del ids[name]
            else:
                ids[name] = now
            if known is not None:
                await self._forget_topic(name)
            elif now is not None:
                await self._forget_stale_counts(name, now)

    async def _forget_topic(self, name: str) -> None:
        self._replacements += 1
        self._replaced[name] = self._replacements
        committed = self.committed
        for tp in [tp for tp in committed if tp.topic == name]:
            del committed[tp]
        for instance in self.instances.values():
            instance.topic_replaced(name)
        await self._forget_counts([tp for tp in self.counts.partitions() if tp.topic == name])

    async def _forget_stale_counts(self, name: str, topic_id: int) -> None:
        """The first read of ``name`` here: counts stored for an earlier topic of that name
        (before a restart, or on another node) are not this one's."""
        store = self.count_store
        if store is not None:
            await self._forget_counts(
                [
                    tp
                    for tp, stored in store.of(self.name).items()
                    if tp.topic == name and stored.topic_id not in (0, topic_id)
                ]
            )

    async def _forget_counts(self, partitions: list[TopicPartition]) -> None:
        """Drop the counts of ``partitions``, in memory and in the store."""
        self.counts.forget(partitions)
        store = self.count_store
        if store is not None:
            for tp in partitions:
                if store.stored(self.name, tp):
                    await store.forget(self.name, tp)

    def commit_soon(self, log: Log, instance: ConsumerInstance) -> None:
        """Commit what ``instance`` confirmed in the group's next background round.

        One round is written at a time and carries every instance that confirmed while
        the one before it was written, so clients confirming faster than the group's
        commits take (5 to 10 ms on Kafka) share them instead of queueing one each. A round
        that fails is told to each of its instances (``ConsumerInstance.commit_ended``).
        """
        pending = self._pending
        if pending is None:
            pending = self._pending = _Round()
        pending.instances[instance] = None
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(log), name="group.commit_soon"
            )

    async def _flush(self, log: Log) -> None:
        try:
            while (round_ := self._pending) is not None:
                self._pending = None
                self._writing = round_
                try:
                    offsets: dict[TopicPartition, int] = {}
                    for instance in round_.instances:
                        for tp, position in instance.committable().items():
                            if position > offsets.get(tp, -1):
                                offsets[tp] = position
                    await self.commit(log, offsets)
                except Exception as exc:  # noqa: BLE001 - told to each instance
                    for instance in round_.instances:
                        instance.commit_ended(exc)
                else:
                    for instance in round_.instances:
                        instance.commit_ended(None)
                finally:
                    self._writing = None
                    round_.done.set_result(None)
        finally:
            self._flusher = None
            # Cancelled (the loop is closing): nobody writes what gathered meanwhile.
            pending, self._pending = self._pending, None
            if pending is not None:
                pending.done.set_result(None)

    async def flushed(self, instance: ConsumerInstance | None = None) -> None:
        """Wait until the background rounds holding ``instance``'s confirmations (every
        round under way, with ``None``) are written or have failed."""
        for round_ in (self._writing, self._pending):
            if round_ is not None and (instance is None or instance in round_.instances):
                # Shielded: a cancelled waiter leaves the round to the flusher.
                await asyncio.shield(round_.done)

    def changed(self, source: ConsumerInstance | None = None) -> None:
        """Membership or a subscription changed: every other instance looks again now.

        A long-polling instance would otherwise learn of partitions it was just given
        (say, from an instance that was deleted) only at its poll's timeout.
        """
        for instance in self.instances.values():
            if instance is not source:
                instance.wake()


class _Round:
    """One background commit of a group: the instances it carries, done when written."""

    __slots__ = ("done", "instances")

    def __init__(self) -> None:
        #: An ordered set.
        self.instances: dict[ConsumerInstance, None] = {}
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
