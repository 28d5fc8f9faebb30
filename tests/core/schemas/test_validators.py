"""Topic value schemas for plain-JSON producers: the latest version, compiled once."""

from __future__ import annotations

import json

import pytest

from sluicegate.core.gateway import Gateway
from sluicegate.core.schemas import wire
from sluicegate.core.schemas.model import SchemaReference
from sluicegate.core.schemas.validators import TopicSchemas, Violation

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
