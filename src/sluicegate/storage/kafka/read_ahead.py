"""Records the reader fetched past what a read asked for, kept for the read that follows.

A consumer walking a partition asks for a batch, then for the next one from where the
batch ended. The reader's consumer has usually fetched well past the first batch by then
(a fetch returns up to a megabyte per partition), so what came in the same round beyond
the read is kept, per partition, from the offset the read stopped at: the next read from
there is answered from memory, without a round on the broker. So is a read from any
offset the entry covers (a filtered read that took fewer records than it fetched goes on
from the first one it left), and a read the entry holds to the partition's known end,
however few records that is (the end of a partition, or only commit markers before it).

What is kept was committed (the reader is ``read_committed``) and Kafka never rewrites a
record, so it stays right while it exists. This node's purge and delete forget the
partitions at once; a purge elsewhere (or retention) can be missed for at most ``_TTL``
seconds: a record is not handed out longer than that after the fetch that brought it
(a refill's records expire after their own fetch's). Bounded: ``_PARTITIONS``
partitions, ``RECORDS`` records each, and ``MAX_BYTES`` in all (values plus
``RECORD_OVERHEAD`` per record: the oldest entries go first).

A read's byte limit counts ``Record.size()``, headers included. Those sizes come with
the records: the reader process counts them (on its own core; counting eight headers
costs about half a microsecond a record), an entry keeps their running sums, and a read's
cut is found by bisection instead of a loop over its records.

The node's own single-record appends continue an entry (``extend``): a long poll parked
at a partition's end is woken by this node's append and reads the record it was woken
for, which is then answered here instead of by a round on the broker. An entry holds
every committed record from its base to its end (one past its last record, its base
when it holds none yet, or where the reader found the partition's end, past the commit
markers there), so an acknowledged record whose offset is exactly that end is
the next committed record, and one a ``read_committed`` reader already sees: an open
transaction's records would lie below it, between the entry's records and it, and none
does. Any other offset (a commit marker, another writer's record in between) leaves the
entry as it is, and the next read goes to the broker.

An entry a read was answered from is refilled in the background (``wanted``,
``continue_with``): once fewer than ``REFILL_BELOW`` records are left in it and the
partition is known to go on past it, the fetcher reads on from the entry's end in a round
of its own, and what it fetched is added if the entry still ends where the refill
started (nothing was appended or dropped meanwhile). A consumer walking a backlog then
finds its next batch in memory instead of waiting for a round on the broker. A consumer
about to read several partitions may ask for them ahead (``Log.prefetch``): the
partitions without an entry are fetched in one round of their own, each kept as an entry
(``adopt``) if it has none by then. Refills and prefetches add nothing to the bounds:
an entry holds at most ``RECORDS`` records past where its last read stopped, plus that
read's own (a reader may go back into them), and ``MAX_BYTES`` bound them all. A refill
is cut to what fits and evicts no other entry; a prefetch is not asked while half the bounds
are used (``crowded``), and is kept only if it fits without evicting an entry.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from itertools import accumulate
from operator import attrgetter

from sluicegate.core.records import NewRecord, Record

__all__ = ["MAX_BYTES", "RECORDS", "RECORD_OVERHEAD", "REFILL_BELOW", "ReadAhead", "footprint"]

_Key = tuple[str, int]
#: Records kept per partition: a walk reading batches of 50 goes to the broker once in
#: 80 reads (500 made it once in 10, and that round cost more than the ten reads).
RECORDS = 4000
#: Bytes kept in all, counted as values plus ``RECORD_OVERHEAD`` per record.
MAX_BYTES = 16 * 1024 * 1024
#: What a kept record costs besides its value: its ``Record``, key, header tuple, slot.
RECORD_OVERHEAD = 200
#: An entry holding fewer records than this is refilled, if the partition goes on.
REFILL_BELOW = RECORDS // 2
_PARTITIONS = 64
_TTL = 2.0
_value = attrgetter("value")
_offset = attrgetter("offset")


def footprint(value: bytes | None) -> int:
    """What keeping a record with ``value`` counts against ``MAX_BYTES``."""
    return (len(value) if value is not None else 0) + RECORD_OVERHEAD


def _footprints(records: list[Record]) -> int:
    """``sum(footprint(r.value) for r in records)``, counted by C loops."""
    return sum(map(len, filter(None, map(_value, records)))) + RECORD_OVERHEAD * len(records)


class _Entry:
    """Every committed record of a partition from ``base`` to ``end``; ``start``: where the
    last read stopped, ``records[first]`` the first record from there; ``sums[i]``: the
    bytes (``Record.size()``) of the records before ``records[i]``, from any origin; and
    an upper bound of the bytes they count."""

    __slots__ = ("base", "end", "expiries", "first", "last", "records", "size", "start", "sums")

    def __init__(
        self, start: int, records: list[Record], sums: list[int], size: int, end: int
    ) -> None:
        self.base = self.start = start
        self.records = records
        self.sums = sums
        self.first = 0
        #: Where the last read began, and the index of its first record: a refill keeps
        #: the records from there (a filtered reader may go back to one of them).
        self.last = (start, 0)
        self.size = size
        self.end = end
        #: When the records from each offset on expire, per fetch that brought them:
        #: (offset, monotonic time), ascending (a refill adds one; see the module).
        self.expiries = [(start, time.monotonic() + _TTL)]

    def expired(self, offset: int) -> bool:
        """Whether the records from ``offset`` on include some kept too long."""
        for since, expires in reversed(self.expiries):
            if since <= offset:
                return time.monotonic() > expires
        return time.monotonic() > self.expiries[0][1]


class ReadAhead:
    """Per partition: the offset the last read stopped at and the records after it."""

    def __init__(self) -> None:
        self._kept: dict[_Key, _Entry] = {}
        self._size = 0
        #: How many times partitions were forgotten (``forget``). Purges are rare, so
        #: any one of them voids every fetch in flight, whatever its partition.
        self.generation = 0

    def keep(
        self,
        key: _Key,
        start: int,
        records: list[Record],
        sizes: list[int],
        end: int | None = None,
        *,
        read: tuple[int, list[Record]] | None = None,
    ) -> None:
        """``records`` are every committed record of ``key`` from ``start`` on, in order
        (none: nothing past ``start`` is known yet, which an append may continue), up to
        ``end`` (default: one past the last of them). ``read``: the offset and the records
        of the read that stopped at ``start``, kept too (a filtered reader that took fewer
        goes on from one of them). ``sizes``: each record's ``Record.size()``, the read's
        first."""
        self._drop(key)
        base, first = start, 0
        if read is not None and read[1]:
            base, taken = read
            first = len(taken)
            records = taken + records
        size = _footprints(records)
        if size > MAX_BYTES:
            return
        kept = self._kept
        while kept and (len(kept) >= _PARTITIONS or self._size + size > MAX_BYTES):
            self._drop(next(iter(kept)))  # the oldest
        last = records[-1].offset + 1 if records else start
        sums = list(accumulate(sizes, initial=0))
        entry = _Entry(base, records, sums, size, last if end is None else max(end, last))
        entry.start, entry.first = start, first
        kept[key] = entry
        self._size += size

    def extend(self, key: _Key, offset: int, timestamp: int, record: NewRecord) -> None:
        """Add ``record``, just acknowledged at ``offset`` and ``timestamp`` (µs), if it is
        the next committed record of ``key``'s entry (see above); else change nothing."""
        entry = self._kept.get(key)
        if entry is None or offset != entry.end:
            return
        size = footprint(record.value)
        if len(entry.records) - entry.first >= RECORDS or self._size + size > MAX_BYTES:
            return
        # As the reader would have fetched it (see ``Record`` for the tuple). The expiry
        # stays: it bounds how long the entry's older records are trusted.
        headers = tuple(record.headers)
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
        entry.sums.append(entry.sums[-1] + record.size())
        entry.end = offset + 1
        entry.size += size
        self._size += size

    def take(
        self,
        key: _Key,
        offset: int,
        end: int,
        max_records: int,
        max_bytes: int,
        *,
        drop: bool = True,
    ) -> list[Record] | None:
        """The read's whole answer if what is kept holds it, else None (ask the broker,
        and forget the entry: the round that answers keeps what follows instead; with
        ``drop`` false it stays, for a refill on its way)."""
        entry = self._kept.get(key)
        if entry is None:
            return None
        if entry.expired(offset):
            self._drop(key)
            return None
        if not entry.base <= offset <= entry.end:
            if drop:
                self._drop(key)
            return None
        records = entry.records
        # A read from where the last one stopped starts at ``first``; any other offset the
        # entry covers is found by bisection (the offsets ascend, with gaps at markers).
        first = entry.first if offset == entry.start else bisect_left(records, offset, key=_offset)
        count = len(records)
        if first == count:
            taken: list[Record] = []
            complete = entry.end >= end  # nothing left: the answer if it ends there
        else:
            # The records below ``end``, ``max_records`` of them, and as many as fit in
            # ``max_bytes`` by the running sums (only the first may exceed it alone).
            stop = (
                count
                if records[-1].offset < end
                else bisect_left(records, end, lo=first, key=_offset)
            )
            limit = min(stop, first + max(max_records, 1))
            sums = entry.sums
            cut = bisect_right(sums, sums[first] + max_bytes, lo=first + 1, hi=limit + 1) - 1
            cut = max(cut, first + 1) if limit > first else first
            taken = records[first:cut]
            # Cut short by a bound, or every record up to the entry's end where the read's
            # end is known: the whole answer. Else it ran out before the read had all.
            complete = (
                cut < count
                or cut - first >= max_records
                or sums[cut] - sums[first] >= max_bytes
                or records[cut - 1].offset + 1 >= end
                or entry.end >= end
            )
        if not complete:
            if drop:
                self._drop(key)
            return None  # it ran out before the read had all it wants
        # What is left, if anything, is still every committed record from there on. The
        # entry's size stays an upper bound until it is dropped (no count per record).
        entry.last = (offset, first)
        entry.first = first + len(taken)
        entry.start = taken[-1].offset + 1 if taken else offset
        return taken

    def covers(self, key: _Key, offset: int) -> bool:
        """Whether a read of ``key`` from ``offset`` would start in an entry."""
        entry = self._kept.get(key)
        return entry is not None and entry.base <= offset <= entry.end and not entry.expired(offset)

    def crowded(self) -> bool:
        """Whether half the bounds are used: prefetches, which nobody waits for, would
        soon evict entries that readers are using."""
        return len(self._kept) >= _PARTITIONS // 2 or self._size >= MAX_BYTES // 2

    def adopt(
        self, key: _Key, start: int, records: list[Record], sizes: list[int], end: int
    ) -> None:
        """``records`` are every committed record of ``key`` from ``start`` to ``end`` (a
        prefetch; ``sizes``: theirs): kept as an entry if ``key`` has none and they fit
        without evicting any."""
        if key in self._kept or len(self._kept) >= _PARTITIONS:
            return
        if self._size + _footprints(records) <= MAX_BYTES:
            self.keep(key, start, records, sizes, end)

    def wanted(self, key: _Key, end: int) -> tuple[int, int] | None:
        """Where a refill of ``key``'s entry starts and how many records it may bring,
        when the entry runs low and records are known below ``end``; else None."""
        entry = self._kept.get(key)
        if entry is None or entry.expired(entry.start):
            return None
        left = len(entry.records) - entry.first
        if left >= REFILL_BELOW or entry.end >= end:
            return None
        return entry.end, RECORDS - left

    def continue_with(
        self, key: _Key, start: int, records: list[Record], sizes: list[int], end: int
    ) -> None:
        """``records`` are every committed record of ``key`` from ``start`` to ``end`` (a
        refill; ``sizes``: theirs): added to the entry if it still ends at ``start``, as
        many as the bounds allow."""
        entry = self._kept.get(key)
        if entry is None or entry.end != start:
            return
        # The records before the last read go (the list would otherwise keep them alive),
        # and the entry's size is counted again: an upper bound while reads took from it.
        base, index = entry.last
        kept = entry.records[index:]
        size = _footprints(kept)
        left = len(entry.records) - entry.first
        room = min(RECORDS - left, len(records))
        budget = MAX_BYTES - (self._size - entry.size + size)
        brought = records[:room]
        cost = _footprints(brought)
        if cost <= budget:
            added = room  # most refills: all of it, counted by C loops
        else:
            added = cost = 0
            for record in brought:
                one = footprint(record.value)
                if cost + one > budget:
                    break
                cost += one
                added += 1
        size += cost
        kept.extend(records[:added])
        sums = entry.sums[index:]
        running = accumulate(sizes[:added], initial=sums[-1])
        next(running)  # the initial sum, there already
        sums.extend(running)
        self._size += size - entry.size
        entry.records = kept
        entry.sums = sums
        entry.first -= index
        entry.base = base
        entry.last = (base, 0)
        entry.size = size
        # What the refill brought is trusted for ``_TTL`` from now, what was kept before
        # no longer than it was; fetches whose records all went are forgotten.
        expiries = entry.expiries
        while len(expiries) > 1 and expiries[1][0] <= base:
            del expiries[0]
        expiries.append((start, time.monotonic() + _TTL))
        # Cut short, the entry reaches only past its last record.
        if added == len(records):
            entry.end = max(end, entry.end)
        elif added:
            entry.end = records[added - 1].offset + 1

    def forget(self, keys: list[_Key]) -> None:
        """Drop what is kept of ``keys`` (their topic was deleted or purged), and move on
        ``generation``: a fetch asked before this lands after it, and is not kept."""
        self.generation += 1
        for key in keys:
            self._drop(key)

    def _drop(self, key: _Key) -> None:
        entry = self._kept.pop(key, None)
        if entry is not None:
            self._size -= entry.size
