"""Translate sqlite3 errors into sluicegate's hierarchy, at the storage boundary only.

The most specific case wins, and the original error stays reachable as ``__cause__``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sluicegate.errors import DataDirectoryError, SluicegateError, StorageError

__all__ = ["is_transient", "translate"]


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    # Extended result codes keep the primary code in their low byte.
    return None if code is None else code & 0xFF


def translate(exc: sqlite3.Error, data_dir: Path, *, opening: bool = False) -> SluicegateError:
    """The sluicegate error that says what ``exc`` means for an operator."""
    code = _primary_code(exc)
    db = data_dir / "sluicegate.db"
    if code == sqlite3.SQLITE_FULL:
        return StorageError(f"the disk holding {data_dir} is full: {exc}", data_dir=str(data_dir))
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) and opening:
        return DataDirectoryError(
            f"another sluicegate server holds {data_dir}", data_dir=str(data_dir)
        )
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return DataDirectoryError(
            f"{db} is corrupt or not a sluicegate database: {exc}", data_dir=str(data_dir)
        )
    if code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        return DataDirectoryError(f"cannot write {db}: {exc}", data_dir=str(data_dir))
    if code == sqlite3.SQLITE_IOERR:
        return StorageError(f"I/O error on {db}: {exc}", data_dir=str(data_dir))
    return StorageError(f"SQLite failed on {db}: {exc}", data_dir=str(data_dir))


def is_transient(error: BaseException) -> bool:
    """Whether the writer may go on after a transaction failed with ``error``.

    Only a full disk: space can come back, and SQLite rolls the transaction back
    cleanly. Anything else (I/O errors, corruption, a constraint our own bookkeeping
    should have made impossible) means the in-memory state can no longer be trusted.
    """
    cause = error.__cause__
    return isinstance(cause, sqlite3.Error) and _primary_code(cause) == sqlite3.SQLITE_FULL
