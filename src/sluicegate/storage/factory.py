"""Open the configured storage backend."""

from __future__ import annotations

from sluicegate.config import Settings
from sluicegate.storage.base import CommitObserver, Log

__all__ = ["open_log"]


def open_log(settings: Settings, *, observe_commit: CommitObserver | None = None) -> Log:
    """A log for ``settings.storage.backend``; not yet running (see ``Log.run``)."""
    storage = settings.storage
    if storage.backend == "kafka":
        # Imported here: the embedded backend must not need librdkafka installed.
        from sluicegate.storage.kafka import KafkaLog

        return KafkaLog(
            settings.kafka,
            node_id=settings.server.node_id,
            append_timeout=storage.append_timeout,
            max_pending_appends=storage.max_pending_appends,
            observe_commit=observe_commit,
        )
    from sluicegate.storage.sqlite import SqliteLog

    return SqliteLog(
        storage.data_dir,
        max_pending_appends=storage.max_pending_appends,
        max_commit_records=storage.max_commit_records,
        append_timeout=storage.append_timeout,
        retention_interval=storage.retention_interval,
        wal_size_limit=storage.wal_size_limit,
        observe_commit=observe_commit,
    )
