"""Retention: drop a topic's oldest records by age (retention_ms) and size (retention_bytes).

Deletion is whole chunks; the low watermark moves to the exact record, as Kafka's
``DeleteRecords`` does, and readers never see records below it. Time retention is exact
at chunk granularity because all records of a chunk share a timestamp. Size retention
keeps the newest records whose sizes sum to at most retention_bytes, decoding only the
one chunk where that boundary falls.
"""

from __future__ import annotations

import sqlite3

from sluicegate.storage.sqlite.catalog import Catalog, PartitionState, TopicState
from sluicegate.storage.sqlite.codec import decode_record, record_size, split_chunk
from sluicegate.storage.sqlite.writer import Exclusive

__all__ = ["EnforceRetention"]


def _time_cut(conn: sqlite3.Connection, p: PartitionState, cutoff: int) -> int:
    row = conn.execute(
        "SELECT end_offset FROM chunks WHERE topic_id = ? AND partition = ? AND ts < ?"
        " ORDER BY ts DESC, end_offset DESC LIMIT 1",
        (p.topic_id, p.index, cutoff),
    ).fetchone()
    return p.low if row is None else max(p.low, int(row[0]))


def _size_cut(conn: sqlite3.Connection, p: PartitionState, low: int, limit: int) -> int:
    cursor = conn.execute(
        "SELECT base_offset, end_offset, bytes FROM chunks"
        " WHERE topic_id = ? AND partition = ? AND end_offset > ? ORDER BY end_offset DESC",
        (p.topic_id, p.index, low),
    )
    try:
        kept = 0
        for base, end, size in cursor:
            if kept + size <= limit:
                kept += size
                continue
            # The boundary is in this chunk: count its records newest first, from ``low``.
            (records,) = conn.execute(
                "SELECT records FROM chunks WHERE topic_id = ? AND partition = ?"
                " AND end_offset = ?",
                (p.topic_id, p.index, end),
            ).fetchone()
            raws = split_chunk(records)
            cut: int = end
            for offset in range(end - 1, max(base, low) - 1, -1):
                key, value, headers = decode_record(raws[offset - base])
                kept += record_size(key, value, headers)
                if kept > limit:
                    break
                cut = offset
            return cut
        return low
    finally:
        cursor.close()


class EnforceRetention(Exclusive[None]):
    """Apply one topic's retention as of ``now`` (µs)."""

    def __init__(self, catalog: Catalog, topic_id: int, now: int) -> None:
        self._catalog = catalog
        self._topic_id = topic_id
        self._now = now
        self._state: TopicState | None = None
        self._cuts: list[tuple[PartitionState, int]] = []

    def plan(self) -> bool:
        # The topic may have been deleted or changed since this pass was queued.
        self._state = self._catalog.by_id.get(self._topic_id)
        return self._state is not None and (
            self._state.topic.retention_ms is not None
            or self._state.topic.retention_bytes is not None
        )

    def work(self, conn: sqlite3.Connection) -> None:
        assert self._state is not None  # plan() said there is work
        topic = self._state.topic
        for p in self._state.partitions:
            if p.low == p.high:
                continue
            low = p.low
            if topic.retention_ms is not None:
                low = _time_cut(conn, p, self._now - topic.retention_ms * 1000)
            if topic.retention_bytes is not None:
                low = _size_cut(conn, p, low, topic.retention_bytes)
            if low > p.low:
                self._cuts.append((p, low))
        conn.executemany(
            "DELETE FROM chunks WHERE topic_id = ? AND partition = ? AND end_offset <= ?",
            [(p.topic_id, p.index, low) for p, low in self._cuts],
        )
        conn.executemany(
            "UPDATE partitions SET log_start_offset = ? WHERE topic_id = ? AND partition = ?",
            [(low, p.topic_id, p.index) for p, low in self._cuts],
        )

    def apply(self) -> None:
        for p, low in self._cuts:
            p.low = low
