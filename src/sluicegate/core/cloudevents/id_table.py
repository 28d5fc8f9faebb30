"""The memory of stored events' identities: 128-bit digests with an expiry, compact.

A Python ``set`` of the 16-byte digests costs about 98 bytes per id (a bytes object each
plus its share of the hash table), too much for a day of events at a few thousand per
second. This table keeps about 27 bytes per id (both measured by
``bench/cloudevents_dedup.py``) and answers a lookup with one hash probe and one search
in C.

Layout: linear hashing (Litwin, 1980) over a list of shards. A shard is one immutable
``bytes`` holding its entries back to back, each a 16-byte digest followed by its expiry
(whole seconds since the epoch, 4 bytes big-endian), in order of expiry. A lookup
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
from collections.abc import Iterable, Sequence

__all__ = ["DIGEST_BYTES", "IdTable"]

DIGEST_BYTES = 16
_ENTRY = DIGEST_BYTES + 4
#: Mean entries per shard before a shard is split: a shard search reads about 240 bytes.
_LOAD = 12
#: Shards the sweep advances per ``add``: a full pass every ``entries / (2 * _LOAD)``
#: adds, so expired or evicted entries are reclaimed while a few percent more are added.
_SWEEP_PER_ADD = 2
#: 0.5 MiB of pointers: 786,432 ids (a day at 9 events/s) fit without a split.
_FIRST_SHARDS = 1 << 16


def _expiry_at(shard: bytes, at: int) -> bytes:
    # Big-endian, so that comparing the bytes compares the times (no int is made).
    return shard[at + DIGEST_BYTES : at + _ENTRY]


def _seconds(second: int) -> bytes:
    return second.to_bytes(4, "big")


class IdTable:
    """Digests remembered until their expiry, at most ``max_ids`` of them.

    Times are whole seconds since the epoch; the caller passes ``now`` so that tests
    and ``load`` decide the clock.
    """

    def __init__(
        self, max_ids: int, slot_seconds: int, *, first_shards: int = _FIRST_SHARDS
    ) -> None:
        if max_ids < 1 or slot_seconds < 1:
            raise ValueError("max_ids and slot_seconds must be >= 1")
        if first_shards < 1 or first_shards & (first_shards - 1):
            raise ValueError("first_shards must be a power of two")
        self.max_ids = max_ids
        self.slot_seconds = slot_seconds
        # Empty shards are all the one empty bytes object: they cost a pointer each.
        self._shards: list[bytes] = [b""] * first_shards
        #: 2**level - 1: shards below the split pointer use one more bit of the hash.
        self._mask = first_shards - 1
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
        #: The latest expiry ever inserted (4 bytes, big-endian): no entry expires later.
        self._latest = b""

    def reserve(self, count: int) -> None:
        """Size an empty table for ``count`` ids at once, so that filling it splits nothing.

        No effect on a table that holds ids already.
        """
        if self._entries:
            return
        shards = len(self._shards)
        while shards * _LOAD < min(count, self.max_ids):
            shards *= 2
        self._shards = [b""] * shards
        self._mask, self._split = shards - 1, 0

    def contains(self, digest: bytes, now: int) -> bool:
        """Whether ``digest`` is remembered and has not expired at ``now``."""
        return bool(self.remembered_of([digest], now))

    def remembered_of(self, digests: Iterable[bytes], now: int) -> list[bytes]:
        """Those of ``digests`` that are remembered and have not expired at ``now``."""
        shards, mask, split = self._shards, self._mask, self._split
        live_from = _seconds(max(now + 1, self.floor))
        found = []
        for digest in digests:
            hashed = int.from_bytes(digest, "little")
            index = hashed & mask
            if index < split:
                index = hashed & (mask << 1 | 1)
            shard = shards[index]
            at = shard.rfind(digest)
            while at >= 0:
                if at % _ENTRY == 0:
                    # The last match has the latest expiry: the shard is in expiry order.
                    if _expiry_at(shard, at) >= live_from:
                        found.append(digest)
                    break
                at = shard.rfind(digest, 0, at + DIGEST_BYTES - 1)
        return found

    def add(self, digest: bytes, expiry: int, now: int) -> None:
        """Remember ``digest`` until ``expiry``; the oldest ids go if the bound is reached."""
        if len(digest) != DIGEST_BYTES:
            raise ValueError(f"expected a {DIGEST_BYTES}-byte digest, got {len(digest)} bytes")
        self.add_all([digest], expiry, now)

    def add_all(self, digests: Sequence[bytes], expiry: int, now: int) -> None:
        """``add`` each digest (16 bytes, unchecked) with the same expiry: the hot path."""
        self._expire(now)
        done = 0
        while done < len(digests) and expiry > now and expiry >= self.floor:
            while self._remembered >= self.max_ids:
                self._evict_oldest_slot()
            if expiry < self.floor:
                # The bound took these ids' own slot: more than max_ids expire together.
                break
            room = self.max_ids - self._remembered
            self._insert(digests[done : done + room], expiry)
            done += room
        self._sweep(now, _SWEEP_PER_ADD * len(digests))

    def _insert(self, digests: Sequence[bytes], expiry: int) -> None:
        shards = self._shards
        tail = _seconds(expiry)
        entries = self._entries
        grow_at = _LOAD * len(shards)
        mask, split = self._mask, self._split
        if tail >= self._latest:
            # No entry expires later (the usual case: one lifetime, a clock that moves on),
            # so each id goes at the end of its shard without reading the shard's last
            # expiry (a slice and a comparison per id).
            self._latest = tail
            for digest in digests:
                hashed = int.from_bytes(digest, "little")
                index = hashed & mask
                if index < split:
                    index = hashed & (mask << 1 | 1)
                shards[index] += digest + tail
                entries += 1
                if entries > grow_at:
                    self._split_one()
                    grow_at += _LOAD
                    mask, split = self._mask, self._split
            self._count(entries, expiry, len(digests))
            return
        for digest in digests:
            # The probe of ``remembered_of``, inlined in both: a call per id would cost
            # as much as the rest of the loop.
            hashed = int.from_bytes(digest, "little")
            index = hashed & mask
            if index < split:
                index = hashed & (mask << 1 | 1)
            shard = shards[index]
            if shard[-4:] > tail:
                # A shorter lifetime than an entry before it (a topic with a short retention).
                end = len(shard) - _ENTRY
                while end and _expiry_at(shard, end - _ENTRY) > tail:
                    end -= _ENTRY
                shards[index] = shard[:end] + digest + tail + shard[end:]
            else:
                shards[index] = shard + digest + tail
            entries += 1
            if entries > grow_at:
                self._split_one()
                grow_at += _LOAD
                mask, split = self._mask, self._split
        self._count(entries, expiry, len(digests))

    def _count(self, entries: int, expiry: int, added: int) -> None:
        """Count ``added`` ids inserted with ``expiry``; ``entries`` in all now."""
        self._entries = entries
        slot = expiry // self.slot_seconds
        count = self._counts.get(slot)
        if count is None:
            heapq.heappush(self._slots, slot)
            count = 0
        self._counts[slot] = count + added
        self._remembered += added

    def _expire(self, now: int) -> None:
        slots = self._slots
        # A slot's last second is gone once now reaches it (an id expiring at ``now`` is).
        while slots and (slots[0] + 1) * self.slot_seconds <= now + 1:
            self._remembered -= self._counts.pop(heapq.heappop(slots))

    def _evict_oldest_slot(self) -> None:
        slot = heapq.heappop(self._slots)
        count = self._counts.pop(slot)
        self._remembered -= count
        self.evicted += count
        self.floor = max(self.floor, (slot + 1) * self.slot_seconds)

    def _split_one(self) -> None:
        shards = self._shards
        level = self._mask.bit_length()
        # Bit ``level`` of the digest read as a little-endian int: one byte, one bit.
        byte, bit = level // 8, 1 << level % 8
        shard = shards[self._split]
        starts = range(0, len(shard), _ENTRY)
        # Both halves keep the shard's expiry order.
        shards[self._split] = b"".join(
            [shard[at : at + _ENTRY] for at in starts if not shard[at + byte] & bit]
        )
        shards.append(
            b"".join([shard[at : at + _ENTRY] for at in starts if shard[at + byte] & bit])
        )
        self._split += 1
        if self._split > self._mask:
            self._mask = self._mask << 1 | 1
            self._split = 0

    def _sweep(self, now: int, shards_to_visit: int) -> None:
        if self._entries <= self._remembered + self._remembered // 32:
            return  # little to reclaim (at most ~3% more than remembered): save the work
        shards = self._shards
        cutoff = _seconds(max(now + 1, self.floor))
        at = self._sweep_at
        for _ in range(min(shards_to_visit, len(shards))):
            at = at + 1 if at + 1 < len(shards) else 0
            shard = shards[at]
            if shard and shard[DIGEST_BYTES:_ENTRY] < cutoff:
                keep = _ENTRY
                while keep < len(shard) and _expiry_at(shard, keep) < cutoff:
                    keep += _ENTRY
                shards[at] = shard[keep:]
                self._entries -= keep // _ENTRY
        self._sweep_at = at

    def remembered(self, now: int) -> int:
        """Ids remembered at ``now`` (to within one expiry slot)."""
        self._expire(now)
        return self._remembered

    # One id at a time, for a request of one event: the probe of ``remembered_of`` and
    # the bound of ``add_all`` without a list made and walked for one digest.

    def remembers(self, digest: bytes, now: int) -> bool:
        """Whether ``digest`` is remembered and has not expired at ``now``."""
        hashed = int.from_bytes(digest, "little")
        index = hashed & self._mask
        if index < self._split:
            index = hashed & (self._mask << 1 | 1)
        shard = self._shards[index]
        at = shard.rfind(digest)
        while at >= 0:
            if at % _ENTRY == 0:
                # The last match has the latest expiry: the shard is in expiry order.
                return _expiry_at(shard, at) >= _seconds(max(now + 1, self.floor))
            at = shard.rfind(digest, 0, at + DIGEST_BYTES - 1)
        return False

    def add_one(self, digest: bytes, expiry: int, now: int) -> None:
        """``add_all`` of one digest (16 bytes, unchecked)."""
        # The tests that open _expire and _sweep, made here: most adds need neither call.
        slots = self._slots
        if slots and (slots[0] + 1) * self.slot_seconds <= now + 1:
            self._expire(now)
        if expiry > now and expiry >= self.floor:
            while self._remembered >= self.max_ids:
                self._evict_oldest_slot()
            # The bound may have taken this id's own slot (more than max_ids expire together).
            if expiry >= self.floor:
                self._insert_one(digest, expiry)
        if self._entries > self._remembered + self._remembered // 32:
            self._sweep(now, _SWEEP_PER_ADD)

    def _insert_one(self, digest: bytes, expiry: int) -> None:
        """``_insert((digest,), expiry)``: the usual case (no entry expires later, no
        shard to split, the expiry's slot counted already) without its loop, nor the
        calls of ``_seconds`` and ``_count``; anything else through ``_insert``."""
        tail = expiry.to_bytes(4, "big")
        slot = expiry // self.slot_seconds
        count = self._counts.get(slot)
        shards = self._shards
        entries = self._entries + 1
        if count is None or tail < self._latest or entries > _LOAD * len(shards):
            self._insert((digest,), expiry)
            return
        self._latest = tail
        hashed = int.from_bytes(digest, "little")
        index = hashed & self._mask
        if index < self._split:
            index = hashed & (self._mask << 1 | 1)
        shards[index] += digest + tail
        self._entries = entries
        self._counts[slot] = count + 1
        self._remembered += 1

    def effective_window(self, window: int, now: int) -> int:
        """Seconds an id with the full window is remembered now: less once the bound bit."""
        return max(0, min(window, window - (self.floor - now)))

    def memory_bytes(self) -> int:
        """Resident bytes of the table, estimated from counts (within 15%, tested)."""
        # Each non-empty shard is a bytes object: a 33-byte header, rounded up by the
        # allocator to 16 bytes (8 on average), then its entries. Counting the empty ones
        # is one C loop over the pointers (milliseconds for a million shards, per scrape).
        used = len(self._shards) - self._shards.count(b"")
        return sys.getsizeof(self._shards) + used * 41 + self._entries * _ENTRY
