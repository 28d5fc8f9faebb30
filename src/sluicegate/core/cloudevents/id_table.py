"""The memory of stored events' identities: 128-bit digests with an expiry, compact.

A Python ``set`` of 128-bit ints costs about 80 bytes per id (a 48-byte int object plus
its share of the hash table); a day of events at a few thousand per second would not fit
the memory budget. This table keeps about 24 bytes per id (measured by
``bench/cloudevents_dedup.py``) and answers a lookup in one hash probe plus one search
in C.

Layout: linear hashing (Litwin, 1980) over a list of shards. A shard is one immutable
``bytes`` holding its entries back to back, each a 16-byte digest followed by its expiry
(whole seconds since the epoch, 4 bytes little-endian), in order of expiry. A lookup
finds its digest with ``bytes.rfind`` (C, no object per entry) and accepts only a match
on an entry boundary. The table grows one shard at a time — the shard at the split
pointer is divided by the next bit of the hash — so there is never a pause to rehash
millions of ids.

Expiry has no timer per id. Every entry carries its expiry and a lookup past it is a miss,
so an id is forgotten exactly on time (to the second, never later). Memory is reclaimed
by a sweep that each ``add`` pushes a few shards further: a shard is in expiry order, so
its expired entries are a prefix, cut with one slice.

The bound (``max_ids``) counts ids by expiry slots of ``slot_seconds``; when it is
reached, whole slots are forgotten oldest first, by raising ``floor`` (the expiry below
which every entry counts as gone). The window is then shorter than configured, by as
much as ``effective_window`` says.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Iterable

__all__ = ["DIGEST_BYTES", "IdTable"]

DIGEST_BYTES = 16
_ENTRY = DIGEST_BYTES + 4
#: Mean entries per shard before a shard is split: a shard search reads about 240 bytes.
_LOAD = 12
#: Shards the sweep advances per ``add``: a full pass every ``entries / (2 * _LOAD)``
#: adds, so expired or evicted entries are reclaimed while a few percent more are added.
_SWEEP_PER_ADD = 2
_FIRST_SHARDS = 16


def _expiry_at(shard: bytes, at: int) -> int:
    return int.from_bytes(shard[at + DIGEST_BYTES : at + _ENTRY], "little")


class IdTable:
    """Digests remembered until their expiry, at most ``max_ids`` of them.

    Times are whole seconds since the epoch; the caller passes ``now`` so that tests
    and ``load`` decide the clock.
    """

    def __init__(self, max_ids: int, slot_seconds: int) -> None:
        if max_ids < 1 or slot_seconds < 1:
            raise ValueError("max_ids and slot_seconds must be >= 1")
        self.max_ids = max_ids
        self.slot_seconds = slot_seconds
        self._shards: list[bytes] = [b""] * _FIRST_SHARDS
        #: 2**level - 1: shards below the split pointer use one more bit of the hash.
        self._mask = _FIRST_SHARDS - 1
        self._split = 0
        self._entries = 0
        self._sweep_at = 0
        #: Ids counted per expiry slot (``expiry // slot_seconds``), and a heap of slots.
        self._counts: dict[int, int] = {}
        self._slots: list[int] = []
        self._remembered = 0
        #: Entries that expire before this second are gone (raised by the bound).
        self.floor = 0
        #: Ids forgotten before their expiry to keep the bound.
        self.evicted = 0

    def _index(self, digest: bytes) -> int:
        hashed = int.from_bytes(digest, "little")
        index = hashed & self._mask
        if index < self._split:
            index = hashed & (self._mask << 1 | 1)
        return index

    def contains(self, digest: bytes, now: int) -> bool:
        """Whether ``digest`` is remembered and has not expired at ``now``."""
        shard = self._shards[self._index(digest)]
        at = shard.rfind(digest)
        while at >= 0:
            if at % _ENTRY == 0:
                # The last match has the latest expiry: the shard is in expiry order.
                expiry = _expiry_at(shard, at)
                return expiry > now and expiry >= self.floor
            at = shard.rfind(digest, 0, at + DIGEST_BYTES - 1)
        return False

    def add(self, digest: bytes, expiry: int, now: int) -> None:
        """Remember ``digest`` until ``expiry``; the oldest ids go if the bound is reached."""
        if len(digest) != DIGEST_BYTES:
            raise ValueError(f"expected a {DIGEST_BYTES}-byte digest, got {len(digest)} bytes")
        self._expire(now)
        if expiry <= now or expiry < self.floor:
            return
        while self._remembered >= self.max_ids:
            self._evict_oldest_slot()
        if expiry < self.floor:
            # The bound took this id's own slot: more ids than max_ids expire together.
            return
        index = self._index(digest)
        shard = self._shards[index]
        entry = digest + expiry.to_bytes(4, "little")
        end = len(shard)
        if end and _expiry_at(shard, end - _ENTRY) > expiry:
            # A shorter lifetime than an entry before it (a topic with a short retention).
            while end and _expiry_at(shard, end - _ENTRY) > expiry:
                end -= _ENTRY
            self._shards[index] = shard[:end] + entry + shard[end:]
        else:
            self._shards[index] = shard + entry
        self._entries += 1
        slot = expiry // self.slot_seconds
        count = self._counts.get(slot)
        if count is None:
            heapq.heappush(self._slots, slot)
            count = 0
        self._counts[slot] = count + 1
        self._remembered += 1
        if self._entries > _LOAD * len(self._shards):
            self._split_one()
        self._sweep(now)

    def _expire(self, now: int) -> None:
        slots = self._slots
        while slots and (slots[0] + 1) * self.slot_seconds <= now:
            self._remembered -= self._counts.pop(heapq.heappop(slots))

    def _evict_oldest_slot(self) -> None:
        slot = heapq.heappop(self._slots)
        count = self._counts.pop(slot)
        self._remembered -= count
        self.evicted += count
        self.floor = max(self.floor, (slot + 1) * self.slot_seconds)

    def _split_one(self) -> None:
        shards = self._shards
        bit = self._mask + 1
        shard = shards[self._split]
        stay: list[bytes] = []
        move: list[bytes] = []
        for at in range(0, len(shard), _ENTRY):
            target = move if int.from_bytes(shard[at : at + DIGEST_BYTES], "little") & bit else stay
            target.append(shard[at : at + _ENTRY])
        # Both halves keep the shard's expiry order.
        shards[self._split] = b"".join(stay)
        shards.append(b"".join(move))
        self._split += 1
        if self._split == bit:
            self._mask = self._mask << 1 | 1
            self._split = 0

    def _sweep(self, now: int) -> None:
        shards = self._shards
        cutoff = max(now + 1, self.floor)
        at = self._sweep_at
        for _ in range(_SWEEP_PER_ADD):
            at = at + 1 if at + 1 < len(shards) else 0
            shard = shards[at]
            if shard and _expiry_at(shard, 0) < cutoff:
                keep = 0
                while keep < len(shard) and _expiry_at(shard, keep) < cutoff:
                    keep += _ENTRY
                shards[at] = shard[keep:]
                self._entries -= keep // _ENTRY
        self._sweep_at = at

    def add_all(self, digests: Iterable[bytes], expiry: int, now: int) -> None:
        """``add`` each digest with the same expiry."""
        for digest in digests:
            self.add(digest, expiry, now)

    def remembered(self, now: int) -> int:
        """Ids remembered at ``now`` (to within one expiry slot)."""
        self._expire(now)
        return self._remembered

    def effective_window(self, window: int, now: int) -> int:
        """Seconds an id with the full window is remembered now: less once the bound bit."""
        return max(0, min(window, window - (self.floor - now)))

    def memory_bytes(self) -> int:
        """Resident bytes of the table, estimated without walking it."""
        # Each non-empty shard is a bytes object: a 33-byte header, rounded up by the
        # allocator to 16 bytes (8 on average), then its entries.
        return sys.getsizeof(self._shards) + len(self._shards) * 41 + self._entries * _ENTRY
