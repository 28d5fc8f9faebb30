"""Group shard leases over a real log (SQLite stands in for the shared cluster: the claim
records and their replay are the same through the ``Log`` contract), clocks set by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sluicegate.config import ClusterSettings
from sluicegate.core.group_shards import GroupShards, ShardClaim, shard_of
from sluicegate.core.membership import Membership
from sluicegate.core.state_topic import StateTopic
from sluicegate.errors import ConfigError, GroupElsewhere
from sluicegate.storage.base import Log, running
from sluicegate.storage.sqlite import SqliteLog
from tests.core.test_membership import Clock

TIMEOUT = 5.0
GROUP = "ce/shop/billing"


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[Log]:
    async with running(SqliteLog(tmp_path)) as log:
        yield log


def _settings(node_id: str, shards: int = 8) -> ClusterSettings:
    return ClusterSettings(
        node_id=node_id,
        advertised_url=f"http://{node_id}:8080",
        heartbeat_interval=TIMEOUT / 5,
        heartbeat_timeout=TIMEOUT,
        group_shards=shards,
    )


async def _node(log: Log, clock: Clock, node_id: str, *, shards: int = 8) -> GroupShards:
    """A started node: its membership announced, the claims replayed."""
    settings = _settings(node_id, shards)
    membership = Membership(log, settings, shared=True, clock=clock.wall, monotonic=clock.monotonic)
    await membership.start()
    node = GroupShards(log, membership, settings, clock=clock.wall)
    await node.load()
    return node


async def _beat(*nodes: GroupShards) -> None:
    """Each node writes a heartbeat; then every node has read all of them."""
    for node in nodes:
        await node._membership.beat()
    for node in nodes:
        await node._membership._records.catch_up()


def test_a_group_s_shard_is_the_same_everywhere_and_spreads() -> None:
    assert shard_of(GROUP, 64) == shard_of(GROUP, 64)
    shards = {shard_of(f"ce/shop/g{n}", 64) for n in range(1000)}
    assert len(shards) == 64


async def test_a_free_shard_is_claimed_by_the_first_node_asked(log: Log) -> None:
    clock = Clock()
    a = await _node(log, clock, "a")
    b = await _node(log, clock, "b")
    assert a.owner(GROUP) is None
    assert await a.acquire(GROUP) == "a"
    assert a.owner(GROUP) == "a"
    a.check_held(GROUP)
    # B learns it from the log, and is sent to A instead of claiming.
    await b.catch_up()
    assert b.owner(GROUP) == "a"
    assert await b.acquire(GROUP) == "a"
    with pytest.raises(GroupElsewhere):
        b.check_held(GROUP)
    assert {lease.node_id for lease in b.leases().values()} == {"a"}


async def test_a_held_shard_stays_with_its_live_holder(log: Log) -> None:
    clock = Clock()
    a = await _node(log, clock, "a")
    b = await _node(log, clock, "b")
    await a.acquire(GROUP)
    for _ in range(5):
        clock.now += TIMEOUT * 0.6
        await _beat(a, b)
        assert await b.acquire(GROUP) == "a"
    assert b.leases()[b.shard(GROUP)].epoch == 1  # nothing more was claimed


async def test_a_holder_whose_heartbeat_timed_out_loses_the_shard(log: Log) -> None:
    clock = Clock()
    a = await _node(log, clock, "a")
    b = await _node(log, clock, "b")
    await a.acquire(GROUP)
    clock.now += TIMEOUT  # A's heartbeats stopped getting through; B's go on
    await _beat(b)
    assert b.owner(GROUP) is None
    assert await b.acquire(GROUP) == "b"
    assert b.leases()[b.shard(GROUP)].epoch == 2
    # A, back, learns that it lost the shard: its groups are closed and fenced.
    await a.catch_up()
    lost = a.lost()
    assert await asyncio.wait_for(anext(lost), 1) == a.shard(GROUP)
    with pytest.raises(GroupElsewhere):
        a.check_held(GROUP)
    await _beat(a)
    assert a.owner(GROUP) == "b"


async def test_two_claims_at_once_have_one_winner_on_every_node(log: Log) -> None:
    clock = Clock()
    a = await _node(log, clock, "a")
    b = await _node(log, clock, "b")
    # Both see the shard free and claim together: the log orders the claims.
    won = await asyncio.gather(a.acquire(GROUP), b.acquire(GROUP))
    assert won[0] == won[1]
    await a.catch_up()
    assert a.leases() == b.leases()
    # Written in one append, two claims of the same epoch: the first one wins.
    shard = a.shard(GROUP) + 1
    claims = StateTopic(log, "group_shards", ShardClaim)
    await claims.put_many(
        [
            (f"{shard}/1/b", ShardClaim(shard, 1, "b", 8, clock.now)),
            (f"{shard}/1/a", ShardClaim(shard, 1, "a", 8, clock.now)),
        ]
    )
    await a.catch_up()
    await b.catch_up()
    assert a.leases()[shard].node_id == b.leases()[shard].node_id == "b"


async def test_a_void_claim_is_ignored_on_replay_too(log: Log) -> None:
    clock = Clock()
    a = await _node(log, clock, "a")
    await a.acquire(GROUP)
    shard = a.shard(GROUP)
    claims = StateTopic(log, "group_shards", ShardClaim)
    # A claim made on a stale view (epoch 1 again), landing after A's: void.
    await claims.put(f"{shard}/1/x", ShardClaim(shard, 1, "x", 8, clock.now))
    await a.catch_up()
    assert a.leases()[shard].node_id == "a"
    replayed = await _node(log, clock, "c")
    assert replayed.leases() == a.leases()


async def test_replay_at_start_decides_what_the_live_nodes_decided(log: Log) -> None:
    clock = Clock()
    a = await _node(log, clock, "a")
    b = await _node(log, clock, "b")
    groups = [f"ce/shop/g{n}" for n in range(20)]
    for n, group in enumerate(groups):
        await (a if n % 2 else b).acquire(group)
    clock.now += TIMEOUT  # A is gone: B takes its shards, deleting their older claims
    await _beat(b)
    for group in groups:
        assert await b.acquire(group) == "b"
    c = await _node(log, clock, "c")
    assert c.leases() == b.leases()
    assert {lease.node_id for lease in c.leases().values()} == {"b"}
    # One record per shard is left after the winners deleted the claims they replaced.
    claims = StateTopic(log, "group_shards", ShardClaim)
    await claims.load()
    assert len(claims) == len(b.leases())


async def test_a_node_with_another_shard_count_refuses_to_start(log: Log) -> None:
    clock = Clock()
    a = await _node(log, clock, "a", shards=8)
    await a.acquire(GROUP)
    with pytest.raises(ConfigError, match="group_shards"):
        await _node(log, clock, "b", shards=16)


async def test_a_node_cut_off_from_the_log_gives_up_its_shards_before_they_can_be_taken(
    log: Log,
) -> None:
    clock = Clock()
    a = await _node(log, clock, "a")
    await a.acquire(GROUP)
    # Its last heartbeat written is now older than three quarters of the timeout: the
    # others may see it as gone before a commit started now completes.
    clock.now += TIMEOUT * 0.8
    with pytest.raises(GroupElsewhere, match="heartbeats"):
        a.check_held(GROUP)
    watch = asyncio.ensure_future(a._watch_own_heartbeats())
    try:
        assert await asyncio.wait_for(anext(a.lost()), 5) == a.shard(GROUP)
    finally:
        watch.cancel()
    # Its heartbeats get through again, and nobody took the shard: it serves it again.
    await _beat(a)
    a.check_held(GROUP)


async def test_one_node_on_the_embedded_log_holds_every_group(log: Log) -> None:
    settings = _settings("solo")
    membership = Membership(log, settings, shared=False)
    await membership.start()
    solo = GroupShards(log, membership, settings)
    await solo.load()
    assert solo.owner(GROUP) == "solo"
    assert await solo.acquire(GROUP) == "solo"
    solo.check_held(GROUP)
    assert solo.leases() == {}
