"""The embedded SQLite backend: one file, WAL, one group-committing writer."""

from sluicegate.storage.sqlite.log import SqliteLog

__all__ = ["SqliteLog"]
