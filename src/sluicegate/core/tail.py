"""Following a topic for a person watching it: every partition, from a position, paced.

A tail is a position per partition and nothing else: no group, no commit, no broker
connection (the log's readers serve it as they serve every other read). It is woken by
the log's ``wait`` as long polls and streams are, never by polling. Its pace is bounded
(``max_rate`` records a second, with a quarter second's burst) so that one browser tab
on a busy topic cannot take the gateway's read capacity; a tail that falls behind its
topic reads on at that pace, in offset order per partition.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

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
    log: Log, topic: str, partitions: Sequence[int], start: Start
) -> dict[int, int]:
    """The offset to read next in each partition for ``start``, within the watermarks."""
    positions: dict[int, int] = {}
    for partition in partitions:
        tp = TopicPartition(topic, partition)
        marks = await log.watermarks(tp)
        if start.time_us is not None:
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
    ) -> None:
        if not 0 < max_rate <= MAX_RATE:
            raise BadRequest(f"a tail's rate must be from 1 to {MAX_RATE} records a second")
        self._log = log
        self.topic = topic
        #: The next offset to read, per partition.
        self.positions = dict(positions)
        self._rate = max_rate
        self._burst = max(1.0, max_rate / 4)
        self._tokens = self._burst
        self._clock = clock
        self._refilled = clock()
        #: Round-robin start, so that one busy partition does not starve the others.
        self._turn = 0

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
        records = await self._read(budget)
        if not records and timeout > 0:
            positions = {TopicPartition(self.topic, p): o for p, o in self.positions.items()}
            if await self._log.wait(positions, timeout):
                records = await self._read(budget)
                if not records:
                    # The watermark passed an offset that holds no record (a Kafka
                    # transaction's commit marker): the wait would return at once again.
                    await asyncio.sleep(_EMPTY_PAUSE)
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
