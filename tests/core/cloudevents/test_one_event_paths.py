"""One event (a raw or structured request) takes paths of its own
(``binding.plain_binary``, ``EventProducer._checked_one``, ``produce_one``,
``produce_binary``): they must give exactly what the header-by-header and event-by-event
paths give, events, records and errors alike."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.core.auth.principals import Permissions, Principal
from sluicegate.core.cloudevents.binding import (
    _binary_each,
    _binary_shape,
    from_http_binary,
    plain_binary,
    to_record,
)
from sluicegate.core.cloudevents.event import CloudEvent
from sluicegate.core.cloudevents.producer import identity_key
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import NewRecord
from sluicegate.errors import BadRequest, SluicegateError
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
    plain = plain_binary(headers, body)
    if plain is not None:
        # Only an event the general path accepts, and what it makes of it.
        event = _binary_each(headers, body, index)
        assert plain.cloud_event() == event
        assert (plain.source, plain.type, plain.time) == (event.source, event.type, event.time)
        assert plain.size == event.size()
        assert plain.identity == identity_key(event)
        key = event.partitionkey
        assert plain.key == (None if key is None else key.encode())
        if event.time is not None:
            assert plain.record("t", 1, "") == to_record(event, "t", partition=1)
        now = "2025-10-09T08:53:20.000000Z"
        timed = msgspec.structs.replace(event, time=event.time or now)
        assert plain.record("t", 1, now) == to_record(timed, "t", partition=1)


def test_the_usual_binary_event_takes_the_plain_path() -> None:
    headers = {
        b"ce-specversion": b"1.0",
        b"ce-id": b"e-1",
        b"ce-source": b"urn:shop",
        b"ce-type": b"Order.Created",
        b"ce-time": b"2025-01-31T12:00:00Z",
        b"ce-partitionkey": b"customer-42",
        b"content-type": b"application/json",
    }
    plain = plain_binary(headers, b'{"total": 12.5}')
    assert plain is not None
    event = _binary_each(headers, b'{"total": 12.5}', None)
    assert plain.cloud_event() == event
    assert plain.record("t", 3, "") == to_record(event, "t", partition=3)
    # Another extension: header by header.
    assert _binary_shape((*headers, b"ce-tenant")) is None


class _Appends:
    """What ``EventIds.append_one`` is asked to store, in place of storing it."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, NewRecord, int | None]] = []

    def append_one(self, key: bytes, record: NewRecord, retention_ms: int | None) -> object:
        self.calls.append((key, record, retention_ms))
        return self  # what the lane hands back for the request to await


_PRODUCER = Principal(
    "shop", Permissions(ce_sources=["urn:shop"], ce_produce_types=["Order.*", "Other.Known"])
)


async def test_a_plain_raw_event_is_stored_as_the_general_lane_stores_it(gateway: Gateway) -> None:
    """``produce_binary`` stores exactly the record, identity and retention that
    ``produce_one`` stores, and takes no event that ``produce_one`` would refuse."""
    producer = gateway.event_producer
    await gateway.event_schemas.set("Order.Typed", '{"type": "object"}')
    for event_type in ("Order.Created", "Order.Typed", "Other.Known"):
        first = CloudEvent(
            id="first",
            source="urn:shop",
            type=event_type,
            datacontenttype="application/json",
            data=b"{}",
        )
        await producer.produce_one(Principal.anonymous(), first)
    ids = producer._ids
    appends = _Appends()
    producer._ids = appends  # type: ignore[assignment]
    producer._clock = lambda: _NOW_US * 1000
    producer._max_event_bytes = 120
    # The topics' metadata stays trusted however long the examples take.
    topics = producer._topics
    started = time.monotonic()
    topics._monotonic = lambda: started
    taken: list[bytes] = []

    @settings(max_examples=300, deadline=None)
    @given(
        st.sampled_from(["Order.Created", "Order.Typed", "Order.Unseen", "Other.Known"]),
        st.sampled_from([b"urn:shop", b"urn:elsewhere"]),
        st.sampled_from(
            [None, b"2025-01-31T12:00:00Z", b"2025-02-30T12:00:00Z", b"2999-01-01T00:00:00Z"]
        ),
        st.sampled_from([None, b"customer-42", b"customer-7"]),
        st.sampled_from([b"", b'{"total": 12.5}', b'["not an object"]', b'"' + b"x" * 100 + b'"']),
    )
    def check(
        event_type: str, source: bytes, time: bytes | None, key: bytes | None, body: bytes
    ) -> None:
        headers = {
            b"host": b"gateway",
            b"content-type": b"application/json",
            b"ce-specversion": b"1.0",
            b"ce-id": b"e-1",
            b"ce-source": source,
            b"ce-type": event_type.encode(),
        }
        if time is not None:
            headers[b"ce-time"] = time
        if key is not None:
            headers[b"ce-partitionkey"] = key
        plain = plain_binary(headers, body)
        assert plain is not None
        appends.calls.clear()
        stored = producer.produce_binary(_PRODUCER, plain)
        fast = list(appends.calls)
        appends.calls.clear()
        try:
            general = producer.produce_one(_PRODUCER, plain.cloud_event())
        except SluicegateError:
            assert stored is None
            return
        if stored is None:
            # Declined only where the general lane has more to do than storing.
            assert event_type in ("Order.Typed", "Order.Unseen")
            if hasattr(general, "close"):
                general.close()  # the coroutine of a first use, not run here
            return
        assert stored is appends
        assert general is appends
        assert fast == appends.calls
        assert len(fast) == 1
        taken.append(plain.identity)

    try:
        check()
    finally:
        producer._ids = ids
        producer._clock = time.time_ns
        topics._monotonic = time.monotonic
    assert taken  # the plain lane stored some
