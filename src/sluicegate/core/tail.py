"""Following a topic for a person watching it: every partition, from a position, paced.

A tail is a position per partition and nothing else: no group, no commit, no broker
connection (the log's readers serve it as they serve every other read). It is woken by
the log's ``wait`` as long polls and streams are, never by polling. Its pace is bounded
(``max_rate`` records a second, with a quarter second's burst) so that one browser tab
on a busy topic cannot take the gateway's read capacity; a tail that falls behind its
topic reads on at that pace, in offset order per partition. A tail of every partition
(``partitions`` given) looks at the topic's partition count every ``recheck`` seconds and
reads the partitions it grew to from their oldest record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from sluicegate.core.records import Record, TopicPartition
from sluicegate.errors import BadRequest, OffsetOutOfRange
from sluicegate.storage.base import Log

__all__ = ["MAX_RATE", "Start", "TopicTail", "positions_at"]

#: The fastest a tail may go, records a second (and the default).
MAX_RATE = 10_000
#: One read's bound in bytes, over all partitions.
_READ_BYTES = 1024 * 1024
#: One read's bound in records.
_READ_RECORDS = 1000
#: Seconds to pause when the log said there was news but held no record to read.
_EMPTY_PAUSE = 0.05


class Start:
    """Where a tail starts: the end (``Start()``), an offset, or a time in µs."""

    __slots__ = ("offset", "time_us")

    def __init__(self, *, offset: int | None = None, time_us: int | None = None) -> None:
        if offset is not None and time_us is not None:
            raise ValueError("a start is an offset or a time, not both")
        self.offset = offset
        self.time_us = time_us


async def positions_at(
    log: Log,
    topic: str,
    partitions: Sequence[int],
    start: Start,
    given: Mapping[int, int] | None = None,
) -> dict[int, int]:
    """The offset to read next in each partition for ``start`` (or, for a partition in
    ``given``, that offset: where a client left off), within the watermarks."""
    positions: dict[int, int] = {}
    for partition in partitions:
        tp = TopicPartition(topic, partition)
        marks = await log.watermarks(tp)
        if given is not None and partition in given:
            offset = given[partition]
        elif start.time_us is not None:
            offset = await log.offset_for_time(tp, start.time_us)
        elif start.offset is not None:
            offset = start.offset
        else:
            offset = marks.high
        positions[partition] = min(max(offset, marks.low), marks.high)
    return positions


class TopicTail:
    """Reads a topic's partitions onward from ``positions``, at most ``max_rate`` a second."""

    def __init__(
        self,
        log: Log,
        topic: str,
        positions: dict[int, int],
        *,
        max_rate: float = MAX_RATE,
        clock: Callable[[], float] = time.monotonic,
        partitions: Callable[[], Awaitable[int]] | None = None,
        recheck: float = 2.0,
        topic_id: int | None = None,
    ) -> None:
        if not 0 < max_rate <= MAX_RATE:
            raise BadRequest(f"a tail's rate must be from 1 to {MAX_RATE} records a second")
        self._log = log
        self.topic = topic
        #: The topic's never reused id: a client tells a topic made again by it.
        self.topic_id = topic_id
        #: The next offset to read, per partition.
        self.positions = dict(positions)
        self._rate = max_rate
        self._burst = max(1.0, max_rate / 4)
        self._tokens = self._burst
        self._clock = clock
        self._refilled = clock()
        #: Round-robin start, so that one busy partition does not starve the others.
        self._turn = 0
        #: The topic's partition count now, when the tail follows every partition.
        self._count = partitions
        self._recheck = recheck
        self._checked = -recheck

    async def _grow(self, *, now: bool = False) -> bool:
        """Start reading the partitions the topic grew to (from their oldest record),
        at most every ``recheck`` seconds unless ``now``; whether there were any."""
        at = asyncio.get_running_loop().time()
        if self._count is None or (not now and at - self._checked < self._recheck):
            return False
        self._checked = at
        grown = False
        for partition in range(await self._count()):
            if partition not in self.positions:
                tp = TopicPartition(self.topic, partition)
                self.positions[partition] = (await self._log.watermarks(tp)).low
                grown = True
        return grown

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now

    async def _paced(self) -> int:
        """Records this read may take, after sleeping for the rate to allow one."""
        self._refill()
        if self._tokens < 1:
            await asyncio.sleep((1 - self._tokens) / self._rate)
            self._refill()
        return max(1, min(int(self._tokens), _READ_RECORDS))

    async def next_batch(self, timeout: float) -> list[Record]:
        """The next records (oldest first per partition), waiting up to ``timeout``
        seconds for some; ``[]`` when none came."""
        budget = await self._paced()
        await self._grow()
        records = await self._read(budget)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not records and (left := deadline - loop.time()) > 0:
            # A tail that follows the partition count wakes to look at it meanwhile.
            wait = left if self._count is None else min(left, self._recheck)
            positions = {TopicPartition(self.topic, p): o for p, o in self.positions.items()}
            if await self._log.wait(positions, wait):
                records = await self._read(budget)
                if not records:
                    # The watermark passed an offset that holds no record (a Kafka
                    # transaction's commit marker): the wait would return at once again.
                    await asyncio.sleep(_EMPTY_PAUSE)
                    break
            elif self._count is None:
                break
            elif await self._grow(now=True):
                records = await self._read(budget)
        self._tokens -= len(records)
        return records

    async def _read(self, budget: int) -> list[Record]:
        partitions = list(self.positions)
        if not partitions:
            return []
        self._turn = (self._turn + 1) % len(partitions)
        order = partitions[self._turn :] + partitions[: self._turn]
        found: list[Record] = []
        size = 0
        for partition in order:
            left = budget - len(found)
            if left <= 0 or size >= _READ_BYTES:
                break
            tp = TopicPartition(self.topic, partition)
            try:
                records = await self._log.read(
                    tp, self.positions[partition], max_records=left, max_bytes=_READ_BYTES - size
                )
            except OffsetOutOfRange:
                # Purged or expired under the tail: go on from what is still stored.
                marks = await self._log.watermarks(tp)
                self.positions[partition] = min(
                    max(self.positions[partition], marks.low), marks.high
                )
                continue
            if records:
                self.positions[partition] = records[-1].offset + 1
                found.extend(records)
                size += sum(record.size() for record in records)
        return found
