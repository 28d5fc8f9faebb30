"""Chunk rows: the run-at-a-time cut equals the record-by-record one."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.core.records import NewRecord
from sluicegate.storage.sqlite.codec import (
    CHUNK_BYTES,
    CHUNK_RECORDS,
    _rows_by_record,
    chunk_rows,
    decode_records,
    split_chunk,
)

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
