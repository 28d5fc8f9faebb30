"""The consumers' bulk renderer gives, byte for byte, what the general one gives."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.core.cloudevents.binding import (
    LITERALS_HEADER,
    PlainBatch,
    _uniform_events,
    decode_batch,
    from_structured,
    plain_records,
    structured_batch,
    structured_batch_of,
    structured_events,
    structured_json,
    to_record,
)
from sluicegate.core.records import Record

#: Header names a stored event has, and some it should not (a stored offset, the
#: literals list, a header of no attribute, one that repeats a member).
_NAMES = st.sampled_from(
    [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_subject",
        "ce_time",
        "ce_partitionkey",
        "ce_tenant",
        "ce_%d",
        'ce_q"uote',
        "content-type",
        "content-type",
        "content-type",
        "ce_offset",
        "ce_datacontenttype",
        LITERALS_HEADER,
        "traceparent",
    ]
)
_CONTENT_TYPES = st.sampled_from(
    [
        b"application/json",
        b"application/cloudevents+json; charset=utf-8",
        b"text/plain",
        b"text/csv; charset=utf-8",
        b"application/octet-stream",
        b"image/png",
    ]
)
#: Values: plain text, text JSON must escape, non-ASCII text, and bytes that are no UTF-8.
_VALUES = st.one_of(
    st.sampled_from([b"1.0", b"urn:shop", b"Order.Created", b"tenant,count", b"42"]),
    st.text(max_size=12).map(str.encode),
    st.binary(max_size=8),
)
_JSON_DATA = st.sampled_from([b'{"a":1}', b"[1,2]", b'"text"', b"3", b'{"e":"\\u00e9"}'])
#: Data no producer through the gateway could store as JSON, which another Kafka
#: producer may: not JSON, two values, JSON with bytes that are no UTF-8, a lone surrogate.
#: The time every event the gateway stores has (one without takes the general path).
_TIME = ("ce_time", b"2026-01-01T00:00:00Z")
_BAD_JSON_DATA = st.sampled_from([b"not json", b"1 2", b'"\xff"', b'{"a":"\\ud800"}', b"{"])


@st.composite
def records(draw: st.DrawFn) -> Record:
    headers: list[tuple[str, bytes]] = []
    for name in draw(st.lists(_NAMES, max_size=9)):
        value = draw(_CONTENT_TYPES if name == "content-type" else _VALUES)
        headers.append((name, value))
    value = draw(st.one_of(st.none(), st.just(b""), _JSON_DATA, _BAD_JSON_DATA, _VALUES))
    key = draw(st.one_of(st.none(), _VALUES))
    return Record("t", 0, draw(st.integers(0, 1000)), 1, key, value, tuple(headers))


@settings(max_examples=400, deadline=None)
@given(st.lists(records(), max_size=8), st.integers(1, 10**12))
def test_bulk_rendering_is_the_general_rendering(batch: list[Record], first: int) -> None:
    general = [structured_json(record, first + n) for n, record in enumerate(batch)]
    assert structured_events(batch, first) == general
    whole = structured_batch_of(batch, first)
    assert whole == structured_batch(zip(batch, range(first, first + len(batch)), strict=True))
    # Whatever the records hold, a consumer gets JSON it can read.
    assert len(msgspec.json.decode(whole)) == len(batch)


#: What a producer may send as an attribute: quotes, backslashes, any text but controls.
_ATTRIBUTE = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=10)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "id": _ATTRIBUTE,
                "subject": _ATTRIBUTE,
                "partitionkey": _ATTRIBUTE,
                "data": st.one_of(
                    st.integers(), st.text(max_size=10), st.lists(st.booleans(), max_size=3)
                ),
            },
            optional={"datacontenttype": st.sampled_from(["application/json", "text/plain"])},
        ),
        min_size=1,
        max_size=6,
    )
)
def test_events_as_produced_render_the_same(events: list[dict[str, object]]) -> None:
    """Records exactly as the producer stores them: the shape the fast path is for."""
    batch = []
    for n, fields in enumerate(events):
        if fields.get("datacontenttype") == "text/plain":
            fields = {**fields, "data": str(fields["data"])}
        body = msgspec.json.encode(
            {"specversion": "1.0", "source": "urn:s", "type": "T.Happened", **fields}
        )
        new = to_record(from_structured(body), "t")
        batch.append(Record("t", 0, n, 1, new.key, new.value, new.headers))
    assert structured_events(batch, 5) == [
        structured_json(record, 5 + n) for n, record in enumerate(batch)
    ]


def test_a_value_json_must_escape_leaves_the_rest_of_the_batch_fast() -> None:
    time, content_type = _TIME, ("content-type", b"application/json")
    plain = Record("t", 0, 0, 1, None, b"{}", (("ce_id", b"a"), time, content_type))
    quoted = Record("t", 0, 1, 1, None, b"{}", (("ce_id", b'a"b'), time, content_type))
    rendered = structured_events([plain, quoted, plain], 1)
    assert rendered[1] == structured_json(quoted, 2)
    assert msgspec.json.decode(rendered[1])["id"] == 'a"b'
    assert rendered[2] == (
        b'{"id":"a","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json",'
        b'"offset":"3","data":{}}'
    )


def test_a_run_of_one_shape_is_broken_by_any_record_unlike_it() -> None:
    """Records of one shape go the short way until one differs in content type, key,
    data or header names; each renders as the general renderer does, and the run resumes."""
    shape = (("ce_id", b"a"), ("ce_type", b"T"), _TIME, ("content-type", b"application/json"))
    text = (("ce_id", b"b"), ("ce_type", b"T"), _TIME, ("content-type", b"text/plain"))
    keyless = (("ce_id", b"c"), ("ce_type", b"T"), _TIME)
    batch = [
        Record("t", 0, 0, 1, None, b"{}", shape),
        Record("t", 0, 1, 1, None, b"[1]", shape),
        Record("t", 0, 2, 1, b"k", b"{}", shape),  # the key becomes partitionkey
        Record("t", 0, 3, 1, None, b"hi", text),
        Record("t", 0, 4, 1, None, None, shape),  # no data
        Record("t", 0, 5, 1, None, b"2", keyless),
        Record("t", 0, 6, 1, None, b'"x"', (("ce_id", b'q"'), *shape[1:])),
        Record("t", 0, 7, 1, None, b"3", shape),
    ]
    assert structured_events(batch, 1) == [
        structured_json(record, 1 + n) for n, record in enumerate(batch)
    ]


def _uniform_batch(count: int, *, keyed: bool) -> list[Record]:
    """Records as the HTTP batch endpoint stores them (``decode_batch``, ``plain_records``):
    one producer, one type, with partition keys or without."""
    events = [
        {
            "specversion": "1.0",
            "id": f"b{n}",
            "source": "urn:bench",
            "type": "Bench.Happened",
            "time": "2026-01-01T00:00:00Z",
            "data": {"order": n, "note": "x" * 10},
            **({"partitionkey": f"c-{n % 3}"} if keyed else {}),
        }
        for n in range(count)
    ]
    batch = decode_batch(msgspec.json.encode(events))
    assert isinstance(batch, PlainBatch)
    stored, _ = plain_records(batch, "", lambda _type, _key: ("t", 0), lambda _type: b"")
    return [Record("t", 0, n, 1, new.key, new.value, new.headers) for n, new in enumerate(stored)]


def _general(batch: list[Record], first: int) -> list[bytes]:
    return [structured_json(record, first + n) for n, record in enumerate(batch)]


@pytest.mark.parametrize("keyed", [False, True])
def test_a_batch_of_one_template_is_rendered_whole(keyed: bool) -> None:
    batch = _uniform_batch(5, keyed=keyed)
    assert _uniform_events(batch, 7) == _general(batch, 7)
    assert structured_events(batch, 7) == _general(batch, 7)
    assert structured_batch_of(batch, 7) == structured_batch(
        zip(batch, range(7, 7 + len(batch)), strict=True)
    )


def _replaced(record: Record, **changes: Any) -> Record:
    return msgspec.structs.replace(record, **changes)


def _with_header(record: Record, index: int, header: tuple[str, bytes]) -> Record:
    headers = list(record.headers)
    headers[index] = header
    return _replaced(record, headers=tuple(headers))


_UNLIKE: dict[str, Any] = {
    "no data": lambda r: _replaced(r, value=None),
    "empty data": lambda r: _replaced(r, value=b""),
    "a key, no partitionkey header": lambda r: _replaced(r, key=b"k"),
    "another content type": lambda r: _with_header(r, 5, ("content-type", b"text/json")),
    "text data": lambda r: _with_header(r, 5, ("content-type", b"text/plain")),
    "another header name": lambda r: _with_header(r, 4, ("ce_subject", b"s")),
    "a value JSON escapes": lambda r: _with_header(r, 1, ("ce_id", b'a"b')),
    "a shared value JSON escapes": lambda r: _with_header(r, 2, ("ce_source", b"urn:\\")),
    "a value that is no UTF-8": lambda r: _with_header(r, 1, ("ce_id", b"\xff")),
    "data that is no JSON": lambda r: _replaced(r, value=b"{not json"),
    "JSON data that is no UTF-8": lambda r: _replaced(r, value=b'"\xff"'),
    "a header fewer": lambda r: _replaced(r, headers=r.headers[:-1]),
    "no headers": lambda r: _replaced(r, headers=()),
}


@pytest.mark.parametrize("unlike", list(_UNLIKE))
@pytest.mark.parametrize("at", [0, 2])
def test_any_record_unlike_the_rest_renders_the_batch_record_by_record(
    unlike: str, at: int
) -> None:
    batch = _uniform_batch(4, keyed=False)
    batch[at] = _UNLIKE[unlike](batch[at])
    assert _uniform_events(batch, 1) is None
    assert structured_events(batch, 1) == _general(batch, 1)


@pytest.mark.parametrize("source", [b'urn:"x"', b"urn:\x01", b"urn:\xff"])
def test_a_value_every_record_shares_is_checked_too(source: bytes) -> None:
    """A header of one value throughout is checked once, and that once counts."""
    batch = [_with_header(r, 2, ("ce_source", source)) for r in _uniform_batch(3, keyed=True)]
    assert _uniform_events(batch, 1) is None
    assert structured_events(batch, 1) == _general(batch, 1)


def test_widths_that_differ_are_not_taken_for_one_template_laid_end_to_end() -> None:
    """Names laid end to end match those of two records of one shape, but the records
    are cut at other places: a header fewer in the first, one more in the second."""
    (first, second) = _uniform_batch(2, keyed=False)
    batch = [
        _replaced(first, headers=first.headers[:-1]),
        _replaced(second, headers=(first.headers[-1], *second.headers)),
    ]
    assert _uniform_events(batch, 1) is None
    assert structured_events(batch, 1) == _general(batch, 1)


def test_no_content_type_header_is_rendered_record_by_record() -> None:
    batch = [
        _replaced(record, headers=record.headers[:-1]) for record in _uniform_batch(3, keyed=False)
    ]
    assert _uniform_events(batch, 1) is None
    assert structured_events(batch, 1) == _general(batch, 1)
    assert structured_events([], 1) == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(_VALUES, min_size=3, max_size=3),
            st.one_of(st.none(), _VALUES),
            st.one_of(_JSON_DATA, st.just(b"null")),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([b"application/json", b"application/x+json", b"text/plain"]),
    st.booleans(),
)
def test_batches_of_one_shape_render_the_same(
    items: list[tuple[list[bytes], bytes | None, bytes]], content_type: bytes, keyed: bool
) -> None:
    """One header shape throughout, any values, keys and JSON data: the whole-batch way
    when it applies, the record-by-record way when not, the same bytes either way."""
    names = ["ce_id", "ce_type", "ce_partitionkey" if keyed else "ce_subject"]
    batch = [
        Record(
            "t",
            0,
            n,
            1,
            key,
            data,
            (*zip(names, values, strict=True), _TIME, ("content-type", content_type)),
        )
        for n, (values, key, data) in enumerate(items)
    ]
    assert structured_events(batch, 3) == _general(batch, 3)


@pytest.mark.parametrize("data", [b"not json", b'{"a":1} trailing', b'"\xff"', b"[1,"])
def test_data_that_is_not_the_json_its_content_type_says_goes_as_base64(data: bytes) -> None:
    """Not the gateway's doing (another Kafka producer, a records v2 client): the
    consumer still reads JSON, and the data byte for byte."""
    good = _uniform_batch(3, keyed=False)
    batch = [good[0], _replaced(good[1], value=data), good[2]]
    for rendered in (
        structured_events(batch, 1),
        [structured_json(r, 1 + n) for n, r in enumerate(batch)],
    ):
        events = [msgspec.json.decode(event) for event in rendered]
        assert "data" not in events[1]
        assert base64.b64decode(events[1]["data_base64"]) == data
        assert events[1]["datacontenttype"] == "application/json"
        assert [events[0]["data"], events[2]["data"]] == [
            msgspec.json.decode(good[0].value or b""),
            msgspec.json.decode(good[2].value or b""),
        ]


def test_a_literal_extension_that_is_not_json_goes_as_a_string() -> None:
    record = Record(
        "t",
        0,
        0,
        1,
        None,
        None,
        (
            ("ce_id", b"a"),
            _TIME,
            ("ce_count", b"12"),
            ("ce_flag", b"tru"),
            (LITERALS_HEADER, b"count,flag"),
        ),
    )
    assert msgspec.json.decode(structured_json(record, 1)) == {
        "id": "a",
        "time": "2026-01-01T00:00:00Z",
        "count": 12,
        "flag": "tru",
        "offset": "1",
    }
