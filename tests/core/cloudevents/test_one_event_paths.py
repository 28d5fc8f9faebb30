"""One event (a raw or structured request) takes paths of its own
(``EventProducer._checked_one``, ``produce_one``): they must give exactly what the
event-by-event path gives, events and errors alike."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
