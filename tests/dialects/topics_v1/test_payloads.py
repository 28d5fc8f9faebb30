"""Stored values as topics v1 payloads, and the seed's time format."""

from __future__ import annotations

import base64
import itertools
import json

import pytest

from sluicegate.core.gateway import Gateway
from sluicegate.dialects.topics_v1.payloads import PayloadReader, message_time


@pytest.mark.parametrize(
    ("value", "payload"),
    [
        (None, None),
        (b'{"a": [1, 2]}', {"a": [1, 2]}),
        (b" 42 ", 42),
        (b'"text"', "text"),
        (b"plain words", "plain words"),
        (b"", ""),
        (b"{broken", "{broken"),
        (b"\xff\xfe", {"data_base64": base64.b64encode(b"\xff\xfe").decode()}),
        # JSON in form but not UTF-8 inside a string: no JSON answer holds it as it is.
        (
            b'{"name": "\xff\xfe"}',
            {"data_base64": base64.b64encode(b'{"name": "\xff\xfe"}').decode()},
        ),
        # A lone surrogate escape, which strict parsers refuse: the text it is.
        (b'["\\ud800"]', '["\\ud800"]'),
        # Deeper than JSON is read here: the text it is, not a 500 at every read.
        (b"[" * 5000 + b"]" * 5000, "[" * 5000 + "]" * 5000),
        # Framed, but with a schema id nobody registered: plain bytes.
        (
            b"\x00\x00\x00\x03\xe7x",
            {"data_base64": base64.b64encode(b"\x00\x00\x00\x03\xe7x").decode()},
        ),
    ],
)
async def test_values_become_payloads(
    gateway: Gateway, value: bytes | None, payload: object
) -> None:
    assert json.loads(bytes(PayloadReader(gateway.schemas).payload(value))) == payload


async def test_confluent_framed_values_are_decoded_with_their_schema(gateway: Gateway) -> None:
    avro = {"type": "record", "name": "P", "fields": [{"name": "name", "type": "string"}]}
    registered = await gateway.schemas.register("people-value", json.dumps(avro))
    framed = gateway.schemas.encode_confluent(registered.id, {"name": "Jane"})
    assert json.loads(bytes(PayloadReader(gateway.schemas).payload(framed))) == {"name": "Jane"}


async def test_a_framed_value_its_schema_cannot_read_is_plain_bytes(gateway: Gateway) -> None:
    # Valid Avro (a date of 2**31 - 1 days) that Python's dates do not hold, written by
    # another Kafka client or as a records v2 binary value: shown as bytes, never a 500
    # that stops every consumer at it.
    avro = {
        "type": "record",
        "name": "D",
        "fields": [{"name": "d", "type": {"type": "int", "logicalType": "date"}}],
    }
    registered = await gateway.schemas.register("dates-value", json.dumps(avro))
    framed = b"\x00" + registered.id.to_bytes(4, "big") + b"\xfe\xff\xff\xff\x0f"
    payload = json.loads(bytes(PayloadReader(gateway.schemas).payload(framed)))
    assert payload == {"data_base64": base64.b64encode(framed).decode()}


def test_time_has_milliseconds_and_an_offset_as_in_the_seed() -> None:
    assert message_time(1_681_484_834_437_912) == "2023-04-14T15:07:14.437+00:00"
    assert message_time(0) == "1970-01-01T00:00:00.000+00:00"


#: Values that are JSON on their own, and pieces that only look like JSON once laid end
#: to end with others ("[1" and "2]" make "[1,2]").
_FRAGMENTS = [
    b'{"a": [1, 2]}',
    b"42",
    b" 42 ",
    b'"text"',
    b"[]",
    b"null",
    b"",
    b"[1",
    b"2]",
    b"1,2",
    b'"a',
    b'b"',
    b"{",
    b"}",
    b'"k":1',
    b"plain words",
    b"\xff\xfe",
    b'"\xff"',
    b'"\\udc00"',
    b"[" * 999 + b"]" * 999,
    b"\x00\x00\x00\x03\xe7x",
    None,
]


@pytest.mark.parametrize(
    "values",
    [
        [],
        [b'{"a":1}', b"[2,3]", b'"x"'],
        [b"[1", b"2]"],
        [b"[1", b"2],3"],
        [b"1,2", b"[3", b"4]"],
        [b'"a', b'b"'],
        [b'{"a":1}', b"{", b"}"],
        [b'{"a":1}', b" 2", None],
        [b"7", b"\x00\x00\x00\x03\xe7x"],
        [b'{"a":1}', b'"\xc3\xa9"', b'"\xe9"'],
        [b'"\\u00e9"', b'"\\ud800"'],
        [b"[" * 999 + b"]" * 999, b"1"],
    ],
)
async def test_payloads_of_many_values_are_each_values_payload(
    gateway: Gateway, values: list[bytes | None]
) -> None:
    reader = PayloadReader(gateway.schemas)
    together = [bytes(payload) for payload in reader.payloads(values)]
    assert together == [bytes(reader.payload(value)) for value in values]


async def test_no_run_of_fragments_passes_for_json(gateway: Gateway) -> None:
    # Every run of up to three: each payload is what the rules one by one give it.
    reader = PayloadReader(gateway.schemas)
    for length in range(4):
        for values in itertools.product(_FRAGMENTS, repeat=length):
            together = [bytes(payload) for payload in reader.payloads(values)]
            assert together == [bytes(reader.payload(value)) for value in values], values
