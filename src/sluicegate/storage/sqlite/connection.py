"""One sqlite3 connection and the one thread allowed to use it.

sqlite3 calls block, so none may run on the event loop. Each connection gets its own
single-thread executor: its calls run in order, never two at once, and the loop only
awaits their results. The thread holds no lock of ours, so a slow read never delays the
writer and the writer's fsync never delays the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from sluicegate.errors import StorageUnavailable
from sluicegate.storage.sqlite.errors import translate

__all__ = ["DbThread", "transaction"]

P = ParamSpec("P")
T = TypeVar("T")


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


class DbThread:
    """A connection to ``<data_dir>/sluicegate.db`` that lives on its own thread."""

    def __init__(self, data_dir: Path, name: str) -> None:
        self.data_dir = data_dir
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None

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

    def _guarded(self, work: Callable[[sqlite3.Connection], T], opening: bool) -> T:
        conn = self._conn
        if conn is None:
            raise StorageUnavailable(f"the {self.name} connection is closed")
        try:
            return work(conn)
        except sqlite3.Error as exc:
            raise translate(exc, self.data_dir, opening=opening) from exc

    def _submit(
        self,
        opening: bool,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Future[T]:
        def work(conn: sqlite3.Connection) -> T:
            return fn(conn, *args, **kwargs)

        return self._executor.submit(self._guarded, work, opening)

    def submit(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Future[T]:
        """Schedule ``fn(conn, ...)`` on the thread; sqlite3 errors come back translated."""
        return self._submit(False, fn, *args, **kwargs)

    async def call(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn(conn, ...)`` on the thread and await its result."""
        return await asyncio.wrap_future(self._submit(False, fn, *args, **kwargs))

    async def call_opening(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Like ``call``, but a busy database means another server holds the directory."""
        return await asyncio.wrap_future(self._submit(True, fn, *args, **kwargs))

    async def call_raw(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the thread, for work that is not a query (locks, connecting)."""
        return await asyncio.wrap_future(self._executor.submit(fn))

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def close(self, then: Callable[[], None] | None = None) -> None:
        """Close the connection on its thread, run ``then`` there, and let the thread end."""
        try:
            await self.call_raw(self._disconnect)
        finally:
            try:
                if then is not None:
                    await self.call_raw(then)
            finally:
                self._executor.shutdown(wait=False)
