"""The schema, versioned with ``PRAGMA user_version``: steps applied in order, never edited.

Records are stored in *chunks*: consecutive records of one partition appended in one
commit, with one log-append timestamp (see ``codec``). Kafka stores record batches for
the same reason we do: a row per record costs a parameter binding per column per record,
which caps a durable SQLite log near 170k records/s on a small machine
(``bench/storage_append.py`` measures that floor as its baseline).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sluicegate.errors import DataDirectoryError
from sluicegate.storage.sqlite.connection import transaction

__all__ = ["MIGRATIONS", "migrate"]

_V1 = (
    """
    CREATE TABLE topics (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids are never reused
        name TEXT NOT NULL UNIQUE,
        partitions INTEGER NOT NULL,
        retention_ms INTEGER,
        retention_bytes INTEGER,
        config TEXT NOT NULL,                  -- JSON object
        created_at INTEGER NOT NULL,           -- microseconds since the epoch
        updated_at INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE partitions (
        topic_id INTEGER NOT NULL,
        partition INTEGER NOT NULL,
        -- The low watermark. It also keeps the high watermark of an emptied partition:
        -- high = max(last end_offset, log_start_offset).
        log_start_offset INTEGER NOT NULL,
        PRIMARY KEY (topic_id, partition)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY,
        topic_id INTEGER NOT NULL,
        partition INTEGER NOT NULL,
        base_offset INTEGER NOT NULL,
        end_offset INTEGER NOT NULL,           -- exclusive: base_offset + record count
        ts INTEGER NOT NULL,                   -- log-append time of every record, µs
        bytes INTEGER NOT NULL,                -- sum of the records' sizes (retention.bytes)
        records BLOB NOT NULL                  -- msgpack [[key, value, headers], ...]
    )
    """,
    # Reads find the chunk holding an offset as the first with end_offset > offset.
    "CREATE UNIQUE INDEX chunks_by_offset ON chunks (topic_id, partition, end_offset)",
    # offset_for_time and time retention; end_offset breaks ties in timestamp order.
    "CREATE INDEX chunks_by_time ON chunks (topic_id, partition, ts, end_offset)",
    """
    CREATE TABLE group_offsets (
        group_name TEXT NOT NULL,
        topic_id INTEGER NOT NULL,
        partition INTEGER NOT NULL,
        next_offset INTEGER NOT NULL,
        committed_at INTEGER NOT NULL,
        PRIMARY KEY (group_name, topic_id, partition)
    ) WITHOUT ROWID
    """,
)

#: Step ``i`` takes the schema from version ``i`` to ``i + 1``.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1,)


def migrate(conn: sqlite3.Connection, db: Path) -> int:
    """Bring the database to the newest version in one transaction; return that version."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    newest = len(MIGRATIONS)
    if version > newest:
        raise DataDirectoryError(
            f"{db} has schema version {version} but this sluicegate knows only up to "
            f"{newest}: it was written by a newer sluicegate",
            schema_version=version,
        )
    if version == newest:
        return version
    with transaction(conn):
        for step in MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        # user_version lives in the database header, so it commits with the schema.
        conn.execute(f"PRAGMA user_version = {newest}")
    return newest
