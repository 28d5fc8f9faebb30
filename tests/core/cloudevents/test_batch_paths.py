"""A batch of plain events takes a path of its own (``binding._plain_events``,
``binding.to_records``, ``EventProducer._checked_at_once``): it must give exactly what the
event-by-event path gives, events, records and errors alike."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.core.cloudevents.binding import (
    _decode_many,
    _from_elements,
    _from_fast,
    from_batch,
    to_record,
    to_records,
)
from sluicegate.core.cloudevents.event import CloudEvent
from sluicegate.core.gateway import Gateway
from sluicegate.errors import BadRequest, SluicegateError

# Values chosen to reach every rule: empty strings, control characters as JSON escapes
# and raw (DEL, C1), characters that are not printable but allowed (U+2028), escapes
# that are not control characters, non-ASCII text, lone surrogates.
_TEXTS = st.sampled_from(
    [
        "a",
        "urn:shop",
        "",
        " ",
        "tab\there",
        "new\nline",
        "del\x7f",
        "c1\x85",
        "nbsp\xa0",
        "sep\u2028",
        'quote"',
        "back\\slash",
        "caf\xe9",
        "\U0001f600",
    ]
)
_TIMES = st.sampled_from(
    [
        "2025-01-31T12:00:00Z",
        "2025-01-31t12:00:00.123z",
        "2025-01-31T23:59:60+01:00",
        "2025-02-30T12:00:00Z",
        "2025-01-31 12:00:00Z",
        "2999-01-01T00:00:00Z",
        "",
        "yesterday",
    ]
)
_CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/cloudevents+json",
        "Application/JSON; charset=utf-8",
        "text/plain",
        "application/octet-stream",
        "  ",
        "",
    ]
)
# Data as JSON text: documents, strings, escapes, a lone surrogate, null.
_DATA = st.sampled_from(
    [
        '{"order": 1, "total": 12.5}',
        "[1, 2, 3]",
        '"text"',
        '"line\\nbreak"',
        '"\\u00e9"',
        '"\\ud800"',
        "null",
        "0",
        "true",
    ]
)


_CLEAN_TEXTS = st.sampled_from(["a", "urn:shop", 'quote"', "back\\slash", "caf\xe9", "nbsp\xa0"])
#: A plain event's ``source`` (a URI-reference) and ``dataschema`` (a URI).
_CLEAN_SOURCES = st.sampled_from(["urn:shop", "/sensors/1", "https://shop.example/a?b#c"])
_CLEAN_SCHEMAS = st.sampled_from(["urn:schema", "https://shop.example/order.json#/v2"])
_CLEAN_TIMES = st.sampled_from(["2025-01-31T12:00:00Z", "2025-01-31t12:00:00.123z"])
_JSON_TYPES = st.sampled_from(["application/json", "application/cloudevents+json"])


@st.composite
def _events(draw: st.DrawFn, clean: bool = False) -> str:
    """One event's JSON text: ``clean``, a plain event; otherwise most of them plain,
    some wrong in one or more ways."""
    texts = _CLEAN_TEXTS if clean else _TEXTS
    members: dict[str, str] = {}
    versions = ["1.0"] if clean else ["1.0", "1.0", "1.0", "0.3"]
    members["specversion"] = json.dumps(draw(st.sampled_from(versions)))
    for name in ("id", "source", "type"):
        if clean or draw(st.integers(0, 9)):
            values = _CLEAN_SOURCES if clean and name == "source" else texts
            members[name] = json.dumps(draw(values) if draw(st.booleans()) else name + "-1")
    optional: dict[str, Any] = {
        "subject": texts,
        "time": _CLEAN_TIMES if clean else _TIMES,
        "datacontenttype": _JSON_TYPES if clean else _CONTENT_TYPES,
        "dataschema": _CLEAN_SCHEMAS if clean else texts,
        "partitionkey": texts,
    }
    for name, values in optional.items():
        if draw(st.booleans()):
            members[name] = json.dumps(draw(values))
    if draw(st.booleans()):
        members["data"] = draw(_DATA)
    if not clean and draw(st.integers(0, 5)) == 0:
        members["data_base64"] = json.dumps(draw(st.sampled_from(["aGk=", "not base64!"])))
    if not clean and draw(st.integers(0, 7)) == 0:
        members["count"] = "5"  # an extension: the batch takes the member-by-member path
    order = draw(st.permutations(list(members)))
    return "{" + ", ".join(f'"{name}": {members[name]}' for name in order) + "}"


@st.composite
def _batches(draw: st.DrawFn) -> bytes:
    """A batch's body: plain events, one of them now and then not."""
    elements = draw(st.lists(_events(clean=True), max_size=6))
    if draw(st.integers(0, 2)) == 0:
        at = draw(st.integers(0, len(elements)))
        elements.insert(at, draw(_events()))
    return ("[" + ", ".join(elements) + "]").encode()


def _outcome(parse: Any, body: bytes) -> Any:
    try:
        return parse(body)
    except SluicegateError as exc:
        return type(exc), exc.status, exc.message, exc.detail


def _event_by_event(body: bytes) -> list[CloudEvent]:
    """``from_batch`` as it was before the plain path: every event on its own."""
    try:
        try:
            decoded = _decode_many(body)
        except msgspec.ValidationError:
            return _from_elements(body)
        return [_from_fast(event, index) for index, event in enumerate(decoded)]
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None


@settings(max_examples=600, deadline=None)
@given(_batches())
def test_a_batch_parses_as_event_by_event(body: bytes) -> None:
    assert _outcome(from_batch, body) == _outcome(_event_by_event, body)


@settings(max_examples=300, deadline=None)
@given(_batches(), st.integers(1, 12))
def test_records_of_a_request_are_those_made_one_by_one(body: bytes, partitions: int) -> None:
    try:
        events = from_batch(body)
    except BadRequest:
        return
    places = [(f"ce.{event.type[:5]}", n % partitions) for n, event in enumerate(events)]
    expected = [
        to_record(event, topic, partition=partition)
        for event, (topic, partition) in zip(events, places, strict=True)
    ]
    records = to_records(events, places)
    assert records == expected
    # The size the binding counts is the one storage would count (``NewRecord.size``).
    assert [r.known_size for r in records] == [
        msgspec.structs.replace(r, known_size=None).size() for r in records
    ]


def test_plain_records_with_every_attribute() -> None:
    event = CloudEvent(
        id="e-1",
        source="urn:shop",
        type="Order.Created",
        subject="order-7",
        time="2025-01-31T12:00:00Z",
        datacontenttype="application/json",
        dataschema="urn:schema",
        extensions={"partitionkey": "c-1", "count": "5", "traceparent": "00-ab"},
        literal=frozenset({"count"}),
        data=b"{}",
    )
    others = [
        msgspec.structs.replace(event, id="e-2", subject=None),
        msgspec.structs.replace(event, id="e-3", extensions={}, literal=frozenset()),
    ]
    places = [("ce.a", 0), ("ce.b", 3), ("ce.a", 1)]
    batch = [event, *others]
    assert to_records(batch, places) == [
        to_record(e, topic, partition=p) for e, (topic, p) in zip(batch, places, strict=True)
    ]


_CHECKED_EVENT = CloudEvent(id="e", source="urn:shop", type="Order.Created")


@st.composite
def _checked_batches(draw: st.DrawFn) -> list[CloudEvent]:
    events = []
    for n in range(draw(st.integers(1, 5))):
        extensions = {"partitionkey": "k"}
        if draw(st.integers(0, 5)) == 0:
            extensions["offset"] = "1"
        time = draw(
            st.sampled_from(
                [None, "2025-01-31T12:00:00Z", "2999-01-01T00:00:00Z", "2025-01-31t12:00:60z"]
            )
        )
        events.append(
            msgspec.structs.replace(
                _CHECKED_EVENT,
                id=f"e-{n}",
                type=draw(st.sampled_from(["Order.Created", "Order.Typed"])),
                time=time,
                extensions=extensions,
                data=draw(st.sampled_from([None, b"{}", b"x" * 5000])),
            )
        )
    return events


async def test_checks_at_once_agree_with_checks_event_by_event(gateway: Gateway) -> None:
    """Size, ``offset``, schema and ``time``: the checks made once per request accept
    exactly what the checks event by event accept, and give the same events."""
    await gateway.event_schemas.set("Order.Typed", '{"type": "object"}')
    producer = gateway.event_producer

    @settings(max_examples=300, deadline=None)
    @given(_checked_batches(), st.sampled_from([None, 100, 10**6]), st.booleans())
    def check(events: list[CloudEvent], within: int | None, batch: bool) -> None:
        if within is not None and within < max(event.size() for event in events):
            return  # a bound that does not hold: the caller promises it does
        now_us = 1_760_000_000_000_000
        producer._clock = lambda: now_us * 1000  # both paths fill a missing time alike
        latest = datetime.fromtimestamp((now_us + producer._skew_us) / 1_000_000, UTC)
        expected = _outcome(lambda _: producer._checked_each(events, batch, now_us, latest), b"")
        assert _outcome(lambda _: producer._checked(events, batch, within), b"") == expected

    try:
        check()
    finally:
        producer._clock = time.time_ns


@pytest.mark.parametrize("bad", ["offset", "time", "size", "schema"])
async def test_a_failed_check_names_the_first_wrong_event(gateway: Gateway, bad: str) -> None:
    await gateway.event_schemas.set("Order.Typed", '{"type": "object"}')
    wrong = {
        "offset": msgspec.structs.replace(_CHECKED_EVENT, extensions={"offset": "1"}),
        "time": msgspec.structs.replace(_CHECKED_EVENT, time="2999-01-01T00:00:00Z"),
        "size": msgspec.structs.replace(_CHECKED_EVENT, data=b"1" * 70_000),
        "schema": msgspec.structs.replace(_CHECKED_EVENT, type="Order.Typed", data=b"[]"),
    }[bad]
    events = [_CHECKED_EVENT, _CHECKED_EVENT, wrong, wrong]
    with pytest.raises(SluicegateError) as raised:
        gateway.event_producer._checked(events, True)
    assert raised.value.detail["index"] == 2
