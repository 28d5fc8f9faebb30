"""Which node serves each consumer group: group shards, held through lease records in the log.

A consumer group's members, assignment and commits live in the memory of one node
(``storage/groups.py``, ``core/consumers/group.py``), so every instance of a group must be
on the same node. Groups hash onto ``cluster.group_shards`` shards (64 by default); a node
serves the groups of the shards it holds. ``owner(group)`` says which node that is.

Leases are claims in the internal topic ``__sluicegate_group_shards`` (one partition,
followed by every node through ``StateTopic``: the ``Log`` contract, no Kafka code). A node
claims a shard only when no live node holds it: nobody ever did, or its holder's heartbeat
(``core/membership.py``) timed out. There is no lease renewal: the holder's node
heartbeats are its lease.

**A claim is decided once, by log order.** A claim names the epoch it takes: the shard's
current epoch plus one. Every node applies the claims in the one partition's order and
takes a claim only if its epoch is the current one plus one, so of two claims written at
the same moment on the same epoch, the first in the log wins and the second is void,
on every node alike. The claimer appends its claim and reads the topic up to its end
before acting (``StateTopic.put``), so it acts only on the outcome every node sees. A
compare-and-set in the log, rather than "last claim wins": that would let the second of
two racing claimers take the shard from the first after the first had started serving.

Each claim has a key of its own (``<shard>/<epoch>/<node>``), so that compaction, which
keeps the last record per key, can never keep a void claim in place of the winner written
before it under the same key. The winner deletes the shard's older claims (tombstones),
so the topic holds about one record per shard. At replay the first claim of a shard seen
is taken as it stands (what came before it was deleted by a later winner), and the chain
of epochs goes on from there, so a replay decides what the live nodes decided.

On the embedded log there is one node, nothing is written and it holds every shard.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import msgspec

from sluicegate.config import ClusterSettings
from sluicegate.core.membership import Membership
from sluicegate.core.state_topic import StateTopic
from sluicegate.errors import ConfigError, GroupElsewhere, SluicegateError
from sluicegate.storage.base import Log

__all__ = ["GroupShards", "Lease", "ShardClaim", "shard_of"]

logger = logging.getLogger("sluicegate.cluster")

#: A node stops committing for its groups this many seconds before the other nodes may
#: see its heartbeat as timed out (clocks and a commit's own duration need the slack).
FENCE_MARGIN_FRACTION = 0.25


def shard_of(group: str, shards: int) -> int:
    """The shard of storage group ``group``: the same on every node and every run."""
    digest = hashlib.blake2b(group.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


class ShardClaim(msgspec.Struct, frozen=True):
    """One claim record (the value; the key is ``<shard>/<epoch>/<node>``)."""

    shard: int
    #: The epoch this claim takes: the shard's epoch as the claimer saw it, plus one.
    epoch: int
    node_id: str
    #: The claimer's ``cluster.group_shards``: a claim made under another count is ignored.
    shards: int
    #: Wall-clock seconds at which it was written (for operators reading the topic).
    claimed_at: float


class Lease(msgspec.Struct, frozen=True):
    """A shard's holder as decided by the claims so far."""

    node_id: str
    epoch: int
    #: The key of the winning claim.
    key: str


class GroupShards:
    """The group shards' leases, as every node decides them from the log.

    ``owner(group)`` is the lookup for anything that must reach a group's node; ``acquire``
    is what the node a consumer is created on calls; ``check_held`` fences a commit.
    """

    def __init__(
        self,
        log: Log,
        membership: Membership,
        settings: ClusterSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node_id = membership.node_id
        self.count = settings.group_shards
        self._membership = membership
        self._shared = membership.shared
        self._clock = clock
        self._margin = settings.heartbeat_timeout * FENCE_MARGIN_FRACTION
        self._interval = settings.heartbeat_interval
        self._leases: dict[int, Lease] = {}
        #: Claims made under another shard count (a node configured differently).
        self._foreign: dict[str, ShardClaim] = {}
        self._claims = StateTopic(log, "group_shards", ShardClaim, on_change=self._heard)
        self._claiming: dict[int, asyncio.Lock] = {}
        #: Shards this node held and lost (another node claimed them, or this node's own
        #: heartbeats stopped getting through); drained by ``lost``.
        self._lost: asyncio.Queue[int] = asyncio.Queue()
        #: Whether this node dropped its shards for want of fresh heartbeats.
        self._cut_off = False

    # -- the lookup ------------------------------------------------------------------

    def shard(self, group: str) -> int:
        """The shard of storage group ``group`` (``ce/<client>/<group>``)."""
        return shard_of(group, self.count)

    def owner(self, group: str) -> str | None:
        """The id of the node that serves storage group ``group`` (``ce/<client>/<group>``,
        see ``core.cloudevents.consumers.storage_group``), or ``None`` when no live node
        holds its shard: then whichever node gets the group's next consumer claims it.

        This node's own id when it holds the shard, and always on the embedded log. It
        reads memory only (the leases as followed from the log), so it costs nothing on a
        request's path; a node's URL is ``Membership.live_url(owner)``.
        """
        if not self._shared:
            return self.node_id
        return self._live_holder(self.shard(group))

    def _live_holder(self, shard: int) -> str | None:
        lease = self._leases.get(shard)
        if lease is None or not self._membership.live(lease.node_id):
            return None
        return lease.node_id

    async def catch_up(self) -> None:
        """Apply every claim written so far (``run`` follows them anyway)."""
        if self._shared:
            await self._claims.catch_up()

    def leases(self) -> dict[int, Lease]:
        """Every shard's lease as decided so far (holders live or not)."""
        return dict(self._leases)

    # -- claiming --------------------------------------------------------------------

    async def acquire(self, group: str) -> str:
        """The node serving ``group``, after claiming its shard for this node if no live
        node held it. When two nodes claim at once, the one whose claim the log has first
        wins: the other gets the winner's id."""
        if not self._shared:
            return self.node_id
        shard = self.shard(group)
        holder = self._live_holder(shard)
        if holder is not None:
            return holder
        lock = self._claiming.setdefault(shard, asyncio.Lock())
        async with lock:
            # The holder is judged on its latest heartbeat, not on what the follower has
            # read so far: a holder still beating keeps its shard. And it fences itself a
            # margin before that heartbeat times out (``check_held``).
            await self._membership.catch_up()
            await self._claims.catch_up()
            holder = self._live_holder(shard)
            if holder is not None:
                return holder
            current = self._leases.get(shard)
            epoch = (current.epoch if current is not None else 0) + 1
            key = f"{shard}/{epoch}/{self.node_id}"
            claim = ShardClaim(
                shard=shard,
                epoch=epoch,
                node_id=self.node_id,
                shards=self.count,
                claimed_at=self._clock(),
            )
            # Appended, then read back up to the end: decided as every node decides it.
            await self._claims.put(key, claim)
            won = self._leases[shard]
            if won.key == key:
                logger.info(
                    "group shard %d taken (epoch %d; was %s)",
                    shard,
                    epoch,
                    "free" if current is None else f"{current.node_id}'s",
                )
                self._cut_off = False
                await self._forget_older(shard, key)
            return won.node_id

    async def _forget_older(self, shard: int, kept: str) -> None:
        """Delete the shard's claims other than ``kept``: one record per shard stays."""
        older = sorted(
            (claim.epoch, key)
            for key, claim in self._claims.items()
            if claim.shard == shard and key != kept and claim.shards == self.count
        )
        try:
            for _, key in older:
                await self._claims.delete(key)
        except SluicegateError as exc:
            # Only tidiness: the next winner deletes them, and replay decides the same.
            logger.warning("old claims of group shard %d not deleted: %s", shard, exc)

    def _heard(self, key: str, claim: ShardClaim | None) -> None:
        if claim is None:
            self._foreign.pop(key, None)
            return  # a deleted old claim: decisions are made on claims only
        if claim.shards != self.count:
            self._foreign[key] = claim
            return
        current = self._leases.get(claim.shard)
        if current is not None and claim.epoch != current.epoch + 1:
            return  # void: lost a race, or made on a view older than this lease
        self._leases[claim.shard] = Lease(claim.node_id, claim.epoch, key)
        if current is not None and current.node_id == self.node_id != claim.node_id:
            logger.warning(
                "group shard %d was taken by %s: its groups' consumers here are closed",
                claim.shard,
                claim.node_id,
            )
            self._lost.put_nowait(claim.shard)

    # -- fencing ---------------------------------------------------------------------

    def check_held(self, group: str) -> None:
        """Raise ``GroupElsewhere`` unless this node may act for ``group`` now: it holds
        the group's shard per the leases followed from the log, and its own heartbeats are
        fresh enough that no other node may have taken the shard meanwhile."""
        if not self._shared:
            return
        shard = self.shard(group)
        lease = self._leases.get(shard)
        if lease is None or lease.node_id != self.node_id:
            holder = None if lease is None else lease.node_id
            raise GroupElsewhere(
                f"this consumer group is no longer served by this node ({self.node_id!r}); "
                f"its shard is held by {holder or 'no node'}. Create a new consumer instance.",
                retry_after=1.0,
            )
        if not self._membership.seen_as_live(self._margin):
            raise GroupElsewhere(
                f"this node ({self.node_id!r}) could not write its heartbeats lately, so "
                "another node may be taking its consumer groups. Create a new consumer "
                "instance.",
                retry_after=1.0,
            )

    async def lost(self) -> AsyncIterator[int]:
        """Each shard this node stops serving, as it happens (forever)."""
        while True:
            yield await self._lost.get()

    # -- lifecycle -------------------------------------------------------------------

    async def load(self) -> None:
        """Replay the claims; refuse a shard count that differs from a live node's."""
        if not self._shared:
            return
        await self._claims.load()
        for claim in self._foreign.values():
            if claim.node_id != self.node_id and self._membership.live(claim.node_id):
                raise ConfigError(
                    "cluster.group_shards",
                    f"is {self.count} here, and live node {claim.node_id!r} claims shards "
                    f"out of {claim.shards}: every node needs the same value",
                )

    async def run(self) -> None:
        """Follow the other nodes' claims, and give up this node's shards when its own
        heartbeats stop getting through (until cancelled)."""
        if not self._shared:
            return
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._claims.follow(), name="group_shards.follow")
            tg.create_task(self._watch_own_heartbeats(), name="group_shards.fence")

    async def _watch_own_heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self._interval / 2)
            if self._membership.seen_as_live(self._margin):
                self._cut_off = False
                continue
            if self._cut_off:
                continue
            self._cut_off = True
            held = [s for s, lease in self._leases.items() if lease.node_id == self.node_id]
            if held:
                logger.warning(
                    "this node's heartbeats are not getting through: the consumers of its "
                    "%d group shards are closed before another node may take them",
                    len(held),
                )
            for shard in held:
                self._lost.put_nowait(shard)
