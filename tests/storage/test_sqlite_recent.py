"""The SQLite backend's recent chunks: what a read finds in memory, and what it must not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sluicegate.core.records import NewRecord, TopicPartition
from sluicegate.core.topics import TopicSpec
from sluicegate.storage.base import running
from sluicegate.storage.sqlite import SqliteLog
from sluicegate.storage.sqlite.codec import ChunkRow, chunk_rows
from sluicegate.storage.sqlite.recent import CHUNK_OVERHEAD, PARTITION_OVERHEAD, RecentChunks

TP = TopicPartition("t", 0)


def chunks(partition: int, base: int, count: int, size: int = 10) -> list[ChunkRow]:
    """Rows of ``count`` records of ``size`` bytes from offset ``base``, one per record."""
    records = [NewRecord("t", partition, None, b"x" * size)]
    return [chunk_rows(1, partition, base + n, 7, records)[0] for n in range(count)]


def bases(kept: RecentChunks, partition: int, offset: int) -> list[int] | None:
    found = kept.from_offset(1, partition, offset)
    return None if found is None else [chunk[0] for chunk in found]


def test_a_read_finds_the_chunk_holding_its_offset_and_every_one_after() -> None:
    kept = RecentChunks(10_000)
    kept.add(chunks(0, 0, 3) + chunks(1, 0, 1))
    assert bases(kept, 0, 0) == [0, 1, 2]
    assert bases(kept, 0, 2) == [2]
    assert bases(kept, 1, 0) == [0]
    assert bases(kept, 2, 0) is None  # a partition with nothing kept


def test_the_oldest_chunks_go_first_and_reads_before_them_go_to_disk() -> None:
    one = len(chunks(0, 0, 1)[0][6]) + CHUNK_OVERHEAD
    kept = RecentChunks(3 * one + 2 * PARTITION_OVERHEAD)
    kept.add(chunks(0, 0, 2))
    kept.add(chunks(1, 0, 1))
    kept.add(chunks(0, 2, 1))  # four chunks: partition 0's first one goes
    assert kept.kept_bytes == 3 * one + 2 * PARTITION_OVERHEAD
    assert bases(kept, 0, 0) is None
    assert bases(kept, 0, 1) == [1, 2]
    assert bases(kept, 1, 0) == [0]


def test_a_chunk_larger_than_the_memory_leaves_nothing_to_read_here() -> None:
    kept = RecentChunks(5000)
    kept.add(chunks(0, 0, 2) + chunks(1, 0, 1))
    kept.add(chunks(0, 2, 1, size=5000))
    # Partition 0's kept chunks would end before its end: a read must go to disk.
    assert bases(kept, 0, 0) is None
    assert bases(kept, 0, 2) is None
    assert kept.kept_bytes == 0
    kept.add(chunks(0, 3, 1))
    assert bases(kept, 0, 3) == [3]


def test_a_partition_whose_last_chunk_goes_stops_counting() -> None:
    one = len(chunks(0, 0, 1)[0][6]) + CHUNK_OVERHEAD
    kept = RecentChunks(2 * one + PARTITION_OVERHEAD)
    kept.add(chunks(0, 0, 1))
    kept.add(chunks(1, 0, 1))  # partition 0's one chunk goes, and its entry with it
    assert bases(kept, 0, 0) is None
    assert kept.kept_bytes == one + PARTITION_OVERHEAD


#: Fills chunks of the soak's shape into a fresh RecentChunks and prints the bound, the
#: bytes counted and the bytes Python allocated for them. It runs in an interpreter of its
#: own: in a process that has run other tests, tuples and lists come from free lists that
#: tracemalloc does not see, and the measure falls short by a varying amount.
_MEASURE = """
import os, tracemalloc
from sluicegate.storage.sqlite.recent import RecentChunks

bound = 2 * 1024 * 1024
tracemalloc.start()
kept = RecentChunks(bound)
before = tracemalloc.get_traced_memory()[0]
for n in range(3 * bound // 600):
    topic = 100_000 + n if n % 3 == 0 else n % 8
    offset = 10**9 + n
    kept.add([(topic, 0, offset, offset + 1, 1_700_000_000_000_000 + n, 1, os.urandom(600))])
print(bound, kept.kept_bytes, tracemalloc.get_traced_memory()[0] - before)
"""


def test_the_bound_holds_what_the_chunks_cost_in_memory() -> None:
    # The soak's shape: one record of about 600 bytes a chunk, a third of them in a
    # partition of their own (new topics), with offsets and timestamps of real size.
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE], capture_output=True, text=True, check=True
    )
    bound, counted, used = map(int, done.stdout.split())
    assert counted <= bound
    # It never holds more than the bound, and uses most of it (the overheads are rounded up).
    assert 0.9 * bound <= used <= bound, used


#: (offset, max_records, max_bytes) of every read compared.
READS = [
    (offset, limit, size)
    for offset in (0, 1, 127, 128, 300)
    for limit, size in ((1, 1), (50, 100), (1000, 2000), (1000, 10**6))
]

Page = list[tuple[int, bytes | None, bytes | None]]


async def pages(log: SqliteLog) -> list[Page]:
    return [
        [(r.offset, r.key, r.value) for r in await log.read(TP, o, max_records=n, max_bytes=b)]
        for o, n, b in READS
    ]


async def test_reads_from_memory_and_from_disk_agree(tmp_path: Path) -> None:
    # Records of several commits and chunk sizes (128 records of about 30 bytes make a
    # chunk of about 4 KB); every read is made with all of them in memory, with the
    # oldest evicted, and after a restart, when nothing is in memory.
    batches = [
        [NewRecord("t", 0, b"k%d" % n, b"v" * (n % 40)) for n in range(m)] for m in (1, 300, 7)
    ]
    found: dict[str, list[Page]] = {}
    for name, recent_bytes in (("memory", 10**7), ("evicted", 8000)):
        async with running(SqliteLog(tmp_path / name, recent_bytes=recent_bytes)) as log:
            await log.create_topic(TopicSpec(name="t"))
            for batch in batches:
                await log.append(batch)
            found[name] = await pages(log)
    async with running(SqliteLog(tmp_path / "memory")) as log:
        found["disk"] = await pages(log)
    assert found["memory"] == found["disk"]
    assert found["evicted"] == found["disk"]
