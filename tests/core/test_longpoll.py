"""Long polls: woken by the log, bounded by the caps, freed when the consumer goes."""

from __future__ import annotations

import asyncio

import pytest

from sluicegate.core.gateway import Gateway
from sluicegate.core.limits.concurrency import ConcurrencyLimiter
from sluicegate.core.longpoll import Abandoned, LongPolls
from sluicegate.core.records import NewRecord, TopicPartition
from sluicegate.core.topics import TopicSpec
from sluicegate.errors import Overloaded, RateLimited

TP = TopicPartition("polled", 0)


async def never() -> None:
    await asyncio.Event().wait()


@pytest.fixture
async def polls(gateway: Gateway) -> LongPolls:
    await gateway.topics.create(TopicSpec(name=TP.topic))
    return LongPolls(gateway.log, ConcurrencyLimiter("long polls", total=3, per_client=2))


async def test_an_append_wakes_the_wait(gateway: Gateway, polls: LongPolls) -> None:
    waiting = asyncio.ensure_future(polls.wait("app", {TP: 0}, 30, never))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await gateway.log.append([NewRecord(TP.topic, 0, None, b"{}")])
    assert await asyncio.wait_for(waiting, 5) is True


async def test_the_wait_ends_at_its_timeout(polls: LongPolls) -> None:
    assert await polls.wait("app", {TP: 0}, 0.05, never) is False


async def test_a_consumer_that_goes_away_frees_its_waiter_and_slot(
    gateway: Gateway, polls: LongPolls
) -> None:
    gone = asyncio.Event()

    async def departure() -> None:
        await gone.wait()

    waiting = asyncio.ensure_future(polls.wait("app", {TP: 0}, 30, departure))
    await asyncio.sleep(0.05)
    assert gateway.log.stats()["waiters"] == 1
    gone.set()
    with pytest.raises(Abandoned):
        await asyncio.wait_for(waiting, 5)
    assert gateway.log.stats()["waiters"] == 0
    assert await polls.wait("app", {TP: 0}, 0.01, never) is False  # the slot is back


async def test_caps_refuse_before_waiting(polls: LongPolls) -> None:
    held = [asyncio.ensure_future(polls.wait("app", {TP: 0}, 30, never)) for _ in range(2)]
    await asyncio.sleep(0.02)
    with pytest.raises(RateLimited) as limited:
        await polls.wait("app", {TP: 0}, 30, never)
    assert limited.value.retry_after > 0
    held.append(asyncio.ensure_future(polls.wait("other", {TP: 0}, 30, never)))
    await asyncio.sleep(0.02)
    with pytest.raises(Overloaded):
        await polls.wait("third", {TP: 0}, 30, never)
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)


async def test_cancelling_the_poll_cancels_it_and_frees_everything(
    gateway: Gateway, polls: LongPolls
) -> None:
    waiting = asyncio.ensure_future(polls.wait("app", {TP: 0}, 30, never))
    await asyncio.sleep(0.02)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gateway.log.stats()["waiters"] == 0


# -- a stream's wait: in the caller's task, interrupted by its wake-up -----------------


@pytest.fixture
async def stream_polls(gateway: Gateway) -> LongPolls:
    await gateway.topics.create(TopicSpec(name=TP.topic))
    return LongPolls(gateway.log, None)


async def test_a_stream_wait_is_woken_by_the_log_and_by_its_wake_up(
    gateway: Gateway, stream_polls: LongPolls
) -> None:
    loop = asyncio.get_running_loop()
    wake: asyncio.Future[None] = loop.create_future()
    waiting = asyncio.ensure_future(stream_polls.wait("app", {TP: 0}, 30, None, wake))
    await asyncio.sleep(0.05)
    assert gateway.log.stats()["waiters"] == 1
    wake.set_result(None)
    assert await asyncio.wait_for(waiting, 5) is True
    assert gateway.log.stats()["waiters"] == 0
    # Woken by the log, the wake-up untouched; a later wake-up does not cancel anything.
    wake = loop.create_future()
    waiting = asyncio.ensure_future(stream_polls.wait("app", {TP: 0}, 30, None, wake))
    await asyncio.sleep(0.05)
    await gateway.log.append([NewRecord(TP.topic, 0, None, b"{}")])
    assert await asyncio.wait_for(waiting, 5) is True
    wake.set_result(None)
    await asyncio.sleep(0.01)
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_a_stream_wait_ends_at_its_timeout_or_at_once_if_woken_before(
    stream_polls: LongPolls,
) -> None:
    loop = asyncio.get_running_loop()
    assert await stream_polls.wait("app", {TP: 0}, 0.05, None, loop.create_future()) is False
    woken: asyncio.Future[None] = loop.create_future()
    woken.set_result(None)
    assert await stream_polls.wait("app", {TP: 0}, 30, None, woken) is True


async def test_a_cancelled_stream_wait_is_cancelled_and_frees_its_waiter(
    gateway: Gateway, stream_polls: LongPolls
) -> None:
    wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(stream_polls.wait("app", {TP: 0}, 30, None, wake))
    await asyncio.sleep(0.05)
    waiting.cancel()
    wake.set_result(None)  # at the same time: the cancellation still wins
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gateway.log.stats()["waiters"] == 0


async def test_end_answers_every_wait_as_its_timeout_and_frees_everything(
    gateway: Gateway, polls: LongPolls
) -> None:
    waits = [asyncio.ensure_future(polls.wait(client, {TP: 0}, 30, never)) for client in ("a", "b")]
    await asyncio.sleep(0.05)
    assert gateway.log.stats()["waiters"] == 2
    polls.end()
    assert await asyncio.wait_for(asyncio.gather(*waits), 5) == [False, False]
    assert gateway.log.stats()["waiters"] == 0
    assert polls.waiting == 0
    # A later poll does not wait at all, and takes no slot: the caps stay untouched.
    for client in ("a", "a", "a", "b", "c"):
        assert await asyncio.wait_for(polls.wait(client, {TP: 0}, 30, never), 1) is False
    assert gateway.log.stats()["waiters"] == 0
