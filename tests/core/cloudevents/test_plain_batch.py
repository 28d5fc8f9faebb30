"""A batch of plain events is checked and stored from its decoded structs
(``binding.decode_batch``, ``binding.plain_records``, ``EventProducer.produce_batch``),
without a ``CloudEvent`` per event: it must give exactly what the ``CloudEvent`` path
gives, events, records, identity keys and errors alike."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.core.auth.principals import Permissions, Principal
from sluicegate.core.cloudevents.binding import (
    PlainBatch,
    decode_batch,
    from_batch,
    plain_records,
    to_records,
)
from sluicegate.core.cloudevents.event import CloudEvent
from sluicegate.core.cloudevents.producer import identity_key
from sluicegate.core.gateway import Gateway
from sluicegate.core.partitioner import Partitioner
from sluicegate.core.records import NewRecord, format_timestamp
from sluicegate.errors import BadRequest, SluicegateError
from tests.conftest import BACKENDS
from tests.core.cloudevents.test_batch_paths import _batches, _event_by_event
from tests.dialects.cloudevents.conftest import stored

_NOW_US = 1_760_000_000_000_000
_NOW_TEXT = format_timestamp(_NOW_US)


def _outcome(make: Any) -> Any:
    try:
        return make()
    except SluicegateError as exc:
        return type(exc), exc.status, exc.message, exc.detail


def _events_of(body: bytes) -> list[CloudEvent]:
    decoded = decode_batch(body)
    return decoded.cloud_events() if isinstance(decoded, PlainBatch) else decoded


@settings(max_examples=600, deadline=None)
@given(_batches())
def test_decode_batch_gives_the_events_and_errors_of_the_event_by_event_path(
    body: bytes,
) -> None:
    assert _outcome(lambda: _events_of(body)) == _outcome(lambda: _event_by_event(body))


def _placer(partitions: int) -> Any:
    """A ``place`` over a partitioner of its own: sticky for records without a key."""
    partitioner = Partitioner(sticky_records=2)

    def place(event_type: str, key: str | None) -> tuple[str, int]:
        topic = f"ce.{event_type[:5]}"
        encoded = None if key is None else key.encode()
        return topic, partitioner.partition(topic, encoded, partitions)

    return place


@settings(max_examples=400, deadline=None)
@given(_batches(), st.integers(1, 12))
def test_plain_records_are_those_of_to_records(body: bytes, partitions: int) -> None:
    _check_plain_records(body, partitions)


def _scope(event_type: str) -> bytes:
    """An identity key's prefix per type, as the producer's topic scope is per topic."""
    return b"\x01" + event_type.encode() + b"\x00"


def _check_plain_records(body: bytes, partitions: int) -> None:
    """``plain_records`` of ``body``, if a plain batch, against ``to_records`` of its
    ``CloudEvent``s, with the same sticky partitioner for records without a key."""
    try:
        decoded = decode_batch(body)
    except BadRequest:
        return
    if not isinstance(decoded, PlainBatch):
        return
    events = [
        event if event.time is not None else msgspec.structs.replace(event, time=_NOW_TEXT)
        for event in decoded.cloud_events()
    ]
    place = _placer(partitions)
    places = [place(event.type, event.partitionkey) for event in events]
    records, keys = plain_records(decoded, _NOW_TEXT, _placer(partitions), _scope)
    assert records == to_records(events, places)
    assert keys == [_scope(event.type) + identity_key(event) for event in events]
    assert [r.known_size for r in records] == [
        msgspec.structs.replace(r, known_size=None).size() for r in records
    ]


# Uniform batches (``PlainBatch.uniform``): what the events may differ in, and what one
# event may break that uniformity with.
_UNIFORM_TEXTS = st.sampled_from(["a", 'quote"', "back\\slash", "caf\xe9", "nbsp\xa0", "y" * 300])
_UNIFORM_DATA = st.sampled_from(['{"order": 1}', "[1, [2]]", '"text"', "0", "null"])
_BREAKS = st.sampled_from(
    ["source", "type", "time", "dataschema", "datacontenttype", "subject", "data", "key"]
)


@st.composite
def _uniform_batches(draw: st.DrawFn) -> bytes:
    """A plain batch whose events share their source, type, time, dataschema and content
    type and differ in their ids, data, subjects and partition keys; now and then one
    event breaks one of these (an attribute of its own, a subject or data missing where
    the others have one, or the reverse, a key missing among keyed events)."""
    shared: dict[str, str] = {"specversion": json.dumps("1.0")}
    shared["source"] = json.dumps(draw(_UNIFORM_TEXTS))
    shared["type"] = json.dumps(draw(_UNIFORM_TEXTS))
    for name, values in (
        ("time", st.sampled_from(["2025-01-31T12:00:00Z", "2025-01-31t12:00:00.123z"])),
        ("dataschema", _UNIFORM_TEXTS),
        ("datacontenttype", st.sampled_from(["application/json", "text/x+json"])),
    ):
        if draw(st.booleans()):
            shared[name] = json.dumps(draw(values))
    subjects, keyed = draw(st.booleans()), draw(st.booleans())
    elements = []
    for number in range(draw(st.integers(1, 8))):
        members = dict(shared)
        members["id"] = json.dumps(f"{draw(_UNIFORM_TEXTS)}-{draw(st.integers(0, 9))}")
        if subjects:
            members["subject"] = json.dumps(draw(_UNIFORM_TEXTS))
        if keyed:
            members["partitionkey"] = json.dumps(f"{draw(_UNIFORM_TEXTS)}{number % 3}")
        if draw(st.integers(0, 9)):
            members["data"] = draw(_UNIFORM_DATA)
        order = draw(st.permutations(list(members)))
        elements.append("{" + ", ".join(f'"{n}": {members[n]}' for n in order) + "}")
    if draw(st.integers(0, 2)) == 0:
        at = draw(st.integers(0, len(elements) - 1))
        broken = json.loads(elements[at])
        name = draw(_BREAKS)
        if name in ("subject", "data") and name in broken:
            del broken[name]
        elif name == "key":
            broken.pop("partitionkey", None) if keyed else broken.update(partitionkey="k")
        elif name == "data":
            broken["data"] = None
        else:
            broken[name] = "other"
        elements[at] = json.dumps(broken)
    return ("[" + ", ".join(elements) + "]").encode()


@settings(max_examples=600, deadline=None)
@given(_uniform_batches(), st.integers(1, 12))
def test_plain_records_of_uniform_batches_are_those_of_to_records(
    body: bytes, partitions: int
) -> None:
    _check_plain_records(body, partitions)


def test_a_uniform_batch_is_told_and_made_column_by_column() -> None:
    events = [_event(n, subject=f"order-{n}") for n in range(5)]
    decoded = decode_batch(json.dumps(events).encode())
    assert isinstance(decoded, PlainBatch)
    assert decoded.uniform
    records, keys = plain_records(decoded, _NOW_TEXT, _placer(4), _scope)
    assert [dict(r.headers)["ce_subject"] for r in records] == [
        f"order-{n}".encode() for n in range(5)
    ]
    assert keys == [_scope("Order.Created") + f"urn:shop\x00e-{n}".encode() for n in range(5)]
    for breaking in ({"subject": None}, {"dataschema": "urn:s"}, {"type": "Order.Paid"}):
        mixed = [*events[:2], _event(2, **breaking), *events[3:]]
        decoded = decode_batch(json.dumps(mixed).encode())
        assert isinstance(decoded, PlainBatch)
        assert not decoded.uniform


def test_a_batch_with_one_event_that_is_not_plain_is_made_of_cloud_events() -> None:
    plain = {"specversion": "1.0", "id": "e-1", "source": "urn:shop", "type": "Order.Created"}
    other = {**plain, "id": "e-2", "data_base64": "aGk="}
    decoded = decode_batch(json.dumps([plain, other, {**plain, "id": "e-3"}]).encode())
    assert isinstance(decoded, list)
    assert [event.id for event in decoded] == ["e-1", "e-2", "e-3"]
    assert decoded[1].data == b"hi"
    assert isinstance(
        decode_batch(json.dumps([plain, {**plain, "id": "e-3"}]).encode()), PlainBatch
    )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The tests that store run on both backends (the others use no gateway)."""
    return str(request.param)


_SHOP = Principal("shop", Permissions(ce_sources=["urn:shop"], ce_produce_types=["Order.*"]))


def _event(number: int, **members: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"e-{number}",
        "source": "urn:shop",
        "type": "Order.Created",
        "time": "2025-01-31T12:00:00Z",
        "partitionkey": f"c-{number % 3}",
        "data": {"order": number},
    }
    event.update(members)
    return {name: value for name, value in event.items() if value is not None}


@pytest.mark.parametrize(
    "wrong",
    [
        {"time": "2999-01-01T00:00:00Z"},
        {"source": "urn:elsewhere"},
        {"type": "Invoice.Sent"},
        {"type": "Order.Typed", "data": [1]},
        {"subject": ""},
        # Not plain (an extension), so the whole batch takes the CloudEvent path.
        {"count": 5, "time": "2999-01-01T00:00:00Z"},
    ],
)
async def test_a_wrong_event_at_index_2_is_named_as_produce_names_it(
    gateway: Gateway, wrong: dict[str, Any]
) -> None:
    await gateway.event_schemas.set("Order.Typed", '{"type": "object"}')
    body = json.dumps([_event(0), _event(1), _event(2, **wrong), _event(3)]).encode()
    producer = gateway.event_producer

    async def outcome(produce: Any) -> Any:
        try:
            return await produce()
        except SluicegateError as exc:
            return type(exc), exc.status, exc.message, exc.detail

    got = await outcome(lambda: producer.produce_batch(_SHOP, decode_batch(body), within=len(body)))
    expected = await outcome(
        lambda: producer.produce(_SHOP, from_batch(body), batch=True, within=len(body))
    )
    assert got == expected
    assert got[3]["index"] == 2
    assert await stored(gateway, "ce.Order.Created") == []


async def test_a_plain_batch_is_stored_as_produce_stores_its_events(gateway: Gateway) -> None:
    producer = gateway.event_producer
    producer._clock = lambda: _NOW_US * 1000  # the time of the events without one
    events = [
        _event(0),
        _event(1, subject="order-1", time=None),
        _event(2, partitionkey=None, dataschema="urn:schema"),
        _event(3, partitionkey=None, data=None, datacontenttype="application/json"),
        _event(4, type="Order.Paid"),
        _event(5),
    ]
    body = json.dumps(events).encode()
    decoded = decode_batch(body)
    assert isinstance(decoded, PlainBatch)
    await producer.produce_batch(_SHOP, decoded, within=len(body))
    # The same records as to_records makes of the checked CloudEvents; the partitions
    # of keyed events as the partitioner chooses them (unkeyed ones are sticky).
    checked = [
        e if e.time is not None else msgspec.structs.replace(e, time=_NOW_TEXT)
        for e in from_batch(body)
    ]
    records = [
        *await stored(gateway, "ce.Order.Created"),
        *await stored(gateway, "ce.Order.Paid"),
    ]
    assert len(records) == len(events)
    by_id = {dict(r.headers)["ce_id"]: r for r in records}
    for event in checked:
        record = by_id[event.id.encode()]
        (expected,) = to_records([event], [(record.topic, record.partition)])
        assert (
            NewRecord(
                record.topic,
                record.partition,
                record.key,
                record.value,
                tuple(record.headers),
                expected.known_size,
            )
            == expected
        )
    # Stored once: the same batch again stores nothing more.
    await producer.produce_batch(_SHOP, decode_batch(body), within=len(body))
    assert len(await stored(gateway, "ce.Order.Created")) == len(events) - 1
