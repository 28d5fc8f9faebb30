"""One sqlite3 connection and the one thread allowed to use it.

sqlite3 calls block, so none may run on the event loop. Each connection gets a thread
of its own that takes jobs from a queue: its calls run in order, never two at once, and
the loop only awaits their results. The thread holds no lock of ours, so a slow read
never delays the writer and the writer's fsync never delays the loop.

The thread is ours rather than a ``ThreadPoolExecutor``'s: a job is one queue put and,
when it is done, one ``call_soon_threadsafe`` that resolves an asyncio future, with no
``concurrent.futures`` future, locks or callback chain in between: everything the
thread runs in Python holds the GIL that the loop needs. (Group commits, the one job per
few requests, run in the commit process instead; see ``commit_process``.)
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sluicegate.errors import StorageUnavailable
from sluicegate.storage.sqlite.errors import translate

__all__ = ["DbThread", "transaction"]

P = ParamSpec("P")
T = TypeVar("T")

#: A job: the work, what to call on the loop with its outcome, and that loop.
_Job = tuple[
    Callable[[], Any],
    Callable[[Any, "BaseException | None"], None],
    asyncio.AbstractEventLoop,
]


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if the body or the commit fails."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # Some errors (SQLITE_FULL, SQLITE_IOERR) already rolled the transaction back.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return  # cancelled: nobody waits for the outcome
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class DbThread:
    """A connection to ``<data_dir>/sluicegate.db`` that lives on its own thread."""

    def __init__(self, data_dir: Path, name: str) -> None:
        self.data_dir = data_dir
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._conn: sqlite3.Connection | None = None

    def _serve(self) -> None:
        jobs = self._jobs
        while (job := jobs.get()) is not None:
            work, deliver, loop = job
            try:
                result, error = work(), None
            except BaseException as exc:  # noqa: BLE001 - every failure goes to the loop
                result, error = None, exc
            with suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(deliver, result, error)
            # Nothing of a finished job stays alive while the thread waits for the next.
            del job, work, deliver, loop, result, error

    def _start(
        self, work: Callable[[], T], deliver: Callable[[T, BaseException | None], None]
    ) -> None:
        if self._stopping:
            # The thread has been told to end: a job queued now would never be answered.
            raise StorageUnavailable(f"the {self.name} connection is closed")
        if self._thread is None:
            # Daemon: an interpreter that exits without close() must not hang on us.
            # Whatever the thread was doing then is a transaction SQLite rolls back.
            self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
            self._thread.start()
        self._jobs.put((work, deliver, asyncio.get_running_loop()))

    def _future(self, work: Callable[[], T]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._start(work, partial(_settle, future))
        return future

    def _connect(self, database: Path, pragmas: tuple[str, ...]) -> None:
        try:
            conn = sqlite3.connect(database, isolation_level=None)
        except sqlite3.Error as exc:
            raise translate(exc, self.data_dir, opening=True) from exc
        try:
            for pragma in pragmas:
                conn.execute(pragma)
        except sqlite3.Error as exc:
            conn.close()
            raise translate(exc, self.data_dir, opening=True) from exc
        self._conn = conn

    async def open(self, database: Path, pragmas: tuple[str, ...]) -> None:
        """Connect and apply ``pragmas`` on the connection's thread."""
        await self.call_raw(lambda: self._connect(database, pragmas))

    def _guarded(
        self,
        opening: bool,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Callable[[], T]:
        def work() -> T:
            conn = self._conn
            if conn is None:
                raise StorageUnavailable(f"the {self.name} connection is closed")
            try:
                return fn(conn, *args, **kwargs)
            except sqlite3.Error as exc:
                raise translate(exc, self.data_dir, opening=opening) from exc

        return work

    def submit_then(
        self,
        done: Callable[[BaseException | None], None],
        fn: Callable[[sqlite3.Connection], None],
    ) -> None:
        """Queue ``fn(conn)`` for the thread; ``done(error)`` runs on the loop afterwards.

        ``error`` is ``None`` on success, else the (translated) exception. ``done`` is
        called straight from the loop's wake-up, with no future or task in between: the
        storage writer settles topic changes and retention from there.
        """
        self._start(self._guarded(False, fn), lambda _, error: done(error))

    async def call(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(conn, ...)`` on the thread and await its result."""
        return await self._future(self._guarded(False, fn, *args, **kwargs))

    async def call_opening(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Like ``call``, but a busy database means another server holds the directory."""
        return await self._future(self._guarded(True, fn, *args, **kwargs))

    async def call_raw(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the thread, for work that is not a query (locks, connecting)."""
        return await self._future(fn)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def close(self, then: Callable[[], None] | None = None) -> None:
        """Close the connection on its thread, run ``then`` there, and let the thread end."""
        if self._stopping:
            # Closed already: the connection is gone and so is the thread.
            if then is not None:
                then()
            return
        try:
            await self.call_raw(self._disconnect)
        finally:
            try:
                if then is not None:
                    await self.call_raw(then)
            finally:
                self._stopping = True
                self._jobs.put(None)
