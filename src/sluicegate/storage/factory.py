"""Open the configured storage backend."""

from __future__ import annotations

from sluicegate.config import StorageSettings
from sluicegate.storage.base import CommitObserver, Log

__all__ = ["open_log"]


def open_log(settings: StorageSettings, *, observe_commit: CommitObserver | None = None) -> Log:
    """A log for ``settings.backend``; not yet running (see ``Log.run``)."""
    from sluicegate.storage.sqlite import SqliteLog

    return SqliteLog(
        settings.data_dir,
        max_pending_appends=settings.max_pending_appends,
        max_commit_records=settings.max_commit_records,
        append_timeout=settings.append_timeout,
        retention_interval=settings.retention_interval,
        wal_size_limit=settings.wal_size_limit,
        observe_commit=observe_commit,
    )
