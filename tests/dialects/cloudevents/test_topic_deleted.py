"""A CloudEvents type's topic deleted, through the gateway or with Kafka's own tools: made
again by the type's next events, with no error to any producer."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from cloudevents.core.bindings import http as sdk_http
from confluent_kafka.admin import AdminClient

from sluicegate.core.gateway import Gateway
from tests.dialects.cloudevents.conftest import stored
from tests.dialects.cloudevents.test_consumers import create, poll
from tests.dialects.cloudevents.test_produce import (
    JSON,
    TOPIC,
    batch_body,
    post_batch,
    post_binary,
    sdk_event,
)
from tests.storage.kafka.conftest import delete_in_kafka


@pytest.mark.parametrize("backend", ["kafka"])  # where a topic can go behind its back
async def test_an_event_topic_deleted_outside_the_gateway_is_made_again(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str], kafka_bootstrap: str
) -> None:
    # Deleted with Kafka's tools while the type's topic is in the node's few seconds of
    # cached metadata: once the gateway has taken the deletion, the next events of the
    # type make it again, with no error to any producer.
    assert (await post_binary(client, sdk_event("before"), producer)).status_code == 202
    kafka_name = gateway.settings.kafka.topic_prefix + TOPIC
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    await asyncio.to_thread(delete_in_kafka, admin, kafka_name)
    topics = gateway.log._topics  # type: ignore[attr-defined]
    assert await topics.adopt_outside_changes() == ([], [])
    assert await topics.adopt_outside_changes() == ([], [TOPIC])
    raw = await post_binary(client, sdk_event("raw"), producer)
    assert raw.status_code == 202, raw.text
    message = sdk_http.to_structured(sdk_event("structured"), JSON)
    structured = await client.post(
        "/ce/produce/event", content=message.body, headers={**message.headers, **producer}
    )
    assert structured.status_code == 202, structured.text
    batch = batch_body([sdk_event("batch-1"), sdk_event("batch-2")])
    assert (await post_batch(client, batch, producer)).status_code == 202
    records = await stored(gateway, TOPIC)
    ids = sorted(dict(record.headers)["ce_id"] for record in records)
    assert ids == [b"batch-1", b"batch-2", b"raw", b"structured"]
    assert (await gateway.log.get_topic(TOPIC)).partitions == 12


async def test_an_event_topic_deleted_through_the_gateway_is_made_again_at_once(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str]
) -> None:
    # Within the few seconds the producer trusts its topic metadata: the next event finds
    # the topic gone, and makes it again rather than answer that a topic does not exist.
    assert (await post_binary(client, sdk_event("before"), producer)).status_code == 202
    await gateway.log.delete_topic(TOPIC)
    raw = await post_binary(client, sdk_event("raw"), producer)
    assert raw.status_code == 202, raw.text
    await gateway.log.delete_topic(TOPIC)
    batch = batch_body([sdk_event("batch-1"), sdk_event("batch-2")])
    assert (await post_batch(client, batch, producer)).status_code == 202
    records = await stored(gateway, TOPIC)
    assert sorted(dict(record.headers)["ce_id"] for record in records) == [b"batch-1", b"batch-2"]


async def test_an_event_sent_again_after_its_topic_was_deleted_is_stored_again(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str]
) -> None:
    # The memory of the events a topic held goes with the topic: an event sent again
    # after the deletion is stored in the topic made again, not acknowledged as a
    # duplicate of records that are gone (202 with nothing stored anywhere). Within the
    # new topic it is a duplicate again.
    message = sdk_http.to_structured(sdk_event("structured"), JSON)

    async def send_all() -> None:
        assert (await post_binary(client, sdk_event("raw"), producer)).status_code == 202
        structured = await client.post(
            "/ce/produce/event", content=message.body, headers={**message.headers, **producer}
        )
        assert structured.status_code == 202, structured.text
        batch = batch_body([sdk_event("batch-1"), sdk_event("batch-2")])
        assert (await post_batch(client, batch, producer)).status_code == 202

    await send_all()
    await gateway.topics.delete(TOPIC)
    await send_all()
    await send_all()
    records = await stored(gateway, TOPIC)
    ids = sorted(dict(record.headers)["ce_id"] for record in records)
    assert ids == [b"batch-1", b"batch-2", b"raw", b"structured"]


async def test_a_live_consumer_reads_the_type_made_again_from_its_first_event(
    client: httpx.AsyncClient,
    gateway: Gateway,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    # The instance read and confirmed the old topic's events; the new topic's offsets
    # start at 0 again, and its first events are new to the group, not behind it.
    instance = await create(client, consumer)
    old = [sdk_event(f"old-{n}") for n in range(3)]
    assert (await post_batch(client, batch_body(old), producer)).status_code == 202
    got = await poll(client, instance, consumer)
    assert sorted(e["id"] for e in got.json()) == ["old-0", "old-1", "old-2"]
    assert (await client.post(f"{instance}/confirm", headers=consumer)).status_code == 204
    await gateway.log.delete_topic(TOPIC)
    for n in range(2):
        assert (await post_binary(client, sdk_event(f"new-{n}"), producer)).status_code == 202
    got = await poll(client, instance, consumer)
    assert sorted(e["id"] for e in got.json()) == ["new-0", "new-1"]
