"""The CloudEvents producer API over a real socket, on both backends: requests built by the
CloudEvents SDK, and, on Kafka, a plain Kafka consumer reading the events back through the
SDK's Kafka binding."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest
from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.bindings import kafka as sdk_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from cloudevents.v1.kafka import KafkaMessage, from_binary
from confluent_kafka import Consumer, Producer

from sluicegate.testing.process import ServerProcess, serve_in_subprocess

JSON = JSONFormat()


class Served:
    def __init__(self, server: ServerProcess, backend: str, prefix: str) -> None:
        self.url = server.url
        self.backend = backend
        #: What the server prepends to its topic names on Kafka.
        self.prefix = prefix


@pytest.fixture(scope="module", params=["sqlite", "kafka"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, http_server: str
) -> Iterator[Served]:
    # Taking ``http_server`` makes a server per HTTP server, not one shared by both.
    env: dict[str, str] = {}
    prefix = ""
    if request.param == "kafka":
        prefix = f"c{uuid.uuid4().hex[:10]}."
        env = {
            "SLUICEGATE_STORAGE__BACKEND": "kafka",
            "SLUICEGATE_KAFKA__BOOTSTRAP_SERVERS": request.getfixturevalue("kafka_bootstrap"),
            "SLUICEGATE_KAFKA__TOPIC_PREFIX": prefix,
        }
    data = tmp_path_factory.mktemp("data")
    with serve_in_subprocess(data, args=("--no-auth",), env=env) as server:
        yield Served(server, str(request.param), prefix)


def order(event_id: str, **attributes: object) -> SdkEvent:
    base: dict[str, object] = {
        "id": event_id,
        "source": "urn:shop",
        "type": "Order.Shipped",
        "time": datetime(2025, 1, 31, 12, tzinfo=UTC),
        "datacontenttype": "application/json",
        "specversion": "1.0",
    }
    return SdkEvent({**base, **attributes}, {"order": event_id})


async def test_the_sdk_forms_are_accepted_and_bad_ones_refused(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        binary = sdk_http.to_binary(order("s-1", partitionkey="c1"), JSON)
        response = await http.post("/ce/produce/raw", content=binary.body, headers=binary.headers)
        assert response.status_code == 202, response.text
        structured = sdk_http.to_structured(order("s-2"), JSON)
        response = await http.post(
            "/ce/produce/event", content=structured.body, headers=structured.headers
        )
        assert response.status_code == 202, response.text
        batch = b"[" + b",".join(JSON.write(order(f"s-{n}")) for n in range(3, 103)) + b"]"
        headers = {"content-type": "application/cloudevents-batch+json"}
        response = await http.post("/ce/produce/events", content=batch, headers=headers)
        assert response.status_code == 202, response.text
        broken = batch.replace(b'"id": "s-50"', b'"id": ""', 1)
        response = await http.post("/ce/produce/events", content=broken, headers=headers)
        assert response.status_code == 400
        assert (response.json()["attribute"], response.json()["index"]) == ("id", 47)
        settings = (await http.get("/ce/tools/my-settings")).json()
        assert "Order.Shipped" in settings["consumer"]["types_produced"]


def _read_back(bootstrap: str, topic: str, event_id: bytes) -> KafkaMessage:
    """The record of the event ``event_id`` in ``topic``, read by a plain Kafka consumer."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"plain-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    try:
        consumer.subscribe([topic])
        for _ in range(120):
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            headers = dict(message.headers() or [])
            if headers.get("ce_id") == event_id:
                return KafkaMessage(headers=headers, key=message.key(), value=message.value())
        raise AssertionError(f"no event {event_id!r} in {topic} after two minutes")
    finally:
        consumer.close()


@pytest.mark.parametrize("served", ["kafka"], indirect=True)
async def test_a_plain_kafka_consumer_reads_the_event_unchanged(
    served: Served, request: pytest.FixtureRequest
) -> None:
    sent = order("k-1", subject="order/1", partitionkey="cust-1", region="eu")
    message = sdk_http.to_binary(sent, JSON)
    async with httpx.AsyncClient(base_url=served.url) as http:
        response = await http.post("/ce/produce/raw", content=message.body, headers=message.headers)
        assert response.status_code == 202, response.text
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    topic = f"{served.prefix}ce.Order.Shipped"
    record = await asyncio.to_thread(_read_back, bootstrap, topic, b"k-1")
    read = sdk_kafka.from_binary(
        sdk_kafka.KafkaMessage(headers=record.headers, key=record.key, value=record.value), JSON
    )
    assert read.get_attributes() == sent.get_attributes()
    assert read.get_data() == sent.get_data()
    # The SDK's classic API reads it too (it hands the key over as the bytes it is).
    classic = from_binary(record)
    assert (classic["region"], classic["partitionkey"]) == ("eu", b"cust-1")
    assert classic.data == {"order": "k-1"}


def _produce_structured(bootstrap: str, topic: str, event: SdkEvent) -> None:
    """``event`` written by a plain Kafka producer in the binding's structured mode."""
    message = sdk_kafka.to_structured(event, JSON)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    producer.produce(
        topic, value=message.value, key=message.key, headers=list(message.headers.items())
    )
    assert producer.flush(30) == 0


@pytest.mark.parametrize("served", ["kafka"], indirect=True)
async def test_an_event_a_kafka_producer_wrote_in_structured_mode_is_consumed(
    served: Served, request: pytest.FixtureRequest
) -> None:
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    sent = order("kafka-structured", partitionkey="cust-7", region="eu")
    async with httpx.AsyncClient(base_url=served.url) as http:
        # The type's topic is the gateway's: made by its first event of the type.
        first = sdk_http.to_binary(order("through-http"), JSON)
        response = await http.post("/ce/produce/raw", content=first.body, headers=first.headers)
        assert response.status_code == 202, response.text
        topic = f"{served.prefix}ce.Order.Shipped"
        await asyncio.to_thread(_produce_structured, bootstrap, topic, sent)
        group = f"structured-{uuid.uuid4().hex[:8]}"
        created = await http.post("/ce/consumers", params={"group": group, "test": "false"})
        assert created.status_code == 201, created.text
        instance = urlsplit(created.headers["location"]).path
        received: dict[str, dict[str, object]] = {}
        for _ in range(20):
            polled = await http.get(f"{instance}/events", params={"timeout": "2"})
            if polled.status_code == 200:
                received.update((event["id"], event) for event in polled.json())
            if "kafka-structured" in received:
                break
    event = received["kafka-structured"]
    assert event["data"] == {"order": "kafka-structured"}
    assert (event["partitionkey"], event["region"], event["source"]) == ("cust-7", "eu", "urn:shop")
    assert (event["time"], event["datacontenttype"]) == ("2025-01-31T12:00:00Z", "application/json")
