"""Batches in transactions: offsets told from one report per partition, checked, and
exact whether a partition's records fit one record batch or not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from confluent_kafka import (
    TIMESTAMP_LOG_APPEND_TIME,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)

from sluicegate.config import KafkaSettings
from sluicegate.core.records import Appended, NewRecord
from sluicegate.core.topic_batch import TopicBatch
from sluicegate.core.topics import TopicSpec
from sluicegate.errors import StorageTimeout, StorageUnavailable
from sluicegate.storage.kafka import KafkaLog
from sluicegate.storage.kafka.clients import ONE_BATCH_RECORDS
from sluicegate.storage.kafka.transactions import (
    _RECORD_OVERHEAD,
    Batch,
    Outcome,
    Placement,
    _ReportPlan,
)
from tests.storage.kafka.conftest import consume_all_async

_A = ("p.t", 0)
_B = ("p.t", 1)


def _batch(keys: list[tuple[str, int]]) -> Batch:
    return Batch(keys, [NewRecord("t", p, None, b"v") for _, p in keys])


def _placed(outcome: Outcome) -> list[tuple[int, int]]:
    assert isinstance(outcome, Placement), outcome
    return list(outcome)


def _report(key: tuple[str, int], offset: int, timestamp: int = 7) -> Message:
    return Message(
        topic=key[0],
        partition=key[1],
        offset=offset,
        timestamp=(TIMESTAMP_LOG_APPEND_TIME, timestamp),
    )


def test_a_batchs_bytes_count_keys_values_and_headers_of_every_record() -> None:
    records = [
        NewRecord("t", 0, b"key", b"value"),
        NewRecord("t", 0, None, b"v"),
        NewRecord("t", 0, b"k", None),
        NewRecord("t", 0, None, None),
        NewRecord("t", 0, b"k", b"v", [("name", b"header")]),
    ]
    expected = sum(record.size() for record in records) + _RECORD_OVERHEAD * len(records)
    assert Batch([_A] * len(records), records).shares() == {_A: (len(records), expected)}


def test_a_topic_batchs_shares_are_those_of_the_records_it_holds() -> None:
    one = TopicBatch("t", [0, 0, 0], [b"key", b"key", b"key"], [b"value", None, b"v"])
    mixed = TopicBatch("t", [0, 1, 0], [None, b"k", b"key"], [b"value", b"v", None])
    for batch in (one, mixed):
        keys = [("p.t", partition) for partition in batch.partitions]
        assert Batch(keys, batch).shares() == Batch(keys, list(batch)).shares()


def test_a_placements_offsets_are_its_results_partitions_and_offsets() -> None:
    one, mixed = _batch([_A, _A, _A]), _batch([_A, _B, _A])
    reports = [_report(_A, 10), _report(_B, 50), _report(_A, 14, 9)]
    placements = _ReportPlan([one, mixed]).placements(reports)
    for placed, batch in zip(placements, (one, mixed), strict=True):
        assert isinstance(placed, Placement)
        expected = [(a.partition, a.offset) for a in placed.appended(batch.records)]
        assert placed.offsets() == expected
    assert expected == [(0, 13), (1, 50), (0, 14)]


def test_only_the_first_and_last_record_of_each_partition_ask_for_a_report() -> None:
    plan = _ReportPlan([_batch([_A, _B, _A]), _batch([_A, _A]), _batch([_B, _B])])
    assert plan.reported == [frozenset({0, 1}), frozenset({1}), frozenset({1})]


def test_offsets_between_a_partitions_first_and_last_report_are_its_other_records() -> None:
    plan = _ReportPlan([_batch([_A, _B, _A]), _batch([_A, _A]), _batch([_B, _B])])
    reports = [_report(_A, 10), _report(_B, 50), _report(_A, 13, 9), _report(_B, 52, 9)]
    assert [_placed(outcome) for outcome in plan.placements(reports)] == [
        [(10, 7), (50, 7), (11, 9)],
        [(12, 9), (13, 9)],
        [(51, 9), (52, 9)],
    ]


def test_a_placement_gives_each_records_result_and_each_partitions_end() -> None:
    # One partition (a run of offsets, results built in C) and two partitions interleaved.
    one, mixed = _batch([_A, _A, _A]), _batch([_A, _B, _A])
    reports = [_report(_A, 10), _report(_B, 50), _report(_A, 14, 9)]
    one_placed, mixed_placed = _ReportPlan([one, mixed]).placements(reports)
    assert isinstance(one_placed, Placement)
    assert isinstance(mixed_placed, Placement)
    assert one_placed.ends() == {_A: 13}
    assert mixed_placed.ends() == {_A: 15, _B: 51}
    assert one_placed.appended(one.records) == [
        Appended("t", 0, 10, 7000),
        Appended("t", 0, 11, 9000),
        Appended("t", 0, 12, 9000),
    ]
    assert mixed_placed.appended(mixed.records) == [
        Appended("t", 0, 13, 9000),
        Appended("t", 1, 50, 7000),
        Appended("t", 0, 14, 9000),
    ]


def test_a_gap_between_first_and_last_fails_only_the_batches_of_that_partition() -> None:
    # Another writer's records between this transaction's: where each landed is unknown.
    plan = _ReportPlan([_batch([_A, _A]), _batch([_B, _B]), _batch([_A, _B])])
    reports = [_report(_A, 10), _report(_B, 20), _report(_A, 14), _report(_B, 22)]
    first, second, third = plan.placements(reports)
    assert isinstance(first, StorageTimeout)
    assert _placed(second) == [(20, 7), (21, 7)]
    assert isinstance(third, StorageTimeout)


def test_a_missing_report_is_never_guessed() -> None:
    plan = _ReportPlan([_batch([_A, _A, _A])])
    [outcome] = plan.placements([_report(_A, 3)])
    assert isinstance(outcome, StorageTimeout)


def test_a_partition_too_big_for_one_record_batch_reports_every_record() -> None:
    many = ONE_BATCH_RECORDS + 1
    plan = _ReportPlan([_batch([_A] * many), _batch([_B, _B, _B])])
    assert plan.reported == [frozenset(range(many)), frozenset({0, 2})]
    reports = [_report(_A, 2 * i) for i in range(many)] + [_report(_B, 0), _report(_B, 2)]
    placed, small = plan.placements(reports)
    assert _placed(placed) == [(2 * i, 7) for i in range(many)]
    assert _placed(small) == [(0, 7), (1, 7), (2, 7)]


async def test_concurrent_batches_get_the_offsets_their_records_are_stored_at(
    kafka_log: KafkaLog, kafka_settings: KafkaSettings
) -> None:
    await kafka_log.create_topic(TopicSpec(name="mixed", partitions=3))

    def batch(task: int, number: int) -> list[NewRecord]:
        # Partitions interleaved within a batch, and batches sharing transactions.
        return [
            NewRecord("mixed", (task + i) % 3, None, b"%d-%d-%d" % (task, number, i))
            for i in range(7)
        ]

    async def appender(task: int) -> list[tuple[NewRecord, int, int]]:
        placed = []
        for number in range(5):
            records = batch(task, number)
            for record, appended in zip(records, await kafka_log.append(records), strict=True):
                assert appended.partition == record.partition
                placed.append((record, appended.partition, appended.offset))
        return placed

    results = await asyncio.gather(*(appender(task) for task in range(8)))
    messages = await consume_all_async(
        kafka_settings.bootstrap_servers, kafka_settings.topic_prefix + "mixed", 3
    )
    stored = {(m.partition(), m.offset()): m.value() for m in messages}
    placed = [entry for result in results for entry in result]
    assert len(stored) == len(placed) == 8 * 5 * 7
    for record, partition, offset in placed:
        assert stored[(partition, offset)] == record.value


async def test_a_batch_beyond_one_record_batch_gets_exact_offsets(
    kafka_log: KafkaLog, kafka_settings: KafkaSettings
) -> None:
    await kafka_log.create_topic(TopicSpec(name="wide", partitions=1))
    records = [NewRecord("wide", 0, None, b"%d" % i) for i in range(ONE_BATCH_RECORDS + 5)]
    appended = await kafka_log.append(records)
    messages = await consume_all_async(
        kafka_settings.bootstrap_servers, kafka_settings.topic_prefix + "wide", 1
    )
    stored = {m.offset(): m.value() for m in messages}
    assert [stored[a.offset] for a in appended] == [r.value for r in records]


async def test_topic_batches_get_the_offsets_their_records_are_stored_at(
    kafka_log: KafkaLog, kafka_settings: KafkaSettings
) -> None:
    # Produced from their columns: one key and partition, partitions interleaved, and one
    # key beyond one record batch (a report per record), sharing transactions.
    await kafka_log.create_topic(TopicSpec(name="columns", partitions=3))
    batches = [
        TopicBatch("columns", [task % 3] * 50, [b"k%d" % task] * 50, [b"%d" % i for i in range(50)])
        if task % 2
        else TopicBatch(
            "columns", [i % 3 for i in range(7)], [None] * 7, [b"%d" % i for i in range(7)]
        )
        for task in range(16)
    ]
    wide = ONE_BATCH_RECORDS + 5
    batches.append(
        TopicBatch("columns", [1] * wide, [b"w"] * wide, [b"w%d" % i for i in range(wide)])
    )
    results = await asyncio.gather(*(kafka_log.append_offsets(batch) for batch in batches))
    messages = await consume_all_async(
        kafka_settings.bootstrap_servers, kafka_settings.topic_prefix + "columns", 3
    )
    stored = {(m.partition(), m.offset()): (m.key(), m.value()) for m in messages}
    assert len(stored) == sum(map(len, batches))
    for batch, offsets in zip(batches, results, strict=True):
        assert [stored[place] for place in offsets] == [(r.key, r.value) for r in batch]
        assert [partition for partition, _ in offsets] == list(batch.partitions)


class _FailingCommits:
    """The committer's producer, whose first ``failures`` commits fail with ``error``
    before the commit is sent, as librdkafka fails them."""

    def __init__(self, producer: Producer, error: KafkaError, failures: int) -> None:
        self._producer = producer
        self._error = error
        self.failures = failures

    def commit_transaction(self, timeout: float) -> None:
        if self.failures:
            self.failures -= 1
            raise KafkaException(self._error)
        self._producer.commit_transaction(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


def _failing_commits(kafka_log: KafkaLog, error: KafkaError, failures: int) -> _FailingCommits:
    """Put ``_FailingCommits`` in the place of ``kafka_log``'s committer's producer."""
    transactions = kafka_log._node._transactions
    assert transactions is not None
    producer = transactions._producer
    assert producer is not None
    failing = _FailingCommits(producer, error, failures)
    transactions._producer = failing  # type: ignore[assignment]
    return failing


async def test_a_commit_interrupted_by_a_retriable_error_is_408_and_completes_later(
    kafka_log: KafkaLog, kafka_settings: KafkaSettings
) -> None:
    # Its outcome is unknown when the error comes: 503 would tell the caller nothing was
    # stored, and a retry would store the batch twice once the commit completes.
    await kafka_log.create_topic(TopicSpec(name="interrupted", partitions=1))
    # A commit librdkafka has not finished: a retriable error before it is sent.
    lost = KafkaError(KafkaError._TRANSPORT, "connection to the coordinator lost", retriable=True)
    interrupted = _failing_commits(kafka_log, lost, 1)
    first = [NewRecord("interrupted", 0, None, b"first-%d" % i) for i in range(3)]
    with pytest.raises(StorageTimeout, match="either all stored or none is"):
        await kafka_log.append(first)
    assert interrupted.failures == 0
    # The next transaction first finishes the interrupted one, which stores the batch.
    second = [NewRecord("interrupted", 0, None, b"second-%d" % i) for i in range(2)]
    appended = await kafka_log.append(second)
    messages = await consume_all_async(
        kafka_settings.bootstrap_servers, kafka_settings.topic_prefix + "interrupted", 1
    )
    values = [m.value() for m in messages]
    assert values == [r.value for r in first + second]
    assert [a.offset for a in appended] == [messages[3].offset(), messages[4].offset()]


@pytest.mark.parametrize("failures", [1, 2])
async def test_a_transaction_kafka_aborts_is_committed_again_once(
    kafka_log: KafkaLog, kafka_settings: KafkaSettings, failures: int
) -> None:
    # Aborted, nothing of it is stored: the gateway commits it again before anything
    # else rather than answer 503. A second abort in a row is the caller's 503.
    await kafka_log.create_topic(TopicSpec(name="aborted", partitions=2))
    abortable = KafkaError(
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        "injected: skipped sequence numbers",
        txn_requires_abort=True,
    )
    aborting = _failing_commits(kafka_log, abortable, failures)
    batch = [NewRecord("aborted", i % 2, None, b"batch-%d" % i) for i in range(4)]
    appended: list[Appended] = []
    if failures == 1:
        appended = await kafka_log.append(batch)
    else:
        with pytest.raises(StorageUnavailable, match="nothing of it is stored"):
            await kafka_log.append(batch)
    assert aborting.failures == 0
    after = NewRecord("aborted", 0, None, b"after")
    appended += await kafka_log.append([after])
    messages = await consume_all_async(
        kafka_settings.bootstrap_servers, kafka_settings.topic_prefix + "aborted", 2
    )
    stored = {m.value(): (m.partition(), m.offset()) for m in messages}
    sent = [*batch, after] if failures == 1 else [after]
    assert len(messages) == len(stored) == len(sent)  # each once
    assert [stored[r.value] for r in sent] == [(a.partition, a.offset) for a in appended]
