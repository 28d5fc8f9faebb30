"""Queries that only read, run on the reader connections' threads.

Each read is bounded by the high watermark the caller saw in the catalog, so it never
returns a record whose commit the loop has not yet acknowledged, and it closes its
cursor before returning: an open statement would pin a WAL snapshot and stop
checkpoints.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator

from sluicegate.core.records import Record
from sluicegate.errors import OffsetOutOfRange
from sluicegate.storage.sqlite.codec import (
    chunk_length,
    decode_chunk,
    decode_record,
    decode_records,
    record_size,
    split_chunk,
)
from sluicegate.storage.sqlite.connection import DbThread
from sluicegate.storage.sqlite.recent import StoredChunk

__all__ = [
    "ReaderPool",
    "chunk_records",
    "committed_offsets",
    "first_offset_at",
    "read_records",
]


class ReaderPool:
    """Reader connections, used in turn; WAL lets them read while the writer commits."""

    def __init__(self, readers: list[DbThread]) -> None:
        self.readers = readers
        self._turns: Iterator[DbThread] = itertools.cycle(readers)

    def next(self) -> DbThread:
        """The reader whose turn it is."""
        return next(self._turns)


def read_records(
    conn: sqlite3.Connection,
    topic: str,
    topic_id: int,
    partition: int,
    offset: int,
    high: int,
    max_records: int,
    max_bytes: int,
) -> list[Record]:
    """Records in [offset, high), at most ``max_records`` and, past the first, ``max_bytes``."""
    cursor = conn.execute(
        "SELECT base_offset, ts, bytes, records FROM chunks"
        " WHERE topic_id = ? AND partition = ? AND end_offset > ? ORDER BY end_offset",
        (topic_id, partition, offset),
    )
    try:
        return chunk_records(cursor, topic, partition, offset, high, max_records, max_bytes)
    finally:
        cursor.close()


def chunk_records(
    chunks: Iterable[StoredChunk],
    topic: str,
    partition: int,
    offset: int,
    high: int,
    max_records: int,
    max_bytes: int,
) -> list[Record]:
    """``read_records`` over ``chunks``: a partition's chunks from the one holding ``offset``."""
    out: list[Record] = []
    # Bytes of the records in ``out``; while ``whole`` holds, of the whole chunks they came
    # from, which is at least as much.
    total = 0
    whole = False
    for base, ts, size, payload in chunks:
        if offset >= high or len(out) >= max_records:
            return out
        if base > offset:
            raise _deleted_meanwhile(topic, partition, offset)
        length = chunk_length(payload)
        start = offset - base
        stop = min(length, start + max_records - len(out), start + high - offset)
        if total + size <= max_bytes:
            # The whole chunk fits in what is left, so any run of it does: no record
            # needs measuring, and the run is decoded in one call, the chunk as it is
            # when the run is all of it.
            if start == 0 and stop == length:
                records = decode_chunk(payload)
            else:
                records = decode_records(split_chunk(payload)[start:stop])
            out += [
                Record(topic, partition, at, ts, key, value, headers)
                for at, (key, value, headers) in enumerate(records, offset)
            ]
            offset += len(records)
            total += size
            whole = True
            continue
        if whole:
            total, whole = sum(record.size() for record in out), False
        raws = split_chunk(payload)
        for position in range(start, stop):
            key, value, headers = decode_record(raws[position])
            record_bytes = record_size(key, value, headers)
            if out and total + record_bytes > max_bytes:
                return out
            total += record_bytes
            out.append(Record(topic, partition, offset, ts, key, value, headers))
            offset += 1
    if not out and offset < high:
        raise _deleted_meanwhile(topic, partition, offset)
    return out


def _deleted_meanwhile(topic: str, partition: int, offset: int) -> OffsetOutOfRange:
    # Retention, a purge or a topic deletion committed between the caller's look at the
    # low watermark and this query.
    return OffsetOutOfRange(
        f"offset {offset} of {topic}/{partition} was deleted while it was being read",
        topic=topic,
        partition=partition,
        offset=offset,
    )


def first_offset_at(
    conn: sqlite3.Connection, topic_id: int, partition: int, timestamp: int
) -> int | None:
    """Base offset of the first chunk stamped at or after ``timestamp``, if any."""
    row = conn.execute(
        "SELECT base_offset FROM chunks WHERE topic_id = ? AND partition = ? AND ts >= ?"
        " ORDER BY ts, end_offset LIMIT 1",
        (topic_id, partition, timestamp),
    ).fetchone()
    return None if row is None else int(row[0])


def committed_offsets(conn: sqlite3.Connection, group: str, topic_id: int) -> dict[int, int]:
    """The group's committed next offsets on one topic, by partition."""
    return dict(
        conn.execute(
            "SELECT partition, next_offset FROM group_offsets"
            " WHERE group_name = ? AND topic_id = ?",
            (group, topic_id),
        ).fetchall()
    )
