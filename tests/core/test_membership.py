"""Membership over a real log (SQLite stands in for the shared cluster: the records and
their replay are the same through the ``Log`` contract), with clocks set by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sluicegate.config import ClusterSettings
from sluicegate.core.membership import Heartbeat, Membership
from sluicegate.errors import ConfigError
from sluicegate.storage.base import Log, running
from sluicegate.storage.sqlite import SqliteLog


class Clock:
    """Wall and monotonic time, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now - 1_699_000_000.0


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[Log]:
    async with running(SqliteLog(tmp_path)) as log:
        yield log


def _member(
    log: Log,
    clock: Clock,
    node_id: str,
    url: str,
    *,
    counts: tuple[int, int] = (0, 0),
    timeout: float = 5.0,
) -> Membership:
    settings = ClusterSettings(
        node_id=node_id,
        advertised_url=url,
        heartbeat_interval=timeout / 5,
        heartbeat_timeout=timeout,
    )
    return Membership(
        log,
        settings,
        shared=True,
        counts=lambda: counts,
        clock=clock.wall,
        monotonic=clock.monotonic,
    )


async def test_a_node_is_live_until_its_heartbeat_is_older_than_the_timeout(log: Log) -> None:
    clock = Clock()
    a = _member(log, clock, "a", "http://a:8080", counts=(3, 1))
    await a.start()
    b = _member(log, clock, "b", "http://b:8080")
    await b.start()
    assert b.live_url("a") == "http://a:8080"
    assert b.live_url("b") is None  # itself: never forwarded to
    assert b.live_url("nobody") is None
    clock.now += 4.9
    assert b.live_url("a") == "http://a:8080"
    clock.now += 0.1
    assert b.live_url("a") is None
    listed = {node.node_id: node for node in b.nodes()}
    assert listed["b"].this_node
    assert listed["b"].live
    assert not listed["a"].live
    assert listed["a"].heartbeat_age == pytest.approx(5.0)
    assert (listed["a"].instances, listed["a"].streams) == (3, 1)
    # A new heartbeat, read back here, makes it live again.
    await a.beat()
    await b._records.catch_up()
    assert b.live_url("a") == "http://a:8080"


async def test_silent_returns_once_a_node_s_heartbeats_stop(log: Log) -> None:
    # What a forwarded request waits on beside the owner's answer.
    clock = Clock()
    a = _member(log, clock, "a", "http://a:8080", timeout=0.5)
    await a.start()
    b = _member(log, clock, "b", "http://b:8080", timeout=0.5)
    await b.start()
    await asyncio.wait_for(b.silent("nobody"), timeout=1)  # not known: silent already
    silent = asyncio.ensure_future(b.silent("a"))
    clock.now += 0.4
    await a.beat()  # a heartbeat in time puts it off
    await b._records.catch_up()
    clock.now += 0.4
    await asyncio.sleep(0.7)
    assert not silent.done()
    clock.now += 0.1
    await asyncio.wait_for(silent, timeout=2)
    assert b.live_url("a") is None


async def test_a_replayed_heartbeat_counts_as_old_as_it_is(log: Log) -> None:
    clock = Clock()
    await _member(log, clock, "a", "http://a:8080").start()
    clock.now += 60
    late = _member(log, clock, "b", "http://b:8080")
    await late.start()
    assert late.live_url("a") is None
    assert [node.node_id for node in late.nodes()] == ["b", "a"]


async def test_a_clean_leave_removes_the_node_at_once(log: Log) -> None:
    clock = Clock()
    a = _member(log, clock, "a", "http://a:8080")
    await a.start()
    b = _member(log, clock, "b", "http://b:8080")
    await b.start()
    await a.leave()
    await b._records.catch_up()
    assert b.live_url("a") is None
    assert [node.node_id for node in b.nodes()] == ["b"]


async def test_a_live_node_s_id_is_refused_at_another_url(log: Log) -> None:
    clock = Clock()
    twin = _member(log, clock, "a", "http://a:8080", timeout=0.5)
    await twin.start()
    starting = asyncio.ensure_future(
        _member(log, clock, "a", "http://elsewhere:8080", timeout=0.5).start()
    )
    await asyncio.sleep(0.1)
    assert not starting.done()  # waiting for the id's last heartbeat to time out
    clock.now += 0.1
    await twin.beat()  # but its holder is alive
    with pytest.raises(ConfigError, match="live node at http://a:8080"):
        await starting


async def test_a_dead_node_s_id_is_taken_once_its_heartbeat_times_out(log: Log) -> None:
    # A node killed and started again elsewhere (a container's new address, a new port):
    # its old heartbeat holds the id until it times out, then the id is free.
    clock = Clock()
    await _member(log, clock, "a", "http://a:8080", timeout=0.5).start()
    restarted = _member(log, clock, "a", "http://elsewhere:8080", timeout=0.5)
    async with asyncio.timeout(5):
        await restarted.start()
    assert restarted.nodes()[0].url == "http://elsewhere:8080"
    # The same node restarted at the same URL is welcome at once.
    clock.now += 0.1
    async with asyncio.timeout(0.2):
        await _member(log, clock, "a", "http://elsewhere:8080", timeout=0.5).start()


async def test_a_clock_behind_counts_as_a_fresh_heartbeat(log: Log) -> None:
    clock = Clock()
    a = _member(log, clock, "a", "http://a:8080")
    a._heard("c", Heartbeat(url="http://c", started_at=0, sent_at=clock.now + 30))
    assert a.live_url("c") == "http://c"


async def test_one_node_alone_writes_nothing(log: Log) -> None:
    settings = ClusterSettings(node_id="solo", advertised_url="http://solo")
    alone = Membership(log, settings, shared=False)
    await alone.start()
    await alone.run()  # returns at once: no heartbeats to write or read
    await alone.leave()
    assert [node.node_id for node in alone.nodes()] == ["solo"]
    assert "__sluicegate_nodes" not in {
        t.name for t in await log.list_topics(include_internal=True)
    }


async def test_a_process_with_no_url_announces_nothing(log: Log) -> None:
    """The CLI's offline mode opens a gateway without serving: it is nobody's node."""
    clock = Clock()
    serving = _member(log, clock, "a", "http://a:8080")
    await serving.start()
    offline = _member(log, clock, "a", "")
    await offline.start()  # the live node's id, and no refusal: it takes nothing from it
    await offline.run()  # returns at once
    await offline.leave()
    watcher = _member(log, clock, "b", "http://b:8080")
    await watcher.start()
    assert watcher.live_url("a") == "http://a:8080"
