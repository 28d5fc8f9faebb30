"""``DbThread``: one connection, one thread, jobs in order, outcomes back on the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sluicegate.errors import StorageError, StorageUnavailable
from sluicegate.storage.sqlite.connection import DbThread


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[DbThread]:
    thread = DbThread(tmp_path, "test-db")
    await thread.open(tmp_path / "test.db", ("PRAGMA journal_mode = WAL",))
    await thread.call(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
    yield thread
    await thread.close()


async def test_jobs_run_in_order_on_one_thread_that_is_not_the_loops(db: DbThread) -> None:
    seen: list[tuple[int, int | None]] = []

    def insert(conn: sqlite3.Connection, n: int) -> int:
        seen.append((n, threading.get_ident()))
        conn.execute("INSERT INTO t VALUES (?)", (n,))
        return n

    results = await asyncio.gather(*(db.call(insert, n) for n in range(100)))
    assert results == list(range(100))
    assert [n for n, _ in seen] == list(range(100))
    threads = {ident for _, ident in seen}
    assert len(threads) == 1
    assert threading.get_ident() not in threads


async def test_sqlite_errors_come_back_translated(db: DbThread) -> None:
    with pytest.raises(StorageError, match="no such table"):
        await db.call(lambda c: c.execute("SELECT * FROM missing"))


async def test_a_cancelled_call_still_runs_and_the_thread_goes_on(db: DbThread) -> None:
    started = threading.Event()
    release = threading.Event()

    def slow(conn: sqlite3.Connection) -> None:
        started.set()
        release.wait(5)
        conn.execute("INSERT INTO t VALUES (1)")

    task = asyncio.ensure_future(db.call(slow))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    count = await db.call(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0])
    assert count == 1  # the work was done; only its outcome was dropped


async def test_submit_then_reports_success_and_failure_on_the_loop(db: DbThread) -> None:
    loop = asyncio.get_running_loop()
    outcomes: asyncio.Queue[tuple[BaseException | None, bool]] = asyncio.Queue()

    def done(error: BaseException | None) -> None:
        # Called on the loop's thread, straight from its wake-up.
        outcomes.put_nowait((error, asyncio.get_running_loop() is loop))

    db.submit_then(done, lambda c: c.execute("INSERT INTO t VALUES (2)"))
    db.submit_then(done, lambda c: c.execute("INSERT INTO nowhere VALUES (3)"))
    first, second = await outcomes.get(), await outcomes.get()
    assert first == (None, True)
    assert isinstance(second[0], StorageError)
    assert second[1]


async def test_calls_after_close_fail_at_once(tmp_path: Path) -> None:
    thread = DbThread(tmp_path, "test-db")
    await thread.open(tmp_path / "test.db", ())
    await thread.close()
    with pytest.raises(StorageUnavailable, match="closed"):
        await asyncio.wait_for(thread.call(lambda c: None), timeout=5)
