"""``KafkaLog``: the storage contract on an Apache Kafka cluster.

Records are plain Kafka records in topics named ``<prefix><topic>``: any Kafka client
reads what the gateway wrote. The node's resources are fixed, however many requests and
consumers it serves (``node``):

- one idempotent ``acks=all`` producer for single-record appends (``producer``), and one
  transactional producer that group-commits multi-record batches (``transactions``);
- one reader consumer serving every read in batched rounds, in a process of its own
  (``fetcher``, ``reader_process``), and one tail consumer following the partitions
  somebody waits on (``tail``);
- one admin client for topics, offsets and group offsets (``admin``).

The contract's parts live in modules of their own: ``appends``, ``reads`` (with
``partition_ends`` for waits), ``topics`` (with the ``registry`` of topic ids and
settings) and ``group_offsets``. This class owns their lifecycle and forwards to them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sluicegate.config import KafkaSettings
from sluicegate.core.records import Appended, NewRecord, Record, TopicPartition, Watermarks
from sluicegate.core.topics import Topic, TopicSpec, TopicUpdate
from sluicegate.errors import StorageUnavailable
from sluicegate.stopping import unless_stopped
from sluicegate.storage.base import Assignment, CommitObserver, Log
from sluicegate.storage.groups import GroupCoordinator
from sluicegate.storage.kafka.appends import Appends
from sluicegate.storage.kafka.group_offsets import GroupOffsets
from sluicegate.storage.kafka.node import KafkaNode
from sluicegate.storage.kafka.partition_ends import PartitionEnds
from sluicegate.storage.kafka.reads import Reads
from sluicegate.storage.kafka.registry import TopicRegistry
from sluicegate.storage.kafka.topics import KafkaTopics
from sluicegate.storage.outages import until_available

__all__ = ["KafkaLog"]


class KafkaLog(Log):
    """The log on the Kafka cluster of ``settings``.

    ``node_id`` makes the transactional id (unique per node, stable across restarts, so a
    restarted node fences its previous incarnation's open transaction).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        node_id: str,
        append_timeout: float = 30.0,
        max_pending_appends: int = 100_000,
        observe_commit: CommitObserver | None = None,
    ) -> None:
        self._node = KafkaNode(
            settings,
            node_id=node_id,
            append_timeout=append_timeout,
            max_pending_appends=max_pending_appends,
        )
        self._ends = PartitionEnds()
        registry = TopicRegistry(
            lambda topic: self._topics.removed(topic),
            lambda name: self._groups.topics_changed([name]),
            self.skip_unreadable,
        )
        self._groups = GroupCoordinator(registry.partition_count)
        self._appends = Appends(self._node, registry, self._ends, observe_commit)
        self._topics = KafkaTopics(self._node, registry, self._appends, self._ends, self._groups)
        self._reads = Reads(self._node, self._topics, self._ends)
        self._offsets = GroupOffsets(self._node, self._topics, self._groups)
        self._started = False
        self._stop = asyncio.Event()
        self._stopped = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, ready: asyncio.Future[None]) -> None:
        """Connect, replay the registry, resolve ``ready``, then serve until ``close()``."""
        if self._started:
            raise RuntimeError("KafkaLog.run() may be called only once")
        self._started = True
        node = self._node
        try:
            # A cluster away at start, or lost while the registry is read, is waited for
            # (``KafkaNode._reach``, ``until_available``), unless the gateway is stopped
            # meanwhile. The registry's replay takes up where it stopped.
            if not await unless_stopped(self._open(), self._stop.wait()):
                return
            workers: list[asyncio.Future[Any]] = node.worker_ends()
            transactions = node.transactions
            async with asyncio.TaskGroup() as tg:
                committing = tg.create_task(transactions.run(), name="kafka-transactions")
                housekeeping = [
                    tg.create_task(self._groups.sweep(), name="group-session-sweeper"),
                    tg.create_task(self._topics.follow(), name="kafka-topic-registry"),
                    tg.create_task(
                        self._topics.adopt_outside_changes_forever(),
                        name="kafka-outside-changes",
                    ),
                    tg.create_task(node.probe_forever(), name="kafka-probe"),
                    tg.create_task(node.sweep_tail_forever(), name="kafka-tail-sweeper"),
                ]
                node.running = not node.closing
                if not ready.done():
                    ready.set_result(None)
                stopping = tg.create_task(self._stop.wait(), name="kafka-stop")
                await asyncio.wait(
                    [stopping, committing, *workers], return_when=asyncio.FIRST_COMPLETED
                )
                for ended in workers:
                    if ended.done():
                        ended.result()  # a thread died: bring the gateway down with it
                        raise StorageUnavailable("a Kafka client thread stopped unexpectedly")
                node.running = False
                transactions.close()
                await asyncio.wait((committing,))
                for task in (*housekeeping, stopping):
                    task.cancel()
        finally:
            node.closing = True
            node.running = False
            self._ends.waiters.wake_all()
            try:
                await node.release()
            finally:
                self._stopped.set()

    async def _open(self) -> None:
        await self._node.open(
            self._topics.registry_key[0], self._ends.advanced, self._appends.until_visible
        )
        await until_available(self._topics.catch_up, "reading the Kafka topic registry failed")

    async def close(self) -> None:
        """Refuse new writes, commit the queue, wake every waiter; ``run`` then returns."""
        self._node.closing = True
        self._node.running = False
        self._ends.waiters.wake_all()
        if not self._started:
            return
        self._stop.set()
        await self._stopped.wait()

    async def check(self) -> None:
        """Raise ``StorageUnavailable`` unless a broker answers now."""
        await self._node.check()

    def unreachable(self) -> str | None:
        """Set while librdkafka reports every broker down, until one answers again."""
        return self._node.outage() if self._node.down else None

    def stats(self) -> dict[str, float]:
        """Gauges for /metrics: long-poll waiters and records not yet acknowledged."""
        return {
            **super().stats(),
            "waiters": self._ends.waiters.count,
            "queued_records": self._node.queued(),
        }

    @property
    def reader_rounds(self) -> int:
        """Rounds the node's reader has sent to the broker so far (benchmarks count them)."""
        return self._node.fetcher.rounds

    @property
    def reader_pid(self) -> int | None:
        """The reader process's id (benchmarks count its CPU; fault tests kill it)."""
        return self._node.fetcher.worker.pid

    # -- topics ----------------------------------------------------------------------

    async def create_topic(self, spec: TopicSpec) -> Topic:
        """Create a topic; ``TopicExists`` if the name is taken, ``BadRequest`` if invalid."""
        return await self._topics.create(spec)

    async def get_topic(self, name: str) -> Topic:
        """The topic called ``name``, or ``UnknownTopic``."""
        return await self._topics.known(name)

    async def get_topic_by_id(self, topic_id: int) -> Topic:
        """The topic with this stable id, or ``UnknownTopic``."""
        return await self._topics.by_id(topic_id)

    async def list_topics(self, *, include_internal: bool = False) -> list[Topic]:
        """All topics by name; internal (``__*``: Kafka's and the gateway's) ones only if asked."""
        return self._topics.listed(include_internal=include_internal)

    async def alter_topic(self, name: str, update: TopicUpdate) -> Topic:
        """Change settings; partitions may only grow (``BadRequest`` otherwise)."""
        return await self._topics.alter(name, update)

    async def purge_topic(self, name: str) -> None:
        """Drop every record; offsets keep counting from the old high watermark."""
        await self._topics.purge(name)

    async def delete_topic(self, name: str) -> None:
        """Delete the topic, its records and its groups' committed offsets."""
        await self._topics.delete(name)

    # -- records ---------------------------------------------------------------------

    def append(self, batch: Sequence[NewRecord]) -> asyncio.Future[list[Appended]]:
        """Queue all records or none; see ``Log.append``."""
        return self._appends.append(batch)

    async def append_offsets(self, batch: Sequence[NewRecord]) -> list[tuple[int, int]]:
        """``append``, answering each record's (partition, offset) only; see ``Log``."""
        return await self._appends.append_offsets(batch)

    async def read(
        self, tp: TopicPartition, offset: int, *, max_records: int, max_bytes: int
    ) -> list[Record]:
        """Records from ``offset`` on, bounded by count and bytes (the first always fits)."""
        return await self._reads.read(tp, offset, max_records=max_records, max_bytes=max_bytes)

    def prefetch(self, positions: Mapping[TopicPartition, int]) -> None:
        """Start fetching these partitions from these offsets, in one round of the reader."""
        self._reads.prefetch(positions)

    async def watermarks(self, tp: TopicPartition, *, max_age: float = 0.0) -> Watermarks:
        """Low and high watermark of a partition, as a ``read_committed`` reader sees them."""
        return await self._reads.watermarks(tp, max_age=max_age)

    async def offset_for_time(self, tp: TopicPartition, timestamp: int) -> int:
        """The first offset whose timestamp is >= ``timestamp`` (µs), else the high watermark."""
        return await self._reads.offset_for_time(tp, timestamp)

    async def wait(self, positions: Mapping[TopicPartition, int], timeout: float) -> bool:
        """Wait until some partition has a record at or past its position, or timeout."""
        return await self._reads.wait(positions, timeout)

    # -- consumer groups -------------------------------------------------------------

    async def commit_offsets(
        self,
        group: str,
        offsets: Mapping[TopicPartition, int],
        *,
        member_id: str | None = None,
        generation: int | None = None,
    ) -> None:
        """Store the next offsets in ``__consumer_offsets``, fenced if a member is given."""
        await self._offsets.commit(group, offsets, member_id=member_id, generation=generation)

    async def committed_offsets(self, group: str, topic: str) -> dict[int, int]:
        """Committed next offsets of ``group`` on ``topic``, by partition."""
        return await self._offsets.committed(group, topic)

    async def join_group(
        self, group: str, member_id: str, topics: Sequence[str], session_timeout: float
    ) -> Assignment:
        """Join (or re-join) ``group`` subscribed to ``topics``; rebalances the group."""
        for name in topics:
            await self._topics.known(name)
        return self._groups.join(group, member_id, topics, session_timeout)

    async def heartbeat(self, group: str, member_id: str) -> Assignment:
        """Keep the member alive; returns its current assignment."""
        return self._groups.heartbeat(group, member_id)

    async def leave_group(self, group: str, member_id: str) -> None:
        """Remove the member and rebalance; unknown members are ignored."""
        self._groups.leave(group, member_id)

    def on_rebalance(self, listener: Callable[[str], None]) -> None:
        self._groups.listeners.append(listener)
