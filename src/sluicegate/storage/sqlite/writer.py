"""The one writer: group commit of every queued write into as few transactions as it can.

Callers queue an operation with a future and await it; the writer takes whatever has
queued up, turns it into one transaction, has the commit process run it
(``commit_process``) and, once COMMIT has returned, resolves each future. While one
transaction is being fsynced the next group accumulates, so the commit rate adapts to
the load with no timer (aiokafka's ``MessageBatch`` idea, with the commit as the batch).
The completion callback of one group commit starts the next; the writer task only starts
an idle writer and runs the exclusive operations.

Error handling: an append that fails validation fails alone, before its records join
the transaction. A failed transaction fails every future in it and rolls the offsets it
assigned back. If the failure is one the writer cannot go on from (anything but a full
disk), the writer fails everything queued and raises, which ends ``SqliteLog.run``.
A future whose caller was cancelled before the writer took its operation is skipped (not
written); once taken, an operation is committed or failed as a whole regardless.
"""

from __future__ import annotations

import abc
import asyncio
import sqlite3
import time
from asyncio import get_running_loop
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from sluicegate.core.records import Appended, NewRecord, TopicPartition
from sluicegate.errors import (
    Overloaded,
    ShuttingDown,
    SluicegateError,
    StorageError,
    StorageTimeout,
    StorageUnavailable,
)
from sluicegate.storage.base import CommitObserver
from sluicegate.storage.sqlite.catalog import Catalog, PartitionState
from sluicegate.storage.sqlite.codec import ChunkRow, chunk_rows
from sluicegate.storage.sqlite.commit_process import Statement
from sluicegate.storage.sqlite.connection import DbThread, transaction
from sluicegate.storage.sqlite.errors import is_transient
from sluicegate.storage.sqlite.recent import RecentChunks
from sluicegate.storage.waiters import Waiters

__all__ = ["Exclusive", "Writer"]

T = TypeVar("T")

#: Sends a group commit's statements; the callback gets ``None`` or the error, on the loop.
CommitSender = Callable[[list[Statement], Callable[[BaseException | None], None]], None]

_INSERT_CHUNK = (
    "INSERT INTO chunks (topic_id, partition, base_offset, end_offset, ts, bytes, records)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_OFFSET = (
    "INSERT INTO group_offsets VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE"
    " SET next_offset = excluded.next_offset, committed_at = excluded.committed_at"
)


class Exclusive(abc.ABC, Generic[T]):
    """A write that runs alone, no group commit in flight: topic changes, retention, checkpoints.

    ``plan`` runs on the loop when the writer reaches the operation, so it sees every
    write queued before it; ``work`` runs on the writer's thread, in one transaction
    unless ``transactional`` is False (a checkpoint cannot run inside one);
    ``apply`` runs on the loop after COMMIT and gives the caller's result.
    """

    #: Whether ``work`` runs between BEGIN IMMEDIATE and COMMIT: all of it or none.
    transactional: ClassVar[bool] = True

    @abc.abstractmethod
    def plan(self) -> bool:
        """Validate against the catalog (raise ``SluicegateError``); False if nothing to write."""

    @abc.abstractmethod
    def work(self, conn: sqlite3.Connection) -> None:
        """Change the database, inside the transaction."""

    @abc.abstractmethod
    def apply(self) -> T:
        """Bring the in-memory state in line with the committed change."""


class _Append(msgspec.Struct):
    """A queued batch. A Struct, not a class with ``__init__``: one is made per request."""

    batch: Sequence[NewRecord]
    states: list[PartitionState]
    epoch: int
    future: asyncio.Future[list[Appended]]
    #: ``time.monotonic()`` after which the caller gets ``StorageTimeout`` instead.
    deadline: float
    #: Records this operation adds to the queue (what ``max_pending_appends`` counts).
    size: int
    results: list[Appended] = []
    exclusive: ClassVar[bool] = False


class _CommitOffsets:
    __slots__ = ("epoch", "future", "group", "offsets", "size", "states")
    exclusive = False
    deadline = float("inf")

    def __init__(
        self,
        group: str,
        offsets: Mapping[TopicPartition, int],
        states: list[PartitionState],
        epoch: int,
        future: asyncio.Future[None],
    ) -> None:
        self.group = group
        self.offsets = offsets
        self.states = states
        self.epoch = epoch
        self.future = future
        self.size = len(states)


class _ExclusiveEntry(Generic[T]):
    __slots__ = ("future", "op")
    exclusive = True
    size = 0
    deadline = float("inf")

    def __init__(self, op: Exclusive[T], future: asyncio.Future[T]) -> None:
        self.op = op
        self.future = future


class _Pending:
    """The records one group commit appends to one partition, and their timestamp."""

    __slots__ = ("base", "records", "state", "ts")

    def __init__(self, state: PartitionState, now: int) -> None:
        self.state = state
        self.base = state.next
        # Log-append time, never below the partition's last one (the clock may step back).
        self.ts = state.last_ts = max(now, state.last_ts)
        self.records: list[NewRecord] = []


def _copy(error: SluicegateError) -> SluicegateError:
    # One instance per waiting caller: a raised exception collects that caller's traceback.
    copy = type(error).__new__(type(error))
    copy.__dict__.update(error.__dict__)
    copy.args = error.args
    copy.__cause__ = error.__cause__
    return copy


def _as_storage_error(exc: BaseException) -> SluicegateError:
    if isinstance(exc, SluicegateError):
        return exc
    error = StorageError(f"the storage writer failed: {exc!r}")
    error.__cause__ = exc
    return error


def _group_statements(
    rows: list[ChunkRow], offsets: list[tuple[str, int, int, int, int]]
) -> list[Statement]:
    if not offsets and len(rows) == 1:
        return [(_INSERT_CHUNK, rows[0], False)]
    statements: list[Statement] = [(_INSERT_CHUNK, rows, True)]
    if offsets:
        statements.append((_UPSERT_OFFSET, offsets, True))
    return statements


def _atomic(work: Callable[[sqlite3.Connection], None], conn: sqlite3.Connection) -> None:
    # The writer's connection is in autocommit mode: without this, each statement of a
    # topic change would be a transaction (and an fsync) of its own, and a crash between
    # two would leave half of it.
    with transaction(conn):
        work(conn)


def _probe(conn: sqlite3.Connection) -> None:
    # Taking the write lock proves the file is writable without writing anything.
    with transaction(conn):
        pass


class Writer:
    """Owns the writer connection, the write queue and the in-memory watermarks."""

    def __init__(
        self,
        db: DbThread,
        send_commit: CommitSender,
        catalog: Catalog,
        waiters: Waiters[PartitionState],
        *,
        clock: Callable[[], int],
        max_pending_appends: int,
        max_commit_records: int,
        append_timeout: float,
        observe_commit: CommitObserver | None,
        wal_cap: Callable[[], Exclusive[Any] | None] | None = None,
        recent: RecentChunks | None = None,
    ) -> None:
        self._db = db
        #: Group commits go to the commit process; exclusive operations run on ``db``.
        self._send_commit = send_commit
        # Futures are made on the loop that runs the writer, whoever queues the write.
        self._loop = get_running_loop()
        self._catalog = catalog
        self._waiters = waiters
        self._clock = clock
        self._max_pending = max_pending_appends
        self._max_commit = max_commit_records
        self._timeout = append_timeout
        self._observe = observe_commit
        #: Asked before each group commit: a checkpoint to run first (the WAL is past its
        #: hard cap) or None. The background passes keep the WAL near its limit; this
        #: keeps it bounded when they fall behind (``checkpoints``).
        self._wal_cap = wal_cap
        #: Told every committed chunk, so that reads near the end need no query.
        self._recent = recent
        #: The appends of the transaction now running (they can still time out).
        self._in_flight: list[_Append] = []
        self._queue: deque[_Append | _CommitOffsets | _ExclusiveEntry[Any]] = deque()
        self._queued_records = 0
        #: Exclusive operations in the queue: with none, a group can take it whole.
        self._queued_exclusives = 0
        self._wakeup = asyncio.Event()
        #: Whether a group commit is in flight (its callback starts the next).
        self._committing = False
        #: An error the writer cannot go on from, met in a callback: ``run`` raises it.
        self._fatal: BaseException | None = None
        self._closing = False
        self._stopped: str | None = None

    # -- intake (called on the loop by SqliteLog) ------------------------------------

    def _admit(self, records: int) -> None:
        if self._stopped is not None:
            raise StorageUnavailable(self._stopped)
        if self._closing:
            raise ShuttingDown("the log is shutting down and takes no more writes")
        queued = self._queued_records
        # A batch bigger than the limit still goes through an empty queue, else it never could.
        if queued and queued + records > self._max_pending:
            raise Overloaded(
                f"{queued} records are waiting to be written (limit {self._max_pending})",
                queued=queued,
            )

    def _enqueue(self, entry: _Append | _CommitOffsets | _ExclusiveEntry[Any]) -> None:
        self._admit(entry.size)
        self._queue.append(entry)
        self._queued_records += entry.size
        if entry.exclusive:
            self._queued_exclusives += 1
        # While a commit is in flight its callback takes the queue: no need to wake the task.
        if not self._committing and not self._wakeup.is_set():
            self._wakeup.set()

    def append(
        self, batch: Sequence[NewRecord], states: list[PartitionState]
    ) -> asyncio.Future[list[Appended]]:
        """Queue a validated batch (``states[i]`` is record i's partition)."""
        # _enqueue and _admit's tests, inlined: one of these per produce request.
        size = len(batch)
        queued = self._queued_records
        if (
            self._stopped is not None
            or self._closing
            or (queued and queued + size > self._max_pending)
        ):
            self._admit(size)  # raises the error that says why
        future: asyncio.Future[list[Appended]] = self._loop.create_future()
        deadline = time.monotonic() + self._timeout
        self._queue.append(_Append(batch, states, self._catalog.epoch, future, deadline, size))
        self._queued_records = queued + size
        if not self._committing and not self._wakeup.is_set():
            self._wakeup.set()
        return future

    def commit_offsets(
        self, group: str, offsets: Mapping[TopicPartition, int], states: list[PartitionState]
    ) -> asyncio.Future[None]:
        """Queue validated group offsets; they ride along with the next group commit."""
        future: asyncio.Future[None] = self._loop.create_future()
        self._enqueue(_CommitOffsets(group, offsets, states, self._catalog.epoch, future))
        return future

    def exclusive(self, op: Exclusive[T]) -> asyncio.Future[T]:
        """Queue an operation that runs alone, after everything queued before it."""
        future: asyncio.Future[T] = self._loop.create_future()
        self._enqueue(_ExclusiveEntry(op, future))
        return future

    def close(self) -> None:
        """Take no more writes; ``run`` returns once the queue is committed."""
        self._closing = True
        self._wakeup.set()

    @property
    def queued_records(self) -> int:
        """Records waiting for the next commit."""
        return self._queued_records

    async def check(self) -> None:
        """Raise ``StorageUnavailable`` unless a write could start now."""
        self._admit(0)
        try:
            await self._db.call(_probe)
        except StorageError as exc:
            raise StorageUnavailable(f"the database is not writable: {exc.message}") from exc

    # -- deadlines -------------------------------------------------------------------

    def _timed_out(self) -> StorageTimeout:
        return StorageTimeout(
            f"storage did not confirm the write within {self._timeout:g}s; "
            "the records are either all stored or none is"
        )

    def expire(self, now: float) -> None:
        """Answer ``StorageTimeout`` to every append whose deadline is past ``now``.

        The operation itself goes on: one still queued is skipped when its turn comes
        (none of it is stored), one in the running transaction is committed or failed as
        a whole. So a timed-out caller knows that all of its records or none are stored.
        """
        for op in self._in_flight:
            if op.deadline <= now and not op.future.done():
                op.future.set_exception(self._timed_out())
        # Appends queue in deadline order; other entries have none and are passed over.
        for entry in self._queue:
            if entry.deadline > now:
                if isinstance(entry, _Append):
                    break
                continue
            if not entry.future.done():
                entry.future.set_exception(self._timed_out())

    async def expire_forever(self) -> None:
        """Run ``expire`` a few times per timeout period, for as long as the writer runs."""
        tick = min(1.0, max(0.001, self._timeout / 10))
        while True:
            await asyncio.sleep(tick)
            self.expire(time.monotonic())

    # -- the writer task -------------------------------------------------------------

    async def run(self) -> None:
        """Commit queued writes until closed and drained; raise if the writer cannot go on.

        The task starts a group commit when writes arrive at an idle writer; while one
        is in flight, the next starts from the completion callback (``_committed``)
        without waking the task, as soon as the commit process has answered the last one.
        """
        try:
            while True:
                if self._fatal is not None:
                    raise self._fatal
                queue = self._queue
                if self._committing or not queue:
                    if self._closing and not queue and not self._committing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                elif (head := queue[0]).exclusive:
                    queue.popleft()
                    self._queued_exclusives -= 1
                    await self._run_exclusive(head)  # type: ignore[arg-type]
                elif not self._checkpoint_first():
                    self._commit(self._take_group())
        except BaseException as exc:
            self._stop(exc)
            raise

    def _stop(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            self._stopped = "the log was stopped"
            error: SluicegateError = ShuttingDown(self._stopped)
        else:
            # Whatever stopped it, what is still queued was never sent to be committed:
            # not stored, and worth sending again once the server is back (a 503).
            reason = exc.__cause__ if isinstance(exc.__cause__, SluicegateError) else exc
            why = reason.message if isinstance(reason, SluicegateError) else repr(reason)
            self._stopped = f"the storage writer stopped: {why}"
            error = StorageUnavailable(self._stopped)
            error.__cause__ = exc
        while self._queue:
            entry = self._queue.popleft()
            if not entry.future.done():
                entry.future.set_exception(_copy(error))
        self._queued_records = 0
        self._queued_exclusives = 0

    def _take_group(self) -> list[_Append | _CommitOffsets]:
        limit = self._max_commit
        queue = self._queue
        if not self._queued_exclusives and self._queued_records <= limit:
            # Nothing queued runs alone and all of it fits one commit (nearly always):
            # the whole queue, without a look at each entry.
            whole: list[_Append | _CommitOffsets] = list(queue)  # type: ignore[arg-type]
            queue.clear()
            self._queued_records = 0
            return whole
        group: list[_Append | _CommitOffsets] = []
        records = 0
        while queue:
            head = queue[0]
            if head.exclusive or (group and records + head.size > limit):
                break
            group.append(queue.popleft())  # type: ignore[arg-type]
            records += head.size
        self._queued_records -= records
        return group

    def _revalidate(
        self, names: Sequence[TopicPartition] | Sequence[NewRecord]
    ) -> list[PartitionState]:
        catalog = self._catalog
        return [catalog.get(item.topic).partition(item.partition) for item in names]

    def _commit(self, group: list[_Append | _CommitOffsets]) -> None:
        now = self._clock()
        # time.monotonic, not loop.time: uvloop's clock counts whole milliseconds.
        started_at = time.monotonic()
        epoch = self._catalog.epoch
        touched: dict[PartitionState, _Pending] = {}
        appends: list[_Append] = []
        commits: list[_CommitOffsets] = []
        offset_rows: list[tuple[str, int, int, int, int]] = []
        for op in group:
            if op.future.done():
                continue
            if op.deadline <= started_at:
                # Waited out its time in the queue: not written, and the caller knows.
                op.future.set_exception(self._timed_out())
                continue
            states = op.states
            if op.epoch != epoch:
                try:
                    states = self._revalidate(
                        op.batch if isinstance(op, _Append) else list(op.offsets)
                    )
                except SluicegateError as exc:
                    op.future.set_exception(exc)
                    continue
            if isinstance(op, _CommitOffsets):
                offset_rows.extend(
                    (op.group, s.topic_id, s.index, offset, now)
                    for s, offset in zip(states, op.offsets.values(), strict=True)
                )
                commits.append(op)
                continue
            first = states[0]
            pending = touched.get(first)
            if pending is None:
                pending = touched[first] = _Pending(first, now)
            if op.size == 1:
                # The most common case of all: one record (a produce request).
                record = op.batch[0]
                offset = first.next
                first.next = offset + 1
                pending.records.append(record)
                op.results = [Appended(record.topic, first.index, offset, pending.ts)]
            elif states.count(first) == len(states):
                # The common case, one partition: offsets in bulk, no per-record lookups.
                base = first.next
                first.next = base + len(op.batch)
                pending.records.extend(op.batch)
                topic, index, ts = op.batch[0].topic, first.index, pending.ts
                op.results = [Appended(topic, index, o, ts) for o in range(base, first.next)]
            else:
                results = op.results
                for record, state in zip(op.batch, states, strict=True):
                    pending = touched.get(state)
                    if pending is None:
                        pending = touched[state] = _Pending(state, now)
                    offset = state.next
                    state.next = offset + 1
                    pending.records.append(record)
                    results.append(Appended(record.topic, state.index, offset, pending.ts))
            appends.append(op)
        if not appends and not commits:
            return
        rows = [
            row
            for p in touched.values()
            for row in chunk_rows(p.state.topic_id, p.state.index, p.base, p.ts, p.records)
        ]
        started = time.perf_counter()

        def settle(exc: BaseException | None) -> SluicegateError | None:
            self._in_flight = []
            if exc is not None:
                for pending in touched.values():
                    pending.state.next = pending.state.high
                error = _as_storage_error(exc)
                futures: list[asyncio.Future[Any]] = [op.future for op in appends]
                futures += [op.future for op in commits]
                for future in futures:
                    if not future.done():
                        future.set_exception(_copy(error))
                return None if is_transient(error) else error
            if self._recent is not None:
                self._recent.add(rows)  # with the watermarks below: nothing waits between
            waiters = self._waiters
            records = 0
            for state in touched:
                records += state.next - state.high
                state.high = state.next
                if state in waiters:
                    waiters.advanced(state, state.high)
            for append in appends:
                if not append.future.done():
                    append.future.set_result(append.results)
            for commit in commits:
                if not commit.future.done():
                    commit.future.set_result(None)
            if self._observe is not None and records:
                self._observe(records, time.perf_counter() - started)
            return None

        def committed(exc: BaseException | None) -> None:
            # A loop callback: whatever goes wrong here must reach run(), not the loop's
            # exception handler, or the writer would wait for a commit that never ends.
            try:
                fatal: BaseException | None = settle(exc)
            except BaseException as bug:  # noqa: BLE001
                fatal = bug
            self._committed(fatal)

        self._in_flight = appends
        self._committing = True
        try:
            self._send_commit(_group_statements(rows, offset_rows), committed)
        except Exception as exc:  # noqa: BLE001 - the process is gone, nothing was sent:
            committed(exc)  # fail this group now, or its requests wait for nothing

    def _checkpoint_first(self) -> bool:
        """Queue the WAL cap's checkpoint ahead of every write if it asks for one."""
        op = self._wal_cap() if self._wal_cap is not None else None
        if op is None:
            return False
        future: asyncio.Future[Any] = self._loop.create_future()
        # Nobody awaits it: a failure that matters stops the writer through run().
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._queue.appendleft(_ExclusiveEntry(op, future))
        self._queued_exclusives += 1
        return True

    def _committed(self, fatal: BaseException | None) -> None:
        """After a group commit, on the loop: start the next one at once, or wake the task."""
        self._committing = False
        try:
            if fatal is not None:
                self._fatal = fatal
            elif self._stopped is None:
                queue = self._queue
                # A group may be all expired or cancelled and start nothing: take the next.
                while queue and not queue[0].exclusive and not self._committing:
                    if self._checkpoint_first():
                        break
                    self._commit(self._take_group())
                if self._committing:
                    return
        except BaseException as exc:  # noqa: BLE001 - a callback has nobody to raise to
            self._fatal = exc
        # Idle, an exclusive write next, closing or failed: the task takes it from here.
        self._wakeup.set()

    async def _run_exclusive(self, entry: _ExclusiveEntry[Any]) -> None:
        op, future = entry.op, entry.future
        if future.done():
            return
        try:
            needs_write = op.plan()
        except SluicegateError as exc:
            future.set_exception(exc)
            return
        if not needs_write:
            future.set_result(op.apply())
            return

        finished: asyncio.Future[SluicegateError | None] = self._loop.create_future()

        def outcome(exc: BaseException | None) -> SluicegateError | None:
            if exc is None:
                result = op.apply()
                if not future.done():
                    future.set_result(result)
                return None
            error = _as_storage_error(exc)
            if not future.done():
                future.set_exception(_copy(error))
            return None if is_transient(error) else error

        def settle(exc: BaseException | None) -> None:
            # By the transaction's real outcome, even if the task stopped waiting; a loop
            # callback, so a failure here is handed to the task rather than raised.
            if finished.done():
                outcome(exc)  # the task is gone: still apply what was committed
                return
            try:
                finished.set_result(outcome(exc))
            except BaseException as bug:  # noqa: BLE001
                finished.set_exception(bug)

        try:
            self._db.submit_then(settle, partial(_atomic, op.work) if op.transactional else op.work)
        except SluicegateError as exc:  # the connection is closed: fail the operation now
            settle(exc)
        fatal = await finished
        if fatal is not None:
            raise fatal
