"""Fixtures of the cloudevents dialect's tests: clients with CloudEvents permissions,
and what the log holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.config import Settings
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import Record, TopicPartition
from sluicegate.errors import UnknownTopic
from tests.conftest import make_settings

#: A producer of Order.* events from urn:shop, the clients' usual shape.
PRODUCER = Permissions(ce_sources=["urn:shop", "urn:shop:*"], ce_produce_types=["Order.*"])
CONSUMER = Permissions(ce_consume_types=["Order.*"])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, cloudevents={"max_event_bytes": 4096})


async def key_for(gateway: Gateway, name: str, permissions: Permissions) -> dict[str, str]:
    """Authorization headers of a new client ``name``."""
    await gateway.clients.create_client(name, permissions)
    created = await gateway.clients.create_key(name)
    return {"authorization": f"Bearer {created.key}"}


@pytest.fixture
async def producer(gateway: Gateway) -> dict[str, str]:
    return await key_for(gateway, "shop", PRODUCER)


async def stored(gateway: Gateway, topic: str) -> list[Record]:
    """Every record of ``topic``, partition by partition; ``[]`` if it does not exist."""
    try:
        partitions = (await gateway.log.get_topic(topic)).partitions
    except UnknownTopic:
        return []
    records: list[Record] = []
    for partition in range(partitions):
        tp = TopicPartition(topic, partition)
        records += await gateway.log.read(tp, 0, max_records=10_000, max_bytes=1 << 26)
    return records
