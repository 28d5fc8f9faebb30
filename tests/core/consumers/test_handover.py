"""A partition a rebalance moves waits for its previous instance to confirm what it
delivered of it (``handover_timeout``), on every backend: no event is delivered again
to a newcomer while the instance it was delivered to is alive and confirming."""

from __future__ import annotations

import asyncio

import pytest

from sluicegate.core.consumers.instance import ConsumerInstance
from sluicegate.core.consumers.registry import ConsumerInstances, ConsumerSettings
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import Record
from tests.core.consumers.conftest import FakeClock, Topics, append, make_topic, never

GROUP = "ce/app/~default"
HANDOVER = 30.0


@pytest.fixture
def consumer_settings() -> ConsumerSettings:
    return ConsumerSettings(idle_timeout=600.0, max_unconfirmed=1000, handover_timeout=HANDOVER)


def values(records: list[Record]) -> list[bytes]:
    return sorted(r.value or b"" for r in records)


async def busy_group(
    gateway: Gateway, instances: ConsumerInstances
) -> tuple[str, ConsumerInstance, ConsumerInstance]:
    """``first`` delivered one event of each of four partitions, unconfirmed; then
    ``second`` joined and was given two of them."""
    topic = await make_topic(gateway, "orders", partitions=4)
    for partition in range(4):
        await append(gateway, topic, partition, [b"old-%d" % partition])
    first = await instances.create("app", GROUP, Topics(topic))
    assert len((await first.next_batch(10, 0, never)).records) == 4
    second = await instances.create("app", GROUP, Topics(topic))
    assert len(second.partitions) == 2
    return topic, first, second


async def test_a_newcomer_reads_a_moved_partition_after_its_events_are_confirmed(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic, first, second = await busy_group(gateway, instances)
    assert not await second.next_batch(10, 0, never)  # first still owes them
    await first.confirm()
    assert not await second.next_batch(10, 0, never)  # confirmed: never again
    for partition in range(4):
        await append(gateway, topic, partition, [b"new-%d" % partition])
    moved = {tp.partition for tp in second.partitions}
    assert values((await second.next_batch(10, 0, never)).records) == sorted(
        b"new-%d" % p for p in moved
    )
    assert len((await first.next_batch(10, 0, never)).records) == 2  # its own two


async def test_a_waiting_long_poll_is_woken_by_the_confirmation(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic, first, second = await busy_group(gateway, instances)
    [moved, *_] = second.partitions
    await append(gateway, topic, moved.partition, [b"next"])
    polling = asyncio.ensure_future(second.next_batch(10, 20, never))
    await asyncio.sleep(0.2)
    assert not polling.done()
    await first.confirm(durable=False)  # a poll's confirm=true: committed in the background
    batch = await asyncio.wait_for(polling, 5)
    assert values(batch.records) == [b"next"]


async def test_past_the_timeout_what_is_unconfirmed_comes_again(
    gateway: Gateway, instances: ConsumerInstances, clock: FakeClock
) -> None:
    _, first, second = await busy_group(gateway, instances)
    assert not await second.next_batch(10, 0, never)
    clock.advance(HANDOVER)
    again = (await second.next_batch(10, 0, never)).records
    assert values(again) == sorted(b"old-%d" % tp.partition for tp in second.partitions)
    await first.confirm()  # late, and final all the same


async def test_a_deleted_instance_owes_nothing(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    _, first, second = await busy_group(gateway, instances)
    await instances.delete("app", GROUP, first.id)
    # Its unconfirmed events go to the group at once: all four, to the one left.
    assert values((await second.next_batch(10, 0, never)).records) == [
        b"old-0",
        b"old-1",
        b"old-2",
        b"old-3",
    ]


async def test_a_moved_partition_that_owes_nothing_is_read_at_once(
    gateway: Gateway, instances: ConsumerInstances
) -> None:
    topic, first, _ = await busy_group(gateway, instances)
    await first.confirm()
    for partition in range(4):
        await append(gateway, topic, partition, [b"new-%d" % partition])
    third = await instances.create("app", GROUP, Topics(topic))
    # Whatever third was given, from first or second, nothing of it is unconfirmed.
    got = (await third.next_batch(10, 0, never)).records
    assert values(got) == sorted(b"new-%d" % tp.partition for tp in third.partitions)
