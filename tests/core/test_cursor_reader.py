"""Cursor reads over every partition of a topic: exactly once, ids as publish gives them."""

from __future__ import annotations

import asyncio
import itertools

from sluicegate.core.cursor_reader import CursorReader
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import NewRecord
from sluicegate.core.topics import Topic, TopicSpec


async def walk(reader: CursorReader, topic: Topic, batch: int) -> list[tuple[int, int, str]]:
    """(partition, offset, id) of every record, in batches of ``batch``, until none are left."""
    positions = await reader.start(topic, None, None)
    seen: list[tuple[int, int, str]] = []
    while deliveries := await reader.read(topic, positions, batch):
        assert len(deliveries) <= batch
        seen.extend((record.partition, record.offset, id_) for record, id_ in deliveries)
        positions = await reader.start(topic, deliveries[-1][1], None)
    return seen


async def test_eight_partitions_are_walked_exactly_once_in_time_order(gateway: Gateway) -> None:
    topic = await gateway.topics.create(TopicSpec(name="wide", partitions=8))
    reader = CursorReader(gateway.log)
    appended = []
    for round_ in range(40):
        # Uneven batches over uneven partitions, some in one commit, some not.
        batch = [
            NewRecord("wide", (round_ * 3 + i) % 8, None, b"%d" % i) for i in range(1 + round_ % 7)
        ]
        appended.extend(await gateway.log.append(batch))
    seen = await walk(reader, topic, 7)
    assert sorted((p, o) for p, o, _ in seen) == sorted((a.partition, a.offset) for a in appended)
    assert len(seen) == len(appended)
    # Publish ids are the ids consume hands out for the same records.
    published = await reader.id_after(topic, appended)
    by_position = {(p, o): id_ for p, o, id_ in seen}
    assert published == [by_position[a.partition, a.offset] for a in appended]


async def test_a_walk_while_others_append_loses_and_repeats_nothing(gateway: Gateway) -> None:
    topic = await gateway.topics.create(TopicSpec(name="busy", partitions=4))
    reader = CursorReader(gateway.log)
    total = 2_000

    async def produce() -> None:
        partitions = itertools.cycle(range(4))
        for _ in range(0, total, 50):
            batch = [NewRecord("busy", next(partitions), None, b"x") for _ in range(50)]
            await gateway.log.append(batch)
            await asyncio.sleep(0)

    producing = asyncio.ensure_future(produce())
    positions = await reader.start(topic, None, None)
    seen: list[tuple[int, int]] = []
    while len(seen) < total:
        deliveries = await reader.read(topic, positions, 50)
        if not deliveries:
            await gateway.log.wait(reader.waiting_on(topic, positions), 5)
            continue
        seen.extend((r.partition, r.offset) for r, _ in deliveries)
        positions = await reader.start(topic, deliveries[-1][1], None)
    await producing
    assert len(seen) == len(set(seen)) == total
    assert await reader.read(topic, positions, 50) == []
