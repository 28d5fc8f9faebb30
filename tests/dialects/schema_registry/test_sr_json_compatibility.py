"""JSON Schema compatibility through the registry API: a producer's serializer that
auto-registers a safe change gets an id, an unsafe one a 409."""

from __future__ import annotations

import json

import httpx

from tests.dialects.schema_registry.test_sr_api import HEADERS, error, register

#: Version 1 of the issue's reproduction: a nullable string written with oneOf.
NULLABLE_ONE_OF = json.dumps(
    {"type": "object", "properties": {"a": {"oneOf": [{"type": "null"}, {"type": "string"}]}}}
)
#: The same nullable string written with a type list.
NULLABLE_TYPE_LIST = json.dumps(
    {"type": "object", "properties": {"a": {"type": ["null", "string"]}}}
)
#: The unsafe twin: the old oneOf also wrote integers, which the reader no longer takes.
NULLABLE_OR_INTEGER = json.dumps(
    {
        "type": "object",
        "properties": {"a": {"oneOf": [{"type": "null"}, {"type": "string"}, {"type": "integer"}]}},
    }
)


async def check(client: httpx.AsyncClient, subject: str, schema: str) -> httpx.Response:
    return await client.post(
        f"/compatibility/subjects/{subject}/versions/latest",
        json={"schemaType": "JSON", "schema": schema},
        headers=HEADERS,
        params={"verbose": "true"},
    )


async def test_a_type_list_follows_the_same_oneOf(client: httpx.AsyncClient) -> None:
    assert (await register(client, "n1", NULLABLE_ONE_OF, schemaType="JSON")).json() == {"id": 1}
    assert (await check(client, "n1", NULLABLE_TYPE_LIST)).json() == {
        "is_compatible": True,
        "messages": [],
    }
    await client.put("/config/n1", json={"compatibility": "FULL"}, headers=HEADERS)
    registered = await register(client, "n1", NULLABLE_TYPE_LIST, schemaType="JSON")
    assert registered.status_code == 200, registered.text
    assert registered.json() == {"id": 2}


async def test_a_writer_branch_the_reader_refuses_is_409(client: httpx.AsyncClient) -> None:
    await register(client, "n2", NULLABLE_OR_INTEGER, schemaType="JSON")
    verdict = (await check(client, "n2", NULLABLE_TYPE_LIST)).json()
    assert verdict == {
        "is_compatible": False,
        "messages": [
            "BACKWARD: the new schema cannot read data written with version 1: TYPE_CHANGED at "
            "#/properties/a/type: type changed from integer to null, string "
            "(writer alternative oneOf/2)"
        ],
    }
    message = error(await register(client, "n2", NULLABLE_TYPE_LIST, schemaType="JSON"), 409, 409)
    assert "TYPE_CHANGED at #/properties/a/type" in message


async def test_recursion_through_two_nots_is_answered(client: httpx.AsyncClient) -> None:
    schema = json.dumps(
        {
            "not": {
                "type": "object",
                "properties": {"p": {"$ref": "#"}},
                "additionalProperties": False,
            }
        }
    )
    await register(client, "n3", schema, schemaType="JSON")
    assert (await check(client, "n3", schema)).json() == {"is_compatible": True, "messages": []}
