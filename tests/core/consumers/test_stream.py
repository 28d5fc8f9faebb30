"""Consumer instances as streams, on every backend: the window, what was sent, the
instance's life with its block, waits that are no long polls, and shutdown."""

from __future__ import annotations

import asyncio

import pytest

from sluicegate.core.consumers.registry import ConsumerInstances, ConsumerSettings
from sluicegate.core.consumers.stream import Streams
from sluicegate.core.gateway import Gateway
from sluicegate.core.longpoll import LongPolls
from sluicegate.core.records import TopicPartition
from sluicegate.errors import BadRequest, ShuttingDown, StorageUnavailable
from tests.core.consumers.conftest import FakeClock, HeldCommits, Topics, append, make_topic
from tests.helpers import eventually


@pytest.fixture
def streams(instances: ConsumerInstances) -> Streams:
    return Streams(instances)


async def test_the_window_bounds_what_is_unconfirmed(
    gateway: Gateway, instances: ConsumerInstances, streams: Streams
) -> None:
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"%d" % n for n in range(10)])
    async with streams.open("c", "g", Topics(topic), window=4, batch_size=3) as stream:
        first = await stream.next_batch()
        second = await stream.next_batch()
        assert (len(first), len(second)) == (3, 1)  # batch_size, then the window's room
        stream.sent = second.last
        waiting = asyncio.ensure_future(stream.next_batch())
        await asyncio.sleep(0.2)
        assert not waiting.done()  # a full window reads nothing
        await stream.confirm(2)
        third = await asyncio.wait_for(waiting, 10)
        assert [r.value for r in third.records] == [b"4", b"5"]
        assert len(instances) == 1
    assert len(instances) == 0  # discarded with its block
    assert len(streams) == 0


async def test_only_what_was_sent_may_be_confirmed(gateway: Gateway, streams: Streams) -> None:
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"a", b"b"])
    async with streams.open("c", "g", Topics(topic), window=10, batch_size=10) as stream:
        await stream.next_batch()  # both read, one sent
        stream.sent = 1
        with pytest.raises(BadRequest, match="offset 2 was never sent"):
            await stream.confirm(2)
        with pytest.raises(BadRequest, match="offset 0 was never sent"):
            await stream.confirm(0)
        await stream.confirm(1)


async def test_confirmations_during_a_commit_ride_on_one_more(
    gateway: Gateway, streams: Streams, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"%d" % n for n in range(6)])
    commits = HeldCommits.on(gateway.log, monkeypatch)
    async with streams.open("c", "g", Topics(topic), window=6, batch_size=6) as stream:
        stream.sent = len(await stream.next_batch())
        await stream.confirm(1)
        await asyncio.wait_for(commits.called.wait(), 5)  # its commit is held
        for upto in range(2, 6):
            # Each returns with that commit still held: nothing waits for the group.
            await asyncio.wait_for(stream.confirm(upto), 5)
        assert len(commits.calls) == 1
        commits.release.set()
        await stream.instance.settle()
        # The four confirmations made during the first commit, in one.
        assert commits.calls == [{TopicPartition(topic, 0): 1}, {TopicPartition(topic, 0): 5}]
    assert (await gateway.log.committed_offsets("g", topic))[0] == 5


async def test_what_a_stream_confirmed_is_committed_before_its_instance_leaves(
    gateway: Gateway, instances: ConsumerInstances, streams: Streams
) -> None:
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"a", b"b", b"c"])
    async with streams.open("c", "g", Topics(topic), window=10, batch_size=10) as stream:
        stream.sent = len(await stream.next_batch())
        await stream.confirm(2)  # the block ends before its commit could have
    successor = await instances.create("c", "g", Topics(topic))
    assert [r.value for r in (await successor.next_batch(10, 0, _never)).records] == [b"c"]


async def _closing_with_its_commit_held(
    gateway: Gateway, streams: Streams, monkeypatch: pytest.MonkeyPatch, values: list[bytes]
) -> tuple[str, HeldCommits, asyncio.Future[None]]:
    """A stream that read ``values``, confirmed the first two and ended, its commit held:
    the topic, the held commits, and the connection's end (a future)."""
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, values)
    commits = HeldCommits.on(gateway.log, monkeypatch)

    async def connection() -> None:
        async with streams.open("c", "g", Topics(topic), window=10, batch_size=10) as stream:
            stream.sent = len(await stream.next_batch())
            await stream.confirm(2)

    ending = asyncio.ensure_future(connection())
    await asyncio.wait_for(commits.called.wait(), 5)
    return topic, commits, ending


async def test_a_stream_counts_as_open_until_its_confirmations_are_committed(
    gateway: Gateway,
    instances: ConsumerInstances,
    streams: Streams,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic, commits, ending = await _closing_with_its_commit_held(
        gateway, streams, monkeypatch, [b"a", b"b"]
    )
    await eventually(lambda: len(instances) == 0, "the block over, its instance forgotten")
    # Its commit held: whoever waits for the streams to end waits on.
    assert (len(streams), ending.done()) == (1, False)
    commits.release.set()
    await asyncio.wait_for(ending, 5)
    assert len(streams) == 0
    assert (await gateway.log.committed_offsets("g", topic))[0] == 2


async def test_a_successor_made_while_the_commit_is_held_reads_after_what_was_confirmed(
    gateway: Gateway,
    instances: ConsumerInstances,
    streams: Streams,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A client that closes and connects again at once: its new instance joins while the
    # old one still commits what it confirmed.
    topic, commits, ending = await _closing_with_its_commit_held(
        gateway, streams, monkeypatch, [b"a", b"b", b"c"]
    )
    successor = await instances.create("c", "g", Topics(topic))
    reading = asyncio.ensure_future(successor.next_batch(10, 10, _never))
    await asyncio.sleep(0.2)
    commits.release.set()
    await asyncio.wait_for(ending, 5)
    assert [r.value for r in (await asyncio.wait_for(reading, 15)).records] == [b"c"]


async def test_a_failed_commit_is_told_by_the_next_confirmation(
    gateway: Gateway,
    instances: ConsumerInstances,
    streams: Streams,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"a", b"b", b"c"])
    commits = HeldCommits.on(gateway.log, monkeypatch)
    commits.failures = [StorageUnavailable("the log is away")]
    commits.release.set()
    async with streams.open("c", "g", Topics(topic), window=10, batch_size=10) as stream:
        stream.sent = len(await stream.next_batch())
        await stream.confirm(1)
        await asyncio.wait_for(commits.ended.wait(), 5)
        with pytest.raises(StorageUnavailable, match="the log is away"):
            await stream.confirm(2)
        await stream.confirm(2)  # told once; the next commit carries both
    successor = await instances.create("c", "g", Topics(topic))
    assert [r.value for r in (await successor.next_batch(10, 0, _never)).records] == [b"c"]


async def test_an_idle_stream_takes_no_long_poll_slot(gateway: Gateway, streams: Streams) -> None:
    topic = await make_topic(gateway, "orders")
    async with streams.open("c", "g", Topics(topic), window=10, batch_size=10) as stream:
        waiting = asyncio.ensure_future(stream.next_batch())
        await asyncio.sleep(0.2)
        assert gateway.limits.long_polls.held_by("c") == 0
        await append(gateway, topic, 0, [b"a"])
        assert len(await asyncio.wait_for(waiting, 10)) == 1


async def test_close_all_stops_open_streams_and_refuses_new_ones(
    gateway: Gateway, streams: Streams
) -> None:
    topic = await make_topic(gateway, "orders")

    async def until_stopped() -> None:
        async with streams.open("c", "g", Topics(topic), window=10, batch_size=10):
            await streams.stopping()

    running = asyncio.ensure_future(until_stopped())
    await asyncio.sleep(0.2)
    assert await streams.close_all(5.0) == 1
    await asyncio.wait_for(running, 5)
    with pytest.raises(ShuttingDown):
        async with streams.open("c", "g", Topics(topic), window=10, batch_size=10):
            pass


async def test_a_lingering_instance_outlives_its_block_until_its_grace_passes(
    gateway: Gateway, instances: ConsumerInstances, streams: Streams, clock: FakeClock
) -> None:
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"a", b"b"])
    async with streams.open("c", "g", Topics(topic), window=10, batch_size=10, linger=5.0):
        pass
    assert len(instances) == 1  # the block ended; the instance waits for a reconnection
    clock.advance(4)
    assert await instances.reap_due() == 0
    clock.advance(2)
    assert await instances.reap_due() == 1  # its grace, not the whole idle timeout (60 s)


async def test_a_lingering_instance_confirms_only_what_was_sent(
    gateway: Gateway, instances: ConsumerInstances, streams: Streams, clock: FakeClock
) -> None:
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"a", b"b"])
    async with streams.open(
        "c", "g", Topics(topic), window=10, batch_size=10, linger=5.0
    ) as stream:
        await stream.next_batch()
        stream.instance.confirmable = stream.sent = 1  # one of the two read was sent
    instance = stream.instance
    with pytest.raises(BadRequest, match="offset 2 was never delivered"):
        await instance.confirm(2)
    await instance.confirm()  # everything it sent: 1, not the event read ahead of it
    clock.advance(30)
    assert await instances.reap_due() == 0  # used on its URL: the whole idle timeout again
    await instances.discard(instance)
    successor = await instances.create("c", "g", Topics(topic))
    assert [r.value for r in (await successor.next_batch(10, 0, _never)).records] == [b"b"]


async def test_the_reaper_is_woken_for_a_grace_shorter_than_its_sleep(gateway: Gateway) -> None:
    topic = await make_topic(gateway, "orders")
    instances = ConsumerInstances(
        gateway.log,
        LongPolls(gateway.log, gateway.limits.long_polls),
        ConsumerSettings(idle_timeout=300.0),
    )
    streams = Streams(instances)
    reaper = asyncio.ensure_future(instances.run())
    try:
        async with streams.open("c", "g", Topics(topic), window=10, batch_size=10, linger=0.1):
            await asyncio.sleep(0.05)  # the reaper sleeps for the idle timeout now
        async with asyncio.timeout(5):
            while len(instances):  # noqa: ASYNC110 - a gauge, nothing to await
                await asyncio.sleep(0.02)
    finally:
        reaper.cancel()
        await asyncio.gather(reaper, return_exceptions=True)


async def _never() -> None:
    await asyncio.get_running_loop().create_future()
