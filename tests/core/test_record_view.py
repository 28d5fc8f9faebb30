"""``core.record_view``: payloads shown exactly as stored, and CloudEvents in both modes."""

from __future__ import annotations

import json

import pytest

from sluicegate.core.gateway import Gateway
from sluicegate.core.record_view import view_record
from sluicegate.core.records import Record

AVRO = json.dumps({"type": "record", "name": "N", "fields": [{"name": "n", "type": "long"}]})


def _record(value: bytes | None, headers: tuple[tuple[str, bytes], ...] = ()) -> Record:
    return Record(
        topic="t", partition=0, offset=0, timestamp=0, key=None, value=value, headers=headers
    )


@pytest.mark.parametrize(
    "text", ["1e5", "1.50", "-0", " 42", "12345678901234567890123", '"quoted"', "true", "null"]
)
def test_a_bare_json_scalar_is_shown_as_the_text_it_is(gateway: Gateway, text: str) -> None:
    value = view_record(_record(text.encode()), gateway.schemas).value
    assert value.encoding == "text"
    assert value.text == text


def test_a_json_object_keeps_its_exact_text(gateway: Gateway) -> None:
    text = '{"id": 123456789012345678901, "price": 1.10, "dup": 1, "dup": 2}'
    value = view_record(_record(text.encode()), gateway.schemas).value
    assert value.encoding == "json"
    assert value.text == text
    assert value.data["id"] == 123456789012345678901


def test_json_deeper_than_it_is_read_is_shown_as_text(gateway: Gateway) -> None:
    text = "[" * 5000 + "]" * 5000
    value = view_record(_record(text.encode()), gateway.schemas).value
    assert value.encoding == "text"
    assert value.text == text


async def test_avro_nested_past_the_stack_is_shown_as_bytes_with_the_reason(
    gateway: Gateway,
) -> None:
    linked = {"type": "record", "name": "L", "fields": [{"name": "next", "type": ["null", "L"]}]}
    schema = await gateway.schemas.register("t-value", json.dumps(linked))
    framed = b"\x00" + schema.id.to_bytes(4, "big") + b"\x02" * 100_000 + b"\x00"
    value = view_record(_record(framed), gateway.schemas).value
    assert value.encoding == "base64"
    assert value.error == "data nested deeper than the gateway reads Avro"


async def test_an_avro_datum_comes_with_exact_json_text(gateway: Gateway) -> None:
    schema = await gateway.schemas.register("t-value", AVRO)
    data = gateway.schemas.encode_confluent(schema.id, {"n": 9007199254740993})
    value = view_record(_record(data), gateway.schemas).value
    assert value.encoding == "avro"
    assert value.text == '{"n":9007199254740993}'


def test_a_binary_cloudevent_with_a_header_twice_shows_what_its_consumers_get(
    gateway: Gateway,
) -> None:
    headers = (
        ("ce_specversion", b"1.0"),
        ("ce_id", b"first-id"),
        ("ce_source", b"urn:s"),
        ("ce_type", b"Probe.Event"),
        ("ce_id", b"second-id"),
        ("ce_type", b"Other.Type"),
        ("content-type", b"application/json"),
        ("content-type", b"text/plain"),
    )
    view = view_record(_record(b"{}", headers), gateway.schemas)
    assert view.cloudevent is not None
    assert (view.cloudevent["id"], view.cloudevent["type"]) == ("first-id", "Probe.Event")
    assert view.cloudevent["datacontenttype"] == "application/json"
    assert len(view.headers) == len(headers)  # every header is still shown


def test_a_structured_cloudevent_is_recognised(gateway: Gateway) -> None:
    event = {
        "specversion": "1.0",
        "type": "com.example.shipped",
        "source": "/warehouse",
        "id": "e-1",
        "seq": 4,
        "data": {"parcel": 1},
    }
    headers = (("content-type", b"application/cloudevents+json; charset=utf-8"),)
    view = view_record(_record(json.dumps(event).encode(), headers), gateway.schemas)
    assert view.cloudevent == {
        "specversion": "1.0",
        "type": "com.example.shipped",
        "source": "/warehouse",
        "id": "e-1",
        "seq": "4",
    }
    # Not a CloudEvent: the content type says so but the value has no specversion.
    plain = view_record(_record(b'{"a": 1}', headers), gateway.schemas)
    assert plain.cloudevent is None


def test_a_non_utf8_header_is_kept_and_said_to_be_base64(gateway: Gateway) -> None:
    headers = (("ce_specversion", b"1.0"), ("ce_id", b"e-1"), ("ce_blob", b"\xff\x00"))
    view = view_record(_record(b"x", headers), gateway.schemas)
    assert view.cloudevent == {"specversion": "1.0", "id": "e-1"}
    blob = [h for h in view.headers if h.name == "ce_blob"]
    assert [(h.value, h.encoding) for h in blob] == [("/wA=", "base64")]
