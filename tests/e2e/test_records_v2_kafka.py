"""Records v2 on Kafka, read back by plain Kafka clients straight from the broker.

Text records are what a Kafka consumer reads as they were sent; Avro records (Confluent
wire format) are read with confluent-kafka's ``AvroDeserializer`` against the gateway's own
schema registry API, over a real socket.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.serialization import MessageField, SerializationContext

from sluicegate.app import build_app
from sluicegate.config import Settings
from sluicegate.core.gateway import Gateway
from sluicegate.observability.metrics import Metrics
from sluicegate.storage.base import running
from sluicegate.storage.factory import open_log
from tests.conftest import make_settings, on_kafka
from tests.e2e.conftest import on_server
from tests.helpers import serving
from tests.storage.kafka.conftest import consume_all_async

with warnings.catch_warnings():
    # As in tests/dialects/schema_registry: authlib deprecates plain httpx at import time.
    import authlib.deprecate

    warnings.filterwarnings("ignore", category=authlib.deprecate.AuthlibDeprecationWarning)
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer

VALUE_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Payment",
        "namespace": "com.acme",
        "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}],
    }
)


@pytest.fixture
def kafka_settings(tmp_path: Path, kafka_bootstrap: str) -> Settings:
    return on_kafka(make_settings(tmp_path, auth={"enabled": False}), kafka_bootstrap)


@pytest.fixture
async def url(kafka_settings: Settings, http_server: str) -> AsyncIterator[str]:
    async with running(open_log(kafka_settings)) as log:
        gateway = Gateway(kafka_settings, log)
        await gateway.start()
        app = build_app(gateway, metrics=Metrics())
        async with serving(app, on_server(kafka_settings, http_server)) as port:
            yield f"http://127.0.0.1:{port}"


async def test_text_records_are_what_a_kafka_consumer_reads(
    url: str, kafka_settings: Settings
) -> None:
    sent = []
    async with httpx.AsyncClient(base_url=url) as http:
        for i in range(5):
            body = {
                "key": {"type": "text", "data": f"k{i}"},
                "value": {"type": "text", "data": f"v{i}"},
                "headers": [{"name": "n", "value": "aGk="}],
            }
            response = await http.post("/v2/topics/plain/records", json=body)
            assert response.status_code == 200, response.text
            sent.append((response.json()["offset"], f"k{i}".encode(), f"v{i}".encode()))
    topic = kafka_settings.kafka.topic_prefix + "plain"
    messages = await consume_all_async(kafka_settings.kafka.bootstrap_servers, topic)
    assert [(m.offset(), m.key(), m.value()) for m in messages] == sent
    assert all(m.headers() == [("n", b"hi")] for m in messages)


async def test_a_record_the_broker_finds_too_large_is_413_and_not_stored(
    url: str, kafka_settings: Settings
) -> None:
    # Within the gateway's own limits, over the topic's max.message.bytes: the broker
    # refuses it, and the client hears 413, not 500.
    async with httpx.AsyncClient(base_url=url) as http:
        created = await http.post(
            "/admin/v1/topics", json={"name": "small", "config": {"max.message.bytes": "1024"}}
        )
        assert created.status_code in {200, 201}, created.text
        big = {"value": {"type": "text", "data": "x" * 4096}}
        refused = await http.post("/v2/topics/small/records", json=big)
        assert refused.status_code == 413, refused.text
        assert "larger than Kafka accepts" in refused.json()["message"]
        fits = {"value": {"type": "text", "data": "fits"}}
        stored = await http.post("/v2/topics/small/records", json=fits)
        assert stored.status_code == 200, stored.text
    topic = kafka_settings.kafka.topic_prefix + "small"
    messages = await consume_all_async(kafka_settings.kafka.bootstrap_servers, topic)
    assert [m.value() for m in messages] == [b"fits"]


async def test_avro_records_read_with_their_deserializer_and_our_registry(
    url: str, kafka_settings: Settings
) -> None:
    body = {
        "value": {
            "type": "avro",
            "schema": VALUE_SCHEMA,
            "data": json.dumps({"id": "p-1", "amount": 12.5}),
        }
    }
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/v2/topics/payments/records?serializer=confluent", json=body)
        assert response.status_code == 200, response.text
    topic = kafka_settings.kafka.topic_prefix + "payments"
    [message] = await consume_all_async(kafka_settings.kafka.bootstrap_servers, topic)
    registry = SchemaRegistryClient({"url": url, "max.retries": 0})
    try:
        deserializer = AvroDeserializer(registry)
        context = SerializationContext("payments", MessageField.VALUE)
        # The registry client is blocking: it calls our server, which runs in this loop.
        value = await asyncio.to_thread(deserializer, message.value(), context)
    finally:
        registry.close()
    assert value == {"id": "p-1", "amount": 12.5}
