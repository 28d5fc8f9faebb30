"""Reads on Kafka: records through the node-wide fetcher, watermarks and offsets for times
through the admin client (as a ``read_committed`` reader sees them), and waits that park
until the node learns of a record past their position (``partition_ends``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from confluent_kafka.admin import OffsetSpec

from sluicegate.core.records import Record, TopicPartition, Watermarks
from sluicegate.errors import BadRequest, OffsetOutOfRange, SluicegateError
from sluicegate.storage.kafka.node import KafkaNode
from sluicegate.storage.kafka.partition_ends import PartitionEnds
from sluicegate.storage.kafka.topics import KafkaTopics
from sluicegate.storage.topic_rules import offset_out_of_range

__all__ = ["Reads"]

_Key = tuple[str, int]


class Reads:
    """``read``, ``watermarks``, ``offset_for_time`` and ``wait`` of the Kafka log."""

    def __init__(self, node: KafkaNode, topics: KafkaTopics, ends: PartitionEnds) -> None:
        self._node = node
        self._topics = topics
        self._ends = ends

    async def _marks(self, key: _Key, topic: str) -> Watermarks:
        admin = self._node.running_admin()
        asked = time.monotonic()
        # One request cannot ask for two offsets of a partition: two, side by side.
        lows, highs = await asyncio.gather(
            admin.list_offsets({key: OffsetSpec.earliest()}, topic=topic),
            admin.list_offsets({key: OffsetSpec.latest()}, topic=topic),
            return_exceptions=True,  # both awaited to the end, whatever the first does
        )
        if isinstance(lows, BaseException):
            raise lows
        if isinstance(highs, BaseException):
            raise highs
        low = lows[key]
        marks = Watermarks(low=low, high=max(low, highs[key]))
        self._ends.asked(key, marks, asked)
        return marks

    async def _high(self, key: _Key, topic: str) -> int:
        """The high watermark alone: one question where ``_marks`` asks two."""
        admin = self._node.running_admin()
        high = (await admin.list_offsets({key: OffsetSpec.latest()}, topic=topic))[key]
        self._ends.advance(key, high)
        return high

    async def read(
        self, tp: TopicPartition, offset: int, *, max_records: int, max_bytes: int
    ) -> list[Record]:
        """Records from ``offset`` on, bounded by count and bytes (the first always fits)."""
        if max_records < 1:
            raise BadRequest(f"max_records must be >= 1, got {max_records}", field="max_records")
        _, key = self._topics.checked(tp)
        known = self._ends.high(key)
        if not 0 <= offset < known:
            # A long poll reads at the end: asking where the partition ends answers it,
            # and the low watermark is needed only for a position past the end.
            known = await self._high(key, tp.topic)
            if offset == known:
                return []
        if 0 <= offset < known:
            # Records exist past ``offset``: no need to ask where the partition starts. A
            # position below the low watermark (records purged or expired) the fetcher
            # finds out itself; the watermarks are then asked, to say so.
            try:
                return await self._fetch(tp, key, offset, known, max_records, max_bytes)
            except OffsetOutOfRange:
                pass
        marks = await self._marks(key, tp.topic)
        if offset == marks.high:
            return []
        if not marks.low <= offset < marks.high:
            raise offset_out_of_range(tp.topic, tp.partition, offset, marks.low, marks.high)
        return await self._fetch(tp, key, offset, marks.high, max_records, max_bytes)

    def prefetch(self, positions: Mapping[TopicPartition, int]) -> None:
        """Have the fetcher read ahead of ``positions`` where records are known past them
        (a hint: a partition unknown or at its known end is left alone)."""
        fetcher = self._node.fetcher
        for tp, position in positions.items():
            try:
                _, key = self._topics.checked(tp)
            except SluicegateError:
                continue  # the read itself will say why
            end = self._ends.high(key)
            if 0 <= position < end:
                fetcher.prefetch(key, tp.topic, position, end)

    async def _fetch(
        self,
        tp: TopicPartition,
        key: _Key,
        offset: int,
        end: int,
        max_records: int,
        max_bytes: int,
    ) -> list[Record]:
        read = self._node.fetcher.read(
            key[0],
            tp.topic,
            tp.partition,
            offset,
            end,
            max_records=max_records,
            max_bytes=max_bytes,
        )
        return await self._node.bounded(read)

    async def watermarks(self, tp: TopicPartition, *, max_age: float = 0.0) -> Watermarks:
        """Low and high watermark of a partition, as a ``read_committed`` reader sees them;
        with ``max_age``, those asked at most that many seconds ago will do."""
        _, key = self._topics.checked(tp)
        if max_age > 0:
            recent = self._ends.recent(key, max_age)
            if recent is not None:
                return recent
        return await self._marks(key, tp.topic)

    async def offset_for_time(self, tp: TopicPartition, timestamp: int) -> int:
        """The first offset whose timestamp is >= ``timestamp`` (µs), else the high watermark."""
        _, key = self._topics.checked(tp)
        admin = self._node.running_admin()
        # Kafka keeps milliseconds: the first record at or after ``timestamp`` µs is the
        # first one at or after the millisecond that holds it, rounded up.
        millis = max(0, -(-timestamp // 1000))
        found = (await admin.list_offsets({key: OffsetSpec.for_timestamp(millis)}, tp.topic))[key]
        if found < 0:
            # No record at or after that time: the end (its start is not needed).
            return await self._high(key, tp.topic)
        return found

    async def wait(self, positions: Mapping[TopicPartition, int], timeout: float) -> bool:
        """Wait until some partition has a record at or past its position, or timeout."""
        keyed = {self._topics.checked(tp)[1]: position for tp, position in positions.items()}
        if self._ends.passed(keyed):
            return True
        if self._node.closing:
            return False
        tail = self._node.tail
        for key, position in keyed.items():
            tail.watch(key, position)
        return await self._ends.waiters.wait(keyed, timeout)
