"""The Confluent-compatible API in-process: paths, bodies, status codes, error codes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

CT = "application/vnd.schemaregistry.v1+json"
HEADERS = {"Content-Type": CT}

V1 = json.dumps(
    {
        "type": "record",
        "name": "User",
        "namespace": "com.acme",
        "fields": [{"name": "id", "type": "long"}],
    }
)
V2 = json.dumps(
    {
        "type": "record",
        "name": "User",
        "namespace": "com.acme",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "email", "type": "string", "default": ""},
        ],
    }
)
BREAKING = json.dumps(
    {
        "type": "record",
        "name": "User",
        "namespace": "com.acme",
        "fields": [{"name": "id", "type": "long"}, {"name": "email", "type": "string"}],
    }
)


async def register(
    client: httpx.AsyncClient, subject: str, schema: str, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/subjects/{subject}/versions", json={"schema": schema, **extra}, headers=HEADERS
    )


def error(response: httpx.Response, status: int, code: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == CT
    body = response.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == code
    message: str = body["message"]
    return message


# -- registering and reading -----------------------------------------------------------


async def test_register_and_read_back(client: httpx.AsyncClient) -> None:
    response = await register(client, "users-value", V1)
    assert response.status_code == 200
    assert response.headers["content-type"] == CT
    assert response.json() == {"id": 1}

    by_id = await client.get("/schemas/ids/1")
    assert by_id.json() == {"schema": V1}  # no schemaType for AVRO, no empty references
    assert (await client.get("/schemas/ids/1/schema")).text == V1
    assert (await client.get("/schemas/ids/1/subjects")).json() == ["users-value"]
    assert (await client.get("/schemas/ids/1/versions")).json() == [
        {"subject": "users-value", "version": 1}
    ]
    assert (await client.get("/subjects")).json() == ["users-value"]
    assert (await client.get("/subjects/users-value/versions")).json() == [1]
    expected = {"subject": "users-value", "version": 1, "id": 1, "schema": V1}
    for version in ("1", "latest", "-1"):
        assert (await client.get(f"/subjects/users-value/versions/{version}")).json() == expected
    assert (await client.get("/subjects/users-value/versions/latest/schema")).text == V1


async def test_same_schema_same_id(client: httpx.AsyncClient) -> None:
    assert (await register(client, "a", V1)).json() == {"id": 1}
    assert (await register(client, "a", json.dumps(json.loads(V1), indent=1))).json() == {"id": 1}
    assert (await register(client, "b", V1)).json() == {"id": 1}
    assert (await register(client, "a", V2)).json() == {"id": 2}
    assert (await client.get("/subjects/a/versions")).json() == [1, 2]


async def test_json_schema_type_and_references(client: httpx.AsyncClient) -> None:
    address = '{"type": "object", "properties": {"zip": {"type": "string"}}}'
    assert (await register(client, "address", address, schemaType="JSON")).json() == {"id": 1}
    refs = [{"name": "address.json", "subject": "address", "version": 1}]
    person = '{"type": "object", "properties": {"home": {"$ref": "address.json"}}}'
    response = await register(client, "person", person, schemaType="JSON", references=refs)
    assert response.json() == {"id": 2}
    assert (await client.get("/schemas/ids/2")).json() == {
        "schema": person,
        "schemaType": "JSON",
        "references": refs,
    }
    assert (await client.get("/subjects/address/versions/1/referencedby")).json() == [2]
    message = error(await client.delete("/subjects/address/versions/1"), 422, 42206)
    assert message.startswith("One or more references exist to the schema")


async def test_schema_types_contexts_mode(client: httpx.AsyncClient) -> None:
    assert (await client.get("/schemas/types")).json() == ["AVRO", "JSON"]
    assert (await client.get("/contexts")).json() == ["."]
    assert (await client.get("/mode")).json() == {"mode": "READWRITE"}
    assert (await client.get("/mode/any-subject")).json() == {"mode": "READWRITE"}
    put = await client.put("/mode", json={"mode": "READWRITE"}, headers=HEADERS)
    assert put.json() == {"mode": "READWRITE"}
    message = error(
        await client.put("/mode", json={"mode": "READONLY"}, headers=HEADERS), 422, 42204
    )
    assert message == "mode READONLY is not supported: this registry is always READWRITE"
    error(await client.put("/mode/s", json={"mode": "SIDEWAYS"}, headers=HEADERS), 422, 42204)


async def test_list_schemas_and_pagination(client: httpx.AsyncClient) -> None:
    for subject in ("a", "b", "c"):
        await register(client, subject, V1)
    await register(client, "a", V2)
    assert (await client.get("/subjects", params={"offset": 1, "limit": 1})).json() == ["b"]
    assert (await client.get("/subjects", params={"subjectPrefix": ":*:"})).json() == [
        "a",
        "b",
        "c",
    ]
    assert (await client.get("/subjects", params={"subjectPrefix": "b"})).json() == ["b"]
    schemas = (await client.get("/schemas", params={"latestOnly": "true"})).json()
    assert [(s["subject"], s["version"]) for s in schemas] == [("a", 2), ("b", 1), ("c", 1)]
    # Found by schemathesis: "?limit=" was read as "all". Only digits are a number.
    for bad in ("x", "", " 1", "1_0", "+1"):
        error(await client.get("/subjects", params={"offset": bad}), 400, 400)
        error(await client.get("/schemas/ids/1/subjects", params={"limit": bad}), 400, 400)
    assert error(await client.get("/schemas", params={"limit": -2}), 400, 400) == (
        "limit must be -1 (all) or more, got -2"
    )


@pytest.mark.parametrize("value", ["null", "1", "yes", ""])
async def test_flags_are_true_or_false(client: httpx.AsyncClient, value: str) -> None:
    # Found by schemathesis: "?deleted=null" was read as false, which the document's
    # boolean does not allow.
    message = error(await client.get("/subjects", params={"deleted": value}), 400, 400)
    assert message == f"query parameter deleted must be true or false, got {value!r}"
    for accepted in ("true", "FALSE", "True"):
        response = await client.get("/subjects", params={"deleted": accepted})
        assert response.status_code == 200


async def test_lookup(client: httpx.AsyncClient) -> None:
    await register(client, "s", V1)
    found = await client.post("/subjects/s", json={"schema": V1}, headers=HEADERS)
    assert found.json() == {"subject": "s", "version": 1, "id": 1, "schema": V1}
    missing = await client.post("/subjects/s", json={"schema": V2}, headers=HEADERS)
    assert error(missing, 404, 40403) == "Schema not found"
    nobody = await client.post("/subjects/t", json={"schema": V1}, headers=HEADERS)
    assert error(nobody, 404, 40401) == "Subject 't' not found."


# -- errors ----------------------------------------------------------------------------


async def test_not_found_codes(client: httpx.AsyncClient) -> None:
    assert error(await client.get("/schemas/ids/7"), 404, 40403) == "Schema 7 not found"
    error(await client.get("/schemas/ids/abc"), 404, 40403)
    assert error(await client.get("/subjects/s/versions"), 404, 40401) == "Subject 's' not found."
    await register(client, "s", V1)
    assert error(await client.get("/subjects/s/versions/3"), 404, 40402) == "Version 3 not found."


@pytest.mark.parametrize("version", ["abc", "0", "-2", "2147483648", "1.5"])
async def test_invalid_version(client: httpx.AsyncClient, version: str) -> None:
    await register(client, "s", V1)
    message = error(await client.get(f"/subjects/s/versions/{version}"), 422, 42202)
    assert message == (
        f"The specified version '{version}' is not a valid version id. Allowed values are "
        'between [1, 2^31-1] and the string "latest"'
    )


async def test_incompatible_schema_is_409(client: httpx.AsyncClient) -> None:
    await register(client, "s", V1)
    message = error(await register(client, "s", BREAKING), 409, 409)
    assert message.startswith(
        'Schema being registered is incompatible with an earlier schema for subject "s": BACKWARD:'
    )
    assert "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1" in message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"schema": '"nope"'}, "Invalid Avro schema: unknown type 'nope'"),
        ({"schema": "{"}, "Invalid Avro schema: not valid JSON (Input data was truncated)"),
        ({}, "Invalid schema: the schema is empty"),
        (
            {"schema": "{", "schemaType": "JSON"},
            "Invalid JSON Schema: not valid JSON (Input data was truncated)",
        ),
        (
            {"schema": "x", "schemaType": "PROTOBUF"},
            "unsupported schema type 'PROTOBUF': this registry supports AVRO and JSON",
        ),
    ],
)
async def test_invalid_schema_is_422_42201(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await client.post("/subjects/s/versions", json=body, headers=HEADERS)
    assert error(response, 422, 42201) == message


async def test_invalid_subject(client: httpx.AsyncClient) -> None:
    error(await register(client, "a%01b", V1), 422, 42208)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"not json",
            "request body is not valid JSON: JSON is malformed: invalid character (byte 4)",
        ),
        (b'{"schema": 5}', "invalid request body: Expected `str`, got `int` - at `schema`"),
        (b"[]", "invalid request body: Expected `object`, got `array`"),
        (b"", "request body is not valid JSON: Input data was truncated"),
        (
            b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            "the JSON document nests deeper than the limit of 64 levels",
        ),
    ],
)
async def test_malformed_bodies_are_400(
    client: httpx.AsyncClient, content: bytes, message: str
) -> None:
    response = await client.post("/subjects/s/versions", content=content, headers=HEADERS)
    assert error(response, 400, 400) == message


@pytest.mark.parametrize(
    "content_type",
    [
        CT,
        "application/vnd.schemaregistry+json",
        "application/json",
        "application/octet-stream",
        "application/json; charset=utf-8",
    ],
)
async def test_lenient_media_types(client: httpx.AsyncClient, content_type: str) -> None:
    response = await client.post(
        "/subjects/s/versions",
        content=json.dumps({"schema": V1}),
        headers={"Content-Type": content_type},
    )
    assert response.json() == {"id": 1}


async def test_other_media_types_are_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/subjects/s/versions",
        content=json.dumps({"schema": V1}),
        headers={"Content-Type": "text/plain"},
    )
    error(response, 415, 415)


async def test_body_limit(client: httpx.AsyncClient) -> None:
    huge = json.dumps({"schema": V1, "pad": "x" * (1024 * 1024)})
    error(await client.post("/subjects/s/versions", content=huge, headers=HEADERS), 413, 413)


async def test_unknown_paths_and_methods_answer_in_confluent_format(
    client: httpx.AsyncClient,
) -> None:
    error(await client.get("/subjects/s/nothing/here"), 404, 404)
    error(await client.patch("/subjects/s/versions"), 405, 405)


# -- deleting --------------------------------------------------------------------------


async def test_delete_version_codes(client: httpx.AsyncClient) -> None:
    await register(client, "s", V1)
    await register(client, "s", V2)
    not_soft = await client.delete("/subjects/s/versions/1", params={"permanent": "true"})
    assert error(not_soft, 404, 40407) == (
        "Subject 's' Version 1 was not deleted first before being permanently deleted"
    )
    assert (await client.delete("/subjects/s/versions/1")).json() == 1
    again = await client.delete("/subjects/s/versions/1")
    assert error(again, 404, 40406) == (
        "Subject 's' Version 1 was soft deleted.Set permanent=true to delete permanently"
    )
    # A read of it: not found, as Confluent and Karapace answer.
    assert error(await client.get("/subjects/s/versions/1"), 404, 40402) == "Version 1 not found."
    assert (await client.get("/subjects/s/versions/1", params={"deleted": "true"})).json()[
        "id"
    ] == 1
    assert (await client.get("/subjects/s/versions", params={"deleted": "True"})).json() == [1, 2]
    assert (await client.delete("/subjects/s/versions/1", params={"permanent": "true"})).json() == 1
    assert (await client.delete("/subjects/s/versions/latest")).json() == 2


async def test_delete_subject_codes(client: httpx.AsyncClient) -> None:
    await register(client, "s", V1)
    await register(client, "s", V2)
    error(await client.delete("/subjects/s", params={"permanent": "true"}), 404, 40405)
    assert (await client.delete("/subjects/s")).json() == [1, 2]
    assert error(await client.delete("/subjects/s"), 404, 40404) == (
        "Subject 's' was soft deleted.Set permanent=true to delete permanently"
    )
    assert (await client.get("/subjects")).json() == []
    assert (await client.get("/subjects", params={"deleted": "true"})).json() == ["s"]
    assert (await client.get("/subjects", params={"deleted_only": "true"})).json() == ["s"]
    assert (await client.delete("/subjects/s", params={"permanent": "true"})).json() == [1, 2]
    error(await client.delete("/subjects/s"), 404, 40401)


async def test_a_permanent_delete_of_the_last_version_holding_an_id_removes_the_id(
    client: httpx.AsyncClient,
) -> None:
    shared = (await register(client, "a", V1)).json()["id"]
    assert (await register(client, "b", V1)).json()["id"] == shared
    for subject in ("a", "b"):
        await client.delete(f"/subjects/{subject}/versions/1")
    # Soft-deleted versions still hold it: readers of old records resolve it.
    assert (await client.get(f"/schemas/ids/{shared}")).status_code == 200
    await client.delete("/subjects/a/versions/1", params={"permanent": "true"})
    assert (await client.get(f"/schemas/ids/{shared}/subjects")).json() == []
    await client.delete("/subjects/b/versions/1", params={"permanent": "true"})
    for path in ("", "/schema", "/subjects", "/versions"):
        found = await client.get(f"/schemas/ids/{shared}{path}", params={"deleted": "true"})
        assert error(found, 404, 40403) == f"Schema {shared} not found"


# -- compatibility and configuration ---------------------------------------------------


async def test_compatibility_endpoints(client: httpx.AsyncClient) -> None:
    url = "/compatibility/subjects/s/versions/latest"
    first = await client.post(url, json={"schema": BREAKING}, headers=HEADERS)
    assert first.json() == {"is_compatible": True}  # nothing registered yet
    await register(client, "s", V1)
    good = await client.post(url, json={"schema": V2}, headers=HEADERS, params={"verbose": "true"})
    assert good.json() == {"is_compatible": True, "messages": []}
    bad = await client.post(url, json={"schema": BREAKING}, headers=HEADERS)
    assert bad.json() == {"is_compatible": False}
    verbose = await client.post(
        "/compatibility/subjects/s/versions",
        json={"schema": BREAKING},
        headers=HEADERS,
        params={"verbose": "True"},
    )
    assert verbose.json()["is_compatible"] is False
    assert verbose.json()["messages"][0].startswith(
        "BACKWARD: the new schema cannot read data written with version 1"
    )
    error(
        await client.post(
            "/compatibility/subjects/s/versions/9", json={"schema": V2}, headers=HEADERS
        ),
        404,
        40402,
    )
    error(
        await client.post(
            "/compatibility/subjects/s/versions/1", json={"schema": "{"}, headers=HEADERS
        ),
        422,
        42201,
    )


async def test_config(client: httpx.AsyncClient) -> None:
    assert (await client.get("/config")).json() == {"compatibilityLevel": "BACKWARD"}
    put = await client.put("/config", json={"compatibility": "full"}, headers=HEADERS)
    assert put.json() == {"compatibility": "FULL"}
    assert (await client.get("/config")).json() == {"compatibilityLevel": "FULL"}
    message = error(await client.get("/config/s"), 404, 40408)
    assert message == "Subject 's' does not have subject-level compatibility configured"
    defaulted = await client.get("/config/s", params={"defaultToGlobal": "true"})
    assert defaulted.json() == {"compatibilityLevel": "FULL"}
    put_subject = await client.put("/config/s", json={"compatibility": "NONE"}, headers=HEADERS)
    assert put_subject.json() == {"compatibility": "NONE"}
    assert (await client.get("/config/s")).json() == {"compatibilityLevel": "NONE"}
    assert (await client.delete("/config/s")).json() == {"compatibilityLevel": "NONE"}
    error(await client.get("/config/s"), 404, 40408)
    assert (await client.delete("/config")).json() == {"compatibilityLevel": "FULL"}
    assert (await client.get("/config")).json() == {"compatibilityLevel": "BACKWARD"}
    level_back = await client.put(
        "/config", json={"compatibilityLevel": "FORWARD"}, headers=HEADERS
    )
    assert level_back.json() == {"compatibility": "FORWARD"}


@pytest.mark.parametrize("body", [{"compatibility": "SIDEWAYS"}, {}, {"compatibility": None}])
async def test_invalid_compatibility_level(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    message = error(await client.put("/config", json=body, headers=HEADERS), 422, 42203)
    assert message.startswith("Invalid compatibility level. Valid values are none, backward")


async def test_subject_level_config_decides_registration(client: httpx.AsyncClient) -> None:
    await register(client, "s", V1)
    await client.put("/config/s", json={"compatibility": "NONE"}, headers=HEADERS)
    assert (await register(client, "s", BREAKING)).json() == {"id": 2}


async def test_associations_are_404_so_clients_fall_back(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/associations/resources/-/orders",
        params={"resourceType": "topic", "associationType": "value"},
    )
    assert error(response, 404, 40410) == "Association for 'orders' not found."


async def test_the_registry_prefix(client: httpx.AsyncClient) -> None:
    assert (
        await client.post("/registry/subjects/s/versions", json={"schema": V1}, headers=HEADERS)
    ).json() == {"id": 1}
    assert (await client.get("/registry/schemas/ids/1")).json() == {"schema": V1}
    assert (await client.get("/subjects")).json() == ["s"]
