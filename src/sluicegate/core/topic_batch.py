"""``TopicBatch``: the records of one topic without headers, kept as columns.

A produce request of many rows used to become a ``NewRecord`` per row, which storage then
took apart again, field by field, row by row. A ``TopicBatch`` keeps what those records
hold as the columns the request decoded to: the topic once, and a list each of partitions,
keys and values. It is a ``Sequence[NewRecord]`` (each record made only when asked for), so
``Log.append`` takes it on every backend as it takes a list; a backend that knows it reads
the columns instead, and makes no record object at all (Kafka's transactions hand each
value straight to the producer).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import cast, overload

from sluicegate.core.records import NewRecord

__all__ = ["TopicBatch"]


class TopicBatch(Sequence[NewRecord]):
    """Records of ``topic``: record ``i`` is ``(partitions[i], keys[i], values[i])``.

    The partitions are chosen already (``Producer.partition_of``); storage checks them as
    it checks a ``NewRecord``'s. The columns are the batch's own: nobody changes them once
    it is made.
    """

    __slots__ = ("keys", "partitions", "topic", "values")

    def __init__(
        self,
        topic: str,
        partitions: Sequence[int],
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
    ) -> None:
        if not len(partitions) == len(keys) == len(values):
            raise ValueError("a topic batch's columns must be as long as each other")
        self.topic = topic
        self.partitions = partitions
        self.keys = keys
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> NewRecord: ...

    @overload
    def __getitem__(self, index: slice) -> TopicBatch: ...

    def __getitem__(self, index: int | slice) -> NewRecord | TopicBatch:
        if isinstance(index, slice):
            return TopicBatch(
                self.topic, self.partitions[index], self.keys[index], self.values[index]
            )
        return NewRecord(self.topic, self.partitions[index], self.keys[index], self.values[index])

    def __iter__(self) -> Iterator[NewRecord]:
        return map(NewRecord, itertools.repeat(self.topic), self.partitions, self.keys, self.values)

    def size(self) -> int:
        """Bytes of every key and value: the sum of the records' ``NewRecord.size()``."""
        keys, values = self.keys, self.values
        try:
            # Taken for bytes only: a null among them raises TypeError, handled below.
            size = sum(map(len, cast("Sequence[bytes]", values)))
        except TypeError:  # a null value: filter(None, ...) drops it (an empty one counts 0)
            size = sum(map(len, filter(None, values)))
        first = keys[0] if keys else None
        if first is not None and keys.count(first) == len(keys):
            # One key for all (a keyed batch): one key object repeated, counted by identity.
            return size + len(first) * len(keys)
        return size + sum(map(len, filter(None, keys)))
