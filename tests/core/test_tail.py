"""``core.tail``: where a tail starts, its pace, and a purge under it."""

from __future__ import annotations

import pytest

from sluicegate.core.gateway import Gateway
from sluicegate.core.records import NewRecord
from sluicegate.core.tail import Start, TopicTail, positions_at
from sluicegate.core.topics import TopicSpec, TopicUpdate
from sluicegate.errors import BadRequest


async def _fill(gateway: Gateway, topic: str, partitions: int, per_partition: int) -> None:
    await gateway.topics.create(TopicSpec(name=topic, partitions=partitions))
    batch = [
        NewRecord(topic, p, value=f"{p}-{i}".encode())
        for p in range(partitions)
        for i in range(per_partition)
    ]
    await gateway.log.append(batch)


async def test_positions_start_at_the_end_an_offset_or_a_time(gateway: Gateway) -> None:
    await _fill(gateway, "t", 2, 5)
    log = gateway.log
    assert await positions_at(log, "t", [0, 1], Start()) == {0: 5, 1: 5}
    assert await positions_at(log, "t", [0, 1], Start(offset=3)) == {0: 3, 1: 3}
    # Beyond the high watermark: the end; a time before every record: the start.
    assert await positions_at(log, "t", [1], Start(offset=99)) == {1: 5}
    assert await positions_at(log, "t", [0], Start(time_us=0)) == {0: 0}


async def test_a_tail_reads_every_partition_in_offset_order(gateway: Gateway) -> None:
    await _fill(gateway, "t", 3, 4)
    tail = TopicTail(gateway.log, "t", {0: 0, 1: 2, 2: 4})
    seen: list[tuple[int, int]] = []
    while batch := await tail.next_batch(0):
        seen.extend((r.partition, r.offset) for r in batch)
    assert sorted(seen) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    for partition in range(3):
        offsets = [o for p, o in seen if p == partition]
        assert offsets == sorted(offsets)
    assert tail.positions == {0: 4, 1: 4, 2: 4}


async def test_a_batch_is_bounded_by_the_rate_burst(gateway: Gateway) -> None:
    await _fill(gateway, "t", 1, 200)
    tail = TopicTail(gateway.log, "t", {0: 0}, max_rate=40)
    first = await tail.next_batch(0)
    assert len(first) == 10  # a quarter second's worth
    second = await tail.next_batch(0)
    # The bucket was empty: it waited for records to be allowed, never more than a burst.
    assert 1 <= len(second) <= 10
    assert second[0].offset == 10


async def test_a_purge_under_the_tail_moves_it_to_what_is_kept(gateway: Gateway) -> None:
    await _fill(gateway, "t", 1, 5)
    tail = TopicTail(gateway.log, "t", {0: 1})
    await gateway.topics.purge("t")
    assert await tail.next_batch(0) == []
    assert tail.positions == {0: 5}
    await gateway.log.append([NewRecord("t", 0, value=b"after")])
    assert [r.value for r in await tail.next_batch(1.0)] == [b"after"]


@pytest.mark.parametrize("rate", [0, -1, 10_001])
def test_a_rate_out_of_bounds_is_refused(rate: float) -> None:
    with pytest.raises(BadRequest):
        TopicTail(None, "t", {}, max_rate=rate)  # type: ignore[arg-type]


async def test_a_tail_of_every_partition_reads_the_ones_the_topic_grows_to(
    gateway: Gateway,
) -> None:
    await _fill(gateway, "t", 1, 1)

    async def count() -> int:
        return (await gateway.topics.get("t")).partitions

    positions = await positions_at(gateway.log, "t", [0], Start())
    tail = TopicTail(gateway.log, "t", positions, partitions=count, recheck=0.1)
    assert await tail.next_batch(0) == []
    await gateway.topics.alter("t", TopicUpdate(partitions=3))
    await gateway.log.append([NewRecord("t", 2, value=b"new partition")])
    # Woken by nothing the tail waited on: it looks at the partition count meanwhile.
    got = await tail.next_batch(5.0)
    assert [(r.partition, r.offset, r.value) for r in got] == [(2, 0, b"new partition")]
    assert tail.positions == {0: 1, 1: 0, 2: 1}


async def test_positions_given_win_over_the_start(gateway: Gateway) -> None:
    await _fill(gateway, "t", 2, 5)
    given = {0: 2, 1: 99}
    assert await positions_at(gateway.log, "t", [0, 1], Start(offset=0), given) == {0: 2, 1: 5}
