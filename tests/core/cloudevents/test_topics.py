import asyncio

from sluicegate.core.cloudevents import streams
from sluicegate.core.gateway import Gateway
from sluicegate.core.topics import TopicSpec


async def test_type_topics_get_the_dialect_defaults_and_streams_one_partition(
    gateway: Gateway,
) -> None:
    topics = gateway.event_topics
    created = await topics.get("ce.Order.Created")
    assert created.partitions == 12
    assert created.retention_ms == 120 * 3600 * 1000
    assert topics.cached("ce.Order.Created") == created
    stream = await topics.stream(streams.dead_topic("shop"))
    assert stream.partitions == 1
    assert stream.retention_ms == 120 * 3600 * 1000


async def test_concurrent_first_uses_create_the_topic_once(gateway: Gateway) -> None:
    got = await asyncio.gather(*(gateway.event_topics.get("ce.burst") for _ in range(20)))
    assert len({topic.id for topic in got}) == 1


async def test_an_existing_topic_is_used_as_it_is(gateway: Gateway) -> None:
    await gateway.log.create_topic(TopicSpec(name="orders", partitions=3))
    assert (await gateway.event_topics.get("orders")).partitions == 3
