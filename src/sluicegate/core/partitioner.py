"""Kafka's default partitioner, so a key lands where a Java client would put it."""

from __future__ import annotations

import functools
import itertools

__all__ = ["Partitioner", "murmur2", "partition_for_key"]

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: a signed 32-bit hash, seed ``0x9747b28c``."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    body = length & ~3
    for i in range(0, body, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail == 3:
        h ^= data[body + 2] << 16
    if tail >= 2:
        h ^= data[body + 1] << 8
    if tail >= 1:
        h ^= data[body]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@functools.lru_cache(maxsize=65_536)
def _positive_hash(key: bytes) -> int:
    # Keys recur (customer, device, order ids) and murmur2 is a Python loop: remember it.
    return murmur2(key) & 0x7FFFFFFF


def partition_for_key(key: bytes, partitions: int) -> int:
    """``Utils.toPositive(Utils.murmur2(key)) % numPartitions``, as the Java client does."""
    return _positive_hash(key) % partitions


class Partitioner:
    """Chooses partitions: murmur2 for keyed records, sticky batches for unkeyed ones.

    Unkeyed records stay on one partition for ``sticky_records`` records before moving
    to the next, like Kafka's sticky partitioner: consecutive unkeyed records then share
    one group commit per partition instead of being sprayed across all of them.
    """

    def __init__(self, sticky_records: int = 64) -> None:
        self._sticky_records = sticky_records
        self._sticky: dict[str, tuple[int, int]] = {}
        self._rotation = itertools.count()

    def partition(self, topic: str, key: bytes | None, partitions: int) -> int:
        if key is not None:
            return partition_for_key(key, partitions)
        if partitions == 1:
            return 0
        current = self._sticky.get(topic)
        if current is None or current[1] >= self._sticky_records or current[0] >= partitions:
            current = (next(self._rotation) % partitions, 0)
        self._sticky[topic] = (current[0], current[1] + 1)
        return current[0]
