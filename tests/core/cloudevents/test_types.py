"""The registry of produced types over a real SQLite log: durable, coalesced, signalled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sluicegate.core.auth.patterns import PatternSet
from sluicegate.core.cloudevents import types as types_module
from sluicegate.core.cloudevents.types import EventTypes
from sluicegate.core.records import TopicPartition
from sluicegate.storage.base import Log, running
from sluicegate.storage.sqlite import SqliteLog


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[Log]:
    async with running(SqliteLog(tmp_path)) as log:
        yield log


@pytest.fixture
async def types(log: Log) -> EventTypes:
    registry = EventTypes(log)
    await registry.load()
    return registry


async def test_registered_types_map_patterns_to_topics(types: EventTypes) -> None:
    await types.register([("Order.Created", "ce.Order.Created"), ("Order.Paid", "orders")])
    await types.register([("User.Created", "orders")])
    assert types.knows("Order.Paid", "orders")
    assert not types.knows("Order.Paid", "ce.Order.Paid")
    assert types.topics_matching(PatternSet(["Order.*"])) == {"ce.Order.Created", "orders"}
    assert types.topics_matching(PatternSet(["User.Created"])) == {"orders"}
    assert types.topics_matching(PatternSet([])) == set()
    assert types.types_matching(PatternSet(["*"])) == [
        "Order.Created",
        "Order.Paid",
        "User.Created",
    ]


async def test_a_type_keeps_every_topic_it_was_stored_in(types: EventTypes) -> None:
    await types.register([("Order.Created", "ce.Order.Created")])
    first = types.get("Order.Created")
    assert first is not None
    await types.register([("Order.Created", "orders")])
    entry = types.get("Order.Created")
    assert entry is not None
    assert entry.topics == ["ce.Order.Created", "orders"]
    assert entry.first_seen == first.first_seen


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    async with running(SqliteLog(tmp_path)) as log:
        types = EventTypes(log)
        await types.load()
        await types.register([("A", "ce.A"), ("B", "shared")])
    async with running(SqliteLog(tmp_path)) as log:
        reloaded = EventTypes(log)
        await reloaded.load()
        assert reloaded.knows("A", "ce.A")
        assert reloaded.topics_matching(PatternSet(["*"])) == {"ce.A", "shared"}
        assert len(reloaded) == 2


async def test_concurrent_first_produces_write_once(log: Log, types: EventTypes) -> None:
    await asyncio.gather(*(types.register([("T", "ce.T")]) for _ in range(20)))
    state = TopicPartition("__sluicegate_ce_types", 0)
    assert (await log.watermarks(state)).high == 1


async def test_a_waiting_consumer_learns_of_a_new_type(types: EventTypes) -> None:
    version = types.version
    waiter = asyncio.create_task(types.changed(version))
    await asyncio.sleep(0)
    assert not waiter.done()
    await types.register([("Late.Type", "ce.Late.Type")])
    assert await asyncio.wait_for(waiter, 5) > version
    # Nothing new since: a wait for the current version blocks again.
    assert await types.changed(version) == types.version
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(types.changed(types.version), 0.05)


async def test_the_state_topic_is_made_by_the_first_registration(
    log: Log, types: EventTypes
) -> None:
    topics = {topic.name for topic in await log.list_topics(include_internal=True)}
    assert "__sluicegate_ce_types" not in topics
    await types.register([("First", "ce.First")])
    topics = {topic.name for topic in await log.list_topics(include_internal=True)}
    assert "__sluicegate_ce_types" in topics


async def test_another_node_registration_arrives_through_follow(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other node makes the state topic: this one finds it at its next look.
    monkeypatch.setattr(types_module, "_LOOK_AGAIN", 0.05)
    ours, theirs = EventTypes(log), EventTypes(log)
    await ours.load()
    await theirs.load()
    follower = asyncio.create_task(ours.follow())
    try:
        version = ours.version
        await theirs.register([("Remote.Type", "ce.Remote.Type")])
        await asyncio.wait_for(ours.changed(version), 5)
        assert ours.knows("Remote.Type", "ce.Remote.Type")
    finally:
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower
