"""The core topic catalog: its cache is bounded in size and in age, and only a cache."""

from __future__ import annotations

import pytest

from sluicegate.core.catalog import TopicCatalog
from sluicegate.core.gateway import Gateway
from sluicegate.core.topics import TopicSpec
from tests.conftest import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> list[float]:
    """The catalog's monotonic time, in seconds: moved by the test alone."""
    return [100.0]


@pytest.fixture
def catalog(gateway: Gateway, clock: list[float]) -> TopicCatalog:
    return TopicCatalog(
        gateway.log, gateway.settings.topics, ttl=5.0, cache_size=2, monotonic=lambda: clock[0]
    )


async def test_the_cache_keeps_the_newest_topics_up_to_its_size(catalog: TopicCatalog) -> None:
    topics = [await catalog.get(f"bounded-{n}", auto_create=True) for n in range(4)]
    assert [catalog.cached(t.name) for t in topics] == [None, None, topics[2], topics[3]]
    assert [catalog.cached_by_id(t.id) for t in topics] == [None, None, topics[2], topics[3]]
    # A topic that left the cache is still a topic: asked for again, it is the same one.
    assert await catalog.get("bounded-0") == topics[0]
    assert catalog.cached("bounded-0") == topics[0]
    assert catalog.cached("bounded-2") is None


async def test_a_topic_in_use_outlives_topics_seen_once(
    catalog: TopicCatalog, clock: list[float]
) -> None:
    hot = await catalog.get("hot", auto_create=True)
    clock[0] += 6  # past the TTL: the next request for "hot" asks the log again
    once = await catalog.get("once", auto_create=True)
    assert catalog.cached("hot") is None
    assert await catalog.get("hot") == hot
    await catalog.get("later", auto_create=True)
    # "hot" was stored again after "once", so "once" is the oldest and goes first.
    assert catalog.cached("hot") == hot
    assert catalog.cached("once") is None
    assert await catalog.get("once") == once


async def test_topics_found_by_id_are_bounded_too(catalog: TopicCatalog, gateway: Gateway) -> None:
    created = [await gateway.log.create_topic(TopicSpec(name=f"by-id-{n}")) for n in range(3)]
    found = [await catalog.by_id(topic.id) for topic in created]
    assert found == created
    assert [catalog.cached_by_id(t.id) for t in created] == [None, created[1], created[2]]
