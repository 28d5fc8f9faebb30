"""Producing: choose partitions, append durably, bound the wait."""

from __future__ import annotations

from collections.abc import Sequence

from sluicegate.core.catalog import TopicCatalog
from sluicegate.core.deadlines import Deadlines
from sluicegate.core.partitioner import Partitioner
from sluicegate.core.records import Appended, Header, NewRecord
from sluicegate.core.topics import Topic
from sluicegate.errors import InvalidPartition, StorageTimeout
from sluicegate.storage.base import Log

__all__ = ["Producer"]


class Producer:
    """The one producer of a gateway process, shared by every request and dialect.

    A request awaits its own records' durable commit but never owns the commit: if the
    request times out or its client goes away, the log still commits or fails the
    batch as a whole, so a ``StorageTimeout`` means "all or nothing, outcome unknown".
    """

    def __init__(
        self,
        log: Log,
        catalog: TopicCatalog,
        *,
        append_timeout: float,
        partitioner: Partitioner | None = None,
    ) -> None:
        self._log = log
        self._catalog = catalog
        self._deadlines = Deadlines(append_timeout)
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

    async def send(self, records: Sequence[NewRecord]) -> list[Appended]:
        """Append ``records`` atomically and durably; ``StorageTimeout`` past the deadline."""
        try:
            with self._deadlines.scope():
                return await self._log.append(records)
        except TimeoutError:
            raise StorageTimeout(
                f"storage did not confirm the write within {self._deadlines.delay:g}s; "
                "the records are either all stored or none is"
            ) from None
