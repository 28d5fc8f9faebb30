"""Records v2 with ``serializer=confluent``: registry, wire format, the seed's sample."""

from __future__ import annotations

import io
import json
import struct
from decimal import Decimal
from typing import Any

import fastavro
import httpx

from sluicegate.core.gateway import Gateway
from sluicegate.core.records import TopicPartition

KEY_SCHEMA = json.dumps(
    {
        "namespace": "com.eventstreams.samples",
        "type": "record",
        "name": "recordKeyName",
        "fields": [{"name": "keyName", "type": "string"}],
    }
)
VALUE_SCHEMA = json.dumps(
    {
        "namespace": "com.eventstreams.samples",
        "type": "record",
        "name": "recordValueName",
        "fields": [{"name": "valueName", "type": "string"}],
    }
)
SEED_BODY = {
    "headers": [{"name": "colour", "value": "YmxhY2s="}],
    "key": {
        "type": "avro",
        "schema": KEY_SCHEMA,
        "schema_name_strategy": "topicrecord",
        "data": '{"keyName": "sampleKeyName"}',
    },
    "value": {
        "type": "avro",
        "schema": VALUE_SCHEMA,
        "schema_name_strategy": "topicrecord",
        "data": '{"valueName": "sampleValueName"}',
    },
}
URL = "/v2/topics/test-topic/records?serializer=confluent"


def unframe(data: bytes, schema: str) -> tuple[int, Any]:
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == 0
    parsed = fastavro.parse_schema(json.loads(schema))
    return schema_id, fastavro.schemaless_reader(io.BytesIO(data[5:]), parsed)


async def test_seed_sample(client: httpx.AsyncClient, gateway: Gateway) -> None:
    response = await client.post(URL, json=SEED_BODY)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["key"]["type"] == "avro"
    assert answer["key"]["schema_artifact_id"] == (
        "test-topic-com.eventstreams.samples.recordKeyName-key"
    )
    assert answer["value"]["schema_artifact_id"] == (
        "test-topic-com.eventstreams.samples.recordValueName-value"
    )
    assert answer["key"]["schema_id"] != answer["value"]["schema_id"]
    [record] = await gateway.log.read(
        TopicPartition("test-topic", 0), 0, max_records=1, max_bytes=1 << 20
    )
    assert record.key is not None
    assert record.value is not None
    assert unframe(record.key, KEY_SCHEMA) == (
        answer["key"]["schema_id"],
        {"keyName": "sampleKeyName"},
    )
    assert unframe(record.value, VALUE_SCHEMA) == (
        answer["value"]["schema_id"],
        {"valueName": "sampleValueName"},
    )
    # The same schema again: same ids, no new versions.
    again = (await client.post(URL, json=SEED_BODY)).json()
    assert (again["key"]["schema_id"], again["value"]["schema_id"]) == (
        answer["key"]["schema_id"],
        answer["value"]["schema_id"],
    )
    assert again["offset"] == answer["offset"] + 1


async def test_strategies(client: httpx.AsyncClient) -> None:
    expected = {
        "topic": "test-topic-value",
        "record": "com.eventstreams.samples.recordValueName-value",
        "topicrecord": "test-topic-com.eventstreams.samples.recordValueName-value",
    }
    for strategy, subject in expected.items():
        body = {
            "value": {
                "type": "avro",
                "schema": VALUE_SCHEMA,
                "schema_name_strategy": strategy,
                "data": {"valueName": "v"},
            }
        }
        response = await client.post(URL, json=body)
        assert response.status_code == 200, response.text
        assert response.json()["value"]["schema_artifact_id"] == subject


async def test_bytes_fixed_and_decimal_in_avros_json_encoding(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    # As Confluent's REST proxy takes them: bytes and fixed as strings of code points
    # 0-255; a decimal as the number (what a read shows). Stored as any Avro client
    # writes them.
    schema = json.dumps(
        {
            "type": "record",
            "name": "Payment",
            "fields": [
                {"name": "digest", "type": "bytes"},
                {"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 2}},
                {
                    "name": "amount",
                    "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
                },
            ],
        }
    )
    data = {"digest": "\u0000\u00ff", "tag": "ok", "amount": 12.5}
    body = {"value": {"type": "avro", "schema": schema, "data": data}}
    response = await client.post(URL, json=body)
    assert response.status_code == 200, response.text
    [record] = await gateway.log.read(
        TopicPartition("test-topic", 0), 0, max_records=1, max_bytes=1 << 20
    )
    assert record.value is not None
    _, stored = unframe(record.value, schema)
    assert stored == {"digest": b"\x00\xff", "tag": b"ok", "amount": Decimal("12.50")}


async def test_data_not_matching_schema(client: httpx.AsyncClient) -> None:
    body = {"value": {"type": "avro", "schema": VALUE_SCHEMA, "data": {"valueName": 42}}}
    response = await client.post(URL, json=body)
    assert response.status_code == 400
    message = response.json()["message"]
    assert message.startswith("value.data does not match its schema")
    assert "valueName" in message


async def test_schema_not_avro(client: httpx.AsyncClient) -> None:
    body = {"value": {"type": "avro", "schema": '{"type": "nope"}', "data": {}}}
    response = await client.post(URL, json=body)
    assert response.status_code == 400
    assert response.json()["message"].startswith("value.schema:")


async def test_record_strategy_needs_named_schema(client: httpx.AsyncClient) -> None:
    body = {
        "value": {
            "type": "avro",
            "schema": '"string"',
            "schema_name_strategy": "record",
            "data": '"hello"',
        }
    }
    response = await client.post(URL, json=body)
    assert response.status_code == 400
    assert "needs a named schema" in response.json()["message"]


async def test_incompatible_schema_is_400(client: httpx.AsyncClient) -> None:
    body = {"value": {"type": "avro", "schema": VALUE_SCHEMA, "data": {"valueName": "v"}}}
    assert (await client.post(URL, json=body)).status_code == 200
    changed = json.loads(VALUE_SCHEMA)
    changed["fields"] = [{"name": "valueName", "type": "int"}]
    body = {"value": {"type": "avro", "schema": json.dumps(changed), "data": {"valueName": 1}}}
    response = await client.post(URL, json=body)
    assert response.status_code == 400
    assert response.json()["message"].startswith("value.schema:")
