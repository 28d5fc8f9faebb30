"""Producing: choose partitions, append durably."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from sluicegate.core.catalog import TopicCatalog
from sluicegate.core.partitioner import Partitioner
from sluicegate.core.records import Appended, Header, NewRecord
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
        self._log = log
        self._catalog = catalog
        self._partitioner = partitioner or Partitioner()

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

    def known_topic(self, name: str) -> Topic | None:
        """The topic if it is in the catalog's cache: no await on the hot path."""
        return self._catalog.cached(name)

    async def topic(self, name: str) -> Topic:
        """The topic to produce to, auto-created if the settings allow it."""
        return await self._catalog.get(name, auto_create=True)

    def send(self, records: Sequence[NewRecord]) -> Awaitable[list[Appended]]:
        """Append ``records`` atomically and durably (``StorageTimeout`` past the deadline)."""
        # No coroutine of its own: the request awaits the log directly, one frame less.
        return self._log.append(records)
