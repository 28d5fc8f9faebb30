"""JSON Schema: parsing, identity, references, validation messages."""

from __future__ import annotations

import json

import pytest

from sluicegate.core.schemas.json_schema import JsonSchema
from sluicegate.errors import InvalidRecord, InvalidSchema

PERSON = {
    "title": "com.acme.Person",
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "address": {"type": "object", "properties": {"zip": {"type": "string"}}},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name"],
}


def parse(document: object, references: dict[str, JsonSchema] | None = None) -> JsonSchema:
    return JsonSchema.parse(json.dumps(document), references)


def invalid(text: str) -> str:
    with pytest.raises(InvalidSchema) as caught:
        JsonSchema.parse(text)
    return caught.value.message


def test_identity_ignores_key_order_and_whitespace() -> None:
    reordered = dict(reversed(list(PERSON.items())))
    assert JsonSchema.parse(json.dumps(reordered, indent=2)).canonical == parse(PERSON).canonical


def test_full_name_is_the_title() -> None:
    assert parse(PERSON).full_name == "com.acme.Person"
    assert parse({"type": "string"}).full_name is None
    assert JsonSchema.parse("true").full_name is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "Invalid JSON Schema: not valid JSON (Input data was truncated)"),
        ("5", "Invalid JSON Schema: expected an object or a boolean, got integer"),
        ('"x"', "Invalid JSON Schema: expected an object or a boolean, got string"),
        (
            '{"type": "nope"}',
            "Invalid JSON Schema: 'nope' is not valid under any of the given schemas - at $.type",
        ),
        ('{"minimum": "0"}', "Invalid JSON Schema: '0' is not of type 'number' - at $.minimum"),
        ('{"$schema": 5}', "Invalid JSON Schema: $schema must be a string"),
        ('{"$ref": "other.json"}', "Invalid JSON Schema: unresolvable $ref 'other.json'"),
        (
            '{"$ref": "#/definitions/missing"}',
            "Invalid JSON Schema: unresolvable $ref '#/definitions/missing'",
        ),
    ],
)
def test_invalid_schemas(text: str, message: str) -> None:
    assert invalid(text) == message


def test_deep_nesting_is_refused() -> None:
    document: object = {"type": "string"}
    for _ in range(200):
        document = {"items": document}
    assert invalid(json.dumps(document)) == "Invalid JSON Schema: nested deeper than 128 levels"


@pytest.mark.parametrize(
    ("datum", "message"),
    [
        ({"age": 3}, "'name' is a required property - at $"),
        ({"name": 1}, "1 is not of type 'string' - at $.name"),
        ({"name": "a", "age": -1}, "-1 is less than the minimum of 0 - at $.age"),
        (
            {"name": "a", "address": {"zip": 12345}},
            "12345 is not of type 'string' - at $.address.zip",
        ),
        ({"name": "a", "tags": ["x", 2]}, "2 is not of type 'string' - at $.tags[1]"),
        ([], "[] is not of type 'object' - at $"),
    ],
)
def test_validation_names_the_field(datum: object, message: str) -> None:
    with pytest.raises(InvalidSchema) as caught:
        parse(PERSON).validate(datum)
    assert caught.value.message == message


def test_references_resolve_by_name() -> None:
    address = parse({"type": "object", "properties": {"zip": {"type": "string"}}})
    person = parse(
        {"type": "object", "properties": {"home": {"$ref": "address.json"}}},
        {"address.json": address},
    )
    person.validate({"home": {"zip": "1000"}})
    with pytest.raises(InvalidSchema) as caught:
        person.validate({"home": {"zip": 1000}})
    assert caught.value.message == "1000 is not of type 'string' - at $.home.zip"


def test_local_references() -> None:
    schema = parse(
        {
            "type": "object",
            "properties": {"n": {"$ref": "#/definitions/positive"}},
            "definitions": {"positive": {"type": "integer", "exclusiveMinimum": 0}},
        }
    )
    schema.validate({"n": 1})
    with pytest.raises(InvalidSchema, match=r"at \$\.n$"):
        schema.validate({"n": 0})


def test_encode_decode() -> None:
    schema = parse(PERSON)
    payload = schema.encode({"name": "Ada", "age": 36})
    assert payload == b'{"name":"Ada","age":36}'
    assert schema.decode(payload) == {"name": "Ada", "age": 36}
    with pytest.raises(InvalidRecord, match="data is not JSON"):
        schema.decode(b"\xff")
