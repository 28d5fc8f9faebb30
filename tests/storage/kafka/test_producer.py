"""The idempotent producer's delivery reports: served by its thread while few records are
in flight, by the event loop under load, and always run on the loop, in order; a failing
callback stops no other, and closing reports every record still in flight."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from confluent_kafka import KafkaError, Message
from confluent_kafka.admin import AdminClient, NewTopic

from sluicegate.config import KafkaSettings
from sluicegate.core.records import NewRecord
from sluicegate.storage.kafka.clients import producer_config
from sluicegate.storage.kafka.producer import IdempotentProducer, OnDelivery
from tests.helpers import eventually
from tests.storage.kafka.conftest import consume_all_async

Outcome = tuple[int, KafkaError | None, int | None]
#: Seconds between looks at the producer's state: nothing signals it, so look often.
_PRODUCER_STEP = 0.001


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

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.threads: set[int] = set()

    def callback(self, number: int) -> OnDelivery:
        def delivered(error: KafkaError | None, message: Message) -> None:
            self.threads.add(threading.get_ident())
            self.outcomes.append((number, error, message.offset()))

        return delivered

    async def count_reaches(self, count: int) -> None:
        await eventually(
            lambda: len(self.outcomes) >= count, f"{count} reports", interval=_PRODUCER_STEP
        )


def _send_each(producer: IdempotentProducer, topic: str, numbers: range, reports: _Reports) -> None:
    for number in numbers:
        producer.send(topic, _record(topic, number), reports.callback(number))


#: Records in flight at most while the loop is made to take over: far above the 40 from
#: which it does, far below librdkafka's queue of 100,000.
_IN_FLIGHT_BOUND = 10_000


async def _until_the_loop_polls(
    producer: IdempotentProducer, topic: str, reports: _Reports, sent: int
) -> int:
    """Send 20 records a loop turn until the loop takes over; how many were sent.

    A turn, not a millisecond: the loop hands polling back to the thread once no record
    was sent for ``_LOOP_QUIET`` (0.3 ms), so a pause between sends let the loop take over
    and hand back before this looked, again and again on a busy machine, until
    librdkafka's queue was full. In-flight records are bounded, for the same reason.
    """
    async with asyncio.timeout(30):
        while not producer._loop_polls:
            if producer.queued() < _IN_FLIGHT_BOUND:
                _send_each(producer, topic, range(sent, sent + 20), reports)
                sent += 20
                await asyncio.sleep(0)  # the thread's hand-over runs in the loop's turn
            else:
                await asyncio.sleep(0.001)
    return sent


async def test_reports_run_on_the_loop_in_order_whoever_polls(
    producer: IdempotentProducer, topic: str, kafka_bootstrap: str
) -> None:
    reports = _Reports()
    sent = 0

    async def one_at_a_time(count: int) -> None:
        # Few in flight: the thread serves them.
        nonlocal sent
        for _ in range(count):
            _send_each(producer, topic, range(sent, sent + 1), reports)
            sent += 1
            await reports.count_reaches(sent)
            assert not producer._loop_polls

    await one_at_a_time(10)
    sent = await _until_the_loop_polls(producer, topic, reports, sent)
    # Nothing in flight any more: it hands back to the thread.
    await reports.count_reaches(sent)
    await eventually(
        lambda: not producer._loop_polls, "the thread polling again", interval=_PRODUCER_STEP
    )
    await one_at_a_time(10)
    assert reports.threads == {threading.get_ident()}
    # One partition: reported in the order sent, at consecutive offsets.
    assert [number for number, _, _ in reports.outcomes] == list(range(sent))
    assert all(error is None for _, error, _ in reports.outcomes)
    first = reports.outcomes[0][2]
    assert first is not None
    assert [offset for _, _, offset in reports.outcomes] == list(range(first, first + sent))
    assert producer.queued() == 0
    stored = await consume_all_async(kafka_bootstrap, topic)
    assert [m.value() for m in stored] == [b"%d" % n for n in range(sent)]


async def test_a_turn_handed_back_and_taken_again_before_the_thread_waits_is_not_lost(
    producer: IdempotentProducer, topic: str
) -> None:
    # The thread tells the loop it stopped polling, then waits for its next turn. Held
    # between the two, it misses a turn the loop hands back and takes again: it used to
    # wait for good there, while the loop waited for it to stop, and no report was served
    # again (the whole run's stall at `test_concurrent_producers_and_readers[kafka-3]`).
    hand_over = producer._call_on_loop
    held, resume = threading.Event(), threading.Event()

    def held_after_stopping(callback: Callable[..., None], *args: object) -> None:
        hand_over(callback, *args)
        if callback == producer._thread_stopped and not resume.is_set():
            held.set()
            resume.wait(30)

    producer._call_on_loop = held_after_stopping  # type: ignore[method-assign]
    reports = _Reports()
    sent = await _until_the_loop_polls(producer, topic, reports, 0)
    assert held.is_set()
    # No record sent for a moment: the loop hands the turn back (the thread is held) ...
    await eventually(
        lambda: not producer._loop_polls, "the turn handed back", interval=_PRODUCER_STEP
    )
    # ... and takes it again at once: enough records in flight.
    _send_each(producer, topic, range(sent, sent + 20), reports)
    assert producer._taking_over
    resume.set()
    await reports.count_reaches(sent + 20)
    assert [number for number, _, _ in reports.outcomes] == list(range(sent + 20))


@pytest.mark.parametrize("loop_polls", [False, True], ids=["thread", "loop"])
async def test_a_failing_callback_stops_no_other_report(
    producer: IdempotentProducer, topic: str, caplog: pytest.LogCaptureFixture, loop_polls: bool
) -> None:
    reports = _Reports()
    sent = await _until_the_loop_polls(producer, topic, reports, 0) if loop_polls else 0
    assert producer._loop_polls == loop_polls

    def failing(error: KafkaError | None, message: Message) -> None:
        raise RuntimeError("a bug in a callback")

    with caplog.at_level(logging.ERROR, logger="sluicegate.storage.kafka.producer"):
        producer.send(topic, _record(topic, sent), failing)
        _send_each(producer, topic, range(sent + 1, sent + 4), reports)
        await reports.count_reaches(sent + 3)
    assert [n for n, error, _ in reports.outcomes if error is None] == [
        *range(sent),
        *range(sent + 1, sent + 4),
    ]
    assert "a Kafka delivery callback failed" in caplog.text
    assert "a bug in a callback" in caplog.text


async def test_close_reports_every_record_in_flight(
    kafka_settings: KafkaSettings, topic: str, kafka_bootstrap: str
) -> None:
    producer = _started(kafka_settings)
    reports = _Reports()
    for number in range(1000):
        producer.send(topic, _record(topic, number), reports.callback(number))
    await producer.close(10.0)
    # Closing waited for every report: none is left for a poll that will never come.
    assert len(reports.outcomes) == 1000
    assert sorted(number for number, _, _ in reports.outcomes) == list(range(1000))
    delivered = [number for number, error, _ in reports.outcomes if error is None]
    stored = await consume_all_async(kafka_bootstrap, topic)
    assert [int(m.value()) for m in stored] == delivered == list(range(1000))
