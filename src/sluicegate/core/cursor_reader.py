"""Reading a whole topic along a cursor: its partitions merged by log-append time.

A cursor is the next offset to read in every partition (see ``core.cursors``). A read
takes up to ``n`` records from each partition that has some, merges them by
(timestamp, partition, offset) and keeps the first ``n``; each delivered record's id is
the cursor right after it, so moving a partition's offset only past delivered records
makes a walk of ids deliver every record exactly once, in whatever order records
commit. A one-partition topic (topics v1's default) is read in one query, in offset order.

The ids of published records follow the same order, so ``id_after`` gives a record the
id a consumer would be handed for it: on a topic with several partitions, the offsets
of the other partitions are those of their first record that sorts after it.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Sequence

from sluicegate.core.cursors import (
    consecutive_message_ids,
    message_id,
    parse_message_id,
    resume_positions,
)
from sluicegate.core.records import Appended, Record, TopicPartition, Watermarks
from sluicegate.core.topics import Topic
from sluicegate.errors import MessagePurged, OffsetOutOfRange
from sluicegate.storage.base import Log

__all__ = ["CursorReader", "Delivery"]

#: Bytes of record data one read returns at most (past its first record).
DEFAULT_MAX_BYTES = 4 * 1024 * 1024

#: A record and its message id (the cursor right after it).
Delivery = tuple[Record, str]

#: Seconds old the watermarks a cursor is checked against may be (``Log.watermarks``).
_CHECK_MAX_AGE = 1.0


def _merge_key(record: Record) -> tuple[int, int]:
    return record.timestamp, record.partition


def _one_partition_ids(topic_id: int, records: Sequence[Record] | Sequence[Appended]) -> list[str]:
    """The ids of ``records``, in offset order, on a topic of one partition."""
    if not records:
        return []
    first = records[0].offset
    if records[-1].offset - first == len(records) - 1:
        # A run with no gap, as SQLite always stores one: its ids in one go.
        return consecutive_message_ids(topic_id, first + 1, len(records))
    # Kafka leaves an offset to each transaction's commit marker.
    return [message_id(topic_id, 0, (r.offset + 1,)) for r in records]


class CursorReader:
    """Cursor reads and ids over one log; holds no state of its own."""

    def __init__(self, log: Log, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._log = log
        self._max_bytes = max_bytes

    async def watermarks(self, topic: Topic, max_age: float = 0.0) -> list[Watermarks]:
        """Low and high watermark of each of ``topic``'s partitions (see ``Log.watermarks``
        for ``max_age``)."""
        log, name = self._log, topic.name
        return [
            await log.watermarks(TopicPartition(name, p), max_age=max_age)
            for p in range(topic.partitions)
        ]

    async def start(self, topic: Topic, after: str | None, since_us: int | None) -> list[int]:
        """The cursor after message id ``after``, at time ``since_us``, or at the start.

        ``after``: ``InvalidMessageId`` or ``MessagePurged`` if it cannot resume exactly.
        ``since_us``: the first record stamped after it in each partition.
        """
        if after is not None:
            parsed = parse_message_id(after)
            # A cursor walking a topic is checked once a request: watermarks of a moment
            # ago will do (on Kafka a question to the broker each, on the request's
            # path). Its read finds records purged since; a position past what they say
            # ends the topic is checked against the current ones before it is refused.
            marks = await self.watermarks(topic, _CHECK_MAX_AGE)
            if any(p > m.high for p, m in zip(parsed.positions, marks, strict=False)):
                marks = await self.watermarks(topic)
            return resume_positions(parsed, topic.id, marks)
        if since_us is None:
            return [m.low for m in await self.watermarks(topic)]
        log, name = self._log, topic.name
        return [
            await log.offset_for_time(TopicPartition(name, p), since_us + 1)
            for p in range(topic.partitions)
        ]

    def waiting_on(self, topic: Topic, positions: Sequence[int]) -> dict[TopicPartition, int]:
        """What ``Log.wait`` watches for records after ``positions``."""
        return {TopicPartition(topic.name, p): pos for p, pos in enumerate(positions)}

    async def read(self, topic: Topic, positions: list[int], limit: int) -> list[Delivery]:
        """Up to ``limit`` records after ``positions``, each with its id, in cursor order.

        ``MessagePurged`` if records at the cursor were removed since it was checked.
        """
        if len(positions) == 1:
            records = await self._read(topic.name, 0, positions[0], limit)
            return list(zip(records, _one_partition_ids(topic.id, records), strict=True))
        marks = await self.watermarks(topic)
        batches = await asyncio.gather(
            *(
                self._read(topic.name, p, position, limit)
                for p, position in enumerate(positions)
                if position < marks[p].high
            )
        )
        if not batches:
            return []
        merged = batches[0] if len(batches) == 1 else heapq.merge(*batches, key=_merge_key)
        cursor = list(positions)
        out: list[Delivery] = []
        size = 0
        for record in merged:
            size += record.size()
            if len(out) == limit or (out and size > self._max_bytes):
                break
            cursor[record.partition] = record.offset + 1
            out.append((record, message_id(topic.id, record.partition, cursor)))
        return out

    async def _read(self, topic: str, partition: int, offset: int, limit: int) -> list[Record]:
        try:
            return await self._log.read(
                TopicPartition(topic, partition),
                offset,
                max_records=limit,
                max_bytes=self._max_bytes,
            )
        except OffsetOutOfRange:
            # Retention or a purge moved the low watermark after the cursor was checked.
            raise MessagePurged(
                f"records at this cursor of topic {topic!r} were purged or expired while "
                "being read; start again without after_message_id, or with since_time"
            ) from None

    async def id_after(self, topic: Topic, appended: Sequence[Appended]) -> list[str]:
        """The ids of just-appended records of ``topic`` (as ``read`` would give them)."""
        topic_id = topic.id
        if topic.partitions == 1:
            return _one_partition_ids(topic_id, appended)
        log, name = self._log, topic.name
        # First offset of partition q sorting after (ts, p): records of q < p with the
        # same timestamp sort before, those of q > p after. One query per timestamp and q.
        found: dict[tuple[int, int], int] = {}
        ids = []
        for record in appended:
            cursor = []
            for q in range(topic.partitions):
                if q == record.partition:
                    cursor.append(record.offset + 1)
                    continue
                at = record.timestamp + 1 if q < record.partition else record.timestamp
                if (q, at) not in found:
                    found[q, at] = await log.offset_for_time(TopicPartition(name, q), at)
                cursor.append(found[q, at])
            ids.append(message_id(topic_id, record.partition, cursor))
        return ids
