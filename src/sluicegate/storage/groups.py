"""The group coordinator: membership, generations and partition assignment.

Membership lives in this process's memory only. A group member is a consumer that this
gateway serves (long-poll, WebSocket, consumer instance), so it cannot outlive the
process anyway: after a restart every member re-joins. Committed offsets, which must
survive, are in the database.

Assignment is Kafka's round-robin: the partitions of every subscribed topic, sorted,
dealt one by one to the members sorted by id, skipping members not subscribed to the
partition's topic. It is deterministic, and each partition has exactly one owner per
generation. The generation grows whenever membership, a subscription or the set of
partitions changes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from sluicegate.core.records import TopicPartition
from sluicegate.core.topic_sets import shared_topics
from sluicegate.errors import BadRequest, UnknownGroupMember
from sluicegate.storage.base import Assignment

__all__ = ["GroupCoordinator", "check_offsets"]


def check_offsets(offsets: Mapping[TopicPartition, int]) -> None:
    """Raise ``BadRequest`` for a committed offset no partition can have."""
    for tp, offset in offsets.items():
        if offset < 0:
            raise BadRequest(
                f"committed offset for {tp.topic}/{tp.partition} must be >= 0, got {offset}",
                field="offset",
            )


class _Member:
    __slots__ = ("deadline", "queued", "session_timeout", "topics")

    def __init__(self, topics: frozenset[str], session_timeout: float, now: float) -> None:
        self.topics = topics
        self.session_timeout = session_timeout
        self.deadline = now + session_timeout
        #: The deadline of the member's entry in the coordinator's heap (``inf``: none).
        self.queued = math.inf


class _Group:
    __slots__ = ("assignment", "generation", "members", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.generation = 0
        self.members: dict[str, _Member] = {}
        self.assignment: dict[str, tuple[TopicPartition, ...]] = {}

    def subscribes(self, topics: frozenset[str]) -> bool:
        """Whether any member subscribes to any of ``topics``."""
        return any(not member.topics.isdisjoint(topics) for member in self.members.values())


class GroupCoordinator:
    """Groups of this process; ``partitions_of(topic)`` is 0 for a topic that is gone."""

    def __init__(
        self,
        partitions_of: Callable[[str], int],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._partitions_of = partitions_of
        self._now = monotonic
        self._groups: dict[str, _Group] = {}
        # Session deadlines, soonest first, one entry per member: a heartbeat only moves
        # the member's deadline (no heap work), and an entry that comes due before its
        # member's deadline is pushed again at that deadline. So expiry costs O(log n)
        # per session, never a scan of everyone, and the heap never holds more entries
        # than there are members (one per heartbeat would pile up for a whole session:
        # 10,000 idle streams heartbeating every few seconds).
        self._deadlines: list[tuple[float, str, str]] = []
        # Set when a deadline earlier than all others appears, so the sweeper re-plans.
        self._sooner = asyncio.Event()
        # Each topic's partitions, made once: every assignment shares these objects
        # instead of making its own (12 per member of a CloudEvents type's group).
        self._partitions: dict[str, tuple[TopicPartition, ...]] = {}
        #: Told the name of each group ``topics_changed`` rebalanced (``Log.on_rebalance``).
        self.listeners: list[Callable[[str], None]] = []

    # -- membership ------------------------------------------------------------------

    def join(
        self, group: str, member_id: str, topics: Sequence[str], session_timeout: float
    ) -> Assignment:
        """Add or update a member and rebalance if anything changed."""
        if not session_timeout > 0:
            raise BadRequest(f"session_timeout must be > 0 seconds, got {session_timeout}")
        if (existing := self._groups.get(group)) is not None:
            self._expire(existing, self._now())
        state = self._groups.setdefault(group, _Group(group))
        subscription = shared_topics(topics)
        member = state.members.get(member_id)
        if member is None or member.topics != subscription:
            member = state.members[member_id] = _Member(subscription, session_timeout, 0.0)
            self._rebalance(state)
        member.session_timeout = session_timeout
        self._touch(state, member_id, member)
        return self._assignment(state, member_id)

    def heartbeat(self, group: str, member_id: str) -> Assignment:
        """Extend the member's session; its current assignment."""
        state, member = self._member(group, member_id)
        self._touch(state, member_id, member)
        return self._assignment(state, member_id)

    def leave(self, group: str, member_id: str) -> None:
        """Remove the member (if present) and rebalance."""
        state = self._groups.get(group)
        if state is not None and state.members.pop(member_id, None) is not None:
            self._rebalance(state)
            if not state.members:
                del self._groups[group]

    def check_owner(
        self,
        group: str,
        member_id: str,
        generation: int | None,
        partitions: Iterable[TopicPartition],
    ) -> None:
        """Fence an offset commit: the member must be live and own every partition now."""
        state, _ = self._member(group, member_id)
        if generation is not None and generation > state.generation:
            raise UnknownGroupMember(
                f"group {group!r} is at generation {state.generation}; "
                f"generation {generation} does not exist",
                group=group,
                member_id=member_id,
            )
        owned = state.assignment.get(member_id, ())
        for tp in partitions:
            if tp not in owned:
                raise UnknownGroupMember(
                    f"member {member_id!r} of group {group!r} does not own "
                    f"{tp.topic}/{tp.partition} in generation {state.generation}",
                    group=group,
                    member_id=member_id,
                )

    def topics_changed(self, topics: Iterable[str]) -> None:
        """Rebalance the groups subscribed to ``topics`` (partitions added, topic deleted)."""
        changed = frozenset(topics)
        for topic in changed:
            self._partitions.pop(topic, None)
        rebalanced = [s.name for s in self._groups.values() if s.subscribes(changed)]
        for name in rebalanced:
            self._rebalance(self._groups[name])
        for name in rebalanced:
            for listener in self.listeners:
                listener(name)

    # -- session expiry --------------------------------------------------------------

    def expire_due(self) -> None:
        """Remove every member whose session ran out, rebalancing their groups."""
        now = self._now()
        deadlines = self._deadlines
        due: set[str] = set()
        while deadlines and deadlines[0][0] <= now:
            queued, group, member_id = heapq.heappop(deadlines)
            state = self._groups.get(group)
            member = None if state is None else state.members.get(member_id)
            if member is None or member.queued != queued:
                continue  # left, expired already, or queued again sooner
            member.queued = math.inf
            if member.deadline <= now:
                due.add(group)
            else:
                self._queue(group, member_id, member)  # heartbeats moved it on
        for group in due:
            state = self._groups.get(group)
            if state is not None:
                self._expire(state, now)

    async def sweep(self) -> None:
        """Expire members even when nobody calls: sleep until the next deadline, forever."""
        while True:
            self.expire_due()
            self._sooner.clear()
            delay = max(0.0, self._deadlines[0][0] - self._now()) if self._deadlines else None
            try:
                async with asyncio.timeout(delay):
                    await self._sooner.wait()
            except TimeoutError:
                pass  # a deadline is due: the next round expires it

    # -- internals -------------------------------------------------------------------

    def _touch(self, state: _Group, member_id: str, member: _Member) -> None:
        member.deadline = self._now() + member.session_timeout
        if member.deadline < member.queued:
            # New, or re-joined with a shorter session: its entry would come too late.
            self._queue(state.name, member_id, member)

    def _queue(self, group: str, member_id: str, member: _Member) -> None:
        sooner = not self._deadlines or member.deadline < self._deadlines[0][0]
        member.queued = member.deadline
        heapq.heappush(self._deadlines, (member.deadline, group, member_id))
        if sooner:
            self._sooner.set()

    def _expire(self, state: _Group, now: float) -> None:
        expired = [m for m, member in state.members.items() if member.deadline <= now]
        for member_id in expired:
            del state.members[member_id]
        if expired:
            self._rebalance(state)
        if not state.members:
            del self._groups[state.name]

    def _member(self, group: str, member_id: str) -> tuple[_Group, _Member]:
        state = self._groups.get(group)
        if state is not None:
            # The sweeper may not have run yet; a member past its deadline is gone anyway.
            self._expire(state, self._now())
        member = None if state is None else state.members.get(member_id)
        if state is None or member is None:
            raise UnknownGroupMember(
                f"member {member_id!r} is not in group {group!r}: it left, "
                "its session expired, or it never joined",
                group=group,
                member_id=member_id,
            )
        return state, member

    def _assignment(self, state: _Group, member_id: str) -> Assignment:
        return Assignment(
            group=state.name,
            member_id=member_id,
            generation=state.generation,
            partitions=state.assignment.get(member_id, ()),
        )

    def _rebalance(self, state: _Group) -> None:
        state.generation += 1
        members = sorted(state.members)
        shares: dict[str, list[TopicPartition]] = {m: [] for m in members}
        topics = sorted({t for member in state.members.values() for t in member.topics})
        dealer = itertools.cycle(members)
        for topic in topics:
            for tp in self._partitions_in(topic):
                # Some member subscribes to ``topic``, so this ends within one lap.
                member_id = next(m for m in dealer if topic in state.members[m].topics)
                shares[member_id].append(tp)
        state.assignment = {m: tuple(share) for m, share in shares.items()}

    def _partitions_in(self, topic: str) -> tuple[TopicPartition, ...]:
        count = self._partitions_of(topic)
        known = self._partitions.get(topic)
        if known is None or len(known) != count:
            known = tuple(TopicPartition(topic, partition) for partition in range(count))
            self._partitions[topic] = known
        return known
