"""The idempotent producer serves its delivery reports on the event loop, with no thread of
its own: every report runs there, a failing callback stops no other, and closing reports
every record still in flight."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncIterator

import pytest
from confluent_kafka import KafkaError, Message
from confluent_kafka.admin import AdminClient, NewTopic

from sluicegate.config import KafkaSettings
from sluicegate.core.records import NewRecord
from sluicegate.storage.kafka.clients import producer_config
from sluicegate.storage.kafka.producer import IdempotentProducer, OnDelivery
from tests.storage.kafka.conftest import consume_all_async

Outcome = tuple[int, KafkaError | None, int | None]


@pytest.fixture
def topic(kafka_admin: AdminClient) -> str:
    name = f"producer-{uuid.uuid4().hex[:8]}"
    kafka_admin.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=30)
    return name


def _started(settings: KafkaSettings) -> IdempotentProducer:
    config = producer_config(settings, "test-producer", append_timeout=10.0, transactional_id=None)
    producer = IdempotentProducer(config, asyncio.get_running_loop(), lambda _: None)
    producer.start()
    return producer


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[IdempotentProducer]:
    started = _started(kafka_settings)
    yield started
    await started.close(10.0)


def _record(topic: str, number: int) -> NewRecord:
    return NewRecord(topic=topic, partition=0, key=None, value=b"%d" % number)


class _Reports:
    """Collects each record's outcome and the thread it was reported on."""

    def __init__(self, expected: int) -> None:
        self.outcomes: list[Outcome] = []
        self.threads: set[int] = set()
        self._expected = expected
        self.all_in = asyncio.get_running_loop().create_future()

    def callback(self, number: int) -> OnDelivery:
        def delivered(error: KafkaError | None, message: Message) -> None:
            self.threads.add(threading.get_ident())
            self.outcomes.append((number, error, message.offset()))
            if len(self.outcomes) == self._expected and not self.all_in.done():
                self.all_in.set_result(None)

        return delivered


async def test_reports_run_on_the_loop_in_order_and_no_thread_is_started(
    kafka_settings: KafkaSettings, topic: str, kafka_bootstrap: str
) -> None:
    threads_before = threading.active_count()
    producer = _started(kafka_settings)
    try:
        assert threading.active_count() == threads_before
        reports = _Reports(200)
        for number in range(200):
            producer.send(topic, _record(topic, number), reports.callback(number))
        async with asyncio.timeout(30):
            await reports.all_in
        assert reports.threads == {threading.get_ident()}
        # One partition: reported in the order sent, at consecutive offsets.
        assert [number for number, _, _ in reports.outcomes] == list(range(200))
        assert all(error is None for _, error, _ in reports.outcomes)
        first = reports.outcomes[0][2]
        assert first is not None
        assert [offset for _, _, offset in reports.outcomes] == list(range(first, first + 200))
        assert producer.queued() == 0
    finally:
        await producer.close(10.0)
    stored = await consume_all_async(kafka_bootstrap, topic)
    assert [m.value() for m in stored] == [b"%d" % n for n in range(200)]


async def test_a_failing_callback_stops_no_other_report(
    producer: IdempotentProducer, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    reports = _Reports(3)

    def failing(error: KafkaError | None, message: Message) -> None:
        raise RuntimeError("a bug in a callback")

    producer.send(topic, _record(topic, 0), reports.callback(0))
    producer.send(topic, _record(topic, 1), failing)
    producer.send(topic, _record(topic, 2), reports.callback(2))
    producer.send(topic, _record(topic, 3), reports.callback(3))
    with caplog.at_level(logging.ERROR, logger="sluicegate.storage.kafka.producer"):
        async with asyncio.timeout(30):
            await reports.all_in
    assert [number for number, error, _ in reports.outcomes if error is None] == [0, 2, 3]
    assert "a Kafka delivery callback failed" in caplog.text
    assert "a bug in a callback" in caplog.text


async def test_close_reports_every_record_in_flight(
    kafka_settings: KafkaSettings, topic: str, kafka_bootstrap: str
) -> None:
    producer = _started(kafka_settings)
    reports = _Reports(1000)
    for number in range(1000):
        producer.send(topic, _record(topic, number), reports.callback(number))
    await producer.close(10.0)
    # Closing waited for every report: none is left for a poll that will never come.
    assert reports.all_in.done()
    assert sorted(number for number, _, _ in reports.outcomes) == list(range(1000))
    delivered = [number for number, error, _ in reports.outcomes if error is None]
    stored = await consume_all_async(kafka_bootstrap, topic)
    assert [int(m.value()) for m in stored] == delivered == list(range(1000))
