"""Consumer instances with a small window and small caps."""

from __future__ import annotations

import asyncio

import pytest

from sluicegate.core.consumers.registry import ConsumerInstances, ConsumerSettings
from sluicegate.core.gateway import Gateway
from sluicegate.errors import RateLimited, UnknownConsumerInstance
from tests.core.consumers.conftest import Topics, append, make_topic, never
from tests.core.consumers.test_instances import GROUP, values


@pytest.fixture
def consumer_settings() -> ConsumerSettings:
    return ConsumerSettings(idle_timeout=60.0, max_unconfirmed=2, max_instances_per_client=3)


async def test_a_full_window_stops_reading_until_a_confirmation(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"a", b"b", b"c"])
    instance = await instances.create("app", GROUP, Topics(topic))
    assert values((await instance.next_batch(10, 0, never)).records) == [b"a", b"b"]
    polling = asyncio.ensure_future(instance.next_batch(10, 30, never))
    await asyncio.sleep(0.05)
    assert not polling.done()
    await instance.confirm(1)
    batch = await asyncio.wait_for(polling, 10)
    assert (batch.first, values(batch.records)) == (3, [b"c"])


async def test_instances_belong_to_their_client_and_are_capped(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic = await make_topic(gateway, "orders")
    mine = await instances.create("app", GROUP, Topics(topic))
    for owner, group in [("other", GROUP), ("app", "ce/app/audit")]:
        with pytest.raises(UnknownConsumerInstance):
            instances.get(owner, group, mine.id)
    with pytest.raises(UnknownConsumerInstance):
        await instances.delete("other", GROUP, mine.id)
    assert len(mine.id) >= 22
    await instances.create("app", GROUP, Topics(topic))
    await instances.create("app", GROUP, Topics(topic))
    with pytest.raises(RateLimited, match="3 consumer instances"):
        await instances.create("app", GROUP, Topics(topic))
    await instances.create("other", GROUP.replace("app", "other"), Topics(topic))
    assert instances.stats()["instances"] == 4
