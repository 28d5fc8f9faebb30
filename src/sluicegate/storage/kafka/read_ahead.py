"""Records the reader fetched past what a read asked for, kept for the read that follows.

A consumer walking a partition asks for a batch, then for the next one from where the
batch ended. The reader's consumer has usually fetched well past the first batch by then
(a fetch returns up to a megabyte per partition), so what came in the same round beyond
the read is kept, per partition, from the offset the read stopped at: the next read from
exactly that offset is answered from memory, without a round on the broker.

What is kept was committed (the reader is ``read_committed``) and Kafka never rewrites a
record, so it stays right while it exists. This node's purge and delete forget the
partitions at once; a purge elsewhere (or retention) can be missed for at most ``_TTL``
seconds, after which every entry expires whatever happens. Bounded: ``_PARTITIONS``
partitions, ``RECORDS`` records each, and ``MAX_BYTES`` in all (values plus
``RECORD_OVERHEAD`` per record: the oldest entries go first).

The node's own single-record appends continue an entry (``extend``): a long poll parked
at a partition's end is woken by this node's append and reads the record it was woken
for, which is then answered here instead of by a round on the broker. An entry holds
every committed record from its start to its end (one past its last record, or its start
when it holds none yet), so an acknowledged record whose offset is exactly that end is
the next committed record, and one a ``read_committed`` reader already sees: an open
transaction's records would lie below it, between the entry's records and it, and none
does. Any other offset (a commit marker, another writer's record in between) leaves the
entry as it is, and the next read goes to the broker.
"""

from __future__ import annotations

import time

from sluicegate.core.records import NewRecord, Record

__all__ = ["MAX_BYTES", "RECORDS", "RECORD_OVERHEAD", "ReadAhead", "footprint"]

_Key = tuple[str, int]
#: Records kept per partition: a walk reading batches of 50 goes to the broker once in
#: 80 reads (500 made it once in 10, and that round cost more than the ten reads).
RECORDS = 4000
#: Bytes kept in all, counted as values plus ``RECORD_OVERHEAD`` per record.
MAX_BYTES = 16 * 1024 * 1024
#: What a kept record costs besides its value: its ``Record``, key, header list, slot.
RECORD_OVERHEAD = 200
_PARTITIONS = 64
_TTL = 2.0


def footprint(value: bytes | None) -> int:
    """What keeping a record with ``value`` counts against ``MAX_BYTES``."""
    return (len(value) if value is not None else 0) + RECORD_OVERHEAD


class _Entry:
    """Every committed record of a partition from ``records[first]`` on (or from ``start``
    when none is left), and an upper bound of the bytes they count."""

    __slots__ = ("expires", "first", "records", "size", "start")

    def __init__(self, start: int, records: list[Record], size: int) -> None:
        self.start = start
        self.records = records
        self.first = 0
        self.size = size
        self.expires = time.monotonic() + _TTL

    def end(self) -> int:
        records = self.records
        return records[-1].offset + 1 if len(records) > self.first else self.start


class ReadAhead:
    """Per partition: the offset the last read stopped at and the records after it."""

    def __init__(self) -> None:
        self._kept: dict[_Key, _Entry] = {}
        self._size = 0

    def keep(self, key: _Key, start: int, records: list[Record], size: int) -> None:
        """``records`` are every committed record of ``key`` from ``start`` on, in order
        (none: nothing past ``start`` is known yet, which an append may continue);
        ``size``: their ``footprint``s."""
        self._drop(key)
        if size > MAX_BYTES:
            return
        kept = self._kept
        while kept and (len(kept) >= _PARTITIONS or self._size + size > MAX_BYTES):
            self._drop(next(iter(kept)))  # the oldest
        kept[key] = _Entry(start, records, size)
        self._size += size

    def extend(self, key: _Key, offset: int, timestamp: int, record: NewRecord) -> None:
        """Add ``record``, just acknowledged at ``offset`` and ``timestamp`` (µs), if it is
        the next committed record of ``key``'s entry (see above); else change nothing."""
        entry = self._kept.get(key)
        if entry is None or offset != entry.end():
            return
        size = footprint(record.value)
        if len(entry.records) - entry.first >= RECORDS or self._size + size > MAX_BYTES:
            return
        # As the reader would have fetched it (headers as a list, as librdkafka gives
        # them). The expiry stays: it bounds how long the entry's older records are trusted.
        headers = list(record.headers) if record.headers else ()
        entry.records.append(
            Record(
                record.topic,
                record.partition,
                offset,
                timestamp,
                record.key,
                record.value,
                headers,
            )
        )
        entry.size += size
        self._size += size

    def take(
        self, key: _Key, offset: int, end: int, max_records: int, max_bytes: int
    ) -> list[Record] | None:
        """The read's whole answer if what is kept holds it, else None (ask the broker,
        and forget the entry: the round that answers keeps what follows instead)."""
        entry = self._kept.get(key)
        if entry is None:
            return None
        if entry.start != offset or time.monotonic() > entry.expires:
            self._drop(key)
            return None
        records = entry.records
        first = entry.first
        taken: list[Record] = []
        size = 0
        complete = False
        for index in range(first, len(records)):
            record = records[index]
            record_size = record.size()
            if taken and size + record_size > max_bytes:
                complete = True  # only the first record may exceed max_bytes
                break
            taken.append(record)
            size += record_size
            if len(taken) >= max_records or size >= max_bytes or record.offset + 1 >= end:
                complete = True
                break
        if not complete:
            self._drop(key)
            return None  # it ran out before the read had all it wants
        # What is left, if anything, is still every committed record from there on. The
        # entry's size stays an upper bound until it is dropped (no count per record).
        entry.first = first + len(taken)
        entry.start = taken[-1].offset + 1
        return taken

    def forget(self, keys: list[_Key]) -> None:
        """Drop what is kept of ``keys`` (their topic was deleted or purged)."""
        for key in keys:
            self._drop(key)

    def _drop(self, key: _Key) -> None:
        entry = self._kept.pop(key, None)
        if entry is not None:
            self._size -= entry.size
