"""The data directory: created on first use, and held by one server at a time."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sluicegate.errors import DataDirectoryError

__all__ = ["DATABASE_FILE", "LOCK_FILE", "DirectoryLock"]

DATABASE_FILE = "sluicegate.db"
LOCK_FILE = "LOCK"


class DirectoryLock:
    """An exclusive ``flock`` on ``<data_dir>/LOCK``, held while a log runs.

    SQLite's own locks would let a second server open the database and interleave its
    writes with ours; offsets are assigned from an in-memory cache, so that must never
    happen. ``flock`` is released by the kernel if the process dies, so a crash never
    leaves a stale lock behind.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._fd: int | None = None

    def acquire(self) -> None:
        """Create the directory if needed and lock it, or raise ``DataDirectoryError``."""
        where = self.data_dir
        if where.exists() and not where.is_dir():
            raise DataDirectoryError(
                f"data directory {where} exists but is not a directory", data_dir=str(where)
            )
        try:
            where.mkdir(parents=True, exist_ok=True)
            fd = os.open(where / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DataDirectoryError(
                f"cannot use data directory {where}: {exc.strerror}", data_dir=str(where)
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise DataDirectoryError(
                f"another sluicegate server holds {where}", data_dir=str(where)
            ) from exc
        if not os.access(where, os.W_OK | os.X_OK):
            os.close(fd)
            raise DataDirectoryError(f"data directory {where} is not writable")
        # The pid tells an operator who holds the directory; the lock itself is the flock.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def fileno(self) -> int:
        """The locked descriptor; a child process that inherits it shares the lock."""
        if self._fd is None:
            raise RuntimeError("the directory is not locked")
        return self._fd

    def release(self) -> None:
        """Unlock (closing the descriptor releases the flock); a no-op if not held."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
