"""A consumer instance: one member of a consumer group, reading and confirming for a client.

Resource handling: an instance is memory and a group membership, never a task, a
connection or a broker consumer. It reads through the ``Log`` contract, waits through
``LongPolls`` (woken by the log), and owns nothing that outlives ``close()``. Partition
state is created on first read, in-flight deliveries cost 16 bytes each.

Delivery: each record handed out gets the next number of the instance's *delivery
sequence* (1, 2, 3... per instance), and ``confirm(n)`` confirms every delivery up to
``n``. Per partition the committable position is the first unconfirmed delivery (see
``cursor``); the group commits it, only forward (see ``group``), before ``confirm``
returns, or in its next background round for a confirmation nobody waits on (a stream's,
a poll's ``confirm=true``; see ``confirm``).

At least once: delivered but unconfirmed events are never committed, so whoever reads
the partition next — another instance after a rebalance, the next instance after this
one is deleted or expires — starts from the committed position and gets them again.
Confirmed events are committed, and nobody reads below the committed position, so they
never come again.

Topics read by every instance (``Subscription.every_instance``: CloudEvents' test and dead
streams, which every instance of the client sees) are not shared out by the group: each
instance reads all of their partitions, from the group's committed position when it
starts and on from its own position after that, never skipping what another instance
confirmed meanwhile. Confirmations commit them as any other (only forward, so the group's
position is the furthest any instance confirmed without a gap), and an instance created
later starts there: what one instance confirmed, later ones do not see; what nobody
confirmed yet, they do. Their deliveries are not counted for dead-lettering: several
instances read each of them on purpose.

Rebalances are seen at the next heartbeat (each read). A partition that moved away is
no longer read; deliveries from it that are still unconfirmed may be confirmed (and
committed) until the instance's client does so, so a confirmation is never lost to a
rebalance. Its new owner reads from the group's committed position, and skips forward
whenever the group commits past it.

Error handling: ``UnknownConsumerInstance`` once the instance is closed (deleted,
expired, or dropped by the group coordinator); ``BadRequest`` for a confirmation beyond
what was delivered; whatever the log raises otherwise.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING

from sluicegate.core.consumers.batch import Batch
from sluicegate.core.consumers.cursor import PartitionCursor
from sluicegate.core.consumers.subscription import Subscription
from sluicegate.core.longpoll import LongPolls
from sluicegate.core.records import Record, TopicPartition
from sluicegate.core.topic_sets import shared_topics
from sluicegate.errors import (
    BadRequest,
    OffsetOutOfRange,
    SluicegateError,
    UnknownConsumerInstance,
    UnknownGroupMember,
    UnknownTopic,
)
from sluicegate.storage.base import Assignment, Log

if TYPE_CHECKING:
    from sluicegate.core.consumers.group import LocalGroup
    from sluicegate.core.consumers.registry import ConsumerInstances

__all__ = ["ConsumerInstance"]

logger = logging.getLogger("sluicegate.consumers")

#: Records one read takes from a filtered topic at least: most may be skipped.
_FILTERED_READ = 500
#: Records a batch may skip (filtered out) before it returns what it has.
_MAX_SKIPPED = 20_000
#: Seconds old the end of a partition read empty may be (``Log.watermarks``' max_age).
_END_MAX_AGE = 1.0
#: ``_subscription_version`` of an instance that must join its group again at its next
#: read, whether or not its topics' names changed (one of them was made again).
_REJOIN = -2
#: Seconds at least between looks at a handover whose deadline has come (a clock a
#: test holds still would otherwise make the wait zero, again and again).
_HANDOVER_RECHECK = 0.05


_keys = attrgetter("key")
_values = attrgetter("value")
_headers = attrgetter("headers")


@functools.lru_cache(maxsize=4096)
def _partitions(sizes: tuple[tuple[str, int], ...]) -> tuple[TopicPartition, ...]:
    """The partitions of topics of these sizes, one tuple for every instance reading them."""
    return tuple(TopicPartition(name, p) for name, count in sizes for p in range(count))


async def _lows(log: Log, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Each partition's low watermark, asked side by side; the first error raised once
    every question has ended."""
    answers = await asyncio.gather(
        *(log.watermarks(tp) for tp in partitions), return_exceptions=True
    )
    lows: dict[TopicPartition, int] = {}
    for tp, answer in zip(partitions, answers, strict=True):
        if isinstance(answer, BaseException):
            raise answer
        lows[tp] = answer.low
    return lows


def _size(records: list[Record]) -> int:
    """``sum(record.size() for record in records)``, counted by C loops: that sum, one
    Python call per record, cost as much as rendering the event."""
    # Names and values of every header, laid end to end; None and b"" keys/values add 0.
    headers = chain.from_iterable(chain.from_iterable(map(_headers, records)))
    return (
        sum(map(len, filter(None, map(_keys, records))))
        + sum(map(len, filter(None, map(_values, records))))
        + sum(map(len, headers))
    )


class ConsumerInstance:
    """A member of one group; see the module docstring. Built by ``ConsumerInstances``."""

    __slots__ = (
        "_assigned",
        "_closed_because",
        "_cursors",
        "_failure",
        "_generation",
        "_handover",
        "_lock",
        "_next",
        "_own",
        "_registry",
        "_rotation",
        "_subscription_version",
        "_topics",
        "_wake",
        "busy",
        "closed",
        "confirmable",
        "created",
        "group",
        "id",
        "kind",
        "last_used",
        "owner",
        "subscription",
    )

    def __init__(
        self,
        registry: ConsumerInstances,
        instance_id: str,
        owner: str,
        group: LocalGroup,
        subscription: Subscription,
    ) -> None:
        self._registry = registry
        #: Unguessable; also the member id in the group.
        self.id = instance_id
        #: The client that created it; nobody else may use it.
        self.owner = owner
        self.group = group
        self.subscription = subscription
        self.closed = False
        self._closed_because: SluicegateError | None = None
        #: Requests using the instance now; the reaper never takes a busy instance.
        self.busy = 0
        #: The last delivery a confirmation may name when it is not the last one read: a
        #: stream's, which reads a batch ahead of what its connection has sent (``None``:
        #: every delivery was handed over as it was read, as a poll's are).
        self.confirmable: int | None = None
        self.last_used = self.created = registry.monotonic()
        #: How its client reads: ``long_poll``, or the stream kind (``websocket``,
        #: ``sse``) that ``Streams.open`` sets; shown by the admin API's instance list.
        self.kind = "long_poll"
        self._topics: frozenset[str] = frozenset()
        self._subscription_version = -1
        self._generation = -1
        self._assigned: tuple[TopicPartition, ...] = ()
        #: The partitions of the topics every instance reads (the end of ``_assigned``).
        self._own: tuple[TopicPartition, ...] = ()
        self._cursors: dict[TopicPartition, PartitionCursor] | None = None
        #: The next delivery sequence number.
        self._next = 1
        self._rotation = 0
        #: Partitions given by a rebalance whose previous instance still owes them
        #: confirmations, and until when (``registry.monotonic``) this one waits.
        self._handover: dict[TopicPartition, float] | None = None
        self._lock: asyncio.Lock | None = None
        self._wake: asyncio.Future[None] | None = None
        #: What the group's background commit of this instance's confirmations failed
        #: with, until a confirmation raises it.
        self._failure: Exception | None = None

    # -- what callers ask ------------------------------------------------------------

    @property
    def delivered(self) -> int:
        """The last delivery sequence number handed out (0 before the first)."""
        return self._next - 1

    @property
    def unconfirmed(self) -> int:
        """Deliveries not confirmed yet (from partitions that moved away too)."""
        cursors = self._cursors
        return 0 if not cursors else sum(c.unconfirmed for c in cursors.values())

    @property
    def partitions(self) -> tuple[TopicPartition, ...]:
        """The partitions assigned to this instance at its last heartbeat."""
        return self._assigned

    @property
    def topics(self) -> frozenset[str]:
        """The topics the instance subscribed to at its last join."""
        return self._topics

    def touch(self) -> None:
        """Mark the instance as used now (it expires ``idle_timeout`` after its last use)."""
        self.last_used = self._registry.monotonic()

    def resubscribe(self) -> None:
        """The subscription's answer may have changed: ask it again at the next read."""
        self._subscription_version = -1

    def delivery_count(self, tp: TopicPartition, offset: int) -> int:
        """How many times the group has been handed this record so far."""
        return self.group.counts.count(tp, offset)

    async def next_batch(
        self,
        max_events: int,
        timeout: float,
        gone: Callable[[], Awaitable[object]] | None,
        *,
        window: int | None = None,
        polls: LongPolls | None = None,
    ) -> Batch:
        """Up to ``max_events`` records, waiting up to ``timeout`` seconds for the first.

        The wait is a long poll (``LongPolls.wait``): woken by the log, by a rebalance or
        a grown subscription, or by a confirmation that reopens a full window; it ends at
        once with ``Abandoned`` when ``gone()`` completes (``None``: only by
        cancellation). At most ``window`` deliveries (default ``max_unconfirmed``) are
        unconfirmed at any time: with the window full the instance reads nothing until
        confirmations arrive. An empty batch means the timeout passed. ``polls`` waits
        instead of the registry's long polls (a stream whose waits are not counted as
        long polls).
        """
        registry = self._registry
        waits = registry.long_polls if polls is None else polls
        limit = registry.settings.max_unconfirmed if window is None else window
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        woken_at = 0.0
        self.busy += 1
        try:
            while True:
                async with self._locked():
                    await self._refresh()
                    room = min(max_events, limit - self.unconfirmed)
                    batch = await self._read(room) if room > 0 else Batch(self._next, [])
                    # Deleted while it read: the wake-up ``close`` sent found no waiter, so
                    # a wait now would last the whole timeout.
                    self._check_open()
                    remaining = deadline - loop.time()
                    if batch or remaining <= 0:
                        batch.woken_at = woken_at
                        return batch
                    positions = self._positions() if room > 0 else {}
                    wake = self._wake_future()
                wait = self._handover_wait(remaining)
                await waits.wait(self.owner, positions, wait, gone, wake)
                if waits.ended:
                    return batch  # the server stops: the timeout's empty batch, now
                # For the streams' wake-to-write figure (``stream.WakeToWrite``).
                woken_at = time.perf_counter()
        finally:
            self.busy -= 1
            self.touch()

    async def confirm(self, upto: int | None = None, *, durable: bool = True) -> None:
        """Confirm every delivery with sequence number <= ``upto`` (all when ``None``).

        Durable before it returns: the group's committed positions are written. A number
        beyond the last delivery is a ``BadRequest``; one already confirmed changes
        nothing. Deliveries from a partition that has moved to another instance are
        committed all the same: the client handled them (see ``group``).

        With ``durable=False`` the confirmation is made (a full window has room at once)
        and its commit left to the group's next background round (``commit_soon``): for
        confirmations nobody answers (a WebSocket's) or whose answer is the next events
        (a poll's ``confirm=true``). ``close`` waits for that round, so what was
        confirmed is never delivered to the group again unless the node dies first: at
        least once, as a crash during a commit always allowed. A round that failed is
        raised here, once, by the next confirmation that does not wait.

        The commit runs outside the instance's lock: a read of the next batch (a stream
        delivers while its client confirms) need not wait for the group's write, and
        the group's own lock keeps its commits in order.
        """
        self.busy += 1
        try:
            async with self._locked():
                self._check_open()
                if not durable:
                    self._raise_failure()
                delivered = self._next - 1 if self.confirmable is None else self.confirmable
                if upto is None:
                    upto = delivered
                elif upto < 1:
                    raise BadRequest(
                        f"offset must be a delivered event's offset (>= 1), got {upto}",
                        field="offset",
                    )
                elif upto > delivered:
                    told = f"offsets 1 to {delivered}" if delivered else "no events yet"
                    raise BadRequest(
                        f"offset {upto} was never delivered: this consumer instance "
                        f"has delivered {told}",
                        field="offset",
                    )
                if self._cursors:
                    for cursor in self._cursors.values():
                        cursor.confirm(upto)
                self.wake()  # a full window may have room now
            if durable:
                self._failure = None  # this commit carries what a failed round did
                await self._commit()
            else:
                self.group.commit_soon(self._registry.log, self)
        finally:
            self.busy -= 1
            self.touch()

    async def settle(self) -> None:
        """Wait for the background commit of this instance's confirmations; raise the
        error it failed with (once)."""
        await self.group.flushed(self)
        self._raise_failure()

    def commit_ended(self, error: Exception | None) -> None:
        """The group's background round carrying this instance's confirmations ended:
        written (``None``: a failure before it is made good too), or failed."""
        self._failure = error
        if error is None:
            self._forget_moved()

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def wake(self) -> None:
        """End a long poll of this instance early so that it looks again."""
        wake = self._wake
        if wake is None:
            if self.busy:
                # No wait yet, but a read may be under way, between its heartbeat and
                # its wait: a done future makes that wait look again at once instead of
                # sleeping through what changed (a partition freed by a leaving member).
                wake = self._wake = asyncio.get_running_loop().create_future()
                wake.set_result(None)
            return
        if not wake.done():
            self._wake = None
            wake.set_result(None)

    # -- membership ------------------------------------------------------------------

    async def join(self) -> None:
        """Join the group with the subscription's topics as they are now."""
        version = self.subscription.version()
        topics = await self.subscription.topics()
        self._subscription_version = version
        await self._join(topics)

    async def _join(self, topics: frozenset[str]) -> None:
        registry = self._registry
        log = registry.log
        every_instance = self.subscription.every_instance
        own = [topic for topic in sorted(topics) if every_instance(topic)]
        shared = topics.difference(own) if own else topics
        dropped: set[str] = set()
        while True:
            try:
                assignment = await log.join_group(
                    self.group.name, self.id, sorted(shared), registry.settings.session_timeout
                )
                break
            except UnknownTopic as exc:
                # Deleted since the subscription listed it: read the others.
                missing = exc.detail.get("topic")
                if missing not in shared:
                    raise
                shared = shared - {missing}
                dropped.add(missing)
        sizes: list[tuple[str, int]] = []
        for name in own:
            try:
                sizes.append((name, (await log.get_topic(name)).partitions))
            except UnknownTopic:
                dropped.add(name)  # deleted too
        # Shared with every instance of an equal subscription: 10,000 idle instances.
        self._topics = shared_topics(topics - dropped) if dropped else topics
        self._own = _partitions(tuple(sizes))
        self._generation = -1  # the own partitions may have changed with the same share
        self._apply(assignment)

    async def _refresh(self) -> None:
        """Heartbeat, and re-join if the subscription grew: the assignment is current."""
        self._check_open()
        registry = self._registry
        # A topic deleted and made again since the last read is a new topic: its positions
        # are forgotten, and its partitions may be more (``topic_replaced``).
        await self.group.check_topics(registry.log, {tp.topic for tp in self._assigned})
        try:
            version = self.subscription.version()
            if self._subscription_version != version:
                rejoin = self._subscription_version == _REJOIN
                topics = await self.subscription.topics()
                self._subscription_version = version
                if rejoin or topics != self._topics:
                    await self._join(topics)
                    self.group.changed(self)  # the others' shares changed too
                    return
            assignment = await registry.log.heartbeat(self.group.name, self.id)
        except UnknownGroupMember:
            # The coordinator dropped the member (its session ran out): the instance is
            # gone for good; its partitions are already with the others.
            await registry.discard(self)
            raise self._gone() from None
        self._apply(assignment)

    def topic_replaced(self, name: str) -> None:
        """The group forgot topic ``name`` (deleted, maybe made again under its name): its
        cursors go, and the instance joins again at its next read. The deliveries from it
        still unconfirmed are nobody's to confirm now; their events are gone."""
        cursors = self._cursors
        if cursors:
            for tp in [tp for tp in cursors if tp.topic == name]:
                del cursors[tp]
        if name in self._topics:
            self._subscription_version = _REJOIN
            self.wake()

    def _apply(self, assignment: Assignment) -> None:
        if assignment.generation == self._generation:
            return
        self._generation = assignment.generation
        before = set(self._assigned)
        self._assigned = assignment.partitions + self._own
        self._rotation = 0
        self._forget_moved()
        self._take_over([tp for tp in assignment.partitions if tp not in before])

    def _take_over(self, given: list[TopicPartition]) -> None:
        """Wait for the partitions ``given`` by this rebalance (``_held_elsewhere``)."""
        handover = self._handover
        if handover:
            assigned = set(self._assigned)
            for tp in [tp for tp in handover if tp not in assigned]:
                del handover[tp]
        timeout = self._registry.settings.handover_timeout
        if given and timeout > 0:
            deadline = self._registry.monotonic() + timeout
            handover = self._handover = handover or {}
            for tp in given:
                handover.setdefault(tp, deadline)
        if handover:
            self.group.taking_over.add(self)
        else:
            self._handover = None
            self.group.taking_over.discard(self)

    def _held_elsewhere(self, tp: TopicPartition) -> bool:
        """Whether ``tp``, given to this instance by a rebalance, is still owed by another
        instance of the group: one that delivered events of it that its client has not
        confirmed yet, or whose confirmations are not committed yet.

        Read now, from the group's committed position, those events would be delivered
        again: an instance joining a busy group would be handed most of what the others
        hold. So the partition waits, up to ``handover_timeout``, for that client's
        confirmation (a poll's ``confirm=true``, a stream's ``confirm:``), as Kafka's
        cooperative rebalance lets the previous owner commit before the next reads. A
        group commit wakes the instances waiting (``LocalGroup.taking_over``); past the
        timeout the partition is read anyway, and what is still unconfirmed comes again
        (at least once). An instance that is deleted or expires owes nothing: its
        unconfirmed events go to the group at once.
        """
        handover = self._handover
        if not handover or (deadline := handover.get(tp)) is None:
            return False
        if self._registry.monotonic() < deadline:
            committed = self.group.committed.get(tp, -1)
            for other in self.group.instances.values():
                if other is not self and other._owes(tp, committed):
                    return True
        del handover[tp]
        if not handover:
            self._handover = None
            self.group.taking_over.discard(self)
        return False

    def _owes(self, tp: TopicPartition, committed: int) -> bool:
        cursors = self._cursors
        cursor = cursors.get(tp) if cursors else None
        return cursor is not None and (cursor.unconfirmed > 0 or cursor.committable() > committed)

    def _handover_wait(self, remaining: float) -> float:
        """``remaining``, or less: until the first handover's deadline."""
        handover = self._handover
        if not handover:
            return remaining
        left = min(handover.values()) - self._registry.monotonic()
        return min(remaining, max(left, _HANDOVER_RECHECK))

    # -- reading ---------------------------------------------------------------------

    def _positions(self) -> dict[TopicPartition, int]:
        cursors = self._cursors or {}
        return {tp: cursors[tp].position for tp in self._assigned if tp in cursors}

    async def _cursor(self, tp: TopicPartition) -> PartitionCursor | None:
        """The cursor of assigned ``tp``, from the group's committed position (else the
        earliest record); ``None`` if its topic is gone."""
        cursors = self._cursors
        if cursors is None:
            cursors = self._cursors = {}
        cursor = cursors.get(tp)
        group = self.group
        if cursor is None:
            log = self._registry.log
            # Confirmations of the group's other instances being committed in the
            # background count as committed: never read what another confirmed.
            await group.flushed()
            try:
                stored = await log.committed_offsets(group.name, tp.topic)
                new = [o for o in self._assigned if o.topic == tp.topic and o not in cursors]
                # A group that never committed here starts at the earliest event: asked
                # side by side (on Kafka each is a round trip, twelve for a type's topic).
                fresh = [
                    o for o in new if stored.get(o.partition, -1) < 0 and o not in group.committed
                ]
                earliest = await _lows(log, fresh) if fresh else {}
                for other in new:
                    position = earliest.get(other, stored.get(other.partition, -1))
                    cursors[other] = PartitionCursor(group.learned(other, position))
            except UnknownTopic:
                self._subscription_version = -1  # re-join without it
                return None
            cursor = cursors.get(tp)
        elif (committed := group.committed.get(tp)) is not None and tp not in self._own:
            # Another instance of the group may have committed past this one's position
            # (this partition had another owner for a while): never read below it.
            cursor.skip_to(committed)
        return cursor

    async def _read(self, limit: int) -> Batch:
        """Up to ``limit`` records, partitions taken in turn, each from its position."""
        assigned = self._assigned
        first = self._next
        count = len(assigned)
        if not count:
            return Batch(first, [])
        records: list[Record] = []
        counts: dict[int, int] | None = None
        bytes_left = self._registry.settings.max_batch_bytes
        skipped = 0
        group = self.group
        dead_lettered = failed = False
        rotation = self._rotation
        self._rotation = (rotation + 1) % count
        prefetched = count == 1
        for step in range(count):
            tp = assigned[(rotation + step) % count]
            if self._handover is not None and self._held_elsewhere(tp):
                continue
            cursor = await self._cursor(tp)
            if cursor is None:
                continue
            accept = self.subscription.filter(tp.topic)
            counted = tp not in self._own
            while (want := limit - len(records)) > 0 and bytes_left > 0:
                asked = want if accept is None else max(want, _FILTERED_READ)
                chunk = await self._read_chunk(tp, cursor, asked, bytes_left)
                if not chunk:
                    break
                if not prefetched:
                    # A full chunk: a backlog, whose next batches read the other
                    # partitions. A backend that fetches over a network starts on them
                    # now, side by side, instead of one round trip per batch later.
                    prefetched = True
                    if len(chunk) >= asked:
                        self._prefetch(tp)
                end = chunk[-1].offset + 1
                if accept is None:
                    taken = chunk
                else:
                    # Past ``want`` records, the first one not taken is where this
                    # partition goes on next time.
                    taken = accept(chunk)
                    if len(taken) > want:
                        end = taken[want].offset
                        del taken[want:]
                    skipped += len(chunk) - len(taken)
                again = None
                if taken:
                    offsets = [record.offset for record in taken]
                    if counted:
                        again = group.counts.delivered(tp, offsets)
                    group.deliveries += len(taken)
                if again:
                    try:
                        taken, offsets, again, dead = await self._redelivered(
                            tp, taken, offsets, again, head=not cursor.unconfirmed
                        )
                    except SluicegateError:
                        if not records:
                            raise
                        # Events of other partitions are in flight already: hand them
                        # out; this chunk (not delivered, its position unmoved) is read
                        # again next time.
                        logger.exception("dead-lettering in group %r failed", group.name)
                        failed = True
                        break
                    dead_lettered = dead_lettered or dead
                cursor.position = end
                if taken:
                    cursor.deliver(self._next, offsets)
                    if again:
                        base = len(records)
                        counts = counts or {}
                        counts.update({base + index: n for index, n in again.items()})
                    records.extend(taken)
                    self._next += len(taken)
                    if len(records) < limit:
                        # Only a batch that goes on reading counts its bytes: the read
                        # that fills it was bounded by the log already.
                        bytes_left -= _size(taken)
                if len(chunk) < asked or skipped >= _MAX_SKIPPED:
                    break  # this partition is drained (or too much was skipped)
            if failed or len(records) >= limit or bytes_left <= 0 or skipped >= _MAX_SKIPPED:
                break
        if dead_lettered:
            await self._commit_dead()
        return Batch(first, records, counts)

    def _prefetch(self, reading: TopicPartition) -> None:
        """Tell the log where the assigned partitions but ``reading`` will be read from."""
        cursors = self._cursors or {}
        positions = {
            tp: cursor.position
            for tp in self._assigned
            if tp != reading and (cursor := cursors.get(tp)) is not None
        }
        if positions:
            self._registry.log.prefetch(positions)

    async def _redelivered(
        self,
        tp: TopicPartition,
        taken: list[Record],
        offsets: list[int],
        again: dict[int, int],
        *,
        head: bool,
    ) -> tuple[list[Record], list[int], dict[int, int], bool]:
        """Redeliveries among ``taken`` (``again``: index -> count): dead-letter the event
        delivered ``max_deliveries`` times already, store the counts of the others before
        they are handed out; what is left to deliver, and whether any went dead.

        Only the partition's *head* goes dead — its first unconfirmed event (``head``:
        nothing of the partition is in flight before ``taken``). The events after it were
        delivered as often, but behind it: confirming them means confirming it, so a
        consumer that fails on one event never had a chance to. Their counts start again.

        Order matters for a crash: the dead event is durable in the dead stream, then its
        ``dead`` mark is stored, then (``_commit_dead``) the group commits past it. A
        crash after the first step writes it to the dead stream again at the next read
        (the dead stream's de-duplication by ``source`` + ``id`` drops that second copy
        within its window); a crash after the second skips it. Never is it lost.
        """
        group = self.group
        counts = group.counts
        sink = self._registry.dead_letters
        limit = group.max_deliveries if sink is not None else 0
        kept: list[Record] = []
        kept_again: dict[int, int] = {}
        dead = False
        for index, record in enumerate(taken):
            count = again.get(index)
            if count is not None:
                offset = record.offset
                if counts.is_dead(tp, offset):
                    dead = True  # dead-lettered before a crash or a failed commit
                    continue
                if head and not kept and not dead and limit and count > limit and sink:
                    await sink.dead_letter(self.owner, group.name, record, count - 1)
                    counts.dead(tp, offset)  # and forgets the counts after it
                    group.dead_letters += 1
                    dead = True
                    continue
                if not dead:
                    kept_again[len(kept)] = count
            kept.append(record)
        if dead:
            offsets = [record.offset for record in kept]
        group.deliveries -= len(taken) - len(kept)
        group.redeliveries += len(kept_again)
        if limit:
            # Only a group that dead-letters needs its counts after a restart; a group
            # that never confirms would otherwise write its whole backlog's counts.
            await group.save_counts([tp])
        return kept, offsets, kept_again, dead

    async def _commit_dead(self) -> None:
        """Commit past events just dead-lettered, as far as confirmations allow."""
        try:
            await self._commit()
        except SluicegateError:
            # The events read are in flight already and must be handed out; the next
            # confirmation commits past the dead ones (their dead mark is stored).
            logger.exception("commit after dead-lettering in group %r failed", self.group.name)

    async def _read_chunk(
        self, tp: TopicPartition, cursor: PartitionCursor, asked: int, max_bytes: int
    ) -> list[Record]:
        log = self._registry.log
        try:
            records = await log.read(tp, cursor.position, max_records=asked, max_bytes=max_bytes)
            if records:
                return records
            # Offsets may hold no record (on Kafka, a transaction's commit marker): nothing
            # to read yet the end is past the position, so a wait would return at once,
            # forever. A second read after the end was taken proves nothing lies below it.
            # The end the read just learned will do (on Kafka it asked the broker; asking
            # again would cost every caught-up partition two more round trips a batch).
            high = (await log.watermarks(tp, max_age=_END_MAX_AGE)).high
            if high <= cursor.position:
                return []
            records = await log.read(tp, cursor.position, max_records=asked, max_bytes=max_bytes)
            if not records:
                cursor.position = high
            return records
        except OffsetOutOfRange:
            # Retention passed the position (those records are gone for everyone), or the
            # topic was recreated shorter: go on from the nearest record that exists.
            marks = await log.watermarks(tp)
            cursor.position = min(max(cursor.position, marks.low), marks.high)
            return await log.read(tp, cursor.position, max_records=asked, max_bytes=max_bytes)
        except UnknownTopic:
            self._subscription_version = -1  # deleted: re-join without it
            return []

    # -- confirming ------------------------------------------------------------------

    async def _commit(self) -> None:
        """Commit every partition's confirmed prefix that is ahead of the group's."""
        if self._cursors:
            await self.group.commit(self._registry.log, self.committable())
            self._forget_moved()

    def committable(self) -> dict[TopicPartition, int]:
        """Each partition's position up to which everything was confirmed."""
        cursors = self._cursors
        return {tp: cursor.committable() for tp, cursor in cursors.items()} if cursors else {}

    def _forget_moved(self) -> None:
        """Drop the cursors of partitions that moved away once nothing of them is owed:
        no delivery unconfirmed, and every confirmation committed (after a rebalance, and
        after a commit, which may have written the last of them).

        A partition that moved away is no longer read, but its cursor is what a commit
        takes its confirmed position from: dropped while a background round (a poll's
        ``confirm=true``, a stream's ``confirm:``) has yet to write it, the confirmation
        would never be committed, and the partition's next owner would deliver those
        events again.
        """
        cursors = self._cursors
        if cursors:
            # The assignment as it is now: a read may have rebalanced while it committed.
            assigned = set(self._assigned)
            committed = self.group.committed
            for tp in [
                tp
                for tp, c in cursors.items()
                if tp not in assigned
                and not c.unconfirmed
                and c.committable() <= committed.get(tp, -1)
            ]:
                del cursors[tp]

    # -- lifecycle -------------------------------------------------------------------

    async def close(self, why: SluicegateError | None = None) -> None:
        """Leave the group (its other members take the partitions) and free everything.

        ``why``: what a request to the instance under way hears from now on (default: it
        was deleted or expired).
        """
        if self.closed:
            return
        self.closed = True
        self._closed_because = why
        try:
            await self.settle()  # what was confirmed is committed before the group moves on
        except SluicegateError:
            logger.exception("committing confirmations in group %r failed", self.group.name)
        cursors = self._cursors
        if cursors and self.group.max_deliveries:
            # The next instance's delivery of what is unconfirmed here is a second one:
            # store how far this one delivered, so that a restart does not forget it.
            try:
                await self.group.save_counts(
                    [tp for tp, c in cursors.items() if c.unconfirmed and tp not in self._own]
                )
            except SluicegateError:
                logger.exception("storing delivery counts of group %r failed", self.group.name)
        self._cursors = None
        self._assigned = ()
        self._handover = None
        self.group.taking_over.discard(self)
        self.wake()
        await self._registry.log.leave_group(self.group.name, self.id)

    def _check_open(self) -> None:
        if self.closed:
            raise self._gone()

    def _gone(self) -> SluicegateError:
        if self._closed_because is not None:
            return self._closed_because
        return UnknownConsumerInstance(
            f"consumer instance {self.id!r} was deleted or expired", instance=self.id
        )

    def _locked(self) -> asyncio.Lock:
        # Created on first use: most instances never see two requests at once, and an
        # idle instance should cost as little as possible.
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _wake_future(self) -> asyncio.Future[None]:
        wake = self._wake
        if wake is None:
            wake = self._wake = asyncio.get_running_loop().create_future()
        elif wake.done():
            self._wake = None  # woken during the read: this wait ends at once, once
        return wake

    def __repr__(self) -> str:
        return f"ConsumerInstance({self.id!r}, owner={self.owner!r}, group={self.group.name!r})"
