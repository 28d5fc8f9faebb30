"""Delivery counts: only redeliveries are kept, dead events are remembered until a commit
passes them, and what is stored in the log comes back after a restart."""

from __future__ import annotations

from sluicegate.core.consumers.count_store import DeliveryCountStore
from sluicegate.core.consumers.counts import DeliveryCounts, PartitionCounts
from sluicegate.core.consumers.group import LocalGroup
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import TopicPartition
from sluicegate.core.topics import TopicSpec

TP = TopicPartition("orders", 0)


def test_first_deliveries_store_nothing_redeliveries_count() -> None:
    counts = DeliveryCounts()
    assert counts.delivered(TP, [0, 1, 2]) is None
    assert counts.delivered(TP, [1, 2, 3]) == {0: 2, 1: 2}
    assert counts.delivered(TP, [2]) == {0: 3}
    assert [counts.count(TP, o) for o in range(5)] == [1, 2, 3, 1, 0]
    assert counts.redelivered == 2


def test_a_dead_event_is_remembered_and_the_counts_behind_it_start_again() -> None:
    counts = DeliveryCounts()
    counts.delivered(TP, [0, 1, 2])
    counts.delivered(TP, [0, 1, 2])
    counts.dead(TP, 0)
    assert counts.is_dead(TP, 0)
    assert [counts.count(TP, o) for o in (1, 2)] == [1, 1]
    assert counts.tracked(TP)
    counts.committed(TP, 1)
    assert not counts.is_dead(TP, 0)
    assert not counts.tracked(TP)


def test_snapshot_and_restore_never_lower_what_is_known() -> None:
    counts = DeliveryCounts()
    counts.delivered(TP, [4, 5, 6])
    counts.delivered(TP, [4, 5])
    counts.dead(TP, 3)
    snapshot = counts.snapshot(TP)
    assert snapshot == PartitionCounts(high=7, again={}, dead=[3])
    counts.delivered(TP, [4, 5])
    restored = DeliveryCounts()
    restored.restore(TP, PartitionCounts(high=7, again={4: 2, 5: 2}, dead=[3]))
    restored.restore(TP, PartitionCounts(high=6, again={4: 1}, dead=[]))
    assert (restored.count(TP, 4), restored.count(TP, 5), restored.high(TP)) == (2, 2, 7)
    assert restored.is_dead(TP, 3)
    # The next delivery of 4 is its third.
    assert restored.delivered(TP, [4]) == {0: 3}


async def test_the_store_keeps_counts_in_the_log_across_a_reload(gateway: Gateway) -> None:
    store = gateway.delivery_counts
    other = TopicPartition("payments", 3)
    await store.save("ce/app/g", {TP: PartitionCounts(high=9, again={7: 3}, dead=[5])})
    await store.save("ce/app/g", {other: PartitionCounts(high=2)})
    await store.save("ce/app/h/with/slashes", {TP: PartitionCounts(high=1)})
    reloaded = DeliveryCountStore(gateway.log)
    await reloaded.load()
    assert reloaded.of("ce/app/g") == {
        TP: PartitionCounts(high=9, again={7: 3}, dead=[5]),
        other: PartitionCounts(high=2),
    }
    assert reloaded.of("ce/app/h/with/slashes") == {TP: PartitionCounts(high=1)}
    await store.forget("ce/app/g", other)
    reloaded = DeliveryCountStore(gateway.log)
    await reloaded.load()
    assert set(reloaded.of("ce/app/g")) == {TP}
    assert reloaded.of("nobody") == {}


async def test_counts_of_an_earlier_topic_of_the_name_are_not_the_new_ones(
    gateway: Gateway,
) -> None:
    # Stored before a restart (or by another node) for a topic since deleted and made again
    # under its name: its high and redeliveries would count the new topic's first events
    # as delivered before, and dead-letter them too soon.
    log, store = gateway.log, gateway.delivery_counts
    old = await log.create_topic(TopicSpec(name="orders"))
    await log.create_topic(TopicSpec(name="payments"))
    await store.save("g", {TP: PartitionCounts(high=5, again={1: 3}, topic_id=old.id)})
    await log.delete_topic("orders")
    new = await log.create_topic(TopicSpec(name="orders", partitions=2))
    current = TopicPartition("orders", 1)
    await store.save("g", {current: PartitionCounts(high=2, again={0: 2}, topic_id=new.id)})
    unknown = TopicPartition("payments", 0)  # stored before counts carried a topic's id
    await store.save("g", {unknown: PartitionCounts(high=4, again={2: 2})})
    group = LocalGroup("g", store)  # as after a restart: what the store holds
    assert group.counts.high(TP) == 5
    await group.check_topics(log, ["orders", "payments"])
    assert (group.counts.high(TP), group.counts.count(TP, 1)) == (0, 0)
    assert not store.stored("g", TP)
    assert group.counts.count(current, 0) == 2
    assert group.counts.count(unknown, 2) == 2
    assert group.topic_ids == {"orders": new.id, "payments": (await log.get_topic("payments")).id}
    # A snapshot says which topic it counted.
    assert group.counts.snapshot(current, new.id).topic_id == new.id
