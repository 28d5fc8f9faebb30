"""The reader against a real broker: a walk answered from the read-ahead, refilled in the
background, reads what a plain ``read_committed`` consumer reads, and the end of a
partition (past its commit markers) is known without asking again."""

from __future__ import annotations

import asyncio
import uuid

from confluent_kafka import Producer

from sluicegate.config import KafkaSettings
from sluicegate.core.records import NewRecord, Record, TopicPartition
from sluicegate.core.topics import TopicSpec
from sluicegate.storage.kafka import KafkaLog
from tests.storage.kafka.conftest import OpenLog, consume_all_async

BIG = 1 << 30


def _aborted_transaction(bootstrap: str, topic: str, count: int) -> None:
    """``count`` records written to partition 0 of ``topic`` in a transaction, aborted."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": uuid.uuid4().hex})
    producer.init_transactions(30)
    producer.begin_transaction()
    for n in range(count):
        producer.produce(topic, b"aborted-%d" % n, partition=0)
    producer.flush(30)
    producer.abort_transaction(30)


async def _created_on_both(log: KafkaLog, other: KafkaLog, spec: TopicSpec) -> None:
    """``spec`` created through ``log``, and ``other`` following the registry to it."""
    created = await log.create_topic(spec)
    assert await other.get_topic(spec.name) == created


async def _walk(log: KafkaLog, tp: TopicPartition, position: int, size: int) -> list[Record]:
    """Every record from ``position`` to the end, read ``size`` at a time."""
    walked: list[Record] = []
    end = (await log.watermarks(tp)).high
    while position < end:
        chunk = await log.read(tp, position, max_records=size, max_bytes=BIG)
        if not chunk:
            break
        walked.extend(chunk)
        position = chunk[-1].offset + 1
    return walked


async def test_a_walk_reads_what_the_broker_holds_through_markers_and_aborts(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog
) -> None:
    kafka_topic = kafka_settings.topic_prefix + "walk"
    async with open_kafka_log(kafka_settings) as log:
        await log.create_topic(TopicSpec(name="walk"))
        tp = TopicPartition("walk", 0)
        for batch in range(8):
            # Transactions: each leaves a commit marker; one aborted among them.
            await log.append(
                [NewRecord("walk", 0, None, b"%d-%d" % (batch, n)) for n in range(900)]
            )
            if batch == 3:
                bootstrap = kafka_settings.bootstrap_servers
                await asyncio.to_thread(_aborted_transaction, bootstrap, kafka_topic, 250)
        rounds = log.reader_rounds
        walked = await _walk(log, tp, 0, 300)
        reads = -(-len(walked) // 300)
        # The read-ahead, refilled as the walk goes, answered most of the reads.
        assert log.reader_rounds - rounds < reads // 2
        broker = await consume_all_async(kafka_settings.bootstrap_servers, kafka_topic)
        assert [(r.offset, r.value) for r in walked] == [(m.offset(), m.value()) for m in broker]
        assert len(walked) == 8 * 900
        # Reads between the last record and the end (the last commit marker) are
        # answered from what the walk learned: nothing lies there, no round asked.
        end = (await log.watermarks(tp)).high
        assert end > walked[-1].offset + 1
        rounds = log.reader_rounds
        assert await log.read(tp, walked[-1].offset + 1, max_records=10, max_bytes=BIG) == []
        assert log.reader_rounds == rounds


async def test_a_filtered_reader_goes_back_within_what_it_read(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog
) -> None:
    async with open_kafka_log(kafka_settings) as log, open_kafka_log(kafka_settings) as other:
        await _created_on_both(log, other, TopicSpec(name="back"))
        tp = TopicPartition("back", 0)
        await log.append([NewRecord("back", 0, None, b"%d" % n) for n in range(2000)])
        first = await log.read(tp, 0, max_records=500, max_bytes=BIG)
        # It used 200 of them: the next read starts at the 201st.
        rounds = log.reader_rounds
        again = await log.read(tp, first[200].offset, max_records=500, max_bytes=BIG)
        assert log.reader_rounds == rounds
        assert again == await other.read(tp, first[200].offset, max_records=500, max_bytes=BIG)
        assert again[:300] == first[200:]


async def test_partitions_prefetched_together_are_read_from_memory(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog
) -> None:
    async with open_kafka_log(kafka_settings) as log, open_kafka_log(kafka_settings) as other:
        await _created_on_both(log, other, TopicSpec(name="ahead", partitions=3))
        partitions = [TopicPartition("ahead", p) for p in range(3)]
        for tp in partitions:
            await log.append(
                [NewRecord("ahead", tp.partition, None, b"%d" % n) for n in range(300)]
            )
        rounds = log.reader_rounds
        log.prefetch(dict.fromkeys(partitions, 100))
        log.prefetch(dict.fromkeys(partitions, 100))  # asked again: nothing more is sent
        for tp in partitions:
            # Answered by the one round of the prefetch, landed or still on its way.
            read = await log.read(tp, 100, max_records=150, max_bytes=BIG)
            assert read == await other.read(tp, 100, max_records=150, max_bytes=BIG)
            assert [r.value for r in read] == [b"%d" % n for n in range(100, 250)]
        assert log.reader_rounds == rounds + 1


async def test_a_fetch_asked_before_a_purge_is_not_kept_when_it_lands(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog
) -> None:
    async with open_kafka_log(kafka_settings) as log:
        await log.create_topic(TopicSpec(name="purged"))
        tp = TopicPartition("purged", 0)
        await log.append([NewRecord("purged", 0, None, b"%d" % n) for n in range(300)])
        rounds = log.reader_rounds
        log.prefetch({tp: 0})
        # What a purge does on the loop once its records are gone, before the prefetch
        # can land (it lands through the loop, which has not run since).
        log._node.fetcher.forget([(tp.topic, tp.partition)])
        # The read waits for the prefetch's round, then asks the broker: nothing was kept.
        read = await log.read(tp, 0, max_records=10, max_bytes=BIG)
        assert [r.value for r in read] == [b"%d" % n for n in range(10)]
        assert log.reader_rounds == rounds + 2


async def test_a_read_ended_by_its_bytes_keeps_what_followed_it_in_the_fetch(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog
) -> None:
    async with open_kafka_log(kafka_settings) as log, open_kafka_log(kafka_settings) as other:
        await _created_on_both(log, other, TopicSpec(name="bytes"))
        tp = TopicPartition("bytes", 0)
        await log.append([NewRecord("bytes", 0, b"k", b"%03d" % n + b"." * 97) for n in range(600)])
        # 101 bytes a record: the tenth would pass 1,000, and ends the read before it.
        first = await log.read(tp, 0, max_records=1000, max_bytes=1000)
        assert [r.value[:3] for r in first] == [b"%03d" % n for n in range(9)]
        rounds = log.reader_rounds
        # The rest of the fetch's run, from the record that did not fit, was kept.
        rest = await log.read(tp, 9, max_records=500, max_bytes=BIG)
        assert log.reader_rounds == rounds
        assert rest == await other.read(tp, 9, max_records=500, max_bytes=BIG)
        assert [r.value[:3] for r in rest] == [b"%03d" % n for n in range(9, 509)]


async def test_a_record_larger_than_a_partitions_fetch_is_read_whole(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog
) -> None:
    # The reader's fetch brings at most 256 KiB of a partition; a larger record batch
    # still comes whole, with what lies around it.
    async with open_kafka_log(kafka_settings) as log:
        await log.create_topic(TopicSpec(name="large"))
        tp = TopicPartition("large", 0)
        large = bytes(range(256)) * 2400  # 614,400 bytes
        await log.append([NewRecord("large", 0, None, b"before")])
        await log.append([NewRecord("large", 0, None, large)])
        await log.append([NewRecord("large", 0, None, b"after")])
        read = await _walk(log, tp, 0, 10)
        assert [r.value for r in read] == [b"before", large, b"after"]


async def test_headers_a_plain_client_wrote_come_back_as_written(
    kafka_settings: KafkaSettings, kafka_log: KafkaLog
) -> None:
    # Any Kafka client may write a header without a value, which the gateway's records
    # carry as b""; every other header comes back as it was written, in order.
    await kafka_log.create_topic(TopicSpec(name="headed"))
    producer = Producer({"bootstrap.servers": kafka_settings.bootstrap_servers})
    written = [
        [("a", b"1"), ("b", b"\x00\xff"), ("a", b"again")],
        [("a", b"1"), ("empty", None), ("b", b"")],
        [],
    ]
    for headers in written:
        producer.produce(
            kafka_settings.topic_prefix + "headed", b"v", partition=0, headers=headers or None
        )
    assert producer.flush(30) == 0
    tp = TopicPartition("headed", 0)
    read = await _walk(kafka_log, tp, 0, 10)
    assert [list(record.headers) for record in read] == [
        written[0],
        [("a", b"1"), ("empty", b""), ("b", b"")],
        [],
    ]
    assert [(r.partition, r.offset) for r in read] == [(0, 0), (0, 1), (0, 2)]


async def test_a_read_behind_a_long_prefetch_is_answered_from_its_first_part(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog
) -> None:
    # A prefetch of 4,000 records of 1 KiB takes many fetches of 256 KiB. The reader
    # process sends what it has after each batch of messages, so a read of the same
    # partition, parked behind the prefetch, is answered before the prefetch ends.
    async with open_kafka_log(kafka_settings) as log:
        await log.create_topic(TopicSpec(name="parts"))
        tp = TopicPartition("parts", 0)
        value = b"x" * 1024
        for _ in range(8):
            await log.append([NewRecord("parts", 0, None, value) for _ in range(500)])
        fetcher = log._node.fetcher
        key = (kafka_settings.topic_prefix + "parts", 0)
        log.prefetch({tp: 0})
        read = await log.read(tp, 0, max_records=10, max_bytes=BIG)
        assert [(r.offset, r.value) for r in read] == [(n, value) for n in range(10)]
        assert key in fetcher._refilling  # the prefetch is still fetching
        # Then the rest, every record once (each append of 500 was a transaction: its
        # commit marker takes an offset).
        rest = await _walk(log, tp, read[-1].offset + 1, 1000)
        assert [r.value for r in rest] == [value] * 3990
