"""Every consumer instance of this node: created, found by owner, deleted, and reaped.

Idle expiry: one reaper for all instances (``run``), never a timer per instance. It
keeps a heap of (deadline, instance id), one entry per instance, and sleeps until the
first deadline. A request only stamps ``last_used`` (no heap work on the hot path); when
an entry comes due the reaper compares it with the instance's real deadline and pushes
it back if the instance was used since, or is serving a request right now. An expired
instance is closed like a deleted one: it leaves its group (the others take its
partitions from the committed positions), its waiters are woken, its memory freed, and
its id answers 404 from then on.

Caps: instances per client and overall (``max_instances_per_client``, ``max_instances``)
bound the memory a client that never deletes can hold until its instances expire.

Placement: on a log shared by several nodes every instance of a group must be on one
node (its members and commits are this process's), the node holding the group's shard
(``core/group_shards.py``). ``create`` claims the shard when no live node holds it and
refuses a group another node serves (``GroupElsewhere``; the HTTP layer normally sends
the request there first). A shard this node loses closes its groups' instances
(``close_lost``), and every commit is fenced by the lease (``LocalGroup.fence``).

Groups: a group whose last instance here is gone stays known, idle (its committed
positions, delivery counts and figures), up to ``MAX_IDLE_GROUPS``, the longest idle
forgotten first: its lag is what an operator alerts on when its consumers are all gone,
and its next instance finds its counts without reading them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Protocol

import msgspec

from sluicegate.core.consumers.count_store import DeliveryCountStore
from sluicegate.core.consumers.dead import DeadLetters
from sluicegate.core.consumers.group import LocalGroup
from sluicegate.core.consumers.instance import ConsumerInstance
from sluicegate.core.consumers.subscription import Subscription
from sluicegate.core.longpoll import LongPolls
from sluicegate.errors import (
    BadRequest,
    Conflict,
    GroupElsewhere,
    Overloaded,
    RateLimited,
    SluicegateError,
    UnknownConsumerInstance,
)
from sluicegate.storage.base import Log

__all__ = ["ConsumerInstances", "ConsumerSettings", "GroupPlacement"]

logger = logging.getLogger("sluicegate.consumers")

#: Bytes of randomness in an instance id (22 URL-safe characters).
_ID_BYTES = 16
#: Groups kept after their last instance here is gone (a few kB each: a position and a
#: delivered end per partition read).
MAX_IDLE_GROUPS = 1_000


class GroupPlacement(Protocol):
    """Which node serves a group (``core.group_shards.GroupShards``)."""

    node_id: str

    def shard(self, group: str) -> int: ...

    async def acquire(self, group: str) -> str: ...

    def check_held(self, group: str) -> None: ...


class ConsumerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How consumer instances behave; the dialect builds it from its settings."""

    #: Seconds without a request after which an instance is removed.
    idle_timeout: float = 300.0
    #: Deliveries an instance may have unconfirmed; reading stops while it is full.
    max_unconfirmed: int = 10_000
    #: Seconds an instance given a partition by a rebalance waits for the instance it
    #: came from to confirm (and commit) what it delivered of it, before reading it
    #: from the group's committed position anyway (0: no wait, as an eager Kafka
    #: rebalance). See ``ConsumerInstance._held_elsewhere``.
    handover_timeout: float = 0.0
    #: Bytes of record data one batch holds at most (its first record always fits).
    max_batch_bytes: int = 4 * 1024 * 1024
    #: Live instances on this node, and per client.
    max_instances: int = 100_000
    max_instances_per_client: int = 10_000

    @property
    def session_timeout(self) -> float:
        """The group session of an instance's membership.

        Longer than the idle timeout: the reaper, which frees everything, acts first;
        the coordinator drops the member by itself only if the reaper could not.
        """
        return self.idle_timeout * 2


class ConsumerInstances:
    """The consumer instances of one node, over one log."""

    def __init__(
        self,
        log: Log,
        long_polls: LongPolls,
        settings: ConsumerSettings,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        dead_letters: DeadLetters | None = None,
        count_store: DeliveryCountStore | None = None,
    ) -> None:
        self.log = log
        self.long_polls = long_polls
        self.settings = settings
        self.monotonic = monotonic
        #: Where events delivered ``max_deliveries`` times go (``None``: nowhere, and
        #: ``max_deliveries`` is refused).
        self.dead_letters = dead_letters
        self.count_store = count_store
        #: Which node serves each group (``None``: this one, every group).
        self.placement: GroupPlacement | None = None
        self._instances: dict[str, ConsumerInstance] = {}
        self._groups: dict[str, LocalGroup] = {}
        self._idle: OrderedDict[str, LocalGroup] = OrderedDict()
        self._per_client: dict[str, int] = {}
        self._deadlines: list[tuple[float, str]] = []
        #: Set when a deadline earlier than the reaper's next wake-up is added.
        self._sooner: asyncio.Event | None = None
        log.on_rebalance(self._rebalanced)

    def _rebalanced(self, group: str) -> None:
        """The log rebalanced ``group`` (a topic it reads was grown, made or deleted): its
        waiting instances heartbeat now, not at their wait's end (a WebSocket stream
        waits about a minute at a time)."""
        local = self._groups.get(group)
        if local is not None:
            local.changed()

    def __len__(self) -> int:
        return len(self._instances)

    async def create(
        self,
        owner: str,
        group: str,
        subscription: Subscription,
        *,
        max_deliveries: int = 0,
    ) -> ConsumerInstance:
        """A new instance of ``owner`` in storage group ``group``, joined and assigned.

        ``max_deliveries`` (0: off) is the group's: an instance asking for another value
        than the group's live instances use is a ``Conflict``. Beyond the caps:
        ``RateLimited`` (this client's) or ``Overloaded`` (the node's).
        """
        held = self._per_client.get(owner, 0)
        if held >= self.settings.max_instances_per_client:
            raise RateLimited(
                f"client {owner!r} has {held} consumer instances, the most it may have: "
                "delete the ones it no longer uses",
                retry_after=self.settings.idle_timeout,
            )
        if len(self._instances) >= self.settings.max_instances:
            raise Overloaded(
                "this node holds as many consumer instances as it may; try again later",
                retry_after=60.0,
            )
        if max_deliveries and self.dead_letters is None:
            raise BadRequest(
                "max_deliveries needs a dead stream, and these consumers have none",
                field="max_deliveries",
            )
        await self._place(group)
        local = self._groups.get(group)
        if local is not None and local.instances and local.max_deliveries != max_deliveries:
            raise Conflict(
                f"max_deliveries is {local.max_deliveries or 'off'} for this consumer group "
                f"(its instances use it), not {max_deliveries or 'off'}: use the same value, "
                "or end the group's instances first",
                field="max_deliveries",
            )
        if local is None:
            local = self._idle.pop(group, None)
            if local is None:
                local = LocalGroup(group, self.count_store)
                if self.placement is not None:
                    local.fence = self.placement.check_held
            else:
                local.reload_counts()  # another node may have had the group meanwhile
            self._groups[group] = local
        local.max_deliveries = max_deliveries
        instance = ConsumerInstance(
            self, secrets.token_urlsafe(_ID_BYTES), owner, local, subscription
        )
        # Counted before joining, so that concurrent creations respect the caps.
        self._instances[instance.id] = instance
        local.instances[instance.id] = instance
        self._per_client[owner] = held + 1
        try:
            await instance.join()
        except BaseException:
            self._forget(instance)
            await self.log.leave_group(group, instance.id)
            raise
        local.changed(instance)
        instance.touch()
        heapq.heappush(
            self._deadlines, (instance.last_used + self.settings.idle_timeout, instance.id)
        )
        return instance

    async def _place(self, group: str) -> None:
        """Return once this node serves ``group`` (claiming its shard if it was free);
        ``GroupElsewhere`` when another live node does."""
        placement = self.placement
        if placement is None:
            return
        holder = await placement.acquire(group)
        if holder != placement.node_id:
            raise GroupElsewhere(
                f"this consumer group is served by node {holder!r}, not this one "
                f"({placement.node_id!r}): send the request to that node",
                retry_after=1.0,
                node=holder,
            )
        placement.check_held(group)

    async def close_lost(self, shards: AsyncIterator[int]) -> None:
        """Close the instances of the groups of each shard this node loses, and forget
        those groups (another node serves them now, from their committed positions)."""
        async for shard in shards:
            placement = self.placement
            if placement is None:
                continue
            for local in list(self.groups()):
                if placement.shard(local.name) != shard:
                    continue
                lost = GroupElsewhere(
                    "this node no longer serves the consumer group (it lost touch with the "
                    "log, or another node took the group): connect again"
                )
                for instance in list(local.instances.values()):
                    try:
                        await self.discard(instance, lost)
                    except SluicegateError:
                        # Closed and forgotten before the failing step (leaving its
                        # group): it answers 404 all the same, and the task goes on.
                        logger.exception("closing %r of a lost group shard failed", instance)
                self._idle.pop(local.name, None)

    def get(self, owner: str, group: str, instance_id: str) -> ConsumerInstance:
        """The live instance ``instance_id`` of ``owner`` in ``group``, touched.

        ``UnknownConsumerInstance`` if there is none — including when it belongs to
        another client, so that nobody can learn which ids exist.
        """
        instance = self._instances.get(instance_id)
        if instance is None or instance.owner != owner or instance.group.name != group:
            raise UnknownConsumerInstance(
                f"no consumer instance {instance_id[:64]!r} in this group: it was deleted, "
                f"it expired after {self.settings.idle_timeout:g} s without requests, "
                "or it never existed",
                instance=instance_id[:64],
            )
        instance.touch()
        return instance

    async def delete(self, owner: str, group: str, instance_id: str) -> None:
        """Delete an instance (``UnknownConsumerInstance`` as ``get``)."""
        await self.discard(self.get(owner, group, instance_id))

    async def discard(self, instance: ConsumerInstance, why: SluicegateError | None = None) -> None:
        """Close ``instance`` and forget it; its group's other instances look again.
        ``why``: what a request to it under way hears (``ConsumerInstance.close``)."""
        if self._instances.get(instance.id) is not instance:
            return
        self._forget(instance)
        await instance.close(why)
        instance.group.changed()

    def _forget(self, instance: ConsumerInstance) -> None:
        del self._instances[instance.id]
        local = instance.group
        local.instances.pop(instance.id, None)
        if not local.instances and self._groups.get(local.name) is local:
            del self._groups[local.name]
            self._idle[local.name] = local
            while len(self._idle) > MAX_IDLE_GROUPS:
                self._idle.popitem(last=False)
        left = self._per_client[instance.owner] - 1
        if left:
            self._per_client[instance.owner] = left
        else:
            del self._per_client[instance.owner]

    def subscriptions_changed(self) -> None:
        """Some subscriptions' versions moved (a new event type, say): the instances
        waiting in a long poll look again now instead of at their timeout."""
        for instance in self._instances.values():
            instance.wake()

    # -- idle expiry -----------------------------------------------------------------

    async def flush(self) -> None:
        """Wait for every group's background commits (``LocalGroup.commit_soon``): at
        shutdown, once nothing confirms any more and before the log closes."""
        for group in [*self._groups.values(), *self._idle.values()]:
            await group.flushed()

    def expire_in(self, instance: ConsumerInstance, seconds: float) -> None:
        """Let ``instance`` expire ``seconds`` from now unless it is used before.

        For a stream's instance whose connection ended: it waits that long for its
        client to reconnect, not the whole idle timeout. Its idle clock is set as if it
        had last been used ``idle_timeout - seconds`` ago, so that a later use (a
        confirmation on its URL) gives it the whole idle timeout again, as for any
        instance; the reaper is woken when this deadline comes before its next one.
        """
        if self._instances.get(instance.id) is not instance:
            return
        now = self.monotonic()
        instance.last_used = now - self.settings.idle_timeout + seconds
        heapq.heappush(self._deadlines, (now + seconds, instance.id))
        if self._sooner is not None:
            self._sooner.set()

    async def reap_due(self) -> int:
        """Close every instance idle past ``idle_timeout``; how many were closed."""
        idle = self.settings.idle_timeout
        now = self.monotonic()
        deadlines = self._deadlines
        reaped = 0
        while deadlines and deadlines[0][0] <= now:
            _, instance_id = heapq.heappop(deadlines)
            instance = self._instances.get(instance_id)
            if instance is None:
                continue  # deleted meanwhile
            due = instance.last_used + idle
            if instance.busy:
                # Serving a request (a long poll, say): looked at again a little later.
                heapq.heappush(deadlines, (now + idle * 0.1, instance_id))
                continue
            if due > now:
                heapq.heappush(deadlines, (due, instance_id))
                continue
            try:
                await self.discard(instance)
            except SluicegateError:
                # Closed and forgotten before the failing step (a storage outage while it
                # leaves its group): it answers 404 all the same, and the reaper goes on.
                logger.exception("closing %r, idle past its timeout, failed", instance)
            reaped += 1
        return reaped

    async def run(self) -> None:
        """Reap idle instances until cancelled: sleep until the first deadline, repeat."""
        sooner = self._sooner = asyncio.Event()
        while True:
            await self.reap_due()
            if self._deadlines:
                delay = self._deadlines[0][0] - self.monotonic()
            else:
                # New instances' deadlines are an idle timeout away at least (those of
                # ``expire_in`` set ``sooner``).
                delay = self.settings.idle_timeout
            sooner.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sooner.wait(), max(delay, 0.01))

    def live(self) -> list[ConsumerInstance]:
        """Every live instance of this node (a copy: the registry may change meanwhile)."""
        return list(self._instances.values())

    def groups(self) -> Iterator[LocalGroup]:
        """Every group known here: with instances, then idle ones."""
        yield from list(self._groups.values())
        yield from list(self._idle.values())

    def group(self, name: str) -> LocalGroup | None:
        """The storage group ``name`` if it is known here."""
        return self._groups.get(name) or self._idle.get(name)

    def stats(self) -> dict[str, float]:
        """Gauges for /metrics."""
        return {
            "instances": len(self._instances),
            "groups": len(self._groups),
            "redelivered_unconfirmed": sum(g.counts.redelivered for g in self._groups.values()),
        }
