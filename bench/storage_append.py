"""Durable append throughput of the SQLite log, against raw sqlite3 on the same machine.

Run: ``python -m bench.storage_append [seconds]``. ``run(duration)`` is the entry point
``bench/run.py`` uses.

What is measured (records of a 10-byte key and a 100-byte value, every append durable):

- ``storage-append-batch100[-p8]``: 16 tasks appending batches of 100 records, to one
  partition or spread over 8.
- ``storage-append-single64[-p8]``: 64 tasks appending one record at a time.

The baseline is the floor a naive design gets from the same disk in the same run: one
thread doing ``executemany`` of the same rows into a row-per-record table
(``WITHOUT ROWID``, WAL, ``synchronous=FULL``), one commit per batch (per record for
the single-record case). ``ratio`` = ours / baseline.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from sluicegate.core.records import NewRecord
from sluicegate.core.topics import TopicSpec
from sluicegate.storage.base import running
from sluicegate.storage.sqlite import SqliteLog

__all__ = ["run"]

KEY = b"key-000000"
VALUE = os.urandom(50).hex().encode()  # 100 bytes that do not compress to nothing

# name: (tasks, records per append, partitions)
CASES: dict[str, tuple[int, int, int]] = {
    "storage-append-batch100": (16, 100, 1),
    "storage-append-batch100-p8": (16, 100, 8),
    "storage-append-single64": (64, 1, 1),
    "storage-append-single64-p8": (64, 1, 8),
}


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    # The gateway serves on uvloop where it is installed; measure what it will run.
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _run_async(main: Coroutine[Any, Any, float]) -> float:
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)


async def _measure_log(
    data_dir: Path, tasks: int, size: int, partitions: int, seconds: float
) -> float:
    async with running(SqliteLog(data_dir)) as log:
        await log.create_topic(TopicSpec(name="bench", partitions=partitions))
        loop = asyncio.get_running_loop()
        written = 0

        async def produce(task: int) -> None:
            nonlocal written
            batch = [
                NewRecord("bench", (task * size + i) % partitions, KEY, VALUE) for i in range(size)
            ]
            while loop.time() < deadline:
                await log.append(batch)
                written += size

        deadline = loop.time() + seconds / 5  # warm-up: page cache, WAL file growth
        async with asyncio.TaskGroup() as tg:
            for task in range(tasks):
                tg.create_task(produce(task))
        written = 0
        started = loop.time()
        deadline = started + seconds
        async with asyncio.TaskGroup() as tg:
            for task in range(tasks):
                tg.create_task(produce(task))
        return written / (loop.time() - started)


def _measure_baseline(data_dir: Path, size: int, seconds: float) -> float:
    conn = sqlite3.connect(data_dir / "baseline.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(
            "CREATE TABLE records (topic_id INTEGER NOT NULL, partition INTEGER NOT NULL,"
            " offset INTEGER NOT NULL, ts INTEGER NOT NULL, key BLOB, value BLOB,"
            " headers BLOB, size INTEGER NOT NULL,"
            " PRIMARY KEY (topic_id, partition, offset)) WITHOUT ROWID"
        )
        offset = written = 0
        record_size = len(KEY) + len(VALUE)

        def commit_one_batch() -> None:
            nonlocal offset
            ts = time.time_ns() // 1000
            rows = [(1, 0, offset + i, ts, KEY, VALUE, None, record_size) for i in range(size)]
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
            offset += size

        deadline = time.perf_counter() + seconds / 5
        while time.perf_counter() < deadline:
            commit_one_batch()
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            commit_one_batch()
            written += size
        return written / (time.perf_counter() - started)
    finally:
        conn.close()


def run(duration: float) -> dict[str, dict[str, Any]]:
    """Measure every case for about ``duration`` seconds in total."""
    each = duration / (2 * len(CASES))
    baselines: dict[int, float] = {}
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="sluicegate-bench-") as tmp:
        for name, (tasks, size, partitions) in CASES.items():
            case_dir = Path(tmp) / name
            case_dir.mkdir()
            if size not in baselines:
                baselines[size] = _measure_baseline(case_dir, size, each)
            value = _run_async(_measure_log(case_dir / "log", tasks, size, partitions, each))
            baseline = baselines[size]
            results[name] = {
                "value": round(value),
                "unit": "records/s",
                "baseline": round(baseline),
                "ratio": round(value / baseline, 2),
            }
    return results


def main() -> None:
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    for name, result in run(duration).items():
        print(
            f"{name:28} {result['value']:>10,} {result['unit']}"
            f"  baseline {result['baseline']:>10,}  ratio {result['ratio']:.2f}"
        )


if __name__ == "__main__":
    main()
