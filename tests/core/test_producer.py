"""The producer's records: a record made without a key or headers carries its size."""

from __future__ import annotations

import msgspec

from sluicegate.core.gateway import Gateway
from sluicegate.core.records import TopicPartition
from sluicegate.core.topics import TopicSpec


async def test_an_unkeyed_record_is_the_record_with_its_size(gateway: Gateway) -> None:
    producer = gateway.producer
    for partitions in (1, 3):
        topic = await gateway.topics.create(
            TopicSpec(name=f"unkeyed-{partitions}", partitions=partitions)
        )
        value = b'{"a": 1}'
        made = producer.unkeyed_record(topic, value)
        assert (made.topic, made.key, made.value, tuple(made.headers)) == (
            topic.name,
            None,
            value,
            (),
        )
        assert 0 <= made.partition < partitions
        assert made.known_size == len(value)
        counted = msgspec.structs.replace(made, known_size=None)
        assert counted.size() == len(value)
        if partitions == 1:
            assert counted == producer.record(topic, None, value)


async def test_unkeyed_records_are_stored_as_sent(gateway: Gateway) -> None:
    # Records that carry their size take the storage's whole-run chunking: what is
    # read back is what was sent, in order, across a chunk's record limit.
    topic = await gateway.topics.create(TopicSpec(name="unkeyed-stored", partitions=1))
    values = [b'{"n": %d}' % n for n in range(300)]
    one = gateway.producer.unkeyed_record(topic, values[0])
    appended = await gateway.producer.send([one])
    appended += await gateway.producer.send(gateway.producer.unkeyed_records(topic, values[1:]))
    assert [a.offset for a in appended] == list(range(300))
    read = await gateway.log.read(
        TopicPartition(topic.name, 0), 0, max_records=300, max_bytes=1 << 20
    )
    assert [record.value for record in read] == values
