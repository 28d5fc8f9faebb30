"""Group commits in a process of their own, so that no fsync waits for the loop's GIL.

A writer thread needs the GIL to start each transaction and again after its fsync, and
a busy event loop holds it until it runs out of work: the commit then starts only when
every connection is already waiting for it, and the fsync never overlaps the loop's
work (``docs/design-notes.md``). This process has an interpreter, and a GIL, of its own.

The server sends it each group commit as one frame: a little-endian ``u32`` length and a
msgpack ``[job, statements]``, where a statement is ``[sql, params, many]``. It runs them
as one transaction (a single ``INSERT`` in autocommit mode, as the thread writer does)
and answers ``[job, error]``: ``None``, or ``[sqlite error code, error name, message]``
so that the server translates it as it would its own sqlite3 error.

Its lifetime is the server's: it holds the data directory's ``flock`` through an
inherited descriptor (a restarted server cannot open the directory while it still
commits), asks the kernel to kill it when the server dies, and ends when its input does.
It ignores SIGINT and SIGTERM: a signal to the whole job (Ctrl-C in a terminal) reaches
it too, and the server's graceful shutdown still commits through it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from sluicegate.errors import SluicegateError, StorageError, StorageTimeout, StorageUnavailable
from sluicegate.storage.pipes import FRAME_LENGTH, PipeClosed, wide_pipe
from sluicegate.storage.sqlite.connection import transaction
from sluicegate.storage.sqlite.errors import translate

__all__ = ["CommitProcess", "Statement", "run_statements"]

#: ``(sql, parameters, many)``: ``executemany`` with a list of rows when ``many``.
Statement = tuple[str, Sequence[Any], bool]


def run_statements(conn: sqlite3.Connection, statements: Sequence[Statement]) -> None:
    """One transaction: a lone single-row statement in autocommit mode, else BEGIN..COMMIT."""
    if len(statements) == 1 and not statements[0][2]:
        sql, params, _ = statements[0]
        conn.execute(sql, params)
        return
    with transaction(conn):
        for sql, params, many in statements:
            if many:
                conn.executemany(sql, params)
            else:
                conn.execute(sql, params)


def _error(data_dir: Path, reply: Sequence[Any]) -> SluicegateError:
    code, name, message = reply
    if code < 0:
        return StorageError(f"the commit process failed: {name}: {message}")
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code
    exc.sqlite_errorname = name
    error = translate(exc, data_dir, opening=False)
    error.__cause__ = exc
    return error


class CommitProcess:
    """The server's side: start the process, send it commits, hand back their outcomes."""

    def __init__(self, data_dir: Path, database: Path, lock_fd: int, pragmas: Sequence[str]):
        self.data_dir = data_dir
        self._database = database
        self._lock_fd = lock_fd
        self._pragmas = tuple(pragmas)
        self._process: asyncio.subprocess.Process | None = None
        #: The pipe to the process's standard input, and what is set when it has closed.
        self._input: asyncio.WriteTransport | None = None
        self._input_closed: asyncio.Future[None] | None = None
        self._pending: dict[int, Callable[[BaseException | None], None]] = {}
        self._jobs = 0
        self._gone: str | None = None
        self._encode_into = msgspec.msgpack.Encoder().encode_into
        self._decode = msgspec.msgpack.Decoder(tuple[int, list[Any] | None]).decode

    async def start(self) -> None:
        read_fd, write_fd = wide_pipe()
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sluicegate.storage.sqlite.commit_worker",
                str(self._database),
                str(os.getpid()),
                *self._pragmas,
                stdin=read_fd,
                stdout=asyncio.subprocess.PIPE,
                pass_fds=(self._lock_fd,),
            )
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)  # the process has its own copy
        loop = asyncio.get_running_loop()
        closed = self._input_closed = loop.create_future()
        # The transport owns the file from here and closes it.
        pipe = os.fdopen(write_fd, "wb", buffering=0)
        self._input, _ = await loop.connect_write_pipe(lambda: PipeClosed(closed), pipe)

    def submit(
        self, statements: Sequence[Statement], done: Callable[[BaseException | None], None]
    ) -> None:
        """Send one group commit; ``done(error)`` runs on the loop when it has committed."""
        pipe = self._input
        if self._gone is not None or pipe is None:
            raise StorageUnavailable(self._gone or "the commit process is not running")
        if pipe.is_closing():  # it died; ``run`` has not read its end yet
            raise StorageUnavailable("the commit process's input closed")
        self._jobs += 1
        # Encoded behind room for its length: a group commit's frame can be megabytes,
        # and prefixing the length afterwards would copy all of it once more.
        frame = bytearray(FRAME_LENGTH.size)
        self._encode_into([self._jobs, statements], frame, FRAME_LENGTH.size)
        FRAME_LENGTH.pack_into(frame, 0, len(frame) - FRAME_LENGTH.size)
        pipe.write(frame)
        self._pending[self._jobs] = done

    async def run(self) -> None:
        """Read the process's answers until it ends; raise if it ends on its own."""
        process = self._process
        if process is None or process.stdout is None:
            raise RuntimeError("CommitProcess.run() before start()")
        stdout = process.stdout
        try:
            while True:
                try:
                    head = await stdout.readexactly(FRAME_LENGTH.size)
                    body = await stdout.readexactly(FRAME_LENGTH.unpack(head)[0])
                except asyncio.IncompleteReadError:
                    break
                job, error = self._decode(body)
                done = self._pending.pop(job)
                done(None if error is None else _error(self.data_dir, error))
            code = await process.wait()
            closed = self._gone is not None
            self._fail_pending(f"the commit process exited with status {code}")
            if not closed:
                raise StorageError(f"the commit process exited with status {code}")
        finally:
            self._fail_pending("the commit process is gone")

    def _fail_pending(self, why: str) -> None:
        """Refuse new commits from now on, and answer the ones the process took.

        A commit sent but not answered may have been committed before the process
        ended (its answer lost with it), so its outcome is unknown: a 408, stored whole
        or not at all, as the writer answers an append it cannot confirm in time.
        """
        self._gone = self._gone or why
        pending, self._pending = self._pending, {}
        for done in pending.values():
            error = StorageTimeout(f"{why} before confirming the write: stored whole or not at all")
            error.__cause__ = StorageUnavailable(why)  # the reason, without this write's fate
            done(error)

    async def close(self) -> None:
        """End the process's input and wait for it to exit (after its last commit)."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        self._gone = self._gone or "the commit process was closed"
        if self._input is not None and self._input_closed is not None:
            self._input.close()  # after what it still holds: the process commits that too
            await self._input_closed
        await process.wait()
