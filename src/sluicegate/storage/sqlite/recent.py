"""The chunks committed last, kept in memory so that reads near the end need no query.

A consumer that follows a topic reads what was committed a moment ago, and one that
walks a topic reads chunks that are usually still recent. Such a read, answered from
here on the loop, costs no hand-over to a reader thread (a queue put, a thread wake-up
and a ``call_soon_threadsafe``, tens of microseconds on a busy machine) and no query.

Why it is always right:

* A chunk is added only after the commit that holds it has returned, in the same loop
  callback that moves the high watermark past it, so nothing here is uncommitted.
* A stored record never changes: retention and purges only move the low watermark (which
  ``SqliteLog.read`` checks before looking here), topic ids are never reused, and
  offsets never go back. So a chunk stays true until it is evicted.
* For each partition the chunks kept are the newest ones, with no gap: chunks of one
  partition are added in offset order and evicted oldest first (the oldest chunk of all
  is the oldest of its partition), and a chunk too large to keep drops its partition's
  chunks. A read whose first offset is here therefore finds everything after it here too.

Memory is bounded by ``max_bytes``: each chunk counts its payload (the encoded records)
and ``CHUNK_OVERHEAD``, what keeping it costs besides (its tuple, its offsets, its place
in two lists), and each partition with chunks kept ``PARTITION_OVERHEAD``. A bound of
payloads alone let a soak's small chunks (one record of about 600 bytes each) hold 1.6
times the bound.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Iterable, Iterator

from sluicegate.storage.sqlite.codec import ChunkRow

__all__ = ["CHUNK_OVERHEAD", "PARTITION_OVERHEAD", "RecentChunks", "StoredChunk"]

#: (base_offset, ts, bytes, records): a chunk as a read needs it.
StoredChunk = tuple[int, int, int, bytes]

#: Chunks are added per partition: (topic_id, partition).
_Key = tuple[int, int]

#: Bytes a kept chunk costs besides its payload: the bytes object's header (33), the
#: chunk's tuple (72), three ints beyond the small ones (base, timestamp, end: 28-32
#: each), a pointer in each of three containers, and the lists' spare room; tracemalloc
#: counts about 230 (``tests/storage/test_sqlite_recent.py`` holds it to the bound).
CHUNK_OVERHEAD = 240
#: Bytes a partition with kept chunks costs: its entry (56), two lists (56 each, and
#: their first allocations), its key and the key's ints, and its slot in the dict;
#: tracemalloc counts about 515.
PARTITION_OVERHEAD = 520


class _PartitionChunks:
    __slots__ = ("chunks", "ends", "key")

    def __init__(self, key: _Key) -> None:
        self.key = key
        self.ends: list[int] = []
        self.chunks: list[StoredChunk] = []


class RecentChunks:
    """The newest committed chunks of every partition, up to ``max_bytes`` in all."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._partitions: dict[_Key, _PartitionChunks] = {}
        #: Every chunk kept, oldest first, as its partition's entry: the oldest chunk of
        #: all is the oldest of its partition, so the entry says which chunk it is.
        self._order: deque[_PartitionChunks] = deque()
        self._bytes = 0

    @property
    def kept_bytes(self) -> int:
        """Bytes the kept chunks count now: payloads and overheads."""
        return self._bytes

    def add(self, rows: Iterable[ChunkRow]) -> None:
        """Keep the chunks of a group commit that has just returned."""
        for topic_id, partition, base, end, ts, size, records in rows:
            if len(records) + CHUNK_OVERHEAD + PARTITION_OVERHEAD > self.max_bytes:
                # Kept chunks must run up to the end of their partition: start afresh.
                self.clear()
                continue
            key = (topic_id, partition)
            kept = self._partitions.get(key)
            if kept is None:
                kept = self._partitions[key] = _PartitionChunks(key)
                self._bytes += PARTITION_OVERHEAD
            kept.ends.append(end)
            kept.chunks.append((base, ts, size, records))
            self._order.append(kept)
            self._bytes += len(records) + CHUNK_OVERHEAD
        while self._bytes > self.max_bytes:
            kept = self._order.popleft()
            self._bytes -= len(kept.chunks[0][3]) + CHUNK_OVERHEAD
            del kept.ends[0], kept.chunks[0]
            if not kept.chunks:
                del self._partitions[kept.key]
                self._bytes -= PARTITION_OVERHEAD

    def from_offset(
        self, topic_id: int, partition: int, offset: int
    ) -> Iterator[StoredChunk] | None:
        """The chunks from the one holding ``offset`` to the partition's end, if it is kept.

        Iterate at once, on the loop: the next ``add`` may change what follows.
        """
        kept = self._partitions.get((topic_id, partition))
        if kept is None or offset < kept.chunks[0][0]:
            return None
        return itertools.islice(kept.chunks, bisect.bisect_right(kept.ends, offset), None)

    def clear(self) -> None:
        """Keep nothing."""
        self._partitions.clear()
        self._order.clear()
        self._bytes = 0
