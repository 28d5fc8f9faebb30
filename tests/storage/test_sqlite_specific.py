"""What only the SQLite backend promises: its directory, its file, its writer."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop

from sluicegate.core.records import NewRecord, TopicPartition, Watermarks
from sluicegate.core.topics import TopicSpec
from sluicegate.errors import (
    ConfigError,
    DataDirectoryError,
    Overloaded,
    ShuttingDown,
    StorageError,
    StorageTimeout,
    StorageUnavailable,
    UnknownTopic,
)
from sluicegate.storage.base import running
from sluicegate.storage.sqlite import SqliteLog
from sluicegate.storage.sqlite.migrations import MIGRATIONS
from tests.storage.conftest import ManualClock

TP = TopicPartition("t", 0)


def rec(value: bytes, partition: int = 0) -> NewRecord:
    return NewRecord("t", partition, b"k", value)


async def on_commit_connection(log: SqliteLog, sql: str) -> None:
    """Run one statement on the commit process's connection."""
    assert log._commits is not None
    done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    log._commits.submit([(sql, [], False)], done.set_result)
    assert await done is None


async def start_and_fail(log: SqliteLog) -> BaseException:
    """Run ``log`` expecting it to fail before it is ready; the error it failed with."""
    with pytest.RaisesGroup(Exception) as caught:
        async with running(log):
            pytest.fail("the log started")
    [error] = caught.value.exceptions
    return error


async def test_reopen_keeps_topics_records_offsets_and_watermarks(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running(SqliteLog(tmp_path, clock=clock)) as log:
        topic = await log.create_topic(TopicSpec(name="t", partitions=2, config={"k": [1]}))
        await log.create_topic(TopicSpec(name="emptied"))
        await log.append([rec(b"%d" % i) for i in range(300)] + [rec(b"p1", 1)])
        await log.append([NewRecord("emptied", 0, None, b"x")] * 3)
        await log.purge_topic("emptied")
        await log.commit_offsets("g", {TP: 42})
        before = await log.read(TP, 0, max_records=1000, max_bytes=1 << 30)
    clock.advance(-5)  # the clock went back while we were down
    async with running(SqliteLog(tmp_path, clock=clock)) as log:
        assert await log.get_topic("t") == topic
        assert await log.read(TP, 0, max_records=1000, max_bytes=1 << 30) == before
        assert await log.watermarks(TP) == Watermarks(low=0, high=300)
        # An emptied partition keeps counting where it stopped.
        assert await log.watermarks(TopicPartition("emptied", 0)) == Watermarks(low=3, high=3)
        assert await log.committed_offsets("g", "t") == {0: 42}
        [appended] = await log.append([rec(b"after restart")])
        assert appended.offset == 300
        assert appended.timestamp >= before[-1].timestamp
        assert (await log.create_topic(TopicSpec(name="u"))).id > topic.id


async def test_a_second_log_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    async with running(SqliteLog(tmp_path)) as log:
        error = await start_and_fail(SqliteLog(tmp_path))
        assert isinstance(error, DataDirectoryError)
        assert f"another sluicegate server holds {tmp_path}" in str(error)
        await log.create_topic(TopicSpec(name="t"))  # the first one is unharmed
    async with running(SqliteLog(tmp_path)) as log:  # and the directory is free again
        assert (await log.get_topic("t")).name == "t"


async def test_a_second_process_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio
        from sluicegate.storage.base import running
        from sluicegate.storage.sqlite import SqliteLog

        async def main():
            try:
                async with running(SqliteLog({str(tmp_path)!r})):
                    print("opened")
            except* Exception as group:
                print(type(group.exceptions[0]).__name__, group.exceptions[0])

        asyncio.run(main())
        """
    )
    async with running(SqliteLog(tmp_path)):
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stdout=subprocess.PIPE
        )
        out, _ = await child.communicate()
    assert out.decode().strip() == f"DataDirectoryError another sluicegate server holds {tmp_path}"


_HOLD_LOCK = textwrap.dedent(
    """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


async def _orphaned_lock(data_dir: Path, seconds: float) -> asyncio.subprocess.Process:
    """A process that holds the directory's lock for ``seconds`` while the LOCK file names
    a server that has exited: what a server's commit process is for a moment after a
    kill -9 of the server."""
    exited = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await exited.wait()
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLD_LOCK,
        str(data_dir / "LOCK"),
        str(seconds),
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert await holder.stdout.readline() == b"held\n"
    (data_dir / "LOCK").write_text(f"{exited.pid}\n")
    return holder


async def test_a_lock_left_by_an_exited_server_is_waited_for(tmp_path: Path) -> None:
    holder = await _orphaned_lock(tmp_path, 0.5)
    # The lock is exclusive: the log gets it only once the holder has exited by itself.
    async with running(SqliteLog(tmp_path)) as log:
        await log.create_topic(TopicSpec(name="t"))
    assert await holder.wait() == 0


async def test_a_lock_held_past_the_grace_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sluicegate.storage.sqlite.directory.ORPHAN_GRACE", 0.2)
    holder = await _orphaned_lock(tmp_path, 30)
    try:
        error = await start_and_fail(SqliteLog(tmp_path))
        assert isinstance(error, DataDirectoryError)
        assert "still locked 0.2s after its server" in str(error)
    finally:
        holder.kill()
        await holder.wait()


async def test_a_missing_directory_is_created(tmp_path: Path) -> None:
    where = tmp_path / "a" / "b"
    async with running(SqliteLog(where)) as log:
        await log.create_topic(TopicSpec(name="t"))
    assert (where / "sluicegate.db").is_file()


async def test_a_file_where_the_directory_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    error = await start_and_fail(SqliteLog(tmp_path / "file"))
    assert isinstance(error, DataDirectoryError)
    assert "is not a directory" in str(error)
    error = await start_and_fail(SqliteLog(tmp_path / "file" / "below"))
    assert isinstance(error, DataDirectoryError)
    assert "cannot use data directory" in str(error)


async def test_a_corrupt_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sluicegate.db").write_bytes(b"this is not SQLite" * 512)
    error = await start_and_fail(SqliteLog(tmp_path))
    assert isinstance(error, DataDirectoryError)
    assert "corrupt or not a sluicegate database" in str(error)


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    async with running(SqliteLog(tmp_path)):
        pass
    with sqlite3.connect(tmp_path / "sluicegate.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    error = await start_and_fail(SqliteLog(tmp_path))
    assert isinstance(error, DataDirectoryError)
    assert "written by a newer sluicegate" in str(error)


async def test_the_database_is_wal_with_full_sync(tmp_path: Path) -> None:
    async with running(SqliteLog(tmp_path)) as log:
        await log.create_topic(TopicSpec(name="t"))
        conn = sqlite3.connect(tmp_path / "sluicegate.db")
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            conn.close()


@pytest.mark.skipif(
    not Path("/proc/sys/fs/pipe-max-size").exists()
    or int(Path("/proc/sys/fs/pipe-max-size").read_text()) < 1 << 20,
    reason="needs Linux pipes that may hold 1 MiB",
)
@pytest.mark.parametrize(
    "new_loop", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
def test_a_group_commit_of_a_megabyte_is_one_write(
    tmp_path: Path, new_loop: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    # Left to the loop, the pipe holds 64 KiB (uvloop's, a socket pair, a little more):
    # the rest of a big frame would wait for the process to read and the loop to notice.
    async def commit_a_megabyte() -> None:
        log = SqliteLog(tmp_path)
        async with running(log):
            await log.create_topic(TopicSpec(name="t"))
            commits = log._commits
            assert commits is not None
            assert commits._input is not None
            done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
            commits.submit([("SELECT length(?)", [b"x" * 1_000_000], False)], done.set_result)
            assert commits._input.get_write_buffer_size() == 0  # all of it is in the pipe
            assert await done is None

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(commit_a_megabyte())


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"storage\.max_pending_appends"):
        SqliteLog("unused", max_pending_appends=0)


async def test_close_commits_the_queue_then_refuses_writes(tmp_path: Path) -> None:
    async with running(SqliteLog(tmp_path)) as log:
        await log.create_topic(TopicSpec(name="t"))
        pending = [asyncio.ensure_future(log.append([rec(b"%d" % i)])) for i in range(50)]
        await asyncio.sleep(0)  # every append is queued
        await log.close()
        assert sorted(a.offset for [a] in await asyncio.gather(*pending)) == list(range(50))
        with pytest.raises(ShuttingDown):
            await log.append([rec(b"late")])
        with pytest.raises(ShuttingDown):
            await log.check()
        with pytest.raises(ShuttingDown):
            await log.read(TP, 0, max_records=1, max_bytes=1)
        assert await log.wait({TP: 50}, timeout=10) is False


async def test_a_full_queue_answers_overloaded(tmp_path: Path) -> None:
    async with running(SqliteLog(tmp_path, max_pending_appends=10)) as log:
        await log.create_topic(TopicSpec(name="t"))
        results = await asyncio.gather(
            *(log.append([rec(b"x")] * 4) for _ in range(10)), return_exceptions=True
        )
        refused = [r for r in results if isinstance(r, Overloaded)]
        accepted = [r for r in results if isinstance(r, list)]
        assert refused
        assert len(refused) + len(accepted) == 10
        assert (await log.watermarks(TP)).high == 4 * len(accepted)
        # A batch bigger than the whole queue still goes through an idle log.
        assert len(await log.append([rec(b"y")] * 25)) == 25


async def test_group_commit_puts_concurrent_appends_in_few_transactions(tmp_path: Path) -> None:
    commits: list[int] = []
    log = SqliteLog(tmp_path, observe_commit=lambda records, seconds: commits.append(records))
    async with running(log):
        await log.create_topic(TopicSpec(name="t", partitions=4))
        await asyncio.gather(*(log.append([rec(b"x", i % 4)]) for i in range(400)))
        assert sum(commits) == 400
        assert len(commits) < 100  # one fsync per append would be 400


async def test_max_commit_records_splits_transactions(tmp_path: Path) -> None:
    commits: list[int] = []
    log = SqliteLog(
        tmp_path, max_commit_records=50, observe_commit=lambda n, seconds: commits.append(n)
    )
    async with running(log):
        await log.create_topic(TopicSpec(name="t"))
        await asyncio.gather(*(log.append([rec(b"x")] * 10) for _ in range(20)))
        # One oversized batch is still one atomic transaction.
        await log.append([rec(b"y")] * 120)
    assert max(commits[:-1]) <= 50
    assert commits[-1] == 120
    assert sum(commits) == 320


async def test_a_group_ends_at_a_write_that_runs_alone(tmp_path: Path) -> None:
    # Appends queued before a topic change commit before it, those queued after it
    # after it: a group never takes the queue past it, whole or entry by entry.
    commits: list[int] = []
    log = SqliteLog(tmp_path, observe_commit=lambda n, seconds: commits.append(n))
    async with running(log):
        await log.create_topic(TopicSpec(name="t"))
        first = log.append([rec(b"first")])
        await asyncio.sleep(0)  # the writer takes it: the rest queue behind its commit
        before = [log.append([rec(b"before")]) for _ in range(10)]
        creating = asyncio.ensure_future(log.create_topic(TopicSpec(name="u")))
        await asyncio.sleep(0)  # its first step queues the topic's creation
        after = [log.append([rec(b"after")] * 3) for _ in range(10)]
        await first
        offsets = [appended.offset for future in before for appended in await future]
        await creating
        later = [appended.offset for future in after for appended in await future]
    assert offsets == list(range(1, 11))
    assert later == list(range(11, 41))
    assert 30 in commits  # the appends after the change, one commit of their own
    assert sum(commits) == 41


async def test_check_probes_the_database(tmp_path: Path) -> None:
    log = SqliteLog(tmp_path)
    with pytest.raises(StorageUnavailable):
        await log.check()
    async with running(log):
        await log.check()


async def test_a_full_disk_fails_the_commit_but_not_the_writer(tmp_path: Path) -> None:
    log = SqliteLog(tmp_path)
    async with running(log):
        await log.create_topic(TopicSpec(name="t"))
        await log.append([rec(b"before")])
        # max_page_count makes SQLite answer SQLITE_FULL exactly as a full disk does;
        # set on the commit process's connection, which writes the records.
        await on_commit_connection(log, "PRAGMA max_page_count = 1")
        with pytest.raises(StorageError, match="is full"):
            await log.append([rec(b"x" * 100_000)])
        await on_commit_connection(log, "PRAGMA max_page_count = 1073741823")
        [appended] = await log.append([rec(b"after")])
        assert appended.offset == 1  # the failed append's offset was given back
        await log.check()


async def test_a_topic_change_is_one_transaction(tmp_path: Path) -> None:
    log = SqliteLog(tmp_path)
    async with running(log):
        writer = log._running_writer()._db

        def pages(conn: sqlite3.Connection) -> int:
            count: int = conn.execute("PRAGMA page_count").fetchone()[0]
            return count

        # Room for the topic's row and a few pages of partitions, not for 10,000 of them.
        limit = await writer.call(pages) + 3
        await writer.call(lambda conn: conn.execute(f"PRAGMA max_page_count = {limit}"))
        with pytest.raises(StorageError, match="is full"):
            await log.create_topic(TopicSpec(name="big", partitions=10_000))
        with sqlite3.connect(tmp_path / "sluicegate.db") as reader:
            assert reader.execute("SELECT count(*) FROM topics").fetchone() == (0,)
            assert reader.execute("SELECT count(*) FROM partitions").fetchone() == (0,)
        await writer.call(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))
        assert (await log.create_topic(TopicSpec(name="big", partitions=10_000))).partitions == (
            10_000
        )


async def test_a_dead_writer_fails_pending_appends_and_stops_run(tmp_path: Path) -> None:
    log = SqliteLog(tmp_path)
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    # Run by hand, not with ``running``: its TaskGroup would cancel this test's body.
    runner = asyncio.create_task(log.run(ready))
    await ready
    await log.create_topic(TopicSpec(name="t"))
    # Another program breaks the database under us: no commit can work any more.
    conn = sqlite3.connect(tmp_path / "sluicegate.db", isolation_level=None)
    conn.execute("DROP TABLE chunks")
    conn.close()
    results = await asyncio.gather(
        *(log.append([rec(b"%d" % i)]) for i in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, StorageError) for r in results), results
    with pytest.RaisesGroup(pytest.RaisesExc(StorageError, match="no such table: chunks")):
        await runner
    with pytest.raises(StorageUnavailable, match="writer stopped"):
        await log.append([rec(b"late")])
    with pytest.raises(StorageUnavailable):
        await log.check()
    await log.close()  # returns at once: run() is over


async def test_a_commit_process_killed_mid_commit_answers_408_then_503(tmp_path: Path) -> None:
    # The group it took may have committed before it died (its answer lost with it): the
    # outcome is unknown, a 408. What was still queued was never sent: a 503, never a 500.
    log = SqliteLog(tmp_path)
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    runner = asyncio.create_task(log.run(ready))
    await ready
    await log.create_topic(TopicSpec(name="t"))
    assert log._commits is not None
    assert log._commits._process is not None
    pid = log._commits._process.pid
    os.kill(pid, signal.SIGSTOP)  # it takes no frame until it is killed
    in_flight = asyncio.ensure_future(log.append([rec(b"sent")]))
    await asyncio.sleep(0.1)
    queued = asyncio.ensure_future(log.append([rec(b"queued")]))
    await asyncio.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(StorageTimeout, match="whole or not at all"):
        await in_flight
    with pytest.raises(StorageUnavailable, match="writer stopped: the commit process exited"):
        await queued
    # The commit process's task, and the writer's when it is not cancelled first.
    with pytest.raises(ExceptionGroup) as stopped:
        await asyncio.wait_for(runner, timeout=10)
    assert all("exited with status -9" in str(e) for e in stopped.value.exceptions)
    with pytest.raises(StorageUnavailable, match="writer stopped"):
        await log.append([rec(b"late")])
    await log.close()


async def test_a_failure_after_a_commit_stops_run_instead_of_stalling(tmp_path: Path) -> None:
    # The commit is settled in a loop callback; a bug there must end run(), not leave a
    # writer that believes a commit is still in flight.
    def observe(records: int, seconds: float) -> None:
        raise RuntimeError("observer broke")

    log = SqliteLog(tmp_path, observe_commit=observe)
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    runner = asyncio.create_task(log.run(ready))
    await ready
    await log.create_topic(TopicSpec(name="t"))
    [stored] = await log.append([rec(b"durable")])  # committed before the observer ran
    assert stored.offset == 0
    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="observer broke")):
        await asyncio.wait_for(runner, timeout=10)
    with pytest.raises(StorageUnavailable, match="writer stopped"):
        await log.append([rec(b"late")])
    await log.close()
    async with running(SqliteLog(tmp_path)) as reopened:
        assert (await reopened.watermarks(TopicPartition("t", 0))).high == 1


async def test_writes_fail_instead_of_hanging_when_the_writer_connection_is_gone(
    tmp_path: Path,
) -> None:
    log = SqliteLog(tmp_path)
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    runner = asyncio.create_task(log.run(ready))
    await ready
    await log.create_topic(TopicSpec(name="t"))
    await log._writer_db.close()  # what no caller can do: no transaction can start
    with pytest.raises(StorageUnavailable, match="closed"):
        await asyncio.wait_for(log.create_topic(TopicSpec(name="u")), timeout=10)
    with pytest.raises(StorageUnavailable, match="closed"):
        await asyncio.wait_for(log.append([rec(b"x")]), timeout=10)
    with pytest.RaisesGroup(pytest.RaisesExc(StorageUnavailable)):
        await asyncio.wait_for(runner, timeout=10)
    await log.close()
    async with running(SqliteLog(tmp_path)) as reopened:  # the directory was unlocked
        assert (await reopened.watermarks(TopicPartition("t", 0))).high == 0


async def test_a_cancelled_append_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    async with running(SqliteLog(tmp_path)) as log:
        await log.create_topic(TopicSpec(name="t", partitions=2))
        for _ in range(20):
            task = asyncio.ensure_future(log.append([rec(b"a", 0), rec(b"b", 1)] * 50))
            await asyncio.sleep(0.0005)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await log.append([rec(b"sync", 0), rec(b"sync", 1)])
        high0 = (await log.watermarks(TP)).high
        high1 = (await log.watermarks(TopicPartition("t", 1))).high
        assert high0 == high1
        assert (high0 - 1) % 50 == 0


async def test_appends_time_out_in_flight_and_queued_all_or_nothing(tmp_path: Path) -> None:
    async with running(SqliteLog(tmp_path, append_timeout=0.2)) as log:
        await log.create_topic(TopicSpec(name="t"))
        # Another connection holds the write lock: the writer's transaction waits on it.
        blocker = sqlite3.connect(tmp_path / "sluicegate.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        started = asyncio.get_running_loop().time()
        in_flight = asyncio.ensure_future(log.append([rec(b"in-flight")]))
        await asyncio.sleep(0.05)  # the writer has taken it and waits for the lock
        queued = asyncio.ensure_future(log.append([rec(b"queued")]))
        outcomes = await asyncio.gather(in_flight, queued, return_exceptions=True)
        waited = asyncio.get_running_loop().time() - started
        blocker.execute("ROLLBACK")
        blocker.close()
        assert [type(o) for o in outcomes] == [StorageTimeout, StorageTimeout]
        assert "either all stored or none is" in str(outcomes[0])
        assert waited < 0.9  # told at the deadline, not when the lock timed out (1 s)
    # Closed once the transaction in flight has ended; the next append, on a log with the
    # default timeout, is not raced against the busy handler's last retry.
    async with running(SqliteLog(tmp_path)) as log:
        await log.append([rec(b"after")])
        stored = [r.value for r in await log.read(TP, 0, max_records=10, max_bytes=1 << 20)]
        # The transaction that held "in-flight" failed on the lock, so it was not stored;
        # "queued" was skipped when its turn came. Neither is stored in part.
        assert stored in ([b"after"], [b"in-flight", b"after"])


async def test_appends_queued_behind_a_topic_delete_fail(tmp_path: Path) -> None:
    async with running(SqliteLog(tmp_path)) as log:
        await log.create_topic(TopicSpec(name="doomed"))
        await log.create_topic(TopicSpec(name="kept"))
        batch = [NewRecord("kept", 0, None, b"k"), NewRecord("doomed", 0, None, b"d")]
        before = [asyncio.ensure_future(log.append(batch)) for _ in range(5)]
        deleting = asyncio.create_task(log.delete_topic("doomed"))
        await asyncio.sleep(0)  # the task's first step queues the delete
        # Valid when queued, but the topic is gone when the writer reaches them.
        after = [asyncio.ensure_future(log.append(batch)) for _ in range(5)]
        await deleting
        for task in before:
            assert len(await task) == 2
        for task in after:
            with pytest.raises(UnknownTopic):
                await task
        assert (await log.watermarks(TopicPartition("kept", 0))).high == 5
        await log.create_topic(TopicSpec(name="doomed"))
        assert (await log.watermarks(TopicPartition("doomed", 0))).high == 0
    async with running(SqliteLog(tmp_path)) as log:
        assert (await log.watermarks(TopicPartition("doomed", 0))).high == 0


async def test_every_connection_has_its_page_cache_capped(tmp_path: Path) -> None:
    log = SqliteLog(tmp_path)
    async with running(log):

        def cache_kib(conn: sqlite3.Connection) -> int:
            size: int = conn.execute("PRAGMA cache_size").fetchone()[0]
            return -size

        assert await log._running_writer()._db.call(cache_kib) == 2048
        # The commit process is started with the writer's pragmas.
        assert log._commits is not None
        assert "PRAGMA cache_size = -2048" in log._commits._pragmas
        for connection in [*log._readers.readers, log._checkpointer]:
            assert await connection.call(cache_kib) == 512
