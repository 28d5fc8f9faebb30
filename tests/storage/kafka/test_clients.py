"""The node's Kafka clients on a cluster that creates topics on demand (Kafka's own
default, ``auto.create.topics.enable``): they never create a topic themselves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from sluicegate.app import build_app
from sluicegate.core.gateway import Gateway
from sluicegate.observability.metrics import Metrics
from sluicegate.storage.base import running
from sluicegate.storage.factory import open_log
from sluicegate.testing.kafka_broker import KafkaBroker
from tests.conftest import make_settings, on_kafka


@pytest.fixture(scope="module")
def eager_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A broker of this module's own that creates any topic a metadata request names."""
    with KafkaBroker(tmp_path_factory.mktemp("kafka"), auto_create_topics=True) as broker:
        yield broker


def _topics(bootstrap: str) -> set[str]:
    # A metadata request for every topic creates none.
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics)


async def test_a_deleted_topic_is_not_made_again_by_the_node(
    eager_broker: KafkaBroker, tmp_path: Path
) -> None:
    # librdkafka's producers (and its admin client, a producer underneath) may create a
    # topic their metadata requests name. The node's producers refresh the metadata of
    # the topics they know (here every 200 ms), so a topic deleted through the gateway
    # would come back with the broker's defaults, unknown to the gateway.
    bootstrap = eager_broker.bootstrap_servers
    settings = on_kafka(
        make_settings(
            tmp_path,
            auth={"enabled": False},
            topics={"auto_create": False},
            kafka={"request_timeout": 2.0, "client": {"topic.metadata.refresh.interval.ms": 200}},
        ),
        bootstrap,
    )
    gone = f"{settings.kafka.topic_prefix}gone"
    async with running(open_log(settings)) as log:
        gateway = Gateway(settings, log)
        await gateway.start()
        transport = httpx.ASGITransport(app=build_app(gateway, metrics=Metrics()))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            created = await http.post("/admin/v1/topics", json={"name": "gone", "partitions": 2})
            assert created.status_code == 201, created.text
            # Both producers learn the topic: a single record, and two in a transaction.
            single = {"value": {"type": "text", "data": "one"}}
            assert (await http.post("/v2/topics/gone/records", json=single)).status_code == 200
            batch = {"records": [{"value": "two"}, {"value": "three"}]}
            produced = await http.post("/admin/v1/topics/gone/records", json=batch)
            assert produced.status_code == 200, produced.text
            assert gone in await asyncio.to_thread(_topics, bootstrap)
            deleted = await http.delete("/admin/v1/topics/gone")
            assert deleted.status_code == 204, deleted.text
            # Many refreshes later, with the node still running:
            await asyncio.sleep(3)
            assert gone not in await asyncio.to_thread(_topics, bootstrap)
            missing = await http.post("/v2/topics/gone/records", json=single)
            assert missing.status_code == 404, missing.text
            await asyncio.sleep(1)
            assert gone not in await asyncio.to_thread(_topics, bootstrap)
