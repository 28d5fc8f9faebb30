"""The gateway's own topics deleted with Kafka's tools: every node serves on, the topic is
made again, empty (a state topic by its followers, a client's stream by its next event),
and a node started afterwards starts; so does one started after the topic registry was
deleted, with its state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient, ConfigResource

from sluicegate.app import build_app
from sluicegate.config import Settings
from sluicegate.core import state_topic
from sluicegate.core.auth.principals import ANONYMOUS
from sluicegate.core.cloudevents import streams
from sluicegate.core.gateway import Gateway
from sluicegate.core.schemas.state import STATE_TOPIC
from sluicegate.core.topics import INTERNAL_PREFIX, TopicSpec
from sluicegate.errors import StorageUnavailable
from sluicegate.observability.metrics import Metrics
from sluicegate.storage import outages
from sluicegate.storage.base import running
from sluicegate.storage.factory import open_log
from sluicegate.storage.kafka import KafkaLog, topics
from sluicegate.storage.kafka.registry import REGISTRY_TOPIC
from tests.conftest import make_settings, on_kafka
from tests.dialects.cloudevents.conftest import stored
from tests.helpers import eventually
from tests.storage.kafka.conftest import delete_in_kafka

SCHEMAS_TOPIC = f"{INTERNAL_PREFIX}_{STATE_TOPIC}"
OFFSETS_TOPIC = "__consumer_offsets"
SCHEMA = '{"type": "record", "name": "R%d", "fields": []}'
TEST_EVENT = {
    "ce-specversion": "1.0",
    "ce-source": "urn:test",
    "ce-type": "Order.Created",
    "content-type": "application/json",
}


@pytest.fixture
def settings(tmp_path: Path, kafka_bootstrap: str) -> Settings:
    return on_kafka(
        make_settings(tmp_path, auth={"enabled": False}, kafka={"request_timeout": 2.0}),
        kafka_bootstrap,
    )


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Gateway]:
    """A node: its log, its state loaded, its housekeeping (the state's followers) running;
    a housekeeping task that failed fails the test."""
    async with running(open_log(settings)) as log:
        gateway = Gateway(settings, log)
        await gateway.start()
        housekeeping = asyncio.create_task(gateway.run())
        try:
            yield gateway
            assert not housekeeping.done(), housekeeping
        finally:
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping


def errors_said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_state_topic_deleted_outside_is_made_again_empty_and_followed_by_every_node(
    settings: Settings,
    kafka_admin: AdminClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The nodes' own checks wait past the test (it makes them), and their followers ask
    # Kafka often: before the gateway takes the deletion, a follower finds the topic gone
    # from Kafka (which ended every node once).
    monkeypatch.setattr(topics, "OUTSIDE_CHECK_INTERVAL", 3600.0)
    monkeypatch.setattr(state_topic, "_FOLLOW_WAIT", 0.2)
    monkeypatch.setattr(outages, "RETRY_DELAYS", (0.2, 0.5))
    async with serving(settings) as a, serving(settings) as b:
        await a.schemas.register("before", SCHEMA % 1)
        await eventually(lambda: b.schemas.subjects() == ["before"], "B's schemas read")
        kafka_name = settings.kafka.topic_prefix + SCHEMAS_TOPIC
        await asyncio.to_thread(delete_in_kafka, kafka_admin, kafka_name)
        # Until the gateway has taken the deletion, the state is not written (503), and
        # what the nodes know they keep serving.
        with pytest.raises(StorageUnavailable):
            await a.schemas.register("lost", SCHEMA % 2)
        await asyncio.sleep(1.0)  # the followers' waits time out and find the topic gone
        assert a.schemas.subjects() == b.schemas.subjects() == ["before"]
        log = a.log
        assert isinstance(log, KafkaLog)
        assert await log._topics.adopt_outside_changes() == ([], [])
        assert await log._topics.adopt_outside_changes() == ([], [SCHEMAS_TOPIC])
        # Every node follows the topic made again: what the old one held is gone on each.
        await eventually(
            lambda: a.schemas.subjects() == b.schemas.subjects() == [], "both nodes' schemas gone"
        )
        await b.schemas.register("after", SCHEMA % 3)
        await eventually(lambda: a.schemas.subjects() == ["after"], "A's schemas read")
        assert (await a.schemas.register("after", SCHEMA % 3)) == (
            await b.schemas.register("after", SCHEMA % 3)
        )
    said = errors_said(caplog)
    assert (
        said.count(
            f"the gateway's internal topic '{SCHEMAS_TOPIC}' is gone from Kafka (missing in two "
            "checks 3600 s apart): it was deleted outside the gateway, and the state it held "
            "with it"
        )
        == 1
    )
    lost = [m for m in said if m.startswith(f"the gateway's internal topic {SCHEMAS_TOPIC} ")]
    assert (
        lost
        == [
            f"the gateway's internal topic {SCHEMAS_TOPIC} was deleted outside the gateway: what "
            "it held is lost (entries this node knew: 2); the gateway made it again, empty"
        ]
        * 2
    )


async def test_a_node_started_after_a_state_topic_was_deleted_outside_starts(
    settings: Settings,
    kafka_admin: AdminClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The registry still lists the topic, Kafka has none: the start waits until its own
    # checks have taken the deletion (two, an interval apart), then makes it again.
    monkeypatch.setattr(topics, "OUTSIDE_CHECK_INTERVAL", 1.0)
    monkeypatch.setattr(outages, "RETRY_DELAYS", (0.2, 0.5))
    async with serving(settings) as first:
        await first.schemas.register("before", SCHEMA % 1)
    kafka_name = settings.kafka.topic_prefix + SCHEMAS_TOPIC
    await asyncio.to_thread(delete_in_kafka, kafka_admin, kafka_name)
    async with asyncio.timeout(60), serving(settings) as second:
        assert second.schemas.subjects() == []
        await second.schemas.register("after", SCHEMA % 2)
        assert second.schemas.subjects() == ["after"]
    assert any("reading the gateway's state failed" in r.getMessage() for r in caplog.records)
    assert (
        f"the gateway's internal topic {SCHEMAS_TOPIC} was deleted outside the gateway: what "
        "it held is lost (entries this node knew: 0); the gateway made it again, empty"
    ) in errors_said(caplog)


async def test_a_clients_test_stream_deleted_outside_is_made_again_by_its_next_event(
    settings: Settings, kafka_admin: AdminClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Within the few seconds a node trusts the stream's metadata: the next test event finds
    # the stream gone and makes it again, rather than answer that a topic does not exist.
    monkeypatch.setattr(topics, "OUTSIDE_CHECK_INTERVAL", 3600.0)
    stream = streams.test_topic(ANONYMOUS)
    async with serving(settings) as gateway:
        app = build_app(gateway, metrics=Metrics())
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:

            async def test_event(event_id: str) -> httpx.Response:
                headers = {**TEST_EVENT, "ce-id": event_id}
                return await client.post("/ce/tools/consumer/test", content=b"{}", headers=headers)

            assert (await test_event("before")).status_code == 202
            kafka_name = settings.kafka.topic_prefix + stream
            await asyncio.to_thread(delete_in_kafka, kafka_admin, kafka_name)
            log = gateway.log
            assert isinstance(log, KafkaLog)
            assert await log._topics.adopt_outside_changes() == ([], [])
            assert await log._topics.adopt_outside_changes() == ([], [stream])
            response = await test_event("after")
            assert response.status_code == 202, response.text
        records = await stored(gateway, stream)
        assert [dict(r.headers)["ce_id"] for r in records] == [b"after"]


async def test_the_topic_registry_deleted_outside_leaves_the_state_to_nodes_started_after(
    settings: Settings, kafka_admin: AdminClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The registry lists the gateway's topics; deleted, no topic can be created (503, not a
    # 404 naming the registry). A node started afterwards makes it again, empty, and takes
    # the gateway's own topics back from Kafka as they are: its state is still there.
    monkeypatch.setattr(outages, "RETRY_DELAYS", (0.2, 0.5))
    async with serving(settings) as first:
        await first.schemas.register("before", SCHEMA % 1)
        kafka_name = settings.kafka.topic_prefix + REGISTRY_TOPIC
        await asyncio.to_thread(delete_in_kafka, kafka_admin, kafka_name)
        with pytest.raises(StorageUnavailable, match=r"topic registry .* is gone from Kafka"):
            await first.log.create_topic(TopicSpec(name="orders", partitions=1))
        assert first.schemas.subjects() == ["before"]
    async with asyncio.timeout(60), serving(settings) as second:
        assert second.schemas.subjects() == ["before"]
        await second.schemas.register("after", SCHEMA % 2)
        # Made in Kafka by the first node's creation, whose registry record failed: taken.
        await second.log.create_topic(TopicSpec(name="orders", partitions=1))
        listed = {t.name for t in await second.log.list_topics(include_internal=True)}
        assert {SCHEMAS_TOPIC, "orders"} <= listed


async def test_kafkas_own_topics_are_never_taken_for_a_dialects(
    settings: Settings, kafka_admin: AdminClient
) -> None:
    # With no topic prefix, a dialect's topic name is the Kafka name. Asked for Kafka's
    # group offsets topic, a node used to create it, find it in Kafka, and take it after its
    # tries: its settings (retention, cleanup policy) rewritten as a dialect topic's.
    settings = msgspec.structs.replace(
        settings, kafka=msgspec.structs.replace(settings.kafka, topic_prefix="")
    )
    # Kafka makes its offsets topic at the first question about a group.
    offsets = await asyncio.to_thread(
        kafka_admin.list_consumer_group_offsets, [ConsumerGroupTopicPartitions("a-group")]
    )
    await asyncio.to_thread(offsets["a-group"].result, 30)
    before = await asyncio.to_thread(_offsets_topic, kafka_admin)
    async with serving(settings) as gateway:
        app = build_app(gateway, metrics=Metrics())
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            produced = await client.post(
                f"/v2/topics/{OFFSETS_TOPIC}/records", json={"value": {"type": "text", "data": "x"}}
            )
            assert produced.status_code == 404, produced.text
            created = await client.post("/admin/v1/topics", json={"name": OFFSETS_TOPIC})
            assert created.status_code == 409, created.text
            assert "reserved for internal topics" in created.json()["message"]
            listed = (await client.get("/admin/v1/topics")).json()
            assert [t for t in listed if t["name"].startswith("__")] == []
    assert await asyncio.to_thread(_offsets_topic, kafka_admin) == before


def _offsets_topic(admin: AdminClient) -> tuple[int, dict[str, str]]:
    """Kafka's group offsets topic as Kafka has it: its partitions and its settings."""
    partitions = len(admin.list_topics(OFFSETS_TOPIC, timeout=10).topics[OFFSETS_TOPIC].partitions)
    resource = ConfigResource(ConfigResource.Type.TOPIC, OFFSETS_TOPIC)
    configs = admin.describe_configs([resource])[resource].result(30)
    return partitions, {name: entry.value for name, entry in configs.items()}
