"""Topic value schemas for plain-JSON producers: the latest version, compiled once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.core.gateway import Gateway
from sluicegate.core.schemas import wire
from sluicegate.core.schemas.model import SchemaReference
from sluicegate.core.schemas.validators import (
    TopicSchemas,
    Violation,
    compile_batch_schema,
    compile_json_schema,
)
from sluicegate.core.schemas.workato import parse_value_schema
from tests.core.schemas.test_workato import schema_and_instance

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name"],
}


@pytest.fixture
def schemas(gateway: Gateway) -> TopicSchemas:
    return TopicSchemas(gateway.schemas)


async def test_no_schema_means_any_json(schemas: TopicSchemas) -> None:
    assert schemas.for_topic("free") is None


async def test_every_violation_is_listed_with_its_pointer(
    gateway: Gateway, schemas: TopicSchemas
) -> None:
    await gateway.schemas.register("people-value", json.dumps(PERSON), "JSON")
    schema = schemas.for_topic("people")
    assert schema is not None
    assert schema.violations({"name": "Jane", "age": 3}) == []
    assert schema.violations({"age": -1, "tags/x": 1}) == [
        Violation("", '"name" is a required property'),
        Violation("/age", "-1 is less than the minimum of 0"),
    ]
    assert schema.serialize(b'{"name": "Jane"}', {"name": "Jane"}) == b'{"name": "Jane"}'


async def test_compiled_once_per_schema_id_and_a_new_version_applies(
    gateway: Gateway, schemas: TopicSchemas
) -> None:
    await gateway.schemas.register("people-value", json.dumps(PERSON), "JSON")
    first = schemas.for_topic("people")
    assert first is not None
    assert schemas.for_topic("people") is first  # remembered: no look-up, no compile
    looser = {**PERSON, "required": []}
    await gateway.schemas.register("people-value", json.dumps(looser), "JSON")
    second = schemas.for_topic("people")
    assert second is not None
    assert second is not first
    assert second.schema_id != first.schema_id
    assert second.violations({}) == []


async def test_references_resolve_to_registered_schemas_offline(
    gateway: Gateway, schemas: TopicSchemas
) -> None:
    await gateway.schemas.register("age", json.dumps({"type": "integer", "minimum": 0}), "JSON")
    document = {"type": "object", "properties": {"age": {"$ref": "age.json"}}}
    await gateway.schemas.register(
        "aged-value",
        json.dumps(document),
        "JSON",
        [SchemaReference(name="age.json", subject="age", version=1)],
    )
    schema = schemas.for_topic("aged")
    assert schema is not None
    assert [v.pointer for v in schema.violations({"age": -5})] == ["/age"]


async def test_an_avro_schema_makes_the_message_avro(
    gateway: Gateway, schemas: TopicSchemas
) -> None:
    avro = {"type": "record", "name": "P", "fields": [{"name": "name", "type": "string"}]}
    registered = await gateway.schemas.register("avro-value", json.dumps(avro))
    schema = schemas.for_topic("avro")
    assert schema is not None
    assert schema.violations({"name": 1}) != []
    stored = schema.serialize(b'{"name":"Jane"}', {"name": "Jane"})
    assert wire.unframe(stored)[0] == registered.id
    assert gateway.schemas.decode_confluent(stored)[1] == {"name": "Jane"}
    assert schema.violations({"name": "x"}) == []


# -- a batch checked in one call agrees with its messages checked one by one ---------

_DOCUMENTS: list[Any] = [
    PERSON,
    True,
    False,
    {"type": "integer", "multipleOf": 3},
    {"type": "string", "format": "date-time"},
    {"$schema": "https://json-schema.org/draft/2020-12/schema", "prefixItems": [{"type": "null"}]},
    {"$schema": "http://json-schema.org/draft-04/schema#", "id": "x", "maximum": 5},
    {"$id": "https://example.com/p", "type": "object", "required": ["id"]},
    {"type": "object", "properties": {"$schema": {"type": "string"}}, "required": ["$schema"]},
    {"type": "object", "patternProperties": {"^n": {"type": "number"}}},
    {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "boolean"}}]},
]
_MESSAGES = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["name", "age", "id", "$schema", "n1", "x"]), children)
    ),
    max_leaves=6,
) | st.sampled_from(["2024-01-01T00:00:00Z", "not a time", [None, 1], {"name": "Jane"}])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_DOCUMENTS), st.lists(_MESSAGES, min_size=1, max_size=6))
def test_a_batch_is_valid_exactly_when_each_message_is(document: Any, messages: list[Any]) -> None:
    each = compile_json_schema(document, {})
    together = compile_batch_schema(document, {})
    assert together is not None
    assert together.is_valid(messages) == all(each.is_valid(m) for m in messages)


@settings(max_examples=200, deadline=None)
@given(schema_and_instance(), st.integers(0, 3))
def test_a_batch_of_workato_messages_is_checked_as_each_is(
    case: tuple[list[dict[str, Any]], dict[str, Any]], broken: int
) -> None:
    fields, instance = case
    document = json.loads(parse_value_schema(fields).text)
    messages = [instance, *({} for _ in range(broken))]  # {} lacks every required field
    each = compile_json_schema(document, {})
    together = compile_batch_schema(document, {})
    assert together is not None
    assert together.is_valid(messages) == all(each.is_valid(m) for m in messages)


def test_a_schema_with_references_is_checked_message_by_message() -> None:
    document = {"definitions": {"n": {"type": "integer"}}, "items": {"$ref": "#/definitions/n"}}
    assert compile_batch_schema(document, {}) is None
    assert compile_batch_schema({"properties": {"a": {"$ref": "age.json"}}}, {}) is None


async def test_a_batch_is_stored_as_sent_only_when_all_of_it_complies(
    gateway: Gateway, schemas: TopicSchemas
) -> None:
    await gateway.schemas.register("people-value", json.dumps(PERSON), "JSON")
    schema = schemas.for_topic("people")
    assert schema is not None
    raws = [b'{"name": "Jane"}', b'{"name":"Joe","age":3}']
    assert schema.serialize_all(raws, [json.loads(raw) for raw in raws]) == raws
    broken = [*raws, b'{"age": 4}']
    assert schema.serialize_all(broken, [json.loads(raw) for raw in broken]) is None


async def test_a_batch_of_avro_messages_is_checked_message_by_message(
    gateway: Gateway, schemas: TopicSchemas
) -> None:
    avro = {"type": "record", "name": "P", "fields": [{"name": "name", "type": "string"}]}
    await gateway.schemas.register("avro-value", json.dumps(avro))
    schema = schemas.for_topic("avro")
    assert schema is not None
    assert schema.serialize_all([b'{"name":"Jane"}'], [{"name": "Jane"}]) is None
