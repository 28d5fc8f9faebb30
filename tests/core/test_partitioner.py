from collections import Counter

import pytest

from sluicegate.core.partitioner import Partitioner, murmur2, partition_for_key

# Kafka's own vectors (clients/src/test/java/.../utils/UtilsTest.java, testMurmur2).
KAFKA_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize(("data", "expected"), KAFKA_VECTORS)
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_keyed_partition_is_to_positive_mod() -> None:
    assert partition_for_key(b"foobar", 7) == (-790332482 & 0x7FFFFFFF) % 7
    assert partition_for_key(b"", 3) == (murmur2(b"") & 0x7FFFFFFF) % 3


def test_same_key_same_partition() -> None:
    partitioner = Partitioner()
    assert {partitioner.partition("t", b"user-1", 12) for _ in range(50)} == {
        partition_for_key(b"user-1", 12)
    }


def test_unkeyed_records_stick_then_move_on() -> None:
    partitioner = Partitioner(sticky_records=10)
    choices = [partitioner.partition("t", None, 4) for _ in range(40)]
    # Runs of ten on one partition, and every partition used.
    assert all(len(set(choices[i : i + 10])) == 1 for i in range(0, 40, 10))
    assert set(Counter(choices)) == {0, 1, 2, 3}


def test_unkeyed_single_partition_and_shrinking_count() -> None:
    partitioner = Partitioner(sticky_records=100)
    assert partitioner.partition("t", None, 1) == 0
    first = partitioner.partition("u", None, 8)
    assert 0 <= partitioner.partition("u", None, max(1, first)) < max(1, first)
