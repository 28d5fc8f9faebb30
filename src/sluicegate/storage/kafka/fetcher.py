"""The node-wide reader: one consumer, assigned (never subscribed), serving every read.

A read asks for records of one partition from an offset. Reads queue up while a round
runs; the next round assigns every queued partition at its offset in one ``assign``, so
one fetch request per broker serves them all, then hands each read its records as soon
as it has enough (count, bytes, or the partition's end). Two reads of one partition at
different offsets go in consecutive rounds. The cost is fixed per node — one consumer
and one thread — however many HTTP consumers read. What a round fetched past a read is
kept for the read that continues from there (``read_ahead``).
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, Message
from confluent_kafka import TopicPartition as KafkaPartition

from sluicegate.core.records import Header, NewRecord, Record
from sluicegate.errors import OffsetOutOfRange, SluicegateError, StorageUnavailable
from sluicegate.storage.kafka.assignments import KnownTopics
from sluicegate.storage.kafka.errors import translate
from sluicegate.storage.kafka.read_ahead import MAX_BYTES, RECORDS, ReadAhead, footprint
from sluicegate.storage.kafka.worker import Worker

__all__ = ["Fetcher", "to_record"]

#: Messages one ``consume`` takes of what librdkafka has fetched: a read and what follows
#: it (``read_ahead``), which is only kept from the same call.
_CONSUME_BATCH = RECORDS
_CONSUME_SECONDS = 0.01
#: Seconds a reader thread waits for work before checking whether it should stop.
_IDLE_SECONDS = 0.2


def to_record(message: Message, topic: str) -> Record:
    """A stored record from a fetched message; ``topic`` is the gateway's name for it."""
    # Every record the reader fetches passes here, on the reader's thread (which shares the
    # GIL with the loop): positional arguments, and the headers librdkafka made kept as
    # they are. A fetched message's headers are a list of (str, bytes) pairs, or (str,
    # None) for a header without a value, which the gateway's records carry as b"".
    headers = cast(list[tuple[str, bytes | None]] | None, message.headers())
    kept: Sequence[Header] = ()
    if headers:
        kept = cast(list[Header], headers)
        for _, value in headers:
            if value is None:
                kept = [(name, b"" if value is None else value) for name, value in headers]
                break
    offset = message.offset()
    return Record(
        topic,
        message.partition() or 0,
        -1 if offset is None else offset,
        message.timestamp()[1] * 1000,
        message.key(),
        message.value(),
        kept,
    )


class _Read:
    __slots__ = ("end", "future", "max_bytes", "max_records", "offset", "records", "size", "topic")

    def __init__(
        self,
        topic: str,
        offset: int,
        end: int,
        max_records: int,
        max_bytes: int,
        future: asyncio.Future[list[Record]],
    ) -> None:
        self.topic = topic
        self.offset = offset
        self.end = end
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.future = future
        self.records: list[Record] = []
        self.size = 0

    def take(self, record: Record) -> bool:
        """Add ``record`` if it fits; whether the read has all it wants."""
        size = record.size()
        if self.records and self.size + size > self.max_bytes:
            return True  # only the first record may exceed max_bytes
        self.records.append(record)
        self.size += size
        return (
            len(self.records) >= self.max_records
            or self.size >= self.max_bytes
            or record.offset + 1 >= self.end
        )


_Key = tuple[str, int]
_Outcome = tuple[asyncio.Future[list[Record]], list[Record] | SluicegateError]


class _Following:
    """After a read that ended in a round: its topic, the offset it stopped at, what
    followed it in the round, and their ``footprint``s."""

    __slots__ = ("full", "records", "size", "start", "topic")

    def __init__(self, topic: str, start: int, records: list[Record]) -> None:
        self.topic = topic
        self.start = start
        self.records = records
        self.size = sum(footprint(record.value) for record in records)
        #: Once a record did not fit, none after it may be kept (no gap in what is kept).
        self.full = False


class Fetcher:
    """Reads records for the whole node through one consumer on one thread."""

    def __init__(
        self,
        config: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        *,
        timeout: float,
        on_error: Callable[[KafkaError], None],
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._on_error = on_error
        self._consumer = Consumer({**config, "error_cb": self._error})
        self._assignments = KnownTopics(self._consumer)
        self._requests: queue.SimpleQueue[tuple[str, int, _Read] | None] = queue.SimpleQueue()
        #: On the loop: filled by ``_settle``, used and dropped by ``read`` and ``forget``.
        self._ahead = ReadAhead()
        #: Rounds on the broker so far (written by the fetcher thread; for benchmarks).
        self.rounds = 0
        self.worker = Worker("kafka-fetcher", self._serve, loop)

    def start(self) -> None:
        self.worker.start()

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
        ahead = self._ahead.take((kafka_topic, partition), offset, end, max_records, max_bytes)
        if ahead is not None:
            future.set_result(ahead)
            return future
        self._requests.put(
            (kafka_topic, partition, _Read(topic, offset, end, max_records, max_bytes, future))
        )
        return future

    def forget(self, keys: list[_Key]) -> None:
        """Drop what is kept of ``keys`` (on the loop; their records are gone)."""
        self._ahead.forget(keys)

    def appended(self, key: _Key, offset: int, timestamp: int, record: NewRecord) -> None:
        """This node's append of ``record`` landed at ``offset`` (on the loop): kept for
        the read that a waiter it wakes makes, if it continues what is kept."""
        self._ahead.extend(key, offset, timestamp, record)

    async def close(self) -> None:
        self._requests.put(None)
        await self.worker.join()

    def _error(self, error: KafkaError) -> None:
        self._loop.call_soon_threadsafe(self._on_error, error)

    # -- the fetcher thread ----------------------------------------------------------

    def _serve(self) -> None:
        waiting: list[tuple[_Key, _Read]] = []
        assigned = False
        try:
            while True:
                if not waiting:
                    if assigned:
                        # Nothing to read: no fetches either, until the next round.
                        self._consumer.unassign()
                        assigned = False
                    try:
                        item = self._requests.get(timeout=_IDLE_SECONDS)
                    except queue.Empty:
                        continue
                    if item is None:
                        return
                    waiting.append(((item[0], item[1]), item[2]))
                stop = False
                while True:
                    try:
                        item = self._requests.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    waiting.append(((item[0], item[1]), item[2]))
                this_round: dict[_Key, _Read] = {}
                later: list[tuple[_Key, _Read]] = []
                for key, read in waiting:
                    if key in this_round:
                        later.append((key, read))
                    else:
                        this_round[key] = read
                waiting = later
                self._round(this_round)
                assigned = True
                if stop:
                    for _, read in waiting:
                        self._deliver([(read.future, StorageUnavailable("the log is closing"))])
                    return
        finally:
            self._consumer.close()

    def _round(self, reads: dict[_Key, _Read]) -> None:
        self.rounds += 1
        consumer = self._consumer
        self._assignments.assign(
            [KafkaPartition(t, p, read.offset) for (t, p), read in reads.items()]
        )
        deadline = time.monotonic() + self._timeout
        while reads:
            # consume() returns only when it has as many messages as asked for, or when the
            # time is up: take what is already there, and wait only for a first message.
            messages = consumer.consume(_CONSUME_BATCH, 0)
            if not messages:
                messages = consumer.consume(1, _CONSUME_SECONDS)
            finished: list[_Outcome] = []
            following: dict[_Key, _Following] = {}
            for message in messages:
                key = (message.topic() or "", message.partition() or 0)
                read = reads.get(key)
                if read is None:
                    after = following.get(key)
                    if after is not None and message.error() is None:
                        _follow(after, message)
                    continue
                error = message.error()
                if error is not None:
                    outcome = self._on_fetch_error(error, read)
                    if outcome is not None:
                        del reads[key]
                        finished.append((read.future, outcome))
                    continue
                offset = message.offset()
                if offset is None or offset < read.offset:
                    continue  # fetched before this round's assign
                record = to_record(message, read.topic)
                if read.take(record):
                    del reads[key]
                    finished.append((read.future, read.records))
                    # A record past the read's byte limit starts what follows it.
                    last = read.records[-1]
                    rest = [] if last is record else [record]
                    following[key] = _Following(read.topic, last.offset + 1, rest)
            if not messages and time.monotonic() > deadline:
                for read in reads.values():
                    finished.append((read.future, self._timed_out(read)))
                reads.clear()
            self._deliver(finished, following)

    def _on_fetch_error(
        self, error: KafkaError, read: _Read
    ) -> list[Record] | SluicegateError | None:
        code = error.code()
        if code == KafkaError._PARTITION_EOF:
            return read.records
        if code in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
            if read.records:
                return read.records
            return OffsetOutOfRange(
                f"offset {read.offset} is out of range for {read.topic}: its records are gone",
                topic=read.topic,
                offset=read.offset,
            )
        if error.retriable():
            return None  # librdkafka retries; the deadline bounds the wait
        return translate(error, topic=read.topic)

    def _timed_out(self, read: _Read) -> list[Record] | SluicegateError:
        if read.records:
            return read.records
        return StorageUnavailable(f"Kafka did not return records within {self._timeout:g}s")

    def _deliver(
        self, finished: list[_Outcome], following: dict[_Key, _Following] | None = None
    ) -> None:
        if finished or following:
            self._loop.call_soon_threadsafe(self._settle, finished, following or {})

    def _settle(self, finished: list[_Outcome], following: dict[_Key, _Following]) -> None:
        # On the loop: what followed a read is kept before its reader can ask for more.
        for key, after in following.items():
            self._ahead.keep(key, after.start, after.records, after.size)
        for future, outcome in finished:
            if future.done():
                continue  # the reader gave up waiting
            if isinstance(outcome, SluicegateError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def _follow(after: _Following, message: Message) -> None:
    """Keep ``message`` if it continues what followed a read (bounded)."""
    offset = message.offset()
    if offset is None or offset < after.start or after.full:
        return
    size = footprint(message.value())
    if len(after.records) >= RECORDS or after.size + size > MAX_BYTES:
        after.full = True
        return
    after.records.append(to_record(message, after.topic))
    after.size += size
