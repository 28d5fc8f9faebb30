"""One event (a raw or structured request) takes paths of its own
(``binding._quick_binary``, ``EventProducer._checked_one``, ``produce_one``): they must
give exactly what the header-by-header and event-by-event paths give, events and errors
alike."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.core.cloudevents.binding import (
    _binary_each,
    _binary_shape,
    _quick_binary,
    from_http_binary,
)
from sluicegate.core.cloudevents.event import CloudEvent
from sluicegate.core.gateway import Gateway
from sluicegate.errors import BadRequest
from tests.core.cloudevents.test_batch_paths import _checked_batches, _outcome

_NOW_US = 1_760_000_000_000_000


async def test_one_event_is_checked_as_event_by_event(gateway: Gateway) -> None:
    await gateway.event_schemas.set("Order.Typed", '{"type": "object"}')
    producer = gateway.event_producer

    @settings(max_examples=200, deadline=None)
    @given(_checked_batches(), st.sampled_from([None, 0]))
    def check(events: list[CloudEvent], index: int | None) -> None:
        event = events[0]
        latest = datetime.fromtimestamp((_NOW_US + producer._skew_us) / 1_000_000, UTC)
        expected = _outcome(
            lambda _: producer._checked_each([event], index is not None, _NOW_US, latest), b""
        )
        # Twice: the second time finds the event's time parsed already.
        for _ in range(2):
            assert _outcome(lambda _: [producer._checked_one(event, index)], b"") == expected

    producer._clock = lambda: _NOW_US * 1000
    try:
        check()
    finally:
        producer._clock = time.time_ns


async def test_a_time_parsed_before_is_still_compared_with_the_clock(gateway: Gateway) -> None:
    producer = gateway.event_producer
    event = CloudEvent(id="e", source="urn:shop", type="Order.Created", time="2025-01-31T12:00:00Z")
    assert producer._checked_one(event) is event
    # The clock set back a year: the time parsed a moment ago is now in the future.
    producer._clock = lambda: (_NOW_US - 365 * 86_400 * 1_000_000) * 1000
    try:
        with pytest.raises(BadRequest, match="is in the future") as refused:
            producer._checked_one(event)
        assert refused.value.detail == {"attribute": "time"}
    finally:
        producer._clock = time.time_ns


async def test_an_event_without_time_gets_the_gateways(gateway: Gateway) -> None:
    producer = gateway.event_producer
    producer._clock = lambda: _NOW_US * 1000
    try:
        event = CloudEvent(id="e", source="urn:shop", type="Order.Created")
        assert producer._checked_one(event) == msgspec.structs.replace(
            event, time="2025-10-09T08:53:20.000000Z"
        )
    finally:
        producer._clock = time.time_ns


#: ``ce-`` header names: the quick path's, one it does not take (an extension other than
#: partitionkey), ones that are wrong (datacontenttype, a bad name).
_HEADER_NAMES = st.sampled_from(
    [
        b"ce-specversion",
        b"ce-id",
        b"ce-source",
        b"ce-type",
        b"ce-subject",
        b"ce-time",
        b"ce-dataschema",
        b"ce-partitionkey",
        b"ce-tenant",
        b"ce-datacontenttype",
        b"ce-my_ext",
        b"ce-",
    ]
)
#: Values: plain, empty, percent-encoded, non-ASCII, not UTF-8, control characters, times.
_HEADER_VALUES = st.sampled_from(
    [
        b"1.0",
        b"0.3",
        b"urn:shop",
        b"",
        b" ",
        b"a%20b",
        b"caf\xc3\xa9",
        b"\xff",
        b"tab\there",
        b"del\x7f",
        b"2025-01-31T12:00:00Z",
        b"2025-01-31 12:00:00Z",
    ]
)
_CONTENT_TYPE = st.sampled_from(
    [None, b"application/json", b"text/plain", b"  ", b"", b"application/json; charset=\xe9"]
)
_BODIES = st.sampled_from([b"", b'{"total": 12.5}', b"not json", b'"\\ud800"'])


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(_HEADER_NAMES, _HEADER_VALUES, max_size=4),
    st.sampled_from([b"e-1", b"", b"a%2Fb"]),
    st.booleans(),
    _CONTENT_TYPE,
    _BODIES,
    st.sampled_from([None, 3]),
)
def test_a_binary_event_is_read_as_header_by_header(
    changed: dict[bytes, bytes],
    event_id: bytes,
    required: bool,
    content_type: bytes | None,
    body: bytes,
    index: int | None,
) -> None:
    headers = {b"host": b"gateway", b"content-length": b"%d" % len(body)}
    if required:  # most often the four required attributes, the quick path's first test
        headers |= {b"ce-specversion": b"1.0", b"ce-source": b"urn:shop", b"ce-type": b"t"}
        headers[b"ce-id"] = event_id
    headers |= changed
    if content_type is not None:
        headers[b"content-type"] = content_type
    expected = _outcome(lambda _: _binary_each(headers, body, index), b"")
    # Twice: the second time finds the headers' shape remembered.
    for _ in range(2):
        assert _outcome(lambda _: from_http_binary(headers, body, index=index), b"") == expected


def test_the_usual_binary_event_takes_the_quick_path() -> None:
    headers = {
        b"ce-specversion": b"1.0",
        b"ce-id": b"e-1",
        b"ce-source": b"urn:shop",
        b"ce-type": b"Order.Created",
        b"ce-time": b"2025-01-31T12:00:00Z",
        b"ce-partitionkey": b"customer-42",
        b"content-type": b"application/json",
    }
    shape = _binary_shape(tuple(headers))
    assert shape is not None
    quick = _quick_binary(headers, b'{"total": 12.5}', shape, None)
    assert quick is not None
    assert quick == _binary_each(headers, b'{"total": 12.5}', None)
    # Another extension: header by header.
    assert _binary_shape((*headers, b"ce-tenant")) is None
