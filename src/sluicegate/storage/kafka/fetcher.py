"""The node-wide reader: one consumer, assigned (never subscribed), serving every read.

A read asks for records of one partition from an offset. Reads queue up while a round
runs; the next round assigns every queued partition at its offset in one ``assign``, so
one fetch request per broker serves them all, then hands each read its records as soon
as it has enough (count, bytes, or the partition's end). Two reads of one partition at
different offsets go in consecutive rounds. The cost is fixed per node — one consumer
and one thread — however many HTTP consumers read. What a round fetched past a read is
kept for the read that continues from there (``read_ahead``), and an entry a read used is
refilled in the background once it runs low; partitions a consumer is about to read
(``prefetch``) are fetched into it the same way. Those are reads nobody waits for, which
go into the next round unless a waiting read of their partition is queued (it would
fetch the same partition at another offset: the waiting read goes first, the refill is
dropped).
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

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
#: A header's value.
_value = itemgetter(1)


def to_record(message: Message, topic: str, partition: int, offset: int) -> Record:
    """A stored record from a fetched message; ``topic`` is the gateway's name for it, and
    the caller has read its partition and offset already."""
    # Every record the reader fetches passes here, on the reader's thread (which shares the
    # GIL with the loop): positional arguments, no call the caller made already, and the
    # headers librdkafka made kept as they are. A fetched message's headers are a list of
    # (str, bytes) pairs, or (str, None) for a header without a value, which the
    # gateway's records carry as b"": looked for by one C loop (``in`` over a ``map``),
    # 0.4 µs a record less than a Python loop over eight headers. (confluent-kafka's
    # types allow a dict too, which a fetched message never has.)
    headers: Any = message.headers()
    kept: Sequence[Header] = ()
    if headers:
        kept = headers
        if None in map(_value, headers):
            kept = [(name, b"" if value is None else value) for name, value in headers]
    return Record(
        topic,
        partition,
        offset,
        message.timestamp()[1] * 1000,
        message.key(),
        message.value(),
        kept,
    )


#: Bytes one refill or prefetch may bring, counted as ``footprint``s (``read_ahead``'s
#: bound cuts it further when it lands).
_REFILL_BYTES = MAX_BYTES // 4


class _Read:
    """A read a caller waits for (``future``), or one for the read-ahead (None): a refill
    of an entry, or a prefetch (``fresh``) that makes one."""

    __slots__ = (
        "end",
        "fresh",
        "future",
        "generation",
        "max_bytes",
        "max_records",
        "offset",
        "records",
        "size",
        "topic",
    )

    def __init__(
        self,
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
        self.records: list[Record] = []
        self.size = 0

    def take(self, record: Record) -> bool:
        """Add ``record`` if it fits; whether the read has all it wants."""
        # A read for the read-ahead counts what the read-ahead's bound counts (its value
        # and a fixed overhead): cheaper than the headers' bytes, and what it brings is
        # cut to that bound anyway when it lands.
        size = record.size() if self.future is not None else footprint(record.value)
        if self.records and self.size + size > self.max_bytes:
            return True  # only the first record may exceed max_bytes
        self.records.append(record)
        self.size += size
        return (
            len(self.records) >= self.max_records
            or self.size >= self.max_bytes
            or record.offset + 1 >= self.end
        )

    def reached(self) -> int:
        """One past the last record taken (the offset read from, if none)."""
        return self.records[-1].offset + 1 if self.records else self.offset


_Key = tuple[str, int]
_Outcome = tuple[asyncio.Future[list[Record]], list[Record] | SluicegateError]
#: A read for the read-ahead: its partition, the offset it read from, what it fetched, the
#: offset up to which that is every committed record, and the read itself.
_Refilled = tuple[_Key, int, list[Record], int, _Read]


class _Following:
    """After a read that ended in a round: the read, the offset it stopped at, what
    followed it in the round, and their ``footprint``s."""

    __slots__ = (
        "end",
        "full",
        "generation",
        "read",
        "records",
        "size",
        "start",
        "topic",
        "until",
    )

    def __init__(
        self, read: _Read, start: int, records: list[Record], until: int | None = None
    ) -> None:
        self.topic = read.topic
        self.generation = read.generation
        #: Where the read began and what it took: kept too (``ReadAhead.keep``).
        self.read = (read.offset, read.records)
        self.start = start
        #: The end the read knew of: a refill goes no further.
        self.end = read.end
        #: Where the reader found the partition's end, when it did (None: not found).
        self.until = until
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
        #: On the loop: partitions with a refill or prefetch queued or in a round, and the
        #: reads that missed meanwhile, tried again when it lands (not sent to the broker
        #: in a round of their own, to wait behind it and fetch the same records again).
        self._refilling: set[_Key] = set()
        self._parked: dict[_Key, list[tuple[_Read, int]]] = {}
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
        key = (kafka_topic, partition)
        refilling = key in self._refilling
        ahead = self._ahead.take(key, offset, end, max_records, max_bytes, drop=not refilling)
        if ahead is not None:
            future.set_result(ahead)
            self._refill(key, topic, end)
            return future
        read = _Read(topic, offset, end, max_records, max_bytes, future, self._ahead.generation)
        if refilling:
            self._parked.setdefault(key, []).append((read, partition))
        else:
            self._requests.put((kafka_topic, partition, read))
        return future

    def _unpark(self, key: _Key) -> None:
        """The read-ahead of ``key`` was refilled: the reads that waited for it try again."""
        for read, partition in self._parked.pop(key, ()):
            future = read.future
            if future is None or future.done():
                continue  # the reader gave up waiting
            ahead = self._ahead.take(key, read.offset, read.end, read.max_records, read.max_bytes)
            if ahead is not None:
                future.set_result(ahead)
                self._refill(key, read.topic, read.end)
            else:
                self._requests.put((key[0], partition, read))

    def _refill(self, key: _Key, topic: str, end: int) -> None:
        """Queue a refill of ``key``'s read-ahead if it runs low (on the loop)."""
        if key in self._refilling:
            return
        wanted = self._ahead.wanted(key, end)
        if wanted is None:
            return
        start, room = wanted
        self._refilling.add(key)
        read = _Read(topic, start, end, room, _REFILL_BYTES, None, self._ahead.generation)
        self._requests.put((key[0], key[1], read))

    def prefetch(self, key: _Key, topic: str, offset: int, end: int) -> None:
        """Fetch ``key`` from ``offset`` into the read-ahead unless it holds that already
        (then refill it if it runs low); records are known below ``end`` (on the loop)."""
        if key in self._refilling:
            return
        ahead = self._ahead
        if ahead.covers(key, offset):
            self._refill(key, topic, end)
            return
        if ahead.crowded():
            return
        self._refilling.add(key)
        read = _Read(
            topic, offset, end, RECORDS, _REFILL_BYTES, None, self._ahead.generation, fresh=True
        )
        self._requests.put((key[0], key[1], read))

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
                dropped: list[_Refilled] = []
                for key, read in waiting:
                    if read.future is None:
                        continue
                    if key in this_round:
                        later.append((key, read))
                    else:
                        this_round[key] = read
                for key, read in waiting:
                    if read.future is not None:
                        continue
                    if key in this_round or any(key == k for k, _ in later):
                        # A waiting read of the partition goes first.
                        dropped.append((key, read.offset, [], read.offset, read))
                    else:
                        this_round[key] = read
                waiting = later
                if dropped:
                    self._deliver([], None, dropped)
                if not this_round:
                    continue
                self._round(this_round)
                assigned = True
                if stop:
                    for _, read in waiting:
                        if read.future is not None:
                            closing = StorageUnavailable("the log is closing")
                            self._deliver([(read.future, closing)])
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
            refilled: list[_Refilled] = []
            for message in messages:
                key = (message.topic() or "", message.partition() or 0)
                read = reads.get(key)
                if read is None:
                    after = following.get(key)
                    if after is not None and message.error() is None:
                        _follow(after, message, key[1])
                    continue
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    # Every committed record up to where the partition ends (past any
                    # commit markers there) was read: what is kept says so, and a read
                    # from between the last record and that end is answered from memory.
                    del reads[key]
                    reached = read.reached()
                    at = message.offset()
                    until = reached if at is None else max(at, reached)
                    if read.future is None:
                        refilled.append((key, read.offset, read.records, until, read))
                    else:
                        finished.append((read.future, read.records))
                        following[key] = _Following(read, reached, [], until)
                    continue
                if error is not None:
                    outcome = self._on_fetch_error(error, read)
                    if outcome is not None:
                        del reads[key]
                        _end(read, outcome, key, finished, refilled)
                    continue
                offset = message.offset()
                if offset is None or offset < read.offset:
                    continue  # fetched before this round's assign
                record = to_record(message, read.topic, key[1], offset)
                if read.take(record):
                    del reads[key]
                    if read.future is None:
                        # A refill brings what the read-ahead has room for, nothing after.
                        reached = read.reached()
                        refilled.append((key, read.offset, read.records, reached, read))
                        continue
                    finished.append((read.future, read.records))
                    # A record past the read's byte limit starts what follows it.
                    last = read.records[-1]
                    rest = [] if last is record else [record]
                    following[key] = _Following(read, last.offset + 1, rest)
            if not messages and time.monotonic() > deadline:
                for key, read in reads.items():
                    _end(read, self._timed_out(read), key, finished, refilled)
                reads.clear()
            self._deliver(finished, following, refilled)

    def _on_fetch_error(
        self, error: KafkaError, read: _Read
    ) -> list[Record] | SluicegateError | None:
        code = error.code()
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
        self,
        finished: list[_Outcome],
        following: dict[_Key, _Following] | None = None,
        refilled: list[_Refilled] | None = None,
    ) -> None:
        if finished or following or refilled:
            self._loop.call_soon_threadsafe(self._settle, finished, following or {}, refilled or [])

    def _settle(
        self,
        finished: list[_Outcome],
        following: dict[_Key, _Following],
        refilled: list[_Refilled],
    ) -> None:
        # On the loop: what followed a read is kept before its reader can ask for more.
        ahead = self._ahead
        generation = ahead.generation
        for key, start, records, until, read in refilled:
            self._refilling.discard(key)
            if read.generation != generation:
                pass  # a purge or delete since it was asked: what it fetched may be gone
            elif read.fresh:
                ahead.adopt(key, start, records, until)
            else:
                ahead.continue_with(key, start, records, until)
            self._unpark(key)
        for key, after in following.items():
            if after.generation != generation:
                continue
            ahead.keep(key, after.start, after.records, after.size, after.until, read=after.read)
            self._refill(key, after.topic, after.end)
        for future, outcome in finished:
            if future.done():
                continue  # the reader gave up waiting
            if isinstance(outcome, SluicegateError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def _end(
    read: _Read,
    outcome: list[Record] | SluicegateError,
    key: _Key,
    finished: list[_Outcome],
    refilled: list[_Refilled],
) -> None:
    """A read ends with ``outcome``: a refill's records, or what its reader gets."""
    if read.future is None:
        if isinstance(outcome, SluicegateError):
            refilled.append((key, read.offset, [], read.offset, read))
        else:
            refilled.append((key, read.offset, outcome, read.reached(), read))
    else:
        finished.append((read.future, outcome))


def _follow(after: _Following, message: Message, partition: int) -> None:
    """Keep ``message`` if it continues what followed a read (bounded)."""
    offset = message.offset()
    if offset is None or offset < after.start or after.full:
        return
    size = footprint(message.value())
    if len(after.records) >= RECORDS or after.size + size > MAX_BYTES:
        after.full = True
        return
    after.records.append(to_record(message, after.topic, partition, offset))
    after.size += size
