"""The WAL stays bounded: under sustained writes, when idle, and after a crash."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest

from sluicegate.core.records import NewRecord, TopicPartition
from sluicegate.core.topics import TopicSpec
from sluicegate.storage.base import running
from sluicegate.storage.sqlite import SqliteLog
from sluicegate.storage.sqlite.checkpoints import WalCap, WalCheckpoint, checkpoint, wal_bytes

MiB = 1024 * 1024
#: The limit the tests run with: small, so that a few MiB of writes pass it many times.
LIMIT = MiB // 2
#: Checkpoint passes this often.
INTERVAL = 0.05
#: Bytes of record values a test writes in all (records, not time, bound the load).
WRITTEN = 32 * MiB
#: The bound under sustained writes, in size alone: the hard cap (twice the limit), plus
#: what one group commit appends before the writer's RESTART (8 producers' batches are
#: 256 KiB of records) and what it may append while a RESTART waits out a reader.
#: Without these checkpoints the WAL outgrows WRITTEN.
BOUND = 2 * LIMIT + MiB
VALUE = b"v" * 1024
PRODUCERS = 8
BATCH = 32


def wal_size(data_dir: Path) -> int:
    try:
        return (data_dir / "sluicegate.db-wal").stat().st_size
    except FileNotFoundError:
        return 0


async def produce(log: SqliteLog, batches: int, partitions: int) -> None:
    """``PRODUCERS`` producers appending ``batches`` batches of ``BATCH`` records in all."""

    async def producer(index: int) -> None:
        for n in range(index, batches, PRODUCERS):
            await log.append([NewRecord("t", n % partitions, None, VALUE)] * BATCH)

    await asyncio.gather(*(producer(i) for i in range(PRODUCERS)))


async def test_the_wal_stays_bounded_under_sustained_writes(tmp_path: Path) -> None:
    log = SqliteLog(tmp_path, wal_size_limit=LIMIT, checkpoint_interval=INTERVAL)
    largest = 0
    async with running(log):
        await log.create_topic(TopicSpec(name="t", partitions=4))
        load = asyncio.ensure_future(produce(log, WRITTEN // (BATCH * len(VALUE)), 4))
        while not load.done():
            largest = max(largest, wal_size(tmp_path))
            await asyncio.sleep(0.005)
        await load
        assert (await log.watermarks(TopicPartition("t", 0))).high == WRITTEN // len(VALUE) // 4
    assert largest > LIMIT  # the load did reach the limit: the checkpoints were tested
    assert largest <= BOUND, f"WAL reached {largest / MiB:.1f} MiB, bound {BOUND / MiB:.1f} MiB"


async def test_an_idle_log_truncates_its_wal(tmp_path: Path) -> None:
    log = SqliteLog(tmp_path, wal_size_limit=LIMIT, checkpoint_interval=INTERVAL)
    async with running(log):
        await log.create_topic(TopicSpec(name="t"))
        await produce(log, 64, 1)
        assert wal_size(tmp_path) > 0
        # A file's size has no event to wait on: look once per pass, for up to 30 s.
        for _ in range(round(30 / INTERVAL)):
            if wal_size(tmp_path) == 0:
                break
            await asyncio.sleep(INTERVAL)
        assert wal_size(tmp_path) == 0


def crash_image(source: Path, into: Path) -> Path:
    """The database and WAL as a kill -9 would leave them (the log must be idle)."""
    into.mkdir()
    for name in ("sluicegate.db", "sluicegate.db-wal"):
        shutil.copyfile(source / name, into / name)
    return into


async def test_a_restart_after_a_crash_truncates_the_wal(tmp_path: Path) -> None:
    # No pass runs while it writes: what a crash leaves is a WAL of everything written.
    log = SqliteLog(tmp_path / "before", checkpoint_interval=3600)
    async with running(log):
        await log.create_topic(TopicSpec(name="t"))
        await produce(log, 256, 1)
        crashed = crash_image(tmp_path / "before", tmp_path / "after")
    left = wal_size(crashed)
    assert left > 8 * MiB
    async with running(SqliteLog(crashed)) as restarted:
        assert wal_size(crashed) == 0
        records = await restarted.read(
            TopicPartition("t", 0), 0, max_records=10**6, max_bytes=2**40
        )
        assert len(records) == 256 * BATCH


@pytest.mark.parametrize("frames", [0, -1])
def test_an_empty_wal_has_no_bytes(frames: int) -> None:
    assert wal_bytes(frames, 4096) == 0


def test_wal_bytes_counts_the_headers() -> None:
    assert wal_bytes(2, 4096) == 32 + 2 * (24 + 4096)


def test_checkpoint_reports_the_frames(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("CREATE TABLE t (x)")
        state = checkpoint(conn, "PASSIVE")
        assert state.frames > 0
        assert state.copied == state.frames
        assert not state.busy
        size = (tmp_path / "x.db-wal").stat().st_size
        assert size == wal_bytes(state.frames, 4096)
        assert checkpoint(conn, "TRUNCATE").frames == 0
        assert (tmp_path / "x.db-wal").stat().st_size == 0
    finally:
        conn.close()


def test_the_cap_asks_for_a_restart_once_per_step_of_growth(tmp_path: Path) -> None:
    wal = tmp_path / "sluicegate.db-wal"
    cap = WalCap(wal, cap=1000, step=100)
    assert cap() is None  # no WAL at all
    wal.write_bytes(b"x" * 1000)
    assert cap() is None
    wal.write_bytes(b"x" * 1001)
    assert isinstance(cap(), WalCheckpoint)
    # The file keeps its size until the next commit rewinds it: not asked again...
    assert cap() is None
    wal.write_bytes(b"x" * 1100)
    assert cap() is None
    # ...until it has grown by a step (the RESTART found a reader and changed nothing).
    wal.write_bytes(b"x" * 1101)
    assert isinstance(cap(), WalCheckpoint)
    wal.write_bytes(b"x" * 500)  # rewound and truncated: the next pass starts afresh
    assert cap() is None
    wal.write_bytes(b"x" * 1001)
    assert isinstance(cap(), WalCheckpoint)
