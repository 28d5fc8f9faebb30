"""The storage contract: one async, batch-oriented log that every backend implements.

A backend stores Kafka's records one to one (see ``core.records``) and knows nothing of
HTTP or dialects. Every backend passes the shared contract suite in
``tests/storage/test_contract.py``.

Durability: an ``append``'s future resolves only after the records are durable (SQLite: the
transaction holding them committed with ``synchronous=FULL``; Kafka: ``acks=all``).
If it fails, none of the batch was written. If the *caller* stops waiting, the batch is
still committed or failed as a whole — cancellation never half-writes.

Lifecycle (structured, see DESIGN.md): the owner runs ``await log.run(ready)`` as a task
in its TaskGroup; ``ready`` resolves once the log is open and recovered. ``close()``
refuses new writes with ``ShuttingDown``, commits what is queued, resolves every waiter
and makes ``run`` return. If the backend's writer dies, ``run`` raises, which brings the
TaskGroup — and with it the server — down: never a gateway accepting writes nobody
commits.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

import msgspec

from sluicegate.core.records import Appended, NewRecord, Record, TopicPartition, Watermarks
from sluicegate.core.topics import Topic, TopicSpec, TopicUpdate

__all__ = ["Assignment", "CommitObserver", "Log", "running"]

#: Called by a backend after each durable commit with (records, seconds it took).
CommitObserver = Callable[[int, float], None]


class Assignment(msgspec.Struct, frozen=True):
    """A group member's share of the group's partitions in one generation."""

    group: str
    member_id: str
    generation: int
    partitions: tuple[TopicPartition, ...]


class Log(abc.ABC):
    """A durable, partitioned log with topics and consumer groups."""

    #: Records of the gateway's internal topics it skipped, being none it can read
    #: (``skip_unreadable``); /metrics counts them.
    unreadable_records = 0

    # -- lifecycle -------------------------------------------------------------------

    @abc.abstractmethod
    async def run(self, ready: asyncio.Future[None]) -> None:
        """Open and recover, resolve ``ready``, then serve until ``close()``.

        Raises (after failing every pending write) if the backend cannot go on.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Refuse new writes, commit the queue, wake every waiter; ``run`` then returns."""

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise ``StorageUnavailable`` unless the log can take writes now (for /readyz)."""

    def stats(self) -> dict[str, float]:
        """Gauges for /metrics, e.g. ``{"waiters": 12, "pending_appends": 0}``; a name
        ending in ``_total`` is a counter."""
        return {"unreadable_records_skipped_total": self.unreadable_records}

    def skip_unreadable(self) -> None:
        """Count a record of an internal topic that is skipped as unreadable (the caller
        says which): anything with write access to a Kafka topic may append to it."""
        self.unreadable_records += 1

    def unreachable(self) -> str | None:
        """Why the storage cannot be reached now, as far as the log already knows (no
        request is made), else ``None``. A long poll that found nothing asks it before it
        answers "nothing new", which an outage would otherwise look like. Embedded
        storage is always reached: the default."""
        return None

    # -- topics ----------------------------------------------------------------------

    @abc.abstractmethod
    async def create_topic(self, spec: TopicSpec) -> Topic:
        """Create a topic; ``TopicExists`` if the name is taken, ``BadRequest`` if invalid."""

    @abc.abstractmethod
    async def get_topic(self, name: str) -> Topic:
        """The topic called ``name``, or ``UnknownTopic``."""

    @abc.abstractmethod
    async def get_topic_by_id(self, topic_id: int) -> Topic:
        """The topic with this stable id, or ``UnknownTopic``."""

    @abc.abstractmethod
    async def list_topics(self, *, include_internal: bool = False) -> list[Topic]:
        """All topics by name; internal (``__*``: Kafka's and the gateway's) ones only if asked."""

    @abc.abstractmethod
    async def alter_topic(self, name: str, update: TopicUpdate) -> Topic:
        """Change settings; partitions may only grow (``BadRequest`` otherwise)."""

    @abc.abstractmethod
    async def purge_topic(self, name: str) -> None:
        """Drop every record; offsets keep counting from the old high watermark."""

    @abc.abstractmethod
    async def delete_topic(self, name: str) -> None:
        """Delete the topic, its records and its groups' committed offsets."""

    # -- records ---------------------------------------------------------------------

    @abc.abstractmethod
    def append(self, batch: Sequence[NewRecord]) -> asyncio.Future[list[Appended]]:
        """Queue ``batch`` now; the future gives its results, in batch order, once durable.

        All records or none are stored. Records may span topics and partitions. Offsets
        are gap-free per partition and timestamps never decrease per partition
        (log-append time, microseconds). The batch is queued before ``append`` returns,
        so batches appended one after another on the loop are stored in that order, as
        Kafka's producer keeps the order of ``send``. A batch that cannot be taken
        (invalid, overloaded, shutting down) gives a future that has already failed. Call
        it on the log's event loop.

        Unconfirmed after the backend's append timeout (``storage.append_timeout``, as
        Kafka's ``delivery.timeout.ms``), the future fails with ``StorageTimeout``: then
        either every record of the batch is stored or none is.
        """

    async def append_offsets(self, batch: Sequence[NewRecord]) -> list[tuple[int, int]]:
        """``append``, answering each record's (partition, offset) only, in batch order.

        For a caller that needs no more (a produce request's answer): a backend may then
        tell a batch's offsets without an ``Appended`` per record. Everything else is
        ``append``'s: the batch is queued once the call is awaited, before control goes
        back to the loop; all or none of it is stored; a caller that stops waiting leaves
        it to be committed or failed as a whole.
        """
        return [(appended.partition, appended.offset) for appended in await self.append(batch)]

    @abc.abstractmethod
    async def read(
        self, tp: TopicPartition, offset: int, *, max_records: int, max_bytes: int
    ) -> list[Record]:
        """Records from ``offset`` on, bounded by count and bytes.

        The first record is returned even if it alone exceeds ``max_bytes`` (as Kafka
        does), so a consumer can always make progress. Reading at the high watermark
        gives ``[]``; below the low or above the high watermark, ``OffsetOutOfRange``.
        """

    def prefetch(self, positions: Mapping[TopicPartition, int]) -> None:
        """A hint: these partitions will be read from these offsets soon.

        A backend that reads over a network may start fetching them side by side, so
        that the reads find their records in memory; it changes nothing a read returns.
        Embedded storage reads as fast as it would fetch: the default does nothing.
        """
        return

    @abc.abstractmethod
    async def watermarks(self, tp: TopicPartition, *, max_age: float = 0.0) -> Watermarks:
        """Low and high watermark of a partition.

        ``max_age``: an answer the node learned at most that many seconds ago will do (as
        Kafka's consumers keep the watermarks of their last fetch), where asking again
        costs a round trip. Its high is never below what this node appended since; its
        low may be older by up to ``max_age`` (a purge or retention elsewhere). For
        checks that race retention anyway; a read still finds records that are gone.
        """

    @abc.abstractmethod
    async def offset_for_time(self, tp: TopicPartition, timestamp: int) -> int:
        """The first offset whose timestamp is >= ``timestamp`` (µs), else the high watermark."""

    @abc.abstractmethod
    async def wait(self, positions: Mapping[TopicPartition, int], timeout: float) -> bool:
        """Wait until some partition's high watermark passes its position, or timeout.

        Returns whether data arrived. Costs no polling and no thread; thousands of
        concurrent waiters are fine. ``close()`` wakes every waiter (returning False).
        """

    # -- consumer groups -------------------------------------------------------------

    @abc.abstractmethod
    async def commit_offsets(
        self,
        group: str,
        offsets: Mapping[TopicPartition, int],
        *,
        member_id: str | None = None,
        generation: int | None = None,
    ) -> None:
        """Durably store the next offset to consume per partition.

        With ``member_id`` and ``generation``, the commit is fenced as in Kafka: it fails
        with ``UnknownGroupMember`` if the member left or the group moved on to a newer
        generation in which it no longer owns those partitions.
        """

    @abc.abstractmethod
    async def committed_offsets(self, group: str, topic: str) -> dict[int, int]:
        """Committed next offsets of ``group`` on ``topic``, by partition."""

    @abc.abstractmethod
    async def join_group(
        self, group: str, member_id: str, topics: Sequence[str], session_timeout: float
    ) -> Assignment:
        """Join (or re-join) ``group`` subscribed to ``topics``; rebalances the group.

        Partitions are shared among live members so that each partition has exactly one
        owner per generation. A member that sends no ``heartbeat`` for
        ``session_timeout`` seconds is removed and the group rebalances.
        """

    @abc.abstractmethod
    async def heartbeat(self, group: str, member_id: str) -> Assignment:
        """Keep the member alive; returns its current assignment (it may have changed).

        ``UnknownGroupMember`` if the member left or expired.
        """

    @abc.abstractmethod
    async def leave_group(self, group: str, member_id: str) -> None:
        """Remove the member and rebalance; unknown members are ignored."""

    @abc.abstractmethod
    def on_rebalance(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(group)`` (on the loop) each time the log rebalances a group by
        itself: a topic it subscribes to was made, grown or deleted, here or, on Kafka,
        by another node or Kafka's own tools. Members see the new assignment at their
        next ``heartbeat``; this tells a member that waits to heartbeat now."""


@asynccontextmanager
async def running(log: Log) -> AsyncIterator[Log]:
    """Run ``log`` for the body of a ``with`` block (tests, CLI offline mode).

    Failures of the log's own task propagate out of the block as an ``ExceptionGroup``.
    """
    async with asyncio.TaskGroup() as tg:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = tg.create_task(log.run(ready), name=f"{type(log).__name__}.run")
        done, _ = await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        if ready in done:
            try:
                yield log
            finally:
                await log.close()
