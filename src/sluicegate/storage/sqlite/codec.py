"""Chunks: how consecutive records of one partition are laid out in one row.

A chunk is the records one commit appended to one partition, cut at ``CHUNK_RECORDS``
records or ``CHUNK_BYTES`` bytes so that a reader never decodes much more than it
returns. Every record in a chunk shares the chunk's log-append timestamp. The payload is
a msgpack array of ``[key, value, headers]`` with headers an array of ``[name, bytes]``
pairs, so order and duplicates survive.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

import msgspec

from sluicegate.core.records import Header, NewRecord

__all__ = [
    "CHUNK_BYTES",
    "CHUNK_RECORDS",
    "ChunkRow",
    "StoredRecord",
    "chunk_length",
    "chunk_rows",
    "decode_chunk",
    "decode_record",
    "decode_records",
    "record_size",
    "split_chunk",
]

CHUNK_RECORDS = 128
CHUNK_BYTES = 256 * 1024

#: (topic_id, partition, base_offset, end_offset, ts, bytes, records): a ``chunks`` row.
ChunkRow = tuple[int, int, int, int, int, int, bytes]

#: A record as stored: key, value, headers.
StoredRecord = tuple[bytes | None, bytes | None, tuple[Header, ...]]

_encode = msgspec.msgpack.Encoder().encode
_stored = attrgetter("key", "value", "headers")
_known_size = attrgetter("known_size")
# Splitting into Raw slices costs no allocation per field, so a read that starts in the
# middle of a chunk decodes only the records it returns.
split_chunk = msgspec.msgpack.Decoder(list[msgspec.Raw]).decode
decode_record = msgspec.msgpack.Decoder(StoredRecord).decode
_decode_records = msgspec.msgpack.Decoder(list[StoredRecord]).decode


#: Every record of a chunk in one call: a read that takes a chunk whole (a consumer
#: going through a backlog, nearly always) neither splits it nor joins the slices again.
decode_chunk = _decode_records


def chunk_length(payload: bytes) -> int:
    """How many records the chunk ``payload`` holds, from its msgpack array header."""
    head = payload[0]
    if head & 0xF0 == 0x90:  # fixarray
        return head & 0x0F
    if head == 0xDC:  # array 16
        return int.from_bytes(payload[1:3], "big")
    if head == 0xDD:  # array 32
        return int.from_bytes(payload[1:5], "big")
    raise ValueError(f"a chunk is a msgpack array, not one that starts with {head:#x}")


def decode_records(raws: Sequence[msgspec.Raw]) -> list[StoredRecord]:
    """Records split out of a chunk (``split_chunk``), decoded in one call."""
    # A msgpack array is its length (fixarray up to 15, else array 16) and its elements
    # end to end: the slices become one array again without decoding any of them.
    count = len(raws)
    head = bytes((0x90 | count,)) if count < 16 else b"\xdc" + count.to_bytes(2, "big")
    return _decode_records(head + b"".join(raws))


def record_size(key: bytes | None, value: bytes | None, headers: Sequence[Header]) -> int:
    """Bytes of key, value and headers, as ``NewRecord.size`` counts them."""
    size = (0 if key is None else len(key)) + (0 if value is None else len(value))
    if headers:
        size += sum(len(name) + len(data) for name, data in headers)
    return size


def chunk_rows(
    topic_id: int, partition: int, base: int, ts: int, records: Sequence[NewRecord]
) -> list[ChunkRow]:
    """Rows holding ``records`` at offsets ``base``, ``base + 1``, ..."""
    # This runs for every record appended. Records that carry their size (``NewRecord.
    # known_size``) are taken a run at a time: their stored tuples and their bytes in C
    # (``map``, ``sum``), and a run of ``CHUNK_RECORDS`` within ``CHUNK_BYTES`` is exactly
    # the chunk the record-by-record cut makes. Counting bytes header by header costs
    # about the same in C as in the loop (callgrind), so records without their size, and
    # a run over the byte limit, take the record-by-record cut from there on.
    rows: list[ChunkRow] = []
    count = len(records)
    at = 0
    while at < count:
        end = min(at + CHUNK_RECORDS, count)
        run = records[at:end]
        sizes = list(map(_known_size, run))
        if None in sizes or (total := sum(sizes)) > CHUNK_BYTES:
            rows += _rows_by_record(topic_id, partition, base + at, ts, records[at:])
            break
        stored = list(map(_stored, run))
        rows.append((topic_id, partition, base + at, base + end, ts, total, _encode(stored)))
        at = end
    return rows


def _rows_by_record(
    topic_id: int, partition: int, base: int, ts: int, records: Sequence[NewRecord]
) -> list[ChunkRow]:
    """``chunk_rows`` one record at a time: the byte limit checked before each record."""
    rows: list[ChunkRow] = []
    stored: list[tuple[bytes | None, bytes | None, Sequence[Header]]] = []
    total = 0
    for record in records:
        key, value, headers = record.key, record.value, record.headers
        size = record.known_size
        if size is None:
            size = (0 if key is None else len(key)) + (0 if value is None else len(value))
            for name, data in headers:
                size += len(name) + len(data)
        if stored and (len(stored) >= CHUNK_RECORDS or total + size > CHUNK_BYTES):
            end = base + len(stored)
            rows.append((topic_id, partition, base, end, ts, total, _encode(stored)))
            base, stored, total = end, [], 0
        stored.append((key, value, headers))
        total += size
    if stored:
        rows.append((topic_id, partition, base, base + len(stored), ts, total, _encode(stored)))
    return rows
