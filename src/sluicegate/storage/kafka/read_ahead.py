"""Records the reader fetched past what a read asked for, kept for the read that follows.

A consumer walking a partition asks for a batch, then for the next one from where the
batch ended. The reader's consumer has usually fetched well past the first batch by then
(a fetch returns up to a megabyte per partition), so what came in the same round beyond
the read is kept, per partition, from the offset the read stopped at: the next read from
exactly that offset is answered from memory, without a round on the broker.

What is kept was committed (the reader is ``read_committed``) and Kafka never rewrites a
record, so it stays right while it exists: a purge moves the low watermark above it, which
the log checks before it asks here; a deleted topic's partitions are forgotten at once,
and every entry expires after ``_TTL`` seconds whatever happens. Bounded: ``_PARTITIONS``
partitions, ``RECORDS`` records each.

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

__all__ = ["RECORDS", "ReadAhead"]

_Key = tuple[str, int]
#: Records kept per partition (one round's worth at most).
RECORDS = 500
_PARTITIONS = 64
_TTL = 2.0


class ReadAhead:
    """Per partition: the offset the last read stopped at and the records after it."""

    def __init__(self) -> None:
        self._kept: dict[_Key, tuple[int, list[Record], float]] = {}

    def keep(self, key: _Key, start: int, records: list[Record]) -> None:
        """``records`` are every committed record of ``key`` from ``start`` on, in order
        (none: nothing past ``start`` is known yet, which an append may continue)."""
        kept = self._kept
        kept.pop(key, None)
        if len(kept) >= _PARTITIONS:
            del kept[next(iter(kept))]  # the oldest
        kept[key] = (start, records, time.monotonic() + _TTL)

    def extend(self, key: _Key, offset: int, timestamp: int, record: NewRecord) -> None:
        """Add ``record``, just acknowledged at ``offset`` and ``timestamp`` (µs), if it is
        the next committed record of ``key``'s entry (see above); else change nothing."""
        entry = self._kept.get(key)
        if entry is None:
            return
        start, records, _ = entry
        end = records[-1].offset + 1 if records else start
        if offset != end or len(records) >= RECORDS:
            return
        # As the reader would have fetched it (headers as a list, as librdkafka gives
        # them). The expiry stays: it bounds how long the entry's older records are trusted.
        headers = list(record.headers) if record.headers else ()
        records.append(
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

    def take(
        self, key: _Key, offset: int, end: int, max_records: int, max_bytes: int
    ) -> list[Record] | None:
        """The read's whole answer if what is kept holds it, else None (ask the broker)."""
        entry = self._kept.pop(key, None)
        if entry is None:
            return None
        start, records, expires = entry
        if start != offset or time.monotonic() > expires:
            return None
        taken: list[Record] = []
        size = 0
        complete = False
        for record in records:
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
            return None  # it ran out before the read had all it wants
        # What is left, if anything, is still every committed record from there on.
        self._kept[key] = (taken[-1].offset + 1, records[len(taken) :], expires)
        return taken

    def forget(self, keys: list[_Key]) -> None:
        """Drop what is kept of ``keys`` (their topic was deleted or purged)."""
        for key in keys:
            self._kept.pop(key, None)
