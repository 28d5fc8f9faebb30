"""confluent-kafka's own Schema Registry client and Avro serdes against a real socket."""

from __future__ import annotations

import asyncio
import io
import json
import warnings
from collections.abc import Iterator
from typing import Any

import fastavro
import pytest
from confluent_kafka.serialization import MessageField, SerializationContext

from sluicegate.core.schemas import wire
from sluicegate.core.schemas.registry import SchemaRegistry

with warnings.catch_warnings():
    # The registry client imports authlib, which deprecates plain httpx at import time and
    # forces its warning to "always"; filter it above authlib's own filter, here only.
    import authlib.deprecate

    warnings.filterwarnings("ignore", category=authlib.deprecate.AuthlibDeprecationWarning)
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.schema_registry.error import SchemaRegistryError

V1 = json.dumps(
    {
        "type": "record",
        "name": "Payment",
        "namespace": "com.acme",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "amount", "type": "double"},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    }
)
V2 = json.dumps(
    {
        **json.loads(V1),
        "fields": [
            *json.loads(V1)["fields"],
            {"name": "currency", "type": "string", "default": "EUR"},
        ],
    }
)
BREAKING = json.dumps(
    {
        **json.loads(V1),
        "fields": [*json.loads(V1)["fields"], {"name": "currency", "type": "string"}],
    }
)
PAYMENT = {"id": "p-1", "amount": 12.5, "note": None}


@pytest.fixture
def sr(server_url: str) -> Iterator[SchemaRegistryClient]:
    client = SchemaRegistryClient({"url": server_url, "max.retries": 0})
    try:
        yield client
    finally:
        client.close()


async def call(function: Any, *args: Any, **kwargs: Any) -> Any:
    # The client blocks; the server runs in this event loop.
    return await asyncio.to_thread(function, *args, **kwargs)


async def test_client_calls(sr: SchemaRegistryClient) -> None:
    schema_id = await call(sr.register_schema, "payments-value", Schema(V1, "AVRO"))
    assert schema_id == 1
    fetched = await call(sr.get_schema, schema_id)
    assert (fetched.schema_str, fetched.schema_type) == (V1, "AVRO")

    latest = await call(sr.get_latest_version, "payments-value")
    assert (latest.schema_id, latest.version, latest.subject) == (1, 1, "payments-value")

    looked_up = await call(sr.lookup_schema, "payments-value", Schema(V1, "AVRO"))
    assert (looked_up.schema_id, looked_up.version) == (1, 1)

    assert await call(sr.test_compatibility, "payments-value", Schema(V2, "AVRO")) is True
    assert await call(sr.test_compatibility, "payments-value", Schema(BREAKING, "AVRO")) is False
    assert await call(sr.test_compatibility_all_versions, "payments-value", Schema(V2, "AVRO"))

    assert await call(sr.set_compatibility, "payments-value", "FULL") == {"compatibility": "FULL"}
    assert await call(sr.get_compatibility, "payments-value") == "FULL"
    assert await call(sr.get_compatibility) == "BACKWARD"
    config = await call(sr.get_config, "payments-value")
    assert str(config.compatibility_level) == "FULL"

    with pytest.raises(SchemaRegistryError) as incompatible:
        await call(sr.register_schema, "payments-value", Schema(BREAKING, "AVRO"))
    assert (incompatible.value.http_status_code, incompatible.value.error_code) == (409, 409)

    assert await call(sr.register_schema, "payments-value", Schema(V2, "AVRO")) == 2
    assert await call(sr.get_versions, "payments-value") == [1, 2]
    assert (await call(sr.get_version, "payments-value", 1)).schema_id == 1
    assert await call(sr.get_subjects) == ["payments-value"]
    assert await call(sr.get_schema_types) == ["AVRO", "JSON"]
    assert await call(sr.get_subjects_by_schema_id, 2) == ["payments-value"]
    versions = await call(sr.get_schema_versions, 2)
    assert [(v.subject, v.version) for v in versions] == [("payments-value", 2)]
    assert await call(sr.get_global_mode) == "READWRITE"

    assert await call(sr.delete_version, "payments-value", 2) == 2
    assert await call(sr.delete_subject, "payments-value") == [1]
    assert await call(sr.get_subjects) == []
    assert await call(sr.delete_subject, "payments-value", True) == [1, 2]

    with pytest.raises(SchemaRegistryError) as missing:
        await call(sr.get_versions, "payments-value")
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40401)
    with pytest.raises(SchemaRegistryError) as invalid:
        await call(sr.register_schema, "x", Schema('{"type": "nope"}', "AVRO"))
    assert (invalid.value.http_status_code, invalid.value.error_code) == (422, 42201)


async def test_json_schema_through_the_client(sr: SchemaRegistryClient) -> None:
    schema = Schema('{"type": "object", "title": "T"}', "JSON")
    schema_id = await call(sr.register_schema, "t-value", schema)
    fetched = await call(sr.get_schema, schema_id)
    assert (fetched.schema_str, fetched.schema_type) == (schema.schema_str, "JSON")


async def test_avro_serdes_round_trip(sr: SchemaRegistryClient, registry: SchemaRegistry) -> None:
    ctx = SerializationContext("payments", MessageField.VALUE)
    serializer = AvroSerializer(sr, V1)
    deserializer = AvroDeserializer(sr)

    data = await call(serializer, PAYMENT, ctx)
    # The default strategy asked for associations, got a 404, fell back to topic names.
    assert registry.subjects() == ["payments-value"]
    assert await call(deserializer, data, ctx) == PAYMENT

    # Their bytes are ours: our wire decoding and Avro reading give the same record...
    schema_id, payload = wire.unframe(data)
    assert schema_id == registry.get_version("payments-value", 1).id
    assert registry.decode_confluent(data) == (schema_id, PAYMENT)
    parsed = fastavro.parse_schema(json.loads(V1))
    assert fastavro.schemaless_reader(io.BytesIO(payload), parsed, None) == PAYMENT
    # ...and ours are theirs, byte for byte.
    ours = registry.encode_confluent(schema_id, PAYMENT)
    assert ours == data
    assert await call(deserializer, ours, ctx) == PAYMENT


async def test_their_deserializer_reads_what_the_records_v2_path_writes(
    sr: SchemaRegistryClient, registry: SchemaRegistry
) -> None:
    registered = await registry.get_or_register("orders-com.acme.Payment-value", V2)
    data = registry.encode_confluent(registered.id, {**PAYMENT, "currency": "USD"})
    deserializer = AvroDeserializer(sr)
    ctx = SerializationContext("orders", MessageField.VALUE)
    assert await call(deserializer, data, ctx) == {**PAYMENT, "currency": "USD"}
