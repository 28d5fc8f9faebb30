"""Chunk rows: the run-at-a-time cut equals the record-by-record one; chunks read whole
or in part give the same records."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.core.records import NewRecord
from sluicegate.storage.sqlite.codec import (
    CHUNK_BYTES,
    CHUNK_RECORDS,
    _rows_by_record,
    chunk_length,
    chunk_rows,
    decode_chunk,
    decode_record,
    decode_records,
    split_chunk,
)
from sluicegate.storage.sqlite.reads import chunk_records

_small = st.one_of(st.none(), st.binary(max_size=40))
_header = st.tuples(st.text(max_size=12), st.binary(max_size=20))
_record = st.builds(
    NewRecord,
    topic=st.just("t"),
    partition=st.just(0),
    key=_small,
    value=st.one_of(
        _small,
        # Now and then a value large enough that a run goes over the byte limit.
        st.integers(CHUNK_BYTES // 8, CHUNK_BYTES + 10).map(lambda n: b"v" * n),
    ),
    headers=st.one_of(st.lists(_header, max_size=4), st.lists(_header, max_size=4).map(tuple)),
)


@settings(max_examples=100, deadline=None)
@given(
    records=st.one_of(
        st.lists(_record, max_size=30),
        # Many small records: several full runs of CHUNK_RECORDS.
        st.lists(_record.filter(lambda r: r.size() < 1000), min_size=100, max_size=400),
    ),
    base=st.integers(0, 10**12),
)
def test_chunk_rows_equals_the_record_by_record_cut(records: list[NewRecord], base: int) -> None:
    expected = _rows_by_record(7, 3, base, 1234, records)
    assert chunk_rows(7, 3, base, 1234, records) == expected
    # Records that carry their size give the same rows, with or without counting.
    sized = [msgspec.structs.replace(r, known_size=r.size()) for r in records]
    assert chunk_rows(7, 3, base, 1234, sized) == expected
    assert _rows_by_record(7, 3, base, 1234, sized) == expected


def test_chunk_rows_cut_by_count_then_bytes_and_round_trip() -> None:
    small = [NewRecord("t", 0, b"k", b"x" * 10, (("h", b"1"),)) for _ in range(CHUNK_RECORDS + 5)]
    big = [NewRecord("t", 0, None, b"y" * (CHUNK_BYTES // 2 + 1)) for _ in range(3)]
    rows = chunk_rows(1, 0, 10, 99, small + big + small[:2])
    spans = [(row[2], row[3]) for row in rows]
    last = 10 + CHUNK_RECORDS
    assert spans == [
        (10, last),
        (last, last + 6),  # 5 small and the first big one
        (last + 6, last + 7),
        (last + 7, last + 10),  # the third big one and the 2 small
    ]
    assert rows[0][5] == CHUNK_RECORDS * 13
    stored = [r for row in rows for r in decode_records(split_chunk(row[6]))]
    expected = small + big + small[:2]
    assert [(k, v, tuple(h)) for k, v, h in stored] == [
        (r.key, r.value, tuple(r.headers)) for r in expected
    ]


@pytest.mark.parametrize("count", [0, 1, 15, 16, CHUNK_RECORDS, 70_000])
def test_a_chunk_says_how_many_records_it_holds(count: int) -> None:
    payload = msgspec.msgpack.encode([(None, b"v", ())] * count)
    assert chunk_length(payload) == count == len(decode_chunk(payload))


def test_a_payload_that_is_no_msgpack_array_has_no_length() -> None:
    with pytest.raises(ValueError, match="msgpack array"):
        chunk_length(msgspec.msgpack.encode({"a": 1}))


def _stored_chunks(count: int, per_chunk: int) -> list[tuple[int, int, int, bytes]]:
    records = [
        NewRecord("t", 0, b"k%d" % n, b"v" * (n % 7), (("ce_id", b"%d" % n),)) for n in range(count)
    ]
    chunks = []
    for base in range(0, count, per_chunk):
        run = records[base : base + per_chunk]
        payload = msgspec.msgpack.encode([(r.key, r.value, r.headers) for r in run])
        chunks.append((base, 1000 + base, sum(r.size() for r in run), payload))
    return chunks


@settings(max_examples=100, deadline=None)
@given(
    offset=st.integers(0, 49),
    high=st.integers(0, 50),
    max_records=st.integers(1, 60),
    max_bytes=st.sampled_from([10, 100, 1 << 20]),
)
def test_chunks_read_whole_or_in_part_give_each_record_as_stored(
    offset: int, high: int, max_records: int, max_bytes: int
) -> None:
    """Whole chunks are decoded as they are, parts of them sliced first: the records,
    offsets and bounds are those of decoding each record on its own."""
    chunks = _stored_chunks(50, 16)
    high = max(high, offset)
    first = next(n for n, chunk in enumerate(chunks) if chunk[0] + 16 > offset)
    read = chunk_records(chunks[first:], "t", 0, offset, high, max_records, max_bytes)
    each = [
        (base + n, ts, *decode_record(raw))
        for base, ts, _, payload in chunks
        for n, raw in enumerate(split_chunk(payload))
    ]
    expected = [r for r in each if offset <= r[0] < high][:max_records]
    assert [(r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in read] == [
        (at, ts, key, value, tuple(headers)) for at, ts, key, value, headers in expected
    ][: len(read)]
    assert len(read) == len(expected) or max_bytes < 1 << 20
    # Bounded by bytes, a read still takes its first record and stops only at the bound.
    if expected:
        assert read
    if len(read) < len(expected):
        _, _, key, value, headers = expected[len(read)]
        following = len(key or b"") + len(value or b"") + sum(len(n) + len(v) for n, v in headers)
        assert sum(r.size() for r in read) + following > max_bytes
