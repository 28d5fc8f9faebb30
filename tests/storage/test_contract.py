"""The storage contract: what every backend of ``storage.base.Log`` must do.

Nothing here knows which backend runs; ``conftest.py`` parametrizes ``log``/``harness``.
Offsets grow per partition in the order of appends; whether they are also gap-free is a
backend's property (``Harness.gap_free``: Kafka's transactions leave commit markers), so
tests assert exact offsets where the backend promises them and order everywhere.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest

from sluicegate.core.records import Appended, NewRecord, Record, TopicPartition, Watermarks
from sluicegate.core.topic_batch import TopicBatch
from sluicegate.core.topics import TopicSpec, TopicUpdate
from sluicegate.errors import (
    BadRequest,
    InvalidPartition,
    InvalidTopicName,
    OffsetOutOfRange,
    PayloadTooLarge,
    TopicExists,
    UnknownGroupMember,
    UnknownTopic,
)
from sluicegate.storage.base import Log
from sluicegate.storage.topic_rules import record_batch_bytes
from tests.storage.conftest import Harness

BIG = 1 << 30


def rec(topic: str, partition: int, value: bytes, key: bytes | None = None) -> NewRecord:
    return NewRecord(topic, partition, key, value)


async def read_all(log: Log, topic: str, partition: int, offset: int = 0) -> list[Record]:
    """Every record from ``offset`` to the high watermark."""
    tp = TopicPartition(topic, partition)
    out: list[Record] = []
    high = (await log.watermarks(tp)).high
    while offset < high:
        page = await log.read(tp, offset, max_records=1000, max_bytes=BIG)
        if not page:
            break  # only a commit marker is left below the high watermark
        out += page
        offset = page[-1].offset + 1
    return out


async def first_record_at(log: Log, tp: TopicPartition, timestamp: int) -> int:
    """The offset ``offset_for_time`` gives, checked to be where reading finds that record.

    A gap-free backend answers a record's offset; on Kafka the answer may be the commit
    marker just before the record, which a reader skips.
    """
    offset = await log.offset_for_time(tp, timestamp)
    page = await log.read(tp, offset, max_records=1, max_bytes=BIG)
    if not page:
        return offset
    assert page[0].timestamp >= timestamp
    assert offset <= page[0].offset
    return page[0].offset


# -- topics --------------------------------------------------------------------------


async def test_create_get_and_list_topics(log: Log) -> None:
    spec = TopicSpec(name="orders", partitions=3, retention_ms=60_000, config={"description": "x"})
    created = await log.create_topic(spec)
    assert (created.name, created.partitions, created.retention_ms) == ("orders", 3, 60_000)
    assert created.retention_bytes is None
    assert created.config == {"description": "x"}
    assert created.created_at == created.updated_at > 0
    assert await log.get_topic("orders") == created
    assert await log.get_topic_by_id(created.id) == created
    await log.create_topic(TopicSpec(name="__sluicegate_state"))
    await log.create_topic(TopicSpec(name="alpha"))
    assert [t.name for t in await log.list_topics()] == ["alpha", "orders"]
    everything = await log.list_topics(include_internal=True)
    assert [t.name for t in everything] == ["__sluicegate_state", "alpha", "orders"]


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (TopicSpec(name="bad name"), InvalidTopicName),
        (TopicSpec(name=""), InvalidTopicName),
        (TopicSpec(name=".."), InvalidTopicName),
        (TopicSpec(name="t", partitions=0), BadRequest),
        (TopicSpec(name="t", partitions=10_001), BadRequest),
        (TopicSpec(name="t", retention_ms=-1), BadRequest),
        (TopicSpec(name="t", retention_bytes=-5), BadRequest),
        # Past a 64-bit integer: refused, not left to fail the commit.
        (TopicSpec(name="t", retention_ms=2**63), BadRequest),
        (TopicSpec(name="t", retention_bytes=10**22), BadRequest),
        # Kafka topic configs Kafka would refuse: refused by embedded storage alike.
        (TopicSpec(name="t", config={"cleanup.policy": "shred"}), BadRequest),
        (TopicSpec(name="t", config={"segment.ms": "abc"}), BadRequest),
        (TopicSpec(name="t", config={"min.cleanable.dirty.ratio": 2}), BadRequest),
        (TopicSpec(name="t", config={"compression.type": "rar"}), BadRequest),
    ],
)
async def test_create_topic_rejects_invalid_specs(
    log: Log, spec: TopicSpec, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await log.create_topic(spec)
    assert await log.list_topics(include_internal=True) == []


async def test_topic_names_are_unique_and_unknown_names_raise(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t"))
    with pytest.raises(TopicExists, match="'t' already exists"):
        await log.create_topic(TopicSpec(name="t", partitions=4))
    assert (await log.get_topic("t")).partitions == 1
    with pytest.raises(UnknownTopic):
        await log.get_topic("nope")
    with pytest.raises(UnknownTopic):
        await log.get_topic_by_id(999_999)
    for call in (log.purge_topic("nope"), log.delete_topic("nope")):
        with pytest.raises(UnknownTopic):
            await call
    with pytest.raises(UnknownTopic):
        await log.alter_topic("nope", TopicUpdate(partitions=2))


async def test_a_compacted_topic_takes_no_record_without_a_key(log: Log) -> None:
    # Kafka refuses such a record (it was a 500 there): a 400 on both backends, before
    # anything of the batch is written.
    await log.create_topic(TopicSpec(name="c", partitions=2, config={"cleanup.policy": "compact"}))
    for batch in (
        [rec("c", 0, b"no key")],
        [NewRecord("c", 0, b"k", b"keyed"), NewRecord("c", 1, None, b"no key")],
    ):
        with pytest.raises(BadRequest, match="compacted"):
            await log.append(batch)
    [kept] = await log.append([NewRecord("c", 1, b"k", b"keyed")])
    assert kept.offset == 0
    assert (await log.watermarks(TopicPartition("c", 0))).high == 0


async def test_a_record_over_the_topics_max_message_bytes_is_refused(log: Log) -> None:
    # Kafka compares the record batch a record travels in with the topic's
    # max.message.bytes; embedded storage counts the same bytes, to the byte.
    await log.create_topic(TopicSpec(name="small", config={"max.message.bytes": "300"}))
    headers = [("trace", b"abc"), ("\u00e9t\u00e9", b"")]

    def record(value_bytes: int) -> NewRecord:
        return NewRecord("small", 0, b"key", b"v" * value_bytes, headers)

    fits = next(n for n in range(400) if record_batch_bytes(record(n + 1)) > 300)
    assert record_batch_bytes(record(fits)) == 300
    with pytest.raises(PayloadTooLarge, match="larger than"):
        await log.append([record(fits + 1)])
    with pytest.raises(PayloadTooLarge):  # one record over the limit fails its whole batch
        await log.append([record(1), record(fits + 1)])
    # Nothing refused was stored (on Kafka the aborted batch may leave its marker, an
    # offset no reader sees).
    [stored] = await log.append([record(fits)])
    assert [r.value for r in await read_all(log, "small", 0)] == [b"v" * fits]
    # Raised with the topic: the new limit holds from then on.
    await log.alter_topic("small", TopicUpdate(config={"max.message.bytes": "2000"}))
    [larger] = await log.append([record(1000)])
    assert larger.offset > stored.offset


async def test_names_that_differ_only_in_dot_and_underscore_collide(log: Log) -> None:
    # Kafka refuses them (its metrics write both the same way): embedded storage too, so
    # that what a deployment made on one backend can move to the other.
    await log.create_topic(TopicSpec(name="orders.eu"))
    with pytest.raises(BadRequest, match="collides with existing topic"):
        await log.create_topic(TopicSpec(name="orders_eu"))
    assert [t.name for t in await log.list_topics()] == ["orders.eu"]
    await log.delete_topic("orders.eu")
    await log.create_topic(TopicSpec(name="orders_eu"))  # the name is free again


async def test_alter_topic_grows_partitions_and_changes_settings(harness: Harness) -> None:
    log = harness.log
    before = await log.create_topic(TopicSpec(name="t", partitions=2, retention_ms=1000))
    await harness.tick()
    after = await log.alter_topic(
        "t", TopicUpdate(partitions=5, retention_ms=None, retention_bytes=4096, config={"a": 1})
    )
    assert (after.id, after.partitions, after.retention_ms) == (before.id, 5, None)
    assert (after.retention_bytes, after.config) == (4096, {"a": 1})
    assert after.created_at == before.created_at < after.updated_at
    assert await log.get_topic("t") == after
    assert await log.append([rec("t", 4, b"new partition")]) != []
    assert (await log.watermarks(TopicPartition("t", 4))).high == 1
    unchanged = await log.alter_topic("t", TopicUpdate())
    assert unchanged.partitions == 5
    assert unchanged.config == {"a": 1}


@pytest.mark.parametrize("partitions", [1, 2, 10_001])
async def test_alter_topic_never_shrinks_partitions(log: Log, partitions: int) -> None:
    await log.create_topic(TopicSpec(name="t", partitions=3))
    with pytest.raises(BadRequest, match="partitions"):
        await log.alter_topic("t", TopicUpdate(partitions=partitions))
    assert (await log.get_topic("t")).partitions == 3


@pytest.mark.parametrize(
    "update", [TopicUpdate(retention_ms=2**64), TopicUpdate(retention_bytes=-(2**63) - 1)]
)
async def test_alter_topic_refuses_retention_past_64_bits(log: Log, update: TopicUpdate) -> None:
    await log.create_topic(TopicSpec(name="t", retention_ms=1000))
    with pytest.raises(BadRequest, match="retention"):
        await log.alter_topic("t", update)
    assert (await log.get_topic("t")).retention_ms == 1000
    await log.create_topic(TopicSpec(name="u"))  # and the log goes on


async def test_alter_topic_refuses_a_kafka_config_kafka_would_refuse(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t", config={"cleanup.policy": "delete"}))
    with pytest.raises(BadRequest, match=r"'max\.message\.bytes' must be a whole number"):
        await log.alter_topic("t", TopicUpdate(config={"max.message.bytes": "lots"}))
    assert (await log.get_topic("t")).config == {"cleanup.policy": "delete"}
    changed = await log.alter_topic("t", TopicUpdate(config={"cleanup.policy": "compact,delete"}))
    assert changed.config == {"cleanup.policy": "compact,delete"}


async def test_purge_drops_records_and_offsets_keep_counting(harness: Harness) -> None:
    log = harness.log
    await log.create_topic(TopicSpec(name="t"))
    tp = TopicPartition("t", 0)
    await log.append([rec("t", 0, b"%d" % i) for i in range(5)])
    await log.purge_topic("t")
    marks = await log.watermarks(tp)
    assert marks.low == marks.high
    if harness.gap_free:
        assert marks == Watermarks(low=5, high=5)
    else:
        assert marks.high > 5  # the transaction's commit marker came after the records
    assert await log.read(tp, marks.high, max_records=10, max_bytes=BIG) == []
    with pytest.raises(OffsetOutOfRange):
        await log.read(tp, 0, max_records=10, max_bytes=BIG)
    [appended] = await log.append([rec("t", 0, b"after")])
    assert appended.offset == marks.high
    [record] = await log.read(tp, marks.high, max_records=10, max_bytes=BIG)
    assert record.value == b"after"


async def test_delete_and_recreate_starts_afresh(log: Log) -> None:
    old = await log.create_topic(TopicSpec(name="t", partitions=2))
    await log.append([rec("t", 0, b"a"), rec("t", 1, b"b")])
    await log.commit_offsets("g", {TopicPartition("t", 0): 1})
    await log.delete_topic("t")
    with pytest.raises(UnknownTopic):
        await log.get_topic("t")
    with pytest.raises(UnknownTopic):
        await log.get_topic_by_id(old.id)
    with pytest.raises(UnknownTopic):
        await log.read(TopicPartition("t", 0), 0, max_records=1, max_bytes=BIG)
    new = await log.create_topic(TopicSpec(name="t"))
    assert new.id > old.id
    assert new.partitions == 1
    assert await log.committed_offsets("g", "t") == {}
    [appended] = await log.append([rec("t", 0, b"fresh")])
    assert appended.offset == 0
    assert [r.value for r in await read_all(log, "t", 0)] == [b"fresh"]


async def test_topic_ids_are_never_reused(log: Log) -> None:
    ids = []
    for _ in range(3):
        ids.append((await log.create_topic(TopicSpec(name="t"))).id)
        await log.delete_topic("t")
    assert ids == sorted(set(ids))


# -- append ----------------------------------------------------------------------------


async def test_offsets_are_ordered_per_partition(harness: Harness) -> None:
    log = harness.log
    await log.create_topic(TopicSpec(name="t", partitions=3))
    batch = [rec("t", i % 3, b"v%d" % i) for i in range(30)]
    appended = await log.append(batch)
    assert [(a.topic, a.partition) for a in appended] == [("t", r.partition) for r in batch]
    for partition in range(3):
        offsets = [a.offset for a in appended if a.partition == partition]
        assert offsets == list(range(10))
        records = await read_all(log, "t", partition)
        assert [r.value for r in records] == [r.value for r in batch if r.partition == partition]
        assert [r.offset for r in records] == offsets
    more = await log.append([rec("t", 1, b"next")])
    assert more[0].offset == 10 if harness.gap_free else more[0].offset > 9
    assert await log.append([]) == []


async def test_timestamps_are_append_time_and_never_decrease(harness: Harness) -> None:
    log = harness.log
    await log.create_topic(TopicSpec(name="t"))
    appended = []
    for i in range(5):
        before = time.time_ns() // 1000
        appended += await log.append([rec("t", 0, b"%d" % i)])
        after = time.time_ns() // 1000
        if harness.clock is None:  # the log's own time: it must be the wall clock's
            assert before - 1000 <= appended[-1].timestamp <= after
        await harness.tick()
    appended += await log.append([rec("t", 0, b"x"), rec("t", 0, b"y")])
    stamps = [a.timestamp for a in appended]
    assert stamps == sorted(stamps)
    assert stamps[-1] > stamps[0]
    assert [r.timestamp for r in await read_all(log, "t", 0)] == stamps


async def test_timestamps_never_decrease_when_the_clock_steps_back(
    clocked_harness: Harness,
) -> None:
    log, clock = clocked_harness.log, clocked_harness.clock
    assert clock is not None
    await log.create_topic(TopicSpec(name="t"))
    [first] = await log.append([rec("t", 0, b"a")])
    assert first.timestamp == clock.now
    clock.advance(-10)  # the wall clock steps back (NTP): the log's time must not
    [second] = await log.append([rec("t", 0, b"b")])
    assert second.timestamp == first.timestamp
    clock.advance(20)
    [third] = await log.append([rec("t", 0, b"c")])
    assert third.timestamp == clock.now > second.timestamp
    stamps = [r.timestamp for r in await read_all(log, "t", 0)]
    assert stamps == [first.timestamp, second.timestamp, third.timestamp]


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (rec("missing", 0, b"x"), UnknownTopic),
        (rec("b", 2, b"x"), InvalidPartition),
        (rec("b", -1, b"x"), InvalidPartition),
    ],
)
async def test_a_batch_across_topics_is_all_or_nothing(
    log: Log, bad: NewRecord, error: type[Exception]
) -> None:
    await log.create_topic(TopicSpec(name="a", partitions=2))
    await log.create_topic(TopicSpec(name="b", partitions=2))
    batch = [rec("a", 0, b"1"), rec("b", 1, b"2"), rec("a", 1, b"3"), bad, rec("b", 0, b"4")]
    with pytest.raises(error):
        await log.append(batch)
    for topic in ("a", "b"):
        for partition in (0, 1):
            marks = await log.watermarks(TopicPartition(topic, partition))
            assert (marks.low, marks.high) == (0, 0)
    ok = await log.append([r for r in batch if r is not bad])
    assert [a.offset for a in ok] == [0, 0, 0, 0]


async def test_one_bad_append_does_not_fail_concurrent_ones(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t", partitions=2))
    batches = [
        [rec("t", i % 2, b"%d" % i)] if i % 5 else [rec("t", 0, b"ok"), rec("t", 9, b"bad")]
        for i in range(50)
    ]
    results = await asyncio.gather(*(log.append(b) for b in batches), return_exceptions=True)
    for i, result in enumerate(results):
        if i % 5:
            assert isinstance(result, list)
            assert len(result) == 1
        else:
            assert isinstance(result, InvalidPartition)
    stored = [r.value or b"" for p in (0, 1) for r in await read_all(log, "t", p)]
    assert sorted(stored) == sorted(b"%d" % i for i in range(50) if i % 5)


async def test_appends_are_stored_in_the_order_they_are_called(log: Log) -> None:
    # As Kafka's producer keeps the order of send(): queued at the call, not at the await.
    await log.create_topic(TopicSpec(name="t"))
    futures = [log.append([rec("t", 0, b"%d" % i)]) for i in range(200)]
    futures.reverse()  # awaited in the opposite order: must not matter
    results = await asyncio.gather(*futures)
    assert [r.offset for [r] in reversed(results)] == list(range(200))
    assert [r.value for r in await read_all(log, "t", 0)] == [b"%d" % i for i in range(200)]


async def test_single_and_multi_record_appends_keep_the_order_of_calls(log: Log) -> None:
    # Kafka sends them through two producers (idempotent, transactional): the order of the
    # calls must still be the order in each partition.
    await log.create_topic(TopicSpec(name="t", partitions=2))
    futures, expected = [], []
    for i in range(90):
        if i % 3:
            batch = [rec("t", 0, b"%d" % i)]
        else:
            batch = [rec("t", 0, b"%d-0" % i), rec("t", 1, b"%d-1" % i), rec("t", 0, b"%d-2" % i)]
        futures.append(log.append(batch))
        expected += [r.value for r in batch if r.partition == 0]
    await asyncio.gather(*futures)
    assert [r.value for r in await read_all(log, "t", 0)] == expected


async def test_topic_batches_are_stored_as_the_records_they_hold(log: Log) -> None:
    # A TopicBatch through append and append_offsets, beside plain lists, sharing commits.
    await log.create_topic(TopicSpec(name="t", partitions=3))
    batches: list[list[NewRecord]] = []
    calls = []
    for i in range(24):
        values = [b"%d-%d" % (i, j) for j in range(5)]
        if i % 3 == 0:  # one key, one partition
            batch = TopicBatch("t", [1] * 5, [b"k"] * 5, values)
        elif i % 3 == 1:  # partitions interleaved, keys and values some null
            keys = [None, b"a", None, b"b", b"c"]
            batch = TopicBatch("t", [j % 3 for j in range(5)], keys, [*values[:4], None])
        else:
            batch = [rec("t", 2, value) for value in values]
        batches.append(list(batch))
        calls.append(log.append_offsets(batch) if i % 2 else _offsets(log.append(batch)))
    results = await asyncio.gather(*calls)
    stored = {
        (partition, r.offset): (r.key, r.value)
        for partition in range(3)
        for r in await read_all(log, "t", partition)
    }
    assert len(stored) == 24 * 5
    for batch, offsets in zip(batches, results, strict=True):
        assert [partition for partition, _ in offsets] == [r.partition for r in batch]
        assert [stored[place] for place in offsets] == [(r.key, r.value) for r in batch]
    one = await log.append_offsets(TopicBatch("t", [0], [None], [b"alone"]))
    assert stored.keys().isdisjoint(one)
    assert [r.value for r in await read_all(log, "t", 0, one[0][1])] == [b"alone"]


async def _offsets(appending: asyncio.Future[list[Appended]]) -> list[tuple[int, int]]:
    return [(appended.partition, appended.offset) for appended in await appending]


async def test_a_topic_batch_with_a_bad_partition_or_topic_stores_nothing(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t", partitions=2))
    with pytest.raises(InvalidPartition):
        await log.append_offsets(TopicBatch("t", [0, 2], [None, None], [b"a", b"b"]))
    with pytest.raises(UnknownTopic):
        await log.append(TopicBatch("nowhere", [0, 0], [None, None], [b"a", b"b"]))
    for partition in (0, 1):
        marks = await log.watermarks(TopicPartition("t", partition))
        assert marks.high == 0


async def test_appends_racing_a_topic_delete_are_whole_or_absent(harness: Harness) -> None:
    log = harness.log
    await log.create_topic(TopicSpec(name="doomed", partitions=2))
    await log.create_topic(TopicSpec(name="kept"))

    async def produce(i: int) -> list[int] | Exception:
        batch = [rec("kept", 0, b"%d" % i), rec("doomed", i % 2, b"%d" % i)]
        try:
            return [a.offset for a in await log.append(batch)]
        except UnknownTopic as exc:
            return exc

    # Appends before and after the delete in one loop turn: some are queued behind it.
    tasks = [asyncio.create_task(produce(i)) for i in range(20)]
    deleting = asyncio.create_task(log.delete_topic("doomed"))
    tasks += [asyncio.create_task(produce(i)) for i in range(20, 40)]
    await deleting
    results = await asyncio.gather(*tasks)
    succeeded = [r for r in results if isinstance(r, list)]
    kept = await read_all(log, "kept", 0)
    # Every batch that failed left nothing in "kept" either.
    assert len(kept) == len(succeeded)
    assert sorted(r[0] for r in succeeded) == [r.offset for r in kept]
    if harness.gap_free:
        assert [r.offset for r in kept] == list(range(len(kept)))


async def test_headers_keys_and_values_round_trip_exactly(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t"))
    headers = [("b", b"\x00\xff"), ("a", b""), ("b", b"dup"), ("ünï", b"\x80")]
    batch = [
        NewRecord("t", 0, b"key", b"value", headers),
        NewRecord("t", 0, None, b"no key"),
        NewRecord("t", 0, b"no value", None),
        NewRecord("t", 0, None, None),
        NewRecord("t", 0, b"", b""),
    ]
    await log.append(batch)
    records = await read_all(log, "t", 0)
    assert [(r.key, r.value, list(r.headers)) for r in records] == [
        (b.key, b.value, list(b.headers)) for b in batch
    ]
    assert [r.size() for r in records] == [b.size() for b in batch]


# -- read ------------------------------------------------------------------------------


async def test_read_is_bounded_by_records_and_bytes(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t"))
    tp = TopicPartition("t", 0)
    await log.append([rec("t", 0, b"x" * 10) for _ in range(300)])
    assert len(await log.read(tp, 0, max_records=7, max_bytes=BIG)) == 7
    # 10 bytes each: 35 bytes hold three records, never a fourth.
    assert [r.offset for r in await log.read(tp, 5, max_records=100, max_bytes=35)] == [5, 6, 7]
    assert len(await log.read(tp, 0, max_records=1000, max_bytes=2000)) == 200
    # Started mid-way, the bytes of the records before the start count for nothing.
    page = await log.read(tp, 100, max_records=1000, max_bytes=1500)
    assert [r.offset for r in page] == list(range(100, 250))
    # Reads cross whatever internal boundaries a backend has, in order.
    page = await log.read(tp, 100, max_records=150, max_bytes=BIG)
    assert [r.offset for r in page] == list(range(100, 250))
    assert [r.offset for r in await log.read(tp, 295, max_records=10, max_bytes=BIG)] == [
        295,
        296,
        297,
        298,
        299,
    ]


async def test_read_returns_the_first_record_even_over_max_bytes(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t"))
    tp = TopicPartition("t", 0)
    await log.append([rec("t", 0, b"x" * 1000), rec("t", 0, b"y")])
    [first] = await log.read(tp, 0, max_records=10, max_bytes=1)
    assert first.value == b"x" * 1000
    [second] = await log.read(tp, 1, max_records=10, max_bytes=1)
    assert second.value == b"y"


async def test_read_positions_and_errors(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t", partitions=2))
    tp = TopicPartition("t", 0)
    await log.append([rec("t", 0, b"a"), rec("t", 0, b"b")])
    assert await log.read(tp, 2, max_records=10, max_bytes=BIG) == []
    assert await log.read(TopicPartition("t", 1), 0, max_records=10, max_bytes=BIG) == []
    high = (await log.watermarks(tp)).high
    assert await log.read(tp, high, max_records=10, max_bytes=BIG) == []
    for offset in (high + 1, 100, -1):
        with pytest.raises(OffsetOutOfRange):
            await log.read(tp, offset, max_records=10, max_bytes=BIG)
    with pytest.raises(UnknownTopic):
        await log.read(TopicPartition("u", 0), 0, max_records=10, max_bytes=BIG)
    with pytest.raises(InvalidPartition):
        await log.read(TopicPartition("t", 2), 0, max_records=10, max_bytes=BIG)
    with pytest.raises(InvalidPartition):
        await log.watermarks(TopicPartition("t", 5))


async def test_watermarks_follow_appends(harness: Harness) -> None:
    log = harness.log
    await log.create_topic(TopicSpec(name="t", partitions=2))
    tp = TopicPartition("t", 1)
    marks = await log.watermarks(tp)
    assert (marks.low, marks.high) == (0, 0)
    await log.append([rec("t", 1, b"a"), rec("t", 1, b"b"), rec("t", 0, b"c")])
    marks = await log.watermarks(tp)
    assert marks.low == 0
    assert marks.high == 2 if harness.gap_free else marks.high > 2
    [single] = await log.append([rec("t", 1, b"d")])
    assert single.offset == marks.high
    assert (await log.watermarks(tp)).high == marks.high + 1


async def test_watermarks_of_a_moment_ago_follow_this_nodes_appends_and_purges(
    harness: Harness,
) -> None:
    log = harness.log
    await log.create_topic(TopicSpec(name="t"))
    tp = TopicPartition("t", 0)
    assert await log.watermarks(tp, max_age=60) == Watermarks(low=0, high=0)
    [first] = await log.append([rec("t", 0, b"a")])
    # Asked a moment ago or not, the high is never below what this node appended.
    assert (await log.watermarks(tp, max_age=60)).high == first.offset + 1
    [second] = await log.append([rec("t", 0, b"b")])
    recent = await log.watermarks(tp, max_age=60)
    assert recent == await log.watermarks(tp)
    assert recent.high == second.offset + 1
    await log.purge_topic("t")
    purged = await log.watermarks(tp, max_age=60)
    assert purged.low == purged.high >= second.offset + 1


async def test_offset_for_time(harness: Harness) -> None:
    log = harness.log
    await log.create_topic(TopicSpec(name="t"))
    tp = TopicPartition("t", 0)
    assert await log.offset_for_time(tp, 0) == 0
    stamps, firsts = [], []
    for i in range(5):
        appended = await log.append([rec("t", 0, b"%d" % i), rec("t", 0, b"%d" % i)])
        stamps.append(appended[0].timestamp)
        firsts.append(appended[0].offset)
        await harness.tick()
    high = (await log.watermarks(tp)).high
    if harness.gap_free:
        assert (firsts, high) == ([0, 2, 4, 6, 8], 10)
    assert await first_record_at(log, tp, 0) == 0
    assert await first_record_at(log, tp, stamps[0]) == 0
    assert await first_record_at(log, tp, stamps[2]) == firsts[2]
    assert await first_record_at(log, tp, stamps[2] + 1) == firsts[3]
    assert await first_record_at(log, tp, stamps[4]) == firsts[4]
    after_all = await log.offset_for_time(tp, stamps[4] + 1)
    assert await log.read(tp, after_all, max_records=1, max_bytes=BIG) == []
    assert after_all == high if harness.gap_free else firsts[4] < after_all <= high
    await log.purge_topic("t")
    assert await log.offset_for_time(tp, 0) == high


# -- retention ---------------------------------------------------------------------------


async def test_retention_by_time_moves_the_low_watermark(clocked_harness: Harness) -> None:
    harness = clocked_harness
    log, clock, enforce_retention = harness.log, harness.clock, harness.enforce_retention
    assert clock is not None
    assert enforce_retention is not None
    await log.create_topic(TopicSpec(name="t", partitions=2, retention_ms=1000))
    await log.create_topic(TopicSpec(name="forever"))
    tp = TopicPartition("t", 0)
    await log.append([rec("t", 0, b"old"), rec("t", 0, b"old"), rec("forever", 0, b"x")])
    clock.advance(0.6)
    await log.append([rec("t", 0, b"new")])
    await enforce_retention()
    assert (await log.watermarks(tp)).low == 0  # nothing is older than 1 s yet
    clock.advance(0.6)
    await enforce_retention()
    marks = await log.watermarks(tp)
    assert (marks.low, marks.high) == (2, 3)
    assert [r.value for r in await read_all(log, "t", 0, 2)] == [b"new"]
    with pytest.raises(OffsetOutOfRange):
        await log.read(tp, 1, max_records=1, max_bytes=BIG)
    clock.advance(10)
    await enforce_retention()
    assert await log.watermarks(tp) == await log.watermarks(TopicPartition("t", 0))
    assert (await log.watermarks(tp)).low == 3
    assert (await log.watermarks(TopicPartition("forever", 0))).low == 0
    [after] = await log.append([rec("t", 0, b"later")])
    assert after.offset == 3


@pytest.mark.parametrize("per_append", [1, 7, 500])
async def test_retention_by_bytes_keeps_the_newest_records(
    clocked_harness: Harness, per_append: int
) -> None:
    log, enforce_retention = clocked_harness.log, clocked_harness.enforce_retention
    assert enforce_retention is not None
    await log.create_topic(TopicSpec(name="t", retention_bytes=1000))
    tp = TopicPartition("t", 0)
    total = 0
    while total < 1400:
        await log.append([rec("t", 0, b"x" * 10) for _ in range(per_append)])
        total += per_append * 10
    await enforce_retention()
    marks = await log.watermarks(tp)
    kept = await read_all(log, "t", 0, marks.low)
    assert sum(r.size() for r in kept) == 1000  # exactly 100 records of 10 bytes
    assert marks.high - marks.low == 100
    await enforce_retention()
    assert await log.watermarks(tp) == marks
    await log.alter_topic("t", TopicUpdate(retention_bytes=55))
    await enforce_retention()
    marks = await log.watermarks(tp)
    assert marks.high - marks.low == 5


# -- consumer groups -------------------------------------------------------------------


async def test_committed_offsets_round_trip(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t", partitions=3))
    assert await log.committed_offsets("g", "t") == {}
    await log.commit_offsets("g", {TopicPartition("t", 0): 5, TopicPartition("t", 2): 7})
    await log.commit_offsets("g", {TopicPartition("t", 0): 6})
    await log.commit_offsets("other", {TopicPartition("t", 1): 1})
    assert await log.committed_offsets("g", "t") == {0: 6, 2: 7}
    assert await log.committed_offsets("other", "t") == {1: 1}
    with pytest.raises(UnknownTopic):
        await log.committed_offsets("g", "missing")
    with pytest.raises(UnknownTopic):
        await log.commit_offsets("g", {TopicPartition("missing", 0): 1})
    with pytest.raises(InvalidPartition):
        await log.commit_offsets("g", {TopicPartition("t", 3): 1})
    with pytest.raises(BadRequest):
        await log.commit_offsets("g", {TopicPartition("t", 0): -1})
    assert await log.committed_offsets("g", "t") == {0: 6, 2: 7}


async def test_two_members_split_partitions_and_one_leaving_gives_all(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t", partitions=5))
    a1 = await log.join_group("g", "a", ["t"], 30)
    assert set(a1.partitions) == {TopicPartition("t", p) for p in range(5)}
    b = await log.join_group("g", "b", ["t"], 30)
    a = await log.heartbeat("g", "a")
    assert a.generation == b.generation > a1.generation
    assert set(a.partitions).isdisjoint(b.partitions)
    assert set(a.partitions) | set(b.partitions) == {TopicPartition("t", p) for p in range(5)}
    assert {len(a.partitions), len(b.partitions)} == {2, 3}
    await log.leave_group("g", "b")
    a2 = await log.heartbeat("g", "a")
    assert a2.generation > a.generation
    assert set(a2.partitions) == {TopicPartition("t", p) for p in range(5)}
    with pytest.raises(UnknownGroupMember):
        await log.heartbeat("g", "b")
    await log.leave_group("g", "b")  # unknown members are ignored
    await log.leave_group("nobody", "x")


async def test_members_with_different_subscriptions(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t", partitions=2))
    await log.create_topic(TopicSpec(name="u", partitions=2))
    await log.join_group("g", "a", ["t"], 30)
    await log.join_group("g", "b", ["t", "u"], 30)
    a = await log.heartbeat("g", "a")
    b = await log.heartbeat("g", "b")
    assert all(tp.topic == "t" for tp in a.partitions)
    assert {tp for tp in b.partitions if tp.topic == "u"} == {
        TopicPartition("u", 0),
        TopicPartition("u", 1),
    }
    assert len(a.partitions) + len(b.partitions) == 4
    with pytest.raises(UnknownTopic):
        await log.join_group("g", "c", ["nope"], 30)


async def test_growing_partitions_rebalances(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t", partitions=2))
    await log.join_group("g", "a", ["t"], 30)
    b = await log.join_group("g", "b", ["t"], 30)
    await log.alter_topic("t", TopicUpdate(partitions=4))
    a2, b2 = await log.heartbeat("g", "a"), await log.heartbeat("g", "b")
    assert a2.generation == b2.generation > b.generation
    assert len(a2.partitions) == len(b2.partitions) == 2
    assert set(a2.partitions) | set(b2.partitions) == {TopicPartition("t", p) for p in range(4)}


async def test_a_topic_deleted_and_made_again_under_a_group_rebalances_it(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t", partitions=2))
    joined = await log.join_group("g", "a", ["t"], 30)
    await log.delete_topic("t")
    gone = await log.heartbeat("g", "a")
    assert gone.generation > joined.generation
    assert gone.partitions == ()
    # Made again, with more partitions: the member, still subscribed, is given them.
    await log.create_topic(TopicSpec(name="t", partitions=3))
    again = await log.heartbeat("g", "a")
    assert again.generation > gone.generation
    assert set(again.partitions) == {TopicPartition("t", p) for p in range(3)}


async def test_a_rebalance_the_log_makes_by_itself_is_told(log: Log) -> None:
    # Members learn of a rebalance at their next heartbeat; one that waits (a stream)
    # is told to heartbeat now.
    told: list[str] = []
    log.on_rebalance(told.append)
    await log.create_topic(TopicSpec(name="t", partitions=2))
    await log.create_topic(TopicSpec(name="other"))
    await log.join_group("g", "a", ["t"], 30)
    await log.join_group("h", "b", ["other"], 30)
    await log.join_group("g", "c", ["t"], 30)
    assert told == []  # the members' own doing: they know
    await log.alter_topic("t", TopicUpdate(partitions=3))
    assert told == ["g"]
    await log.delete_topic("other")
    assert told == ["g", "h"]


async def test_silent_members_expire_and_their_partitions_move(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t", partitions=4))
    await log.join_group("g", "quiet", ["t"], 0.05)
    await log.join_group("g", "live", ["t"], 30)
    assert len((await log.heartbeat("g", "live")).partitions) == 2
    await asyncio.sleep(0.15)
    live = await log.heartbeat("g", "live")
    assert set(live.partitions) == {TopicPartition("t", p) for p in range(4)}
    with pytest.raises(UnknownGroupMember):
        await log.heartbeat("g", "quiet")


async def test_heartbeats_keep_a_member_alive(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t"))
    joined = await log.join_group("g", "m", ["t"], 0.2)
    for _ in range(8):  # 0.4 s in all: twice the session timeout
        await asyncio.sleep(0.05)
        assert (await log.heartbeat("g", "m")).generation == joined.generation


async def test_commits_are_fenced_by_member_and_generation(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t", partitions=2))
    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)
    first = await log.join_group("g", "a", ["t"], 30)
    await log.commit_offsets("g", {tp0: 1, tp1: 1}, member_id="a", generation=first.generation)
    await log.join_group("g", "b", ["t"], 30)
    a = await log.heartbeat("g", "a")
    [owned] = a.partitions
    [lost] = {tp0, tp1} - {owned}
    # An old generation may still commit what the member owns now, but nothing else.
    await log.commit_offsets("g", {owned: 2}, member_id="a", generation=first.generation)
    with pytest.raises(UnknownGroupMember):
        await log.commit_offsets("g", {lost: 2}, member_id="a", generation=first.generation)
    with pytest.raises(UnknownGroupMember):
        await log.commit_offsets("g", {lost: 2}, member_id="a", generation=a.generation)
    with pytest.raises(UnknownGroupMember):
        await log.commit_offsets("g", {owned: 2}, member_id="ghost", generation=a.generation)
    with pytest.raises(UnknownGroupMember):
        await log.commit_offsets("g", {owned: 2}, member_id="a", generation=a.generation + 5)
    await log.leave_group("g", "a")
    with pytest.raises(UnknownGroupMember):
        await log.commit_offsets("g", {owned: 3}, member_id="a", generation=a.generation)
    assert await log.committed_offsets("g", "t") == {owned.partition: 2, lost.partition: 1}
    await log.commit_offsets("g", {lost: 9})  # unfenced commits always land
    assert (await log.committed_offsets("g", "t"))[lost.partition] == 9


# -- concurrency and waiting ---------------------------------------------------------------


async def test_concurrent_producers_and_readers(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t", partitions=2))
    producers, appends = 50, 100
    seen: list[Record] = []
    acknowledged = [0, 0]

    async def produce(p: int) -> None:
        for i in range(appends):
            await log.append([rec("t", p % 2, msgspec.msgpack.encode([p, i]))])
            acknowledged[p % 2] += 1

    async def consume(partition: int) -> None:
        tp, offset = TopicPartition("t", partition), 0
        while offset < producers * appends // 2:
            if not await log.wait({tp: offset}, timeout=5):
                await log.check()  # a closed log answers every wait at once: stop then
                continue
            page = await log.read(tp, offset, max_records=500, max_bytes=BIG)
            seen.extend(page)
            offset += len(page)

    # Bounded here, so that a stall fails with what was acknowledged and read, and leaves
    # no task behind (a timeout from outside would leave the readers looping).
    try:
        async with asyncio.timeout(120), asyncio.TaskGroup() as tg:
            readers = [tg.create_task(consume(0)), tg.create_task(consume(1))]
            for p in range(producers):
                tg.create_task(produce(p))
    except TimeoutError:
        ends = [await log.watermarks(TopicPartition("t", p)) for p in (0, 1)]
        pytest.fail(f"stalled: acknowledged {acknowledged}, read {len(seen)}, ends {ends}")
    assert all(r.done() for r in readers)
    for partition in (0, 1):
        records = await read_all(log, "t", partition)
        assert [r.offset for r in records] == list(range(producers * appends // 2))
        sequences: dict[int, list[int]] = {}
        for record in records:
            assert record.value is not None
            p, i = msgspec.msgpack.decode(record.value)
            sequences.setdefault(p, []).append(i)
        assert all(seq == list(range(appends)) for seq in sequences.values())
        assert len(sequences) == producers // 2
    assert len(seen) == producers * appends


async def test_wait_returns_at_once_if_data_is_there(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t"))
    tp = TopicPartition("t", 0)
    await log.append([rec("t", 0, b"x")])
    assert await log.wait({tp: 0}, timeout=10) is True
    started = time.monotonic()
    assert await log.wait({tp: 1}, timeout=0.05) is False
    assert time.monotonic() - started >= 0.04
    with pytest.raises(UnknownTopic):
        await log.wait({TopicPartition("nope", 0): 0}, timeout=1)


async def test_wait_wakes_on_the_partition_it_watches(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t", partitions=3))
    tp0, tp1, tp2 = (TopicPartition("t", p) for p in range(3))
    both = asyncio.create_task(log.wait({tp0: 0, tp1: 0}, timeout=10))
    far = asyncio.create_task(log.wait({tp1: 5}, timeout=10))
    other = asyncio.create_task(log.wait({tp2: 0}, timeout=10))
    await asyncio.sleep(0.01)
    await log.append([rec("t", 1, b"x")])
    assert await asyncio.wait_for(both, 1) is True
    await asyncio.sleep(0.01)
    assert not far.done()
    assert not other.done()
    await log.append([rec("t", 1, b"%d" % i) for i in range(5)])
    assert await asyncio.wait_for(far, 1) is True
    assert not other.done()
    other.cancel()
    with pytest.raises(asyncio.CancelledError):
        await other


async def test_ten_thousand_waiters(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t", partitions=2))
    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)
    woken = [asyncio.create_task(log.wait({tp0: 0}, timeout=30)) for _ in range(5000)]
    idle = [asyncio.create_task(log.wait({tp1: 0}, timeout=30)) for _ in range(5000)]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await log.append([rec("t", 0, b"wake")])
    assert all(await asyncio.wait_for(asyncio.gather(*woken), 5))
    assert time.monotonic() - started < 2
    await asyncio.sleep(0.01)
    assert not any(task.done() for task in idle)
    for task in idle:
        task.cancel()
    await asyncio.gather(*idle, return_exceptions=True)


async def test_close_wakes_every_waiter(log: Log) -> None:
    await log.create_topic(TopicSpec(name="t"))
    waiting = [
        asyncio.create_task(log.wait({TopicPartition("t", 0): 0}, timeout=30)) for _ in range(3)
    ]
    await asyncio.sleep(0.01)
    await log.close()
    assert await asyncio.wait_for(asyncio.gather(*waiting), 1) == [False, False, False]
