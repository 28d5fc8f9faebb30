"""Consumer instances on every backend: sequence, confirm, commits, redelivery, rebalance,
expiry, subscriptions that grow, the window, and long polls."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from sluicegate.core.consumers.instance import ConsumerInstance
from sluicegate.core.consumers.registry import ConsumerInstances, ConsumerSettings
from sluicegate.core.gateway import Gateway
from sluicegate.core.longpoll import Abandoned, LongPolls
from sluicegate.core.records import Record, TopicPartition
from sluicegate.core.topics import TopicUpdate
from sluicegate.errors import BadRequest, StorageUnavailable, UnknownConsumerInstance
from tests.core.consumers.conftest import (
    FakeClock,
    HeldCommits,
    Topics,
    append,
    make_topic,
    never,
    parked,
    waiters,
)

GROUP = "ce/app/~default"


def values(records: list[Record]) -> list[bytes]:
    return [r.value or b"" for r in records]


async def committed(gateway: Gateway, topic: str, group: str = GROUP) -> dict[int, int]:
    return await gateway.log.committed_offsets(group, topic)


async def test_deliveries_are_numbered_from_one_per_instance(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"a", b"b", b"c"])
    first = await instances.create("app", GROUP, Topics(topic))
    batch = await first.next_batch(2, 0, never)
    assert (batch.first, batch.last, values(batch.records)) == (1, 2, [b"a", b"b"])
    batch = await first.next_batch(10, 0, never)
    assert (batch.first, values(batch.records)) == (3, [b"c"])
    assert first.delivered == 3
    # Another group's instance counts from 1 again and gets everything.
    other = await instances.create("app", "ce/app/audit", Topics(topic))
    batch = await other.next_batch(10, 0, never)
    assert (batch.first, values(batch.records)) == (1, [b"a", b"b", b"c"])


async def test_confirm_commits_and_refuses_what_was_never_delivered(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"a", b"b", b"c"])
    instance = await instances.create("app", GROUP, Topics(topic))
    with pytest.raises(BadRequest, match="has delivered no events yet"):
        await instance.confirm(1)
    batch = await instance.next_batch(10, 0, never)
    records = batch.records
    await instance.confirm(2)
    assert await committed(gateway, topic) == {0: records[1].offset + 1}
    with pytest.raises(BadRequest, match="offset 4 was never delivered"):
        await instance.confirm(4)
    with pytest.raises(BadRequest, match=">= 1"):
        await instance.confirm(0)
    await instance.confirm(1)  # already confirmed: nothing moves back
    assert await committed(gateway, topic) == {0: records[1].offset + 1}
    await instance.confirm()
    assert await committed(gateway, topic) == {0: records[2].offset + 1}
    assert instance.unconfirmed == 0


async def test_interleaved_partitions_commit_only_their_confirmed_prefix(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic = await make_topic(gateway, "orders", partitions=2)
    await append(gateway, topic, 0, [b"p0-a", b"p0-b", b"p0-c"])
    await append(gateway, topic, 1, [b"p1-a", b"p1-b", b"p1-c"])
    instance = await instances.create("app", GROUP, Topics(topic))
    # One event per batch: the instance takes the partitions in turn.
    delivered = [(await instance.next_batch(1, 0, never)).records[0] for _ in range(6)]
    assert [r.partition for r in delivered] == [0, 1, 0, 1, 0, 1]
    await instance.confirm(3)  # p0-a, p1-a, p0-b
    by_partition = {0: delivered[2].offset + 1, 1: delivered[1].offset + 1}
    assert await committed(gateway, topic) == by_partition
    await instance.confirm(4)
    by_partition[1] = delivered[3].offset + 1
    assert await committed(gateway, topic) == by_partition


async def test_unconfirmed_events_go_to_the_next_instance_after_delete(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"a", b"b", b"c", b"d"])
    first = await instances.create("app", GROUP, Topics(topic))
    await first.next_batch(3, 0, never)
    await first.confirm(1)
    await instances.delete("app", GROUP, first.id)
    with pytest.raises(UnknownConsumerInstance):
        instances.get("app", GROUP, first.id)
    second = await instances.create("app", GROUP, Topics(topic))
    batch = await second.next_batch(10, 0, never)
    assert (batch.first, values(batch.records)) == (1, [b"b", b"c", b"d"])
    # The group outlived its last instance here: b and c were delivered before.
    assert [batch.deliveries(i) for i in range(len(batch))] == [2, 2, 1]


async def test_delivery_counts_follow_redeliveries_within_a_group(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"a", b"b"])
    one = await instances.create("app", GROUP, Topics(topic))
    two = await instances.create("app", GROUP, Topics(topic))
    # One partition: one of them owns it, the other waits for it.
    owner, idle = (one, two) if not two.partitions else (two, one)
    assert len((await owner.next_batch(10, 0, never)).records) == 2
    await instances.delete("app", GROUP, owner.id)
    batch = await idle.next_batch(10, 0, never)
    assert values(batch.records) == [b"a", b"b"]
    assert [batch.deliveries(i) for i in range(len(batch))] == [2, 2]
    assert idle.delivery_count(TopicPartition(topic, 0), batch.records[0].offset) == 2


async def test_idle_instances_expire_and_their_events_are_redelivered(
    gateway: Gateway, instances: ConsumerInstances, clock: FakeClock
) -> None:
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"a", b"b"])
    lapsed = await instances.create("app", GROUP, Topics(topic))
    await lapsed.next_batch(10, 0, never)
    clock.advance(59)
    assert await instances.reap_due() == 0
    instances.get("app", GROUP, lapsed.id)  # a request: used again now
    clock.advance(59)
    assert await instances.reap_due() == 0
    clock.advance(2)
    assert await instances.reap_due() == 1
    assert len(instances) == 0
    with pytest.raises(UnknownConsumerInstance, match="expired after 60 s"):
        instances.get("app", GROUP, lapsed.id)
    with pytest.raises(UnknownConsumerInstance):
        await lapsed.next_batch(10, 0, never)
    assert instances.stats()["groups"] == 0
    successor = await instances.create("app", GROUP, Topics(topic))
    assert values((await successor.next_batch(10, 0, never)).records) == [b"a", b"b"]


async def test_a_busy_instance_is_not_reaped(
    gateway: Gateway, instances: ConsumerInstances, clock: FakeClock
) -> None:
    topic = await make_topic(gateway, "orders")
    instance = await instances.create("app", GROUP, Topics(topic))
    polling = asyncio.ensure_future(instance.next_batch(10, 30, never))
    await asyncio.sleep(0.05)
    clock.advance(120)
    assert await instances.reap_due() == 0
    await append(gateway, topic, 0, [b"a"])
    assert values((await asyncio.wait_for(polling, 10)).records) == [b"a"]


async def test_a_second_instance_takes_half_the_partitions_and_their_unconfirmed_events(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic = await make_topic(gateway, "orders", partitions=4)
    for partition in range(4):
        await append(gateway, topic, partition, [f"{partition}".encode()])
    first = await instances.create("app", GROUP, Topics(topic))
    assert len(first.partitions) == 4
    assert len((await first.next_batch(10, 0, never)).records) == 4
    second = await instances.create("app", GROUP, Topics(topic))
    moved = {tp.partition for tp in second.partitions}
    assert len(moved) == 2
    # The new owner starts from the committed positions: what ``first`` had not
    # confirmed on those partitions comes again.
    taken = (await second.next_batch(10, 0, never)).records
    assert sorted(r.partition for r in taken) == sorted(moved)
    assert not await first.next_batch(10, 0, never)  # it sees the rebalance
    assert len(first.partitions) == 2
    await first.confirm()  # all it was given, the moved partitions' events too
    assert set((await committed(gateway, topic)).keys()) == {0, 1, 2, 3}
    await second.confirm()
    # Nothing is left for either, nor for a newcomer.
    assert not await first.next_batch(10, 0, never)
    assert not await second.next_batch(10, 0, never)
    await instances.delete("app", GROUP, second.id)
    assert not await first.next_batch(10, 0, never)


async def two_by_two(gateway: Gateway) -> str:
    """A topic of two partitions holding a and b each."""
    topic = await make_topic(gateway, "orders", partitions=2)
    for partition in range(2):
        await append(gateway, topic, partition, [b"a", b"b"])
    return topic


async def test_confirmations_that_do_not_wait_share_the_groups_next_commit(
    gateway: Gateway, instances: ConsumerInstances, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = await two_by_two(gateway)
    first = await instances.create("app", GROUP, Topics(topic))
    second = await instances.create("app", GROUP, Topics(topic))
    assert len((await first.next_batch(10, 0, never)).records) == 2  # after the rebalance
    assert len((await second.next_batch(10, 0, never)).records) == 2
    commits = HeldCommits.on(gateway.log, monkeypatch)
    await first.confirm(1, durable=False)  # its round is held
    await asyncio.wait_for(commits.called.wait(), 5)
    # Both return with that round still held: the window has room, nothing waits.
    await asyncio.wait_for(first.confirm(durable=False), 5)
    await asyncio.wait_for(second.confirm(durable=False), 5)
    assert len(commits.calls) == 1
    commits.release.set()
    await first.settle()
    await second.settle()
    # The two confirmations made during the first round: one more commit, for both.
    assert len(commits.calls) == 2
    assert set(commits.calls[1]) == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
    assert await committed(gateway, topic) == {0: 2, 1: 2}


async def test_what_was_confirmed_without_waiting_is_committed_before_others_read_it(
    gateway: Gateway, instances: ConsumerInstances, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = await two_by_two(gateway)
    first = await instances.create("app", GROUP, Topics(topic))
    assert len((await first.next_batch(10, 0, never)).records) == 4
    commits = HeldCommits.on(gateway.log, monkeypatch)
    await first.confirm(durable=False)  # all four; the round is held
    second = await instances.create("app", GROUP, Topics(topic))  # takes one partition
    # Its first read of that partition waits for the round under way, then starts past
    # what ``first`` confirmed: nothing is left there.
    reading = asyncio.ensure_future(second.next_batch(10, 0, never))
    await asyncio.sleep(0.1)
    assert not reading.done()
    commits.release.set()
    assert not await asyncio.wait_for(reading, 5)
    closing = asyncio.ensure_future(instances.delete("app", GROUP, first.id))
    await asyncio.wait_for(closing, 5)
    assert not await second.next_batch(10, 0, never)  # the other partition too


async def test_a_confirmation_that_does_not_wait_survives_the_partitions_move(
    gateway: Gateway, instances: ConsumerInstances, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A poll's ``confirm=true``: the confirmation's commit is left to a background round,
    # and the same poll's read then sees a rebalance that moved a partition away. The
    # cursor that round commits from must outlive the move.
    topic = await two_by_two(gateway)
    first = await instances.create("app", GROUP, Topics(topic))
    assert len((await first.next_batch(10, 0, never)).records) == 4
    second = await instances.create("app", GROUP, Topics(topic))  # takes one partition
    commits = HeldCommits.on(gateway.log, monkeypatch)
    await first.confirm(durable=False)  # all four; the round is held
    assert not await first.next_batch(10, 0, never)  # the rebalance seen, nothing new
    assert len(first.partitions) == 1
    commits.release.set()
    await first.settle()
    assert await committed(gateway, topic) == {0: 2, 1: 2}
    await instances.delete("app", GROUP, first.id)
    assert not await second.next_batch(10, 0, never)


async def read_with_commits_held(
    gateway: Gateway, instances: ConsumerInstances, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, ConsumerInstance, HeldCommits]:
    """An instance that read a, b and c of a one-partition topic, and the log's commits
    counted from now on (the first held until released)."""
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"a", b"b", b"c"])
    instance = await instances.create("app", GROUP, Topics(topic))
    await instance.next_batch(10, 0, never)
    commits = HeldCommits.on(gateway.log, monkeypatch)
    return topic, instance, commits


async def test_a_failed_background_commit_is_raised_once_and_carried_by_the_next(
    gateway: Gateway, instances: ConsumerInstances, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, instance, commits = await read_with_commits_held(gateway, instances, monkeypatch)
    commits.failures = [StorageUnavailable("the log is away")] * 2
    commits.release.set()
    await instance.confirm(1, durable=False)
    with pytest.raises(StorageUnavailable, match="the log is away"):
        await instance.settle()
    commits.ended.clear()
    await instance.confirm(2, durable=False)
    await asyncio.wait_for(commits.ended.wait(), 5)
    with pytest.raises(StorageUnavailable):
        await instance.confirm(2, durable=False)  # told by the next that does not wait
    await instance.confirm()  # a durable one carries what the failed rounds did not
    assert await committed(gateway, topic) == {0: 3}


async def test_a_round_written_after_a_failed_one_makes_it_good(
    gateway: Gateway, instances: ConsumerInstances, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, instance, commits = await read_with_commits_held(gateway, instances, monkeypatch)
    commits.failures = [StorageUnavailable("the log is away")]
    await instance.confirm(1, durable=False)  # its round is held, and will fail
    await asyncio.wait_for(commits.called.wait(), 5)
    await instance.confirm(2, durable=False)  # gathered for the round after it
    commits.release.set()
    await instance.settle()  # the second round wrote both: nothing to tell
    assert len(commits.calls) == 2
    assert await committed(gateway, topic) == {0: 2}


async def test_flush_waits_for_every_groups_background_commits(
    gateway: Gateway, instances: ConsumerInstances, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"a", b"b"])
    instance = await instances.create("app", GROUP, Topics(topic))
    await instance.next_batch(10, 0, never)
    commits = HeldCommits.on(gateway.log, monkeypatch)
    await instance.confirm(durable=False)
    flushing = asyncio.ensure_future(instances.flush())  # as a server's shutdown does
    await asyncio.sleep(0.1)
    assert not flushing.done()
    commits.release.set()
    await asyncio.wait_for(flushing, 5)
    assert await committed(gateway, topic) == {0: 2}


@dataclass
class Handover:
    """Three events read by ``first``, whose single partition then went to ``second``."""

    topic: str
    first: ConsumerInstance
    second: ConsumerInstance
    #: The committed position once all three are confirmed.
    end: int


async def handed_over(gateway: Gateway, instances: ConsumerInstances) -> Handover:
    topic = await make_topic(gateway, "orders", partitions=1)
    await append(gateway, topic, 0, [b"a", b"b", b"c"])
    first = await instances.create("app", GROUP, Topics(topic))
    delivered = (await first.next_batch(10, 0, never)).records
    # Partitions go to members in the order of their random ids: try until one sorts first.
    while not (second := await instances.create("app", GROUP, Topics(topic))).partitions:
        await instances.delete("app", GROUP, second.id)
    # The new owner starts from the committed position: a, b, c again.
    assert values((await second.next_batch(10, 0, never)).records) == [b"a", b"b", b"c"]
    return Handover(topic, first, second, delivered[-1].offset + 1)


async def test_a_confirmation_after_the_partition_moved_is_still_final(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    moved = await handed_over(gateway, instances)
    assert not await moved.first.next_batch(10, 0, never)  # it no longer reads the partition
    # ``first``'s client confirms what it was given: final, though the partition moved.
    await moved.first.confirm()
    assert await committed(gateway, moved.topic) == {0: moved.end}
    await instances.delete("app", GROUP, moved.second.id)  # unconfirmed there: not again
    third = await instances.create("app", GROUP, Topics(moved.topic))
    assert not await third.next_batch(10, 0, never)
    assert not await moved.first.next_batch(10, 0, never)


async def test_a_lagging_confirmation_never_moves_the_group_back(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    moved = await handed_over(gateway, instances)
    await moved.second.confirm()
    assert await committed(gateway, moved.topic) == {0: moved.end}
    await moved.first.confirm(1)
    assert await committed(gateway, moved.topic) == {0: moved.end}
    await instances.delete("app", GROUP, moved.second.id)
    # ``first`` owns the partition again, and starts where the group is.
    await append(gateway, moved.topic, 0, [b"d"])
    batch = await moved.first.next_batch(10, 0, never)
    assert (batch.first, values(batch.records)) == (4, [b"d"])
    assert moved.first.unconfirmed == 1


async def test_a_topic_added_to_the_subscription_is_read_without_a_restart(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    orders = await make_topic(gateway, "orders")
    subscription = Topics(orders)
    instance = await instances.create("app", GROUP, subscription)
    polling = asyncio.ensure_future(instance.next_batch(10, 30, never))
    await asyncio.sleep(0.05)
    invoices = await make_topic(gateway, "invoices")
    subscription.add(invoices)
    instances.subscriptions_changed()  # wakes the poll, which re-joins with both topics
    await append(gateway, invoices, 0, [b"first invoice"])
    batch = await asyncio.wait_for(polling, 10)
    assert values(batch.records) == [b"first invoice"]
    assert instance.topics == {orders, invoices}


async def test_a_topic_deleted_and_made_again_is_read_from_its_start(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    # The type's topic of a live group deleted, then made again under its name (as
    # CloudEvents does with the type's next event): the new topic's events are new, its
    # offsets start at 0 again, and neither the live instance nor a later one may take the
    # old topic's positions for its own.
    topic = await make_topic(gateway, "orders")
    await append(gateway, topic, 0, [b"a", b"b", b"c", b"d"])
    first = await instances.create("app", GROUP, Topics(topic))
    await first.next_batch(10, 0, never)
    await first.confirm(3)  # a, b, c: "d" in flight when the topic goes
    await gateway.log.delete_topic(topic)
    await make_topic(gateway, topic)
    await append(gateway, topic, 0, [b"w", b"x", b"y", b"z", b"more"])
    batch = await first.next_batch(10, 0, never)
    assert values(batch.records) == [b"w", b"x", b"y", b"z", b"more"]
    assert [batch.deliveries(i) for i in range(len(batch))] == [1] * 5
    assert first.unconfirmed == 5  # the old topic's "d" is nobody's to confirm now
    await first.confirm(batch.first + 1)
    assert await committed(gateway, topic) == {0: 2}
    # Again, with the group left without instances: the next instance starts afresh too.
    await instances.delete("app", GROUP, first.id)
    await gateway.log.delete_topic(topic)
    await make_topic(gateway, topic, partitions=2)
    await append(gateway, topic, 0, [b"p0"])
    await append(gateway, topic, 1, [b"p1"])
    second = await instances.create("app", GROUP, Topics(topic))
    batch = await second.next_batch(10, 0, never)
    assert sorted(values(batch.records)) == [b"p0", b"p1"]


async def test_a_topic_every_instance_reads_made_again_is_read_from_its_start(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    notices = await make_topic(gateway, "notices")
    await append(gateway, notices, 0, [b"old-1", b"old-2"])
    instance = await instances.create("app", GROUP, Topics(notices, everyone=[notices]))
    await instance.next_batch(10, 0, never)
    await instance.confirm()
    await gateway.log.delete_topic(notices)
    await make_topic(gateway, notices, partitions=2)
    await append(gateway, notices, 0, [b"new-0"])
    await append(gateway, notices, 1, [b"new-1"])
    batch = await instance.next_batch(10, 0, never)
    assert sorted(values(batch.records)) == [b"new-0", b"new-1"]
    assert len(instance.partitions) == 2


async def test_a_topic_every_instance_reads_is_not_shared_out(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    shared = await make_topic(gateway, "orders")
    broadcast = await make_topic(gateway, "notices", partitions=2)
    await append(gateway, shared, 0, [b"order"])
    await append(gateway, broadcast, 0, [b"n0"])
    await append(gateway, broadcast, 1, [b"n1"])

    def subscription() -> Topics:
        return Topics(shared, broadcast, everyone=[broadcast])

    one = await instances.create("app", GROUP, subscription())
    two = await instances.create("app", GROUP, subscription())
    got = [sorted(values((await i.next_batch(10, 0, never)).records)) for i in (one, two)]
    # The shared topic's one partition has one owner; the other topic is read by both.
    assert sorted(got) == [[b"n0", b"n1"], [b"n0", b"n1", b"order"]]
    assert sorted(len(i.partitions) for i in (one, two)) == [2, 3]
    # ``one`` confirms: ``two``, behind it, still gets what is new after, and nothing
    # is counted as a redelivery (each instance reads each record once on purpose).
    await one.confirm()
    await append(gateway, broadcast, 0, [b"n0-later"])
    batch = await two.next_batch(10, 0, never)
    assert values(batch.records) == [b"n0-later"]
    assert batch.deliveries(0) == 1
    # An instance created now starts at the group's position: what ``one`` confirmed is
    # done; the record nobody confirmed yet is not.
    three = await instances.create("app", GROUP, subscription())
    batch = await three.next_batch(10, 0, never)
    assert [r.value for r in batch.records if r.topic == broadcast] == [b"n0-later"]
    # A lagging instance's confirmation never moves the group back.
    end = await committed(gateway, broadcast)
    await two.confirm(1)
    assert await committed(gateway, broadcast) == end
    # Deleting every instance leaves the unconfirmed record for the next one.
    for instance in (one, two, three):
        await instances.delete("app", GROUP, instance.id)
    four = await instances.create("app", GROUP, subscription())
    batch = await four.next_batch(10, 0, never)
    assert [r.value for r in batch.records if r.topic == broadcast] == [b"n0-later"]


async def test_filtered_records_are_skipped_and_committed_past(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic = await make_topic(gateway, "mixed")
    await append(gateway, topic, 0, [b"keep-1", b"skip", b"keep-2", b"skip", b"skip"])
    instance = await instances.create(
        "app",
        GROUP,
        Topics(topic, accept=lambda chunk: [r for r in chunk if (r.value or b"")[:4] == b"keep"]),
    )
    batch = await instance.next_batch(10, 0, never)
    assert values(batch.records) == [b"keep-1", b"keep-2"]
    assert batch.last == 2
    await instance.confirm()
    high = (await gateway.log.watermarks(TopicPartition(topic, 0))).high
    assert await committed(gateway, topic) == {0: high}


async def test_a_long_poll_is_woken_by_an_append_and_ends_at_its_timeout(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic = await make_topic(gateway, "orders")
    instance = await instances.create("app", GROUP, Topics(topic))
    assert not await instance.next_batch(10, 0.05, never)
    polling = asyncio.ensure_future(instance.next_batch(10, 30, never))
    await asyncio.sleep(0.05)
    await append(gateway, topic, 0, [b"a"])
    assert values((await asyncio.wait_for(polling, 10)).records) == [b"a"]


async def test_a_consumer_that_goes_away_frees_its_waiter(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic = await make_topic(gateway, "orders")
    instance = await instances.create("app", GROUP, Topics(topic))
    left = asyncio.Event()

    async def departure() -> None:
        await left.wait()

    before = waiters(gateway)
    polling = asyncio.ensure_future(instance.next_batch(10, 30, departure))
    await parked(gateway, before)
    left.set()
    with pytest.raises(Abandoned):
        await asyncio.wait_for(polling, 10)
    assert waiters(gateway) == before
    assert instance.busy == 0


async def test_a_deleted_instance_ends_its_long_poll(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic = await make_topic(gateway, "orders")
    instance = await instances.create("app", GROUP, Topics(topic))
    polling = asyncio.ensure_future(instance.next_batch(10, 30, never))
    await asyncio.sleep(0.05)
    await instances.delete("app", GROUP, instance.id)
    with pytest.raises(UnknownConsumerInstance):
        await asyncio.wait_for(polling, 10)


async def test_the_reaper_runs_on_its_own(gateway: Gateway) -> None:
    topic = await make_topic(gateway, "orders")
    instances = ConsumerInstances(
        gateway.log,
        LongPolls(gateway.log, gateway.limits.long_polls),
        ConsumerSettings(idle_timeout=0.05),
    )
    await instances.create("app", GROUP, Topics(topic))
    reaper = asyncio.ensure_future(instances.run())
    try:
        for _ in range(100):
            if not len(instances):
                break
            await asyncio.sleep(0.02)
        assert len(instances) == 0
    finally:
        reaper.cancel()


async def test_a_waiting_instance_reads_partitions_added_to_its_topic_at_once(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    # The log rebalances the group when the topic grows; a stream waits about a minute
    # at a time, and would read the new partition only after that.
    topic = await make_topic(gateway, "orders", partitions=1)
    instance = await instances.create("app", GROUP, Topics(topic))
    waiting = asyncio.ensure_future(instance.next_batch(10, 60, never))
    await asyncio.sleep(0.2)
    await gateway.log.alter_topic(topic, TopicUpdate(partitions=2))
    await append(gateway, topic, 1, [b"in the new partition"])
    batch = await asyncio.wait_for(waiting, 10)
    assert values(batch.records) == [b"in the new partition"]
