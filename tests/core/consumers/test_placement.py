"""Consumer instances placed by group shard: two nodes on one real log (SQLite standing in
for the shared cluster), a group served by one of them, and a node that loses a shard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sluicegate.core.consumers.registry import ConsumerInstances, ConsumerSettings
from sluicegate.core.group_shards import GroupShards
from sluicegate.core.longpoll import LongPolls
from sluicegate.core.membership import Membership
from sluicegate.core.records import NewRecord, TopicPartition
from sluicegate.core.topics import TopicSpec
from sluicegate.errors import GroupElsewhere, UnknownConsumerInstance
from sluicegate.storage.base import Log, running
from sluicegate.storage.sqlite import SqliteLog
from tests.core.consumers.conftest import Topics, never
from tests.core.test_group_shards import TIMEOUT, _beat, _settings
from tests.core.test_membership import Clock

GROUP = "ce/shop/billing"
TOPIC = "orders"


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[Log]:
    async with running(SqliteLog(tmp_path)) as log:
        await log.create_topic(TopicSpec(name=TOPIC, partitions=2))
        yield log


async def _node(log: Log, clock: Clock, node_id: str) -> tuple[GroupShards, ConsumerInstances]:
    settings = _settings(node_id)
    membership = Membership(log, settings, shared=True, clock=clock.wall, monotonic=clock.monotonic)
    await membership.start()
    shards = GroupShards(log, membership, settings, clock=clock.wall)
    await shards.load()
    instances = ConsumerInstances(
        log, LongPolls(log, None), ConsumerSettings(idle_timeout=60.0, max_unconfirmed=100)
    )
    instances.placement = shards
    return shards, instances


async def _produce(log: Log, *values: bytes) -> None:
    for n, value in enumerate(values):
        await log.append([NewRecord(TOPIC, n % 2, None, value)])


async def test_a_group_served_by_another_live_node_is_refused_here(log: Log) -> None:
    clock = Clock()
    _, on_a = await _node(log, clock, "a")
    b_shards, on_b = await _node(log, clock, "b")
    await on_a.create("shop", GROUP, Topics(TOPIC))
    await b_shards.catch_up()
    with pytest.raises(GroupElsewhere) as refused:
        await on_b.create("shop", GROUP, Topics(TOPIC))
    assert refused.value.detail["node"] == "a"
    assert len(on_b) == 0
    # A second instance of the group on A shares its partitions with the first.
    await on_a.create("shop", GROUP, Topics(TOPIC))
    assert len(on_a) == 2


async def test_a_lost_shard_closes_its_instances_and_the_new_node_redelivers_the_unconfirmed(
    log: Log,
) -> None:
    clock = Clock()
    a_shards, on_a = await _node(log, clock, "a")
    b_shards, on_b = await _node(log, clock, "b")
    await _produce(log, b"e0", b"e1", b"e2", b"e3")
    first = await on_a.create("shop", GROUP, Topics(TOPIC))
    batch = await first.next_batch(10, 0, never)
    assert len(batch.records) == 4
    # The first two deliveries confirmed: a prefix of each partition's, committed.
    await first.confirm(batch.first + 1)
    confirmed = {r.value for r in batch.records[:2]}

    clock.now += TIMEOUT  # A's heartbeats stop getting through
    await _beat(b_shards)
    second = await on_b.create("shop", GROUP, Topics(TOPIC))

    # A hears of it: its instance is closed (404), and its group commits nothing more.
    # (Both "nodes" share this log's one group coordinator, so B's instance gets every
    # partition only once A's has left, as it would from the start in two processes.)
    await a_shards.catch_up()
    closing = asyncio.ensure_future(on_a.close_lost(a_shards.lost()))
    try:
        async with asyncio.timeout(5):
            while len(on_a):  # noqa: ASYNC110 (closed by another task)
                await asyncio.sleep(0.01)
    finally:
        closing.cancel()
    again = await second.next_batch(10, 0, never)
    assert {r.value for r in again.records} == {b"e0", b"e1", b"e2", b"e3"} - confirmed
    # A request to it under way hears why (503: connect again); a later one finds none.
    with pytest.raises(GroupElsewhere):
        await first.next_batch(10, 0, never)
    with pytest.raises(UnknownConsumerInstance):
        on_a.get("shop", GROUP, first.id)
    assert on_a.group(GROUP) is None
    with pytest.raises(GroupElsewhere):
        a_shards.check_held(GROUP)


async def test_a_commit_is_fenced_once_the_shard_moved(log: Log) -> None:
    clock = Clock()
    a_shards, on_a = await _node(log, clock, "a")
    b_shards, on_b = await _node(log, clock, "b")
    await _produce(log, b"e0", b"e1")
    first = await on_a.create("shop", GROUP, Topics(TOPIC))
    batch = await first.next_batch(10, 0, never)
    clock.now += TIMEOUT
    await _beat(b_shards)
    await on_b.create("shop", GROUP, Topics(TOPIC))
    await a_shards.catch_up()
    # The confirmation reaches A before it closed its instance: refused, nothing committed.
    with pytest.raises(GroupElsewhere):
        await first.confirm(batch.last)
    for partition in (0, 1):
        committed = await log.committed_offsets(GROUP, TOPIC)
        assert committed.get(partition, 0) == 0, TopicPartition(TOPIC, partition)
