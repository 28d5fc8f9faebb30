"""``SqliteLog``: the embedded backend of the storage contract.

Layout of the work: one writer task and connection (``writer``) commits everything;
reader connections (``reads``) answer reads; the catalog (``catalog``) holds watermarks
in memory so most questions need no query; waiters (``storage.waiters``) and the group
coordinator (``storage.groups``) live on the loop. ``run`` owns the writer, the retention pass
and the session sweeper in one ``TaskGroup``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sluicegate.core.records import Appended, NewRecord, Record, TopicPartition, Watermarks
from sluicegate.core.topics import Topic, TopicSpec, TopicUpdate
from sluicegate.errors import (
    BadRequest,
    ConfigError,
    ShuttingDown,
    SluicegateError,
    StorageError,
    StorageUnavailable,
)
from sluicegate.storage.base import Assignment, CommitObserver, Log
from sluicegate.storage.groups import GroupCoordinator, check_offsets
from sluicegate.storage.sqlite.admin import (
    AlterTopic,
    CreateTopic,
    DeleteTopic,
    PurgeTopic,
)
from sluicegate.storage.sqlite.catalog import (
    Catalog,
    PartitionState,
    TopicState,
    load_catalog,
    unknown_topic,
)
from sluicegate.storage.sqlite.checkpoints import Checkpointer, WalCap, checkpoint
from sluicegate.storage.sqlite.commit_process import CommitProcess
from sluicegate.storage.sqlite.connection import DbThread
from sluicegate.storage.sqlite.directory import DATABASE_FILE, DirectoryLock
from sluicegate.storage.sqlite.migrations import migrate
from sluicegate.storage.sqlite.reads import (
    ReaderPool,
    chunk_records,
    committed_offsets,
    first_offset_at,
    read_records,
)
from sluicegate.storage.sqlite.recent import RecentChunks
from sluicegate.storage.sqlite.retention import EnforceRetention
from sluicegate.storage.sqlite.writer import Writer
from sluicegate.storage.topic_rules import (
    compacted,
    invalid_partition,
    keyless_refused,
    offset_out_of_range,
    record_batch_bytes,
    too_large,
    validate_spec,
)
from sluicegate.storage.waiters import Waiters

__all__ = ["SqliteLog"]

logger = logging.getLogger(__name__)

#: WAL readers never block each other or the writer, and sqlite3 releases the GIL while
#: a statement steps, so a second reader helps even on two cores; more buys nothing.
_READERS = 2

#: Page caches, in KiB (a negative ``cache_size`` is KiB, not pages), set here rather
#: than left to how libsqlite3 was built. A connection's cache is emptied whenever it
#: begins a transaction after another connection has written, which in this design is
#: nearly always: the readers' and the checkpointer's caches last one transaction, in
#: which a read passes over its pages once, so 512 KiB is plenty. The commit process
#: keeps its cache from one group commit to the next, until a topic change empties it,
#: so it keeps SQLite's usual 2 MiB; the writer thread has the same pragmas. All five
#: together hold at most 5.5 MiB, however large the database grows (measured:
#: docs/design-notes.md, "Memory per topic").
_WRITER_CACHE = "PRAGMA cache_size = -2048"
_READER_CACHE = "PRAGMA cache_size = -512"

_WRITER_PRAGMAS = (
    _WRITER_CACHE,
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    # Checkpoints run beside the writer (_checkpoint_forever), never inside a commit:
    # an inline one copies the WAL into the database and fsyncs it while every queued
    # append waits, which is what long-tail produce latency is made of.
    "PRAGMA wal_autocheckpoint = 0",
    # Short: a busy database at open means another process is writing it right now.
    "PRAGMA busy_timeout = 1000",
)
#: The WAL file is truncated back to this when a checkpoint restarts it (``checkpoints``).
_JOURNAL_SIZE_LIMIT = "PRAGMA journal_size_limit = {limit}"
_READER_PRAGMAS = ("PRAGMA query_only = 1", "PRAGMA busy_timeout = 5000", _READER_CACHE)
_CHECKPOINT_PRAGMAS = ("PRAGMA busy_timeout = 5000", _READER_CACHE)


def _wall_clock_us() -> int:
    return time.time_ns() // 1000


def _check_size(record: NewRecord, limit: int) -> None:
    # A topic's max.message.bytes, held as Kafka holds it: against the record batch a
    # producer sends the record in, alone (Kafka's own producer splits a batch refused
    # as too large until each record goes alone).
    size = record_batch_bytes(record)
    if size > limit:
        raise too_large(record.topic, size, limit)


class SqliteLog(Log):
    """The log in ``<data_dir>/sluicegate.db``: WAL, ``synchronous=FULL``, group commit.

    ``clock`` gives log-append time in µs since the epoch; tests inject one to make
    retention run in milliseconds. ``observe_commit`` is told each commit's record
    count and duration (metrics). The WAL is kept near ``wal_size_limit`` bytes by a
    checkpoint pass every ``checkpoint_interval`` seconds (``checkpoints``). Reads of the
    newest ``recent_bytes`` of committed chunks are answered from memory (``recent``).
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        max_pending_appends: int = 100_000,
        max_commit_records: int = 20_000,
        append_timeout: float = 30.0,
        retention_interval: float = 30.0,
        wal_size_limit: int = 16 * 1024 * 1024,
        checkpoint_interval: float = 0.5,
        observe_commit: CommitObserver | None = None,
        clock: Callable[[], int] | None = None,
        recent_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        if recent_bytes < 0:
            raise ConfigError("recent_bytes", f"must be >= 0, got {recent_bytes}")
        for key, value in (
            ("storage.max_pending_appends", max_pending_appends),
            ("storage.max_commit_records", max_commit_records),
            ("storage.append_timeout", append_timeout),
            ("storage.retention_interval", retention_interval),
            ("storage.wal_size_limit", wal_size_limit),
            ("checkpoint_interval", checkpoint_interval),
        ):
            if not value > 0:
                raise ConfigError(key, f"must be > 0, got {value}")
        self.data_dir = Path(data_dir)
        self._max_pending = max_pending_appends
        self._max_commit = max_commit_records
        self._append_timeout = append_timeout
        self._retention_interval = retention_interval
        self._wal_size_limit = wal_size_limit
        self._checkpoint_interval = checkpoint_interval
        self._writer_pragmas = (*_WRITER_PRAGMAS, _JOURNAL_SIZE_LIMIT.format(limit=wal_size_limit))
        self._observe = observe_commit
        self._clock = clock or _wall_clock_us
        self._lock = DirectoryLock(self.data_dir)
        self._writer_db = DbThread(self.data_dir, "sluicegate-writer")
        self._readers = ReaderPool(
            [DbThread(self.data_dir, f"sluicegate-reader-{i}") for i in range(_READERS)]
        )
        self._checkpointer = DbThread(self.data_dir, "sluicegate-checkpointer")
        #: The newest committed chunks, read without a query (none kept if 0 bytes).
        self._recent = RecentChunks(recent_bytes) if recent_bytes else None
        self._catalog = Catalog([])
        self._waiters: Waiters[PartitionState] = Waiters()
        self._groups = GroupCoordinator(self._partition_count)
        self._writer: Writer | None = None
        self._commits: CommitProcess | None = None
        self._started = False
        self._closing = False
        self._stopped = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, ready: asyncio.Future[None]) -> None:
        """Open and recover, resolve ``ready``, then serve until ``close()``."""
        if self._started:
            raise RuntimeError("SqliteLog.run() may be called only once")
        self._started = True
        try:
            writer = await self._open()
            commits = self._commits
            assert commits is not None
            async with asyncio.TaskGroup() as tg:
                tg.create_task(commits.run(), name="sqlite-commit-process")
                writing = tg.create_task(writer.run(), name="sqlite-writer")
                housekeeping = [
                    tg.create_task(self._retain_forever(), name="sqlite-retention"),
                    tg.create_task(self._groups.sweep(), name="group-session-sweeper"),
                    tg.create_task(self._checkpoint_forever(writer), name="sqlite-checkpoint"),
                    tg.create_task(writer.expire_forever(), name="sqlite-append-deadlines"),
                ]
                self._writer = writer
                if self._closing:
                    writer.close()
                if not ready.done():
                    ready.set_result(None)
                # asyncio.wait, not await: a failed writer must surface once, through tg.
                await asyncio.wait((writing,))
                for task in housekeeping:
                    task.cancel()
                # The queue is committed: the commit process may end (its reader with it).
                await commits.close()
        finally:
            self._closing = True
            self._waiters.wake_all()
            try:
                await self._release()
            finally:
                self._stopped.set()

    async def _open(self) -> Writer:
        db = self.data_dir / DATABASE_FILE
        await self._writer_db.call_raw(self._lock.acquire)
        await self._writer_db.open(db, self._writer_pragmas)
        mode = await self._writer_db.call(lambda c: c.execute("PRAGMA journal_mode").fetchone())
        if mode is None or mode[0] != "wal":
            raise StorageError(f"{db}: the file system does not support SQLite's WAL mode")
        # Before any other connection: what a crashed server left in the WAL goes into
        # the database, and the file starts empty (``checkpoints``).
        await self._writer_db.call_opening(checkpoint, "TRUNCATE")
        await self._writer_db.call_opening(migrate, db)
        self._catalog = await self._writer_db.call_opening(load_catalog)
        for reader in self._readers.readers:
            await reader.open(db, _READER_PRAGMAS)
        await self._checkpointer.open(db, _CHECKPOINT_PRAGMAS)
        self._commits = CommitProcess(self.data_dir, db, self._lock.fileno(), self._writer_pragmas)
        await self._commits.start()
        return Writer(
            self._writer_db,
            self._commits.submit,
            self._catalog,
            self._waiters,
            clock=self._clock,
            max_pending_appends=self._max_pending,
            max_commit_records=self._max_commit,
            append_timeout=self._append_timeout,
            observe_commit=self._observe,
            wal_cap=WalCap(
                self.data_dir / f"{DATABASE_FILE}-wal",
                cap=2 * self._wal_size_limit,
                step=self._wal_size_limit // 4,
            ),
            recent=self._recent,
        )

    async def _release(self) -> None:
        if self._commits is not None:
            await self._commits.close()
        await self._checkpointer.close()
        for reader in self._readers.readers:
            await reader.close()
        # Unlock only once our last connection is closed.
        await self._writer_db.close(then=self._lock.release)

    async def close(self) -> None:
        """Refuse new writes, commit the queue, wake every waiter; ``run`` then returns."""
        self._closing = True
        self._waiters.wake_all()
        if not self._started:
            return
        if self._writer is not None:
            self._writer.close()
        await self._stopped.wait()

    async def check(self) -> None:
        """Raise ``StorageUnavailable`` unless the log can take writes now."""
        await self._running_writer().check()

    def stats(self) -> dict[str, float]:
        """Gauges for /metrics: long-poll waiters and records queued for the writer."""
        queued = self._writer.queued_records if self._writer is not None else 0
        return {**super().stats(), "waiters": self._waiters.count, "queued_records": queued}

    def _running_writer(self) -> Writer:
        if self._writer is None:
            if self._closing:
                raise ShuttingDown("the log is closed")
            raise StorageUnavailable("the log is not running yet")
        return self._writer

    def _reader(self) -> DbThread:
        if self._stopped.is_set():
            raise ShuttingDown("the log is closed")
        if self._writer is None:
            raise StorageUnavailable("the log is not running yet")
        return self._readers.next()

    # -- topics ----------------------------------------------------------------------

    def _partition_count(self, topic: str) -> int:
        state = self._catalog.by_name.get(topic)
        return 0 if state is None else len(state.partitions)

    async def create_topic(self, spec: TopicSpec) -> Topic:
        """Create a topic; ``TopicExists`` if the name is taken, ``BadRequest`` if invalid."""
        validate_spec(spec)
        topic = await self._running_writer().exclusive(
            CreateTopic(self._catalog, spec, self._clock())
        )
        # A group may subscribe to the name already (the topic was deleted under it).
        self._groups.topics_changed([topic.name])
        return topic

    async def get_topic(self, name: str) -> Topic:
        """The topic called ``name``, or ``UnknownTopic``."""
        return self._catalog.get(name).topic

    async def get_topic_by_id(self, topic_id: int) -> Topic:
        """The topic with this stable id, or ``UnknownTopic``."""
        return self._catalog.get_by_id(topic_id).topic

    async def list_topics(self, *, include_internal: bool = False) -> list[Topic]:
        """All topics by name; internal (``__*``: Kafka's and the gateway's) ones only if asked."""
        return self._catalog.topics(include_internal=include_internal)

    async def alter_topic(self, name: str, update: TopicUpdate) -> Topic:
        """Change settings; partitions may only grow (``BadRequest`` otherwise)."""
        op = AlterTopic(
            self._catalog, name, update, self._clock(), lambda t: self._groups.topics_changed([t])
        )
        return await self._running_writer().exclusive(op)

    async def purge_topic(self, name: str) -> None:
        """Drop every record; offsets keep counting from the old high watermark."""
        await self._running_writer().exclusive(PurgeTopic(self._catalog, name))

    async def delete_topic(self, name: str) -> None:
        """Delete the topic, its records and its groups' committed offsets."""
        await self._running_writer().exclusive(
            DeleteTopic(self._catalog, name, self._topic_deleted)
        )

    def _topic_deleted(self, state: TopicState) -> None:
        # Waiters wake to find the topic gone; groups drop its partitions.
        self._waiters.wake(state.partitions, arrived=True)
        self._groups.topics_changed([state.topic.name])

    # -- records ---------------------------------------------------------------------

    def append(self, batch: Sequence[NewRecord]) -> asyncio.Future[list[Appended]]:
        """Queue all records or none for the writer; see ``Log.append``."""
        try:
            writer = self._writer or self._running_writer()
            catalog = self._catalog
            if not batch:
                done: asyncio.Future[list[Appended]] = asyncio.get_running_loop().create_future()
                done.set_result([])
                return done
            if len(batch) == 1:
                # A produce request's single record: the loop below, unrolled.
                record = batch[0]
                state = catalog.by_name.get(record.topic)  # catalog.get, inlined
                if state is None:
                    raise unknown_topic(record.topic)
                own = state.partitions
                if not 0 <= record.partition < len(own):
                    raise invalid_partition(record.topic, record.partition, len(own))
                if record.key is None and compacted(state.topic):
                    raise keyless_refused(record.topic)
                if state.max_bytes is not None:
                    _check_size(record, state.max_bytes)
                return writer.append(batch, [own[record.partition]])
            states: list[PartitionState] = []
            name = None
            partitions: Sequence[PartitionState] = ()
            # Validated here so a bad batch fails at once; the writer re-validates only if
            # a topic changed while the batch was queued (the catalog epoch moved).
            keyed = False
            limit = None
            for record in batch:
                if record.topic != name:
                    name = record.topic
                    state = catalog.get(name)
                    partitions, keyed = state.partitions, compacted(state.topic)
                    limit = state.max_bytes
                index = record.partition
                if not 0 <= index < len(partitions):
                    raise invalid_partition(name, index, len(partitions))
                if keyed and record.key is None:
                    raise keyless_refused(name)
                if limit is not None:
                    _check_size(record, limit)
                states.append(partitions[index])
            return writer.append(batch, states)
        except SluicegateError as exc:
            failed: asyncio.Future[list[Appended]] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    async def read(
        self, tp: TopicPartition, offset: int, *, max_records: int, max_bytes: int
    ) -> list[Record]:
        """Records from ``offset`` on, bounded by count and bytes (the first always fits)."""
        if max_records < 1:
            raise BadRequest(f"max_records must be >= 1, got {max_records}", field="max_records")
        topic = self._catalog.get(tp.topic)
        state = topic.partition(tp.partition)
        if offset == state.high:
            return []
        if not state.low <= offset < state.high:
            raise offset_out_of_range(tp.topic, tp.partition, offset, state.low, state.high)
        reader = self._reader()
        kept = (
            self._recent.from_offset(topic.topic.id, tp.partition, offset) if self._recent else None
        )
        if kept is not None:
            # Committed a moment ago and still in memory: no query, no thread.
            return chunk_records(
                kept, tp.topic, tp.partition, offset, state.high, max_records, max_bytes
            )
        return await reader.call(
            read_records,
            tp.topic,
            topic.topic.id,
            tp.partition,
            offset,
            state.high,
            max_records,
            max_bytes,
        )

    async def watermarks(self, tp: TopicPartition, *, max_age: float = 0.0) -> Watermarks:
        """Low and high watermark of a partition (always the current ones: they are here)."""
        return self._catalog.partition(tp).watermarks()

    async def offset_for_time(self, tp: TopicPartition, timestamp: int) -> int:
        """The first offset whose timestamp is >= ``timestamp`` (µs), else the high watermark."""
        state = self._catalog.partition(tp)
        low, high = state.low, state.high
        if low == high:
            return high
        base = await self._reader().call(first_offset_at, state.topic_id, state.index, timestamp)
        # Chunks committed after we read ``high`` may answer; they are not visible yet.
        return high if base is None else min(max(base, low), high)

    async def wait(self, positions: Mapping[TopicPartition, int], timeout: float) -> bool:
        """Wait until some partition's high watermark passes its position, or timeout."""
        states = {self._catalog.partition(tp): position for tp, position in positions.items()}
        if any(state.high > position for state, position in states.items()):
            return True
        if self._closing:
            return False
        return await self._waiters.wait(states, timeout)

    # -- consumer groups -------------------------------------------------------------

    async def commit_offsets(
        self,
        group: str,
        offsets: Mapping[TopicPartition, int],
        *,
        member_id: str | None = None,
        generation: int | None = None,
    ) -> None:
        """Durably store the next offset to consume per partition, fenced if a member is given."""
        writer = self._running_writer()
        check_offsets(offsets)
        states = [self._catalog.partition(tp) for tp in offsets]
        if member_id is not None:
            self._groups.check_owner(group, member_id, generation, offsets)
        if states:
            await writer.commit_offsets(group, dict(offsets), states)

    async def committed_offsets(self, group: str, topic: str) -> dict[int, int]:
        """Committed next offsets of ``group`` on ``topic``, by partition."""
        topic_id = self._catalog.get(topic).topic.id
        return await self._reader().call(committed_offsets, group, topic_id)

    async def join_group(
        self, group: str, member_id: str, topics: Sequence[str], session_timeout: float
    ) -> Assignment:
        """Join (or re-join) ``group`` subscribed to ``topics``; rebalances the group."""
        for name in topics:
            self._catalog.get(name)
        return self._groups.join(group, member_id, topics, session_timeout)

    async def heartbeat(self, group: str, member_id: str) -> Assignment:
        """Keep the member alive; returns its current assignment."""
        return self._groups.heartbeat(group, member_id)

    async def leave_group(self, group: str, member_id: str) -> None:
        """Remove the member and rebalance; unknown members are ignored."""
        self._groups.leave(group, member_id)

    def on_rebalance(self, listener: Callable[[str], None]) -> None:
        self._groups.listeners.append(listener)

    # -- retention -------------------------------------------------------------------

    async def enforce_retention(self) -> None:
        """Apply every topic's retention now (``run`` does this every retention_interval)."""
        writer = self._running_writer()
        now = self._clock()
        passes = [
            writer.exclusive(EnforceRetention(self._catalog, state.topic.id, now))
            for state in self._catalog.by_id.values()
            if state.topic.retention_ms is not None or state.topic.retention_bytes is not None
        ]
        for done in passes:
            await done

    async def _checkpoint_forever(self, writer: Writer) -> None:
        await Checkpointer(
            self._checkpointer,
            writer.exclusive,
            limit=self._wal_size_limit,
            interval=self._checkpoint_interval,
        ).run()

    async def _retain_forever(self) -> None:
        while True:
            await asyncio.sleep(self._retention_interval)
            try:
                await self.enforce_retention()
            except ShuttingDown:
                return
            except StorageError as exc:
                # A full disk fails the pass but not the log; retention frees space.
                logger.warning("retention pass failed: %s", exc.message)
