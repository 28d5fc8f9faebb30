"""The reader process itself: ``python -m sluicegate.storage.kafka.reader_worker``.

See ``reader_process`` for what it does and why, and ``fetcher`` for the reads it serves.
It is a module of its own so that the server never imports it: runpy warns when the
module it runs was imported already.

Reads queue up while a round runs; the next round assigns every queued partition at its
offset in one ``assign``, so one fetch request per broker serves them all, then answers
each read as soon as it has enough (count, bytes, or the partition's end). Two reads of
one partition at different offsets go in consecutive rounds. What a round fetched past a
read it answered is sent along (``following``) for the server's read-ahead. Reads for
the read-ahead (refills and prefetches, nobody waits for them) go into a round unless a
waiting read of their partition is queued: the waiting read goes first, the refill is
answered empty.
"""

from __future__ import annotations

import gc
import logging
import queue
import sys
import threading
import time
from operator import itemgetter
from typing import Any

import msgspec
from confluent_kafka import Consumer, KafkaError, Message
from confluent_kafka import TopicPartition as KafkaPartition

from sluicegate.storage.kafka.assignments import KnownTopics
from sluicegate.storage.kafka.read_ahead import MAX_BYTES, RECORDS, footprint
from sluicegate.storage.kafka.reader_process import (
    CLOSING,
    KAFKA_ERROR,
    OUT_OF_RANGE,
    TIMED_OUT,
    Outcome,
    Request,
    Settings,
)
from sluicegate.storage.pipes import FRAME_LENGTH, die_with_parent, outlive_the_servers_shutdown

#: Messages one ``consume`` takes of what librdkafka has fetched: a read and what follows
#: it, which is only kept from the same call.
_CONSUME_BATCH = RECORDS
_CONSUME_SECONDS = 0.01
#: Seconds between the process's own collections of cyclic garbage (see ``_collect``).
_COLLECT_EVERY = 1.0
#: A header's value.
_value = itemgetter(1)
#: The timestamps a record may carry, in µs: what ``datetime`` can show (years 1 to 9999).
#: Kafka takes any 64-bit CreateTime; one beyond, in µs, would not even encode.
_EARLIEST_US = -62_135_596_800_000_000
_LATEST_US = 253_402_300_799_999_999

#: A record as the server decodes it (``Record``, array-like): a list of topic,
#: partition, offset, timestamp in µs, key, value and, when there are any, headers.
#: (Typed ``Any``: ``Outcome`` declares the ``Record``s the server decodes it into.)
_Wire = Any


def _wire(message: Message, topic: str, partition: int, offset: int) -> _Wire:
    """A fetched message as the server's ``Record``."""
    # Every record read passes here. A fetched message's headers are a list of (str,
    # bytes) pairs, or (str, None) for a header without a value, which the gateway's
    # records carry as b"": looked for by one C loop (``in`` over a ``map``).
    stamp = message.timestamp()[1] * 1000
    if not _EARLIEST_US <= stamp <= _LATEST_US:
        # Held at the nearest that shows: a record that cannot be formatted or sent to
        # the server would stop every read of its partition, and this process with it.
        stamp = _LATEST_US if stamp > 0 else _EARLIEST_US
    record = [topic, partition, offset, stamp, message.key(), message.value()]
    headers: Any = message.headers()
    if headers:
        if None in map(_value, headers):
            headers = [(name, b"" if data is None else data) for name, data in headers]
        record.append(headers)
    return record


def _size(record: _Wire) -> int:
    """A record's bytes as ``Record.size`` counts them: key, value, headers' names and
    values."""
    key, value = record[4], record[5]
    size = (0 if key is None else len(key)) + (0 if value is None else len(value))
    if len(record) > 6:
        size += sum(len(name) + len(data) for name, data in record[6])
    return size


class _Read:
    """A read: one the server waits for (``waited``), or one for its read-ahead."""

    __slots__ = (
        "end",
        "id",
        "max_bytes",
        "max_records",
        "offset",
        "records",
        "size",
        "sizes",
        "start",
        "taken",
        "topic",
        "waited",
    )

    def __init__(self, request: Request) -> None:
        (
            self.id,
            _,
            _,
            self.topic,
            self.offset,
            self.end,
            self.max_records,
            self.max_bytes,
            self.waited,
        ) = request
        #: The records taken and not sent yet, from ``start`` (a read for the read-ahead
        #: sends what it has after each batch of messages: ``partial``), their sizes,
        #: and how many records and bytes it has taken in all.
        self.records: list[_Wire] = []
        self.sizes: list[int] = []
        self.start = self.offset
        self.taken = 0
        self.size = 0

    def take(self, record: _Wire) -> bool:
        """Add ``record`` if it fits; whether the read has all it wants."""
        # A read for the read-ahead counts what the read-ahead's bound counts (its value
        # and a fixed overhead, no header): what it brings is cut to that bound anyway
        # when it lands. Sizes go along either way: the read-ahead cuts reads by them,
        # and keeps a waited read's records too, with what followed them.
        size = _size(record)
        cost = size if self.waited else footprint(record[5])
        if self.taken and self.size + cost > self.max_bytes:
            return True  # only the first record may exceed max_bytes
        self.records.append(record)
        self.sizes.append(size)
        self.taken += 1
        self.size += cost
        return (
            self.taken >= self.max_records
            or self.size >= self.max_bytes
            or record[2] + 1 >= self.end
        )

    def reached(self) -> int:
        """One past the last record taken (where the unsent records start, if none)."""
        return int(self.records[-1][2]) + 1 if self.records else self.start

    def refilled(self, *, more: bool) -> tuple[int, int, list[_Wire], list[int], int, bool]:
        """What a read for the read-ahead sends: the records taken since the last time."""
        reached = self.reached()
        sent = (self.id, self.start, self.records, self.sizes, reached, more)
        self.start, self.records, self.sizes = reached, [], []
        return sent

    def ended(self, until: int) -> tuple[int, int, list[_Wire], list[int], int, bool]:
        """A read for the read-ahead's last answer: its records are every committed
        record up to ``until``."""
        return (self.id, self.start, self.records, self.sizes, until, False)


class _Following:
    """What followed a read that ended in a round, up to the read-ahead's bounds."""

    __slots__ = ("full", "read", "records", "size", "sizes", "start", "until")

    def __init__(
        self, read: _Read, start: int, records: list[_Wire], until: int | None = None
    ) -> None:
        self.read = read
        self.start = start
        #: Where the reader found the partition's end, when it did (None: not found).
        self.until = until
        self.records = records
        self.sizes = [_size(record) for record in records]
        #: What they count against the read-ahead's bound.
        self.size = sum(footprint(record[5]) for record in records)
        #: Once a record did not fit, none after it may be kept (no gap in what is kept).
        self.full = False

    def follow(self, message: Message, partition: int) -> None:
        """Keep ``message`` if it continues what followed the read (bounded)."""
        offset = message.offset()
        if offset is None or offset < self.start or self.full:
            return
        cost = footprint(message.value())
        if len(self.records) >= RECORDS or self.size + cost > MAX_BYTES:
            self.full = True
            return
        record = _wire(message, self.read.topic, partition, offset)
        self.records.append(record)
        self.sizes.append(_size(record))
        self.size += cost

    def sent(self) -> tuple[int, int, list[_Wire], list[int], int | None]:
        """``Outcome.following``'s entry: the sizes of the read's records come first."""
        read = self.read
        return (read.id, self.start, self.records, read.sizes + self.sizes, self.until)


_Key = tuple[str, int]


class _Reader:
    """Serves the server's reads through one consumer; answers go out as ``Outcome``s."""

    def __init__(self, settings: Settings, sink: Any) -> None:
        self._timeout = settings.timeout
        self._sink = sink
        self._encode_into = msgspec.msgpack.Encoder().encode_into
        self._log = _Lines()
        logger = logging.getLogger("sluicegate.storage.kafka.librdkafka")
        logger.addHandler(self._log)
        # Every line goes to the server, whose logging configuration decides what is kept.
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        self._errors: list[tuple[int, str, bool, bool]] = []
        self._consumer = Consumer(
            {**settings.config, "logger": logger, "error_cb": self._on_client_error}
        )
        self._assignments = KnownTopics(self._consumer)
        self.requests: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        self._rounds = 0
        self._collected = time.monotonic()

    def _on_client_error(self, error: KafkaError) -> None:
        self._errors.append((error.code(), error.str(), error.fatal(), error.retriable()))

    def serve(self) -> None:
        waiting: list[tuple[_Key, _Read]] = []
        assigned = False
        try:
            while True:
                self._collect()
                if not waiting:
                    if assigned:
                        # Nothing to read: no fetches either, until the next round.
                        self._consumer.unassign()
                        assigned = False
                    item = self.requests.get()  # None when the server's pipe closes
                    if item is None:
                        return
                    waiting.append(((item[1], item[2]), _Read(item)))
                stop = False
                while True:
                    try:
                        item = self.requests.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    waiting.append(((item[1], item[2]), _Read(item)))
                this_round: dict[_Key, _Read] = {}
                later: list[tuple[_Key, _Read]] = []
                outcome = Outcome()
                for key, read in waiting:
                    if not read.waited:
                        continue
                    if key in this_round:
                        later.append((key, read))
                    else:
                        this_round[key] = read
                for key, read in waiting:
                    if read.waited:
                        continue
                    if key in this_round or any(key == k for k, _ in later):
                        # A waiting read of the partition goes first.
                        outcome.refilled.append(read.refilled(more=False))
                    else:
                        this_round[key] = read
                waiting = later
                self._send(outcome)
                if this_round:
                    self._round(this_round)
                    assigned = True
                if stop:
                    closing = Outcome()
                    for _, read in waiting:
                        closing.failed.append((read.id, CLOSING, 0, "the log is closing"))
                    self._send(closing)
                    return
        finally:
            self._consumer.close()

    def _collect(self) -> None:
        """Collect cyclic garbage, at most once a ``_COLLECT_EVERY``, between rounds.

        The collector is off in this process (``main``): a round makes about ten lists
        and tuples per message and keeps thousands of messages alive until it sends them,
        so the automatic collections walked them again and again, about a sixth of the
        process's CPU. What a round makes holds no cycle; whatever else might (an
        exception's traceback) is collected here, where little is alive."""
        now = time.monotonic()
        if now - self._collected >= _COLLECT_EVERY:
            gc.collect()
            self._collected = now

    def _round(self, reads: dict[_Key, _Read]) -> None:
        self._rounds += 1
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
            outcome = Outcome(rounds=self._rounds)
            following: dict[_Key, _Following] = {}
            for message in messages:
                key = (message.topic() or "", message.partition() or 0)
                read = reads.get(key)
                if read is None:
                    after = following.get(key)
                    if after is not None and message.error() is None:
                        after.follow(message, key[1])
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
                    if read.waited:
                        outcome.finished.append((read.id, read.records))
                        following[key] = _Following(read, reached, [], until)
                    else:
                        outcome.refilled.append(read.ended(until))
                    continue
                if error is not None:
                    if self._on_fetch_error(error, read, outcome):
                        del reads[key]
                    continue
                offset = message.offset()
                if offset is None or offset < read.offset:
                    continue  # fetched before this round's assign
                record = _wire(message, read.topic, key[1], offset)
                if read.take(record):
                    del reads[key]
                    if not read.waited:
                        # A refill brings what the read-ahead has room for, nothing after.
                        outcome.refilled.append(read.refilled(more=False))
                        continue
                    outcome.finished.append((read.id, read.records))
                    # A record past the read's byte limit starts what follows it.
                    last = read.records[-1]
                    rest = [] if last is record else [record]
                    following[key] = _Following(read, int(last[2]) + 1, rest)
            if not messages and time.monotonic() > deadline:
                for read in reads.values():
                    if read.records or not read.waited:
                        _end(read, outcome)
                    else:
                        why = f"Kafka did not return records within {self._timeout:g}s"
                        outcome.failed.append((read.id, TIMED_OUT, 0, why))
                reads.clear()
            for read in reads.values():
                if read.records and not read.waited:
                    # What a refill has so far goes now: a read of its partition may be
                    # waiting for it, and a refill of thousands takes several fetches.
                    outcome.refilled.append(read.refilled(more=True))
            outcome.following.extend(after.sent() for after in following.values())
            self._send(outcome)

    def _on_fetch_error(self, error: KafkaError, read: _Read, outcome: Outcome) -> bool:
        """Answer ``read`` for ``error`` unless librdkafka retries it; whether it was."""
        code = error.code()
        if code in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
            if read.records or not read.waited:
                _end(read, outcome)
            else:
                outcome.failed.append((read.id, OUT_OF_RANGE, code, error.str()))
            return True
        if error.retriable():
            return False  # librdkafka retries; the deadline bounds the wait
        if read.waited:
            outcome.failed.append((read.id, KAFKA_ERROR, code, error.str()))
        else:
            read.records, read.sizes = [], []
            outcome.refilled.append(read.refilled(more=False))
        return True

    def _send(self, outcome: Outcome) -> None:
        """Send ``outcome`` with the client's errors and log lines, unless it is empty."""
        outcome.errors, self._errors = self._errors, []
        outcome.logs, self._log.lines = self._log.lines, []
        outcome.rounds = self._rounds
        if not (
            outcome.finished
            or outcome.failed
            or outcome.following
            or outcome.refilled
            or outcome.errors
            or outcome.logs
        ):
            return
        # Encoded behind room for its length: a frame can be megabytes, and prefixing
        # the length afterwards would copy all of it once more.
        frame = bytearray(FRAME_LENGTH.size)
        self._encode_into(outcome, frame, FRAME_LENGTH.size)
        FRAME_LENGTH.pack_into(frame, 0, len(frame) - FRAME_LENGTH.size)
        self._sink.write(frame)
        self._sink.flush()


def _end(read: _Read, outcome: Outcome) -> None:
    """``read`` ends with the records it took (a refill's may be none)."""
    if read.waited:
        outcome.finished.append((read.id, read.records))
    else:
        outcome.refilled.append(read.refilled(more=False))


class _Lines(logging.Handler):
    """librdkafka's log lines, kept for the server, which logs them as its own."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, record.getMessage()))


def _read_requests(source: Any, requests: queue.SimpleQueue[Request | None]) -> None:
    """Queue each request the server sends, then None when its pipe closes."""
    decode = msgspec.msgpack.Decoder(list[Request]).decode
    try:
        while len(head := source.read(FRAME_LENGTH.size)) == FRAME_LENGTH.size:
            for request in decode(source.read(FRAME_LENGTH.unpack(head)[0])):
                requests.put(request)
    finally:
        requests.put(None)


def main() -> None:
    outlive_the_servers_shutdown()
    die_with_parent(int(sys.argv[1]))
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    head = source.read(FRAME_LENGTH.size)
    if len(head) < FRAME_LENGTH.size:
        return  # the server went away before it said what to read
    settings = msgspec.msgpack.decode(source.read(FRAME_LENGTH.unpack(head)[0]), type=Settings)
    reader = _Reader(settings, sink)
    # What lives as long as the process is never walked again; the rest is collected by
    # the reader between rounds (``_Reader._collect``).
    gc.collect()
    gc.freeze()
    gc.disable()
    threading.Thread(
        target=_read_requests, args=(source, reader.requests), name="requests", daemon=True
    ).start()
    reader.serve()


if __name__ == "__main__":
    main()
