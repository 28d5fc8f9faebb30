"""The node-wide reader: one consumer, assigned (never subscribed), serving every read.

A read asks for records of one partition from an offset. The consumer runs in a process
of its own (``reader_process``, ``reader_worker``), which batches the reads queued while
a round runs into one ``assign``, so one fetch request per broker serves them all. The
cost is fixed per node — one consumer and one process — however many HTTP consumers read.
What a round fetched past a read is kept here, on the loop, for the read that continues
from there (``read_ahead``), and an entry a read used is refilled in the background once
it runs low; partitions a consumer is about to read (``prefetch``) are fetched into it the
same way. Those are reads nobody waits for; a waiting read of the same partition goes
first.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from sluicegate.core.records import NewRecord, Record
from sluicegate.errors import OffsetOutOfRange, SluicegateError, StorageUnavailable
from sluicegate.storage.kafka.client_log import client_log
from sluicegate.storage.kafka.errors import translate
from sluicegate.storage.kafka.read_ahead import MAX_BYTES, RECORDS, ReadAhead
from sluicegate.storage.kafka.reader_process import (
    KAFKA_ERROR,
    OUT_OF_RANGE,
    Outcome,
    ReaderProcess,
)

__all__ = ["Fetcher"]

#: Bytes one refill or prefetch may bring, counted as ``read_ahead``'s bound counts them
#: (which cuts it further when it lands).
_REFILL_BYTES = MAX_BYTES // 4

_Key = tuple[str, int]


class _Read:
    """A read a caller waits for (``future``), or one for the read-ahead (None): a refill
    of an entry, or a prefetch (``fresh``) that makes one."""

    __slots__ = (
        "end",
        "fresh",
        "future",
        "generation",
        "key",
        "max_bytes",
        "max_records",
        "offset",
        "topic",
    )

    def __init__(
        self,
        key: _Key,
        topic: str,
        offset: int,
        end: int,
        max_records: int,
        max_bytes: int,
        future: asyncio.Future[list[Record]] | None,
        generation: int,
        *,
        fresh: bool = False,
    ) -> None:
        self.key = key
        self.topic = topic
        #: ``ReadAhead.generation`` when the read was asked: what it fetched is not kept
        #: if a purge or delete came in between (its records may be gone).
        self.generation = generation
        self.offset = offset
        self.end = end
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.future = future
        self.fresh = fresh


class Fetcher:
    """Reads records for the whole node through one consumer in a process of its own."""

    def __init__(
        self,
        config: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        *,
        timeout: float,
        on_error: Callable[[KafkaError], None],
    ) -> None:
        self._loop = loop
        self._on_error = on_error
        self.worker = ReaderProcess(
            config, timeout=timeout, on_outcome=self._settle, on_lost=self._lost
        )
        #: Reads sent to the process and not answered yet, by id.
        self._reads: dict[int, _Read] = {}
        self._ids = itertools.count()
        self._ahead = ReadAhead()
        #: Partitions with a refill or prefetch asked and not answered, and the reads that
        #: missed meanwhile, tried again when it lands (not sent to the broker in a round
        #: of their own, to wait behind it and fetch the same records again).
        self._refilling: set[_Key] = set()
        self._parked: dict[_Key, list[_Read]] = {}
        #: Rounds on the broker so far (for benchmarks and tests).
        self.rounds = 0
        self._closed = False

    async def start(self) -> None:
        await self.worker.start()

    def read(
        self,
        kafka_topic: str,
        topic: str,
        partition: int,
        offset: int,
        end: int,
        *,
        max_records: int,
        max_bytes: int,
    ) -> asyncio.Future[list[Record]]:
        """Records of ``partition`` from ``offset``, stopping before ``end`` at the latest."""
        future: asyncio.Future[list[Record]] = self._loop.create_future()
        key = (kafka_topic, partition)
        refilling = key in self._refilling
        ahead = self._ahead.take(key, offset, end, max_records, max_bytes, drop=not refilling)
        if ahead is not None:
            future.set_result(ahead)
            self._refill(key, topic, end)
            return future
        read = _Read(
            key, topic, offset, end, max_records, max_bytes, future, self._ahead.generation
        )
        if refilling:
            self._parked.setdefault(key, []).append(read)
        else:
            self._ask(read)
        return future

    def _ask(self, read: _Read) -> None:
        if self._closed:
            if read.future is not None and not read.future.done():
                read.future.set_exception(StorageUnavailable("the log is closing"))
            return
        number = next(self._ids)
        self._reads[number] = read
        kafka_topic, partition = read.key
        self.worker.send(
            (
                number,
                kafka_topic,
                partition,
                read.topic,
                read.offset,
                read.end,
                read.max_records,
                read.max_bytes,
                read.future is not None,
            )
        )

    def _unpark(self, key: _Key, *, refilling: bool = False) -> None:
        """The read-ahead of ``key`` was refilled (``refilling``: in part, more is on its
        way): the reads that waited for it try again, and wait on if it is not enough."""
        parked = self._parked.pop(key, ())
        ahead = self._ahead
        for index, read in enumerate(parked):
            future = read.future
            if future is None or future.done():
                continue  # the reader gave up waiting
            found = ahead.take(
                key, read.offset, read.end, read.max_records, read.max_bytes, drop=not refilling
            )
            if found is not None:
                future.set_result(found)
                if not refilling:
                    self._refill(key, read.topic, read.end)
            elif refilling:
                # Reads of one partition go in the order asked: the rest wait too.
                self._parked[key] = list(parked[index:])
                return
            else:
                self._ask(read)

    def _refill(self, key: _Key, topic: str, end: int) -> None:
        """Ask for a refill of ``key``'s read-ahead if it runs low."""
        if key in self._refilling:
            return
        wanted = self._ahead.wanted(key, end)
        if wanted is None:
            return
        start, room = wanted
        self._refilling.add(key)
        self._ask(_Read(key, topic, start, end, room, _REFILL_BYTES, None, self._ahead.generation))

    def prefetch(self, key: _Key, topic: str, offset: int, end: int) -> None:
        """Fetch ``key`` from ``offset`` into the read-ahead unless it holds that already
        (then refill it if it runs low); records are known below ``end``."""
        if key in self._refilling:
            return
        ahead = self._ahead
        if ahead.covers(key, offset):
            self._refill(key, topic, end)
            return
        if ahead.crowded():
            return
        self._refilling.add(key)
        generation = ahead.generation
        self._ask(
            _Read(key, topic, offset, end, RECORDS, _REFILL_BYTES, None, generation, fresh=True)
        )

    def forget(self, keys: list[_Key]) -> None:
        """Drop what is kept of ``keys`` (their records are gone)."""
        self._ahead.forget(keys)

    def appended(self, key: _Key, offset: int, timestamp: int, record: NewRecord) -> None:
        """This node's append of ``record`` landed at ``offset``: kept for the read that a
        waiter it wakes makes, if it continues what is kept."""
        self._ahead.extend(key, offset, timestamp, record)

    async def close(self) -> None:
        await self.worker.close()
        self._closed = True
        self._lost("the log is closing")  # and the reads parked behind refills with them

    def _settle(self, outcome: Outcome) -> None:
        """Apply what the process answered; what followed a read is kept before its
        reader can ask for more."""
        self.rounds = outcome.rounds
        for code, reason, fatal, retriable in outcome.errors:
            self._on_error(KafkaError(code, reason, fatal=fatal, retriable=retriable))
        for level, line in outcome.logs:
            client_log.log(level, "%s", line)
        reads, ahead = self._reads, self._ahead
        generation = ahead.generation
        for number, start, records, sizes, reached, more in outcome.refilled:
            read = reads[number] if more else reads.pop(number)
            key = read.key
            if not more:
                self._refilling.discard(key)
            if read.generation != generation:
                pass  # a purge or delete since it was asked: what it fetched may be gone
            elif read.fresh:
                ahead.adopt(key, start, records, sizes, reached)
                read.fresh = False  # what else it brings continues the entry
            else:
                ahead.continue_with(key, start, records, sizes, reached)
            self._unpark(key, refilling=more)
        if outcome.following:
            answered = dict(outcome.finished)
            for number, start, records, sizes, until in outcome.following:
                read = reads[number]
                if read.generation != generation:
                    continue
                taken = (read.offset, answered[number])
                ahead.keep(read.key, start, records, sizes, until, read=taken)
                self._refill(read.key, read.topic, read.end)
        for number, records in outcome.finished:
            future = reads.pop(number).future
            if future is not None and not future.done():  # else the reader gave up
                future.set_result(records)
        for number, why, code, message in outcome.failed:
            read = reads.pop(number)
            future = read.future
            if future is not None and not future.done():
                future.set_exception(_failure(read, why, code, message))

    def _lost(self, why: str) -> None:
        """The process ended with reads unanswered: a waited read fails (503), a refill is
        given up, and the reads parked behind it are asked again."""
        reads, self._reads = self._reads, {}
        refilled: list[_Key] = []
        for read in reads.values():
            future = read.future
            if future is None:
                self._refilling.discard(read.key)
                refilled.append(read.key)
            elif not future.done():
                future.set_exception(StorageUnavailable(why))
        for key in refilled:
            self._unpark(key)


def _failure(read: _Read, why: int, code: int, message: str) -> SluicegateError:
    """The error a read that failed in the process ``why`` raises."""
    if why == OUT_OF_RANGE:
        return OffsetOutOfRange(
            f"offset {read.offset} is out of range for {read.topic}: its records are gone",
            topic=read.topic,
            offset=read.offset,
        )
    if why == KAFKA_ERROR:
        return translate(KafkaError(code, message), topic=read.topic)
    return StorageUnavailable(message)  # timed out, or the log is closing
