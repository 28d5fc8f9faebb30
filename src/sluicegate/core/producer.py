"""Producing: choose partitions, append durably."""

from __future__ import annotations

from collections.abc import Sequence

from sluicegate.core.catalog import TopicCatalog
from sluicegate.core.partitioner import Partitioner
from sluicegate.core.records import Header, NewRecord
from sluicegate.core.topics import Topic
from sluicegate.errors import InvalidPartition
from sluicegate.storage.base import Log

__all__ = ["Producer"]


class Producer:
    """The one producer of a gateway process, shared by every request and dialect.

    A request awaits its own records' durable commit but never owns the commit: if the
    wait times out (the log's ``StorageTimeout``) or the client goes away, the log still
    commits or fails the batch as a whole: "all or nothing, outcome unknown".
    """

    def __init__(
        self,
        log: Log,
        catalog: TopicCatalog,
        *,
        partitioner: Partitioner | None = None,
    ) -> None:
        self._catalog = catalog
        self._partitioner = partitioner or Partitioner()
        # The catalog's and the log's own methods, not wrappers: both run on every request.
        #: The topic if it is in the catalog's cache (no await), else None.
        self.known_topic = catalog.cached
        #: Drop the cache's word on a topic a write found gone or smaller.
        self.forget_topic = catalog.forget
        #: Append records atomically and durably: ``Log.append``, whose future fails with
        #: ``StorageTimeout`` past the deadline.
        self.send = log.append
        #: ``send``, answering each record's (partition, offset) only: ``Log.append_offsets``.
        self.send_offsets = log.append_offsets

    def record(
        self,
        topic: Topic,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[Header] = (),
        *,
        partition: int | None = None,
    ) -> NewRecord:
        """A record for ``topic`` with its partition chosen (explicit, by key, or sticky)."""
        if partition is None:
            partition = self._partitioner.partition(topic.name, key, topic.partitions)
        elif not 0 <= partition < topic.partitions:
            raise InvalidPartition(
                f"partition {partition} does not exist: topic {topic.name!r} has "
                f"{topic.partitions} partition(s)",
                topic=topic.name,
                partition=partition,
            )
        return NewRecord(topic.name, partition, key, value, headers)

    def partition_of(self, topic: Topic, key: bytes) -> int:
        """The partition ``record`` chooses for a record of ``topic`` with ``key``."""
        return self._partitioner.partition(topic.name, key, topic.partitions)

    def unkeyed_record(self, topic: Topic, value: bytes) -> NewRecord:
        """``record(topic, None, value)``, carrying its size: storage need not count it."""
        partitions = topic.partitions
        # 0 is what the partitioner answers for every unkeyed record of a one-partition topic.
        partition = (
            0 if partitions == 1 else self._partitioner.partition(topic.name, None, partitions)
        )
        return NewRecord(topic.name, partition, None, value, (), len(value))

    def unkeyed_records(self, topic: Topic, values: Sequence[bytes]) -> list[NewRecord]:
        """``unkeyed_record`` of each of ``values``."""
        if topic.partitions == 1:
            name = topic.name
            return [NewRecord(name, 0, None, value, (), len(value)) for value in values]
        return [self.unkeyed_record(topic, value) for value in values]

    async def topic(self, name: str) -> Topic:
        """The topic to produce to, auto-created if the settings allow it."""
        return await self._catalog.get(name, auto_create=True)
