"""The data directory: created on first use, and held by one server at a time."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from sluicegate.errors import DataDirectoryError

__all__ = ["DATABASE_FILE", "LOCK_FILE", "DirectoryLock"]

DATABASE_FILE = "sluicegate.db"
LOCK_FILE = "LOCK"


#: How long to wait for the lock when the server that holds it has exited (seconds).
ORPHAN_GRACE = 10.0


def _recorded_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process; a zombie (dead, not yet reaped) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # The state follows the parenthesised command name, which may hold spaces.
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: alive as far as we can tell
    return state not in {"Z", "X"}


def _lock(fd: int, where: Path) -> None:
    """Take the flock on ``fd``, waiting a little if its holder is an exited server's child.

    A server's commit process inherits the lock and dies with the server, but not in the
    same instant: a server restarted right after a kill -9 can find the lock still held
    by the old server's dying child. Then the pid in the file is no longer running,
    and the lock is worth waiting for; a running pid means another server, refused at once.
    """
    deadline = time.monotonic() + ORPHAN_GRACE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError as exc:
            holder = _recorded_pid(fd)
            if holder is None or holder == os.getpid() or _running(holder):
                raise DataDirectoryError(
                    f"another sluicegate server holds {where}", data_dir=str(where)
                ) from exc
            if time.monotonic() >= deadline:
                raise DataDirectoryError(
                    f"{where} is still locked {ORPHAN_GRACE:g}s after its server (pid "
                    f"{holder}) exited: a process it started holds the lock",
                    data_dir=str(where),
                ) from exc
        time.sleep(0.05)


class DirectoryLock:
    """An exclusive ``flock`` on ``<data_dir>/LOCK``, held while a log runs.

    SQLite's own locks would let a second server open the database and interleave its
    writes with ours; offsets are assigned from an in-memory cache, so that must never
    happen. ``flock`` is released by the kernel once every process that shares it has
    exited (the server and its commit process), so a crash never leaves a stale lock.
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
            _lock(fd, where)
        except BaseException:
            os.close(fd)
            raise
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
