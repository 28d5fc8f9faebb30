"""Deadlines: asyncio.timeout semantics for many waits on one timer."""

from __future__ import annotations

import asyncio

import pytest

from sluicegate.core.deadlines import Deadlines


async def wait_in_scope(deadlines: Deadlines, event: asyncio.Event) -> str:
    try:
        with deadlines.scope():
            await event.wait()
    except TimeoutError:
        return "timeout"
    return "done"


async def test_a_wait_that_finishes_in_time_is_untouched() -> None:
    deadlines = Deadlines(1.0)
    event = asyncio.Event()
    task = asyncio.create_task(wait_in_scope(deadlines, event))
    await asyncio.sleep(0)
    event.set()
    assert await task == "done"


async def test_a_wait_past_the_delay_raises_timeout_error() -> None:
    deadlines = Deadlines(0.02)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await wait_in_scope(deadlines, asyncio.Event()) == "timeout"
    assert 0.015 <= loop.time() - started < 1.0


async def test_every_expired_wait_fails_and_the_others_finish() -> None:
    deadlines = Deadlines(0.05)
    never, soon = asyncio.Event(), asyncio.Event()
    stuck = [asyncio.create_task(wait_in_scope(deadlines, never)) for _ in range(20)]
    quick = [asyncio.create_task(wait_in_scope(deadlines, soon)) for _ in range(20)]
    await asyncio.sleep(0.01)
    soon.set()
    assert await asyncio.gather(*quick) == ["done"] * 20
    assert await asyncio.gather(*stuck) == ["timeout"] * 20
    assert len(deadlines) == 0  # the timer dropped what it expired and what had finished


async def test_deadlines_set_later_expire_later() -> None:
    deadlines = Deadlines(0.05)
    first = asyncio.create_task(wait_in_scope(deadlines, asyncio.Event()))
    await asyncio.sleep(0.03)
    second = asyncio.create_task(wait_in_scope(deadlines, asyncio.Event()))
    assert await first == "timeout"
    assert not second.done()  # its own deadline is about 30 ms away still
    assert await second == "timeout"


async def test_cancellation_from_outside_is_not_turned_into_a_timeout() -> None:
    deadlines = Deadlines(10.0)
    task = asyncio.create_task(wait_in_scope(deadlines, asyncio.Event()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_exception_inside_the_scope_passes_through() -> None:
    deadlines = Deadlines(10.0)
    with pytest.raises(KeyError), deadlines.scope():
        raise KeyError("x")


async def test_finished_scopes_leave_the_queue_as_new_ones_arrive() -> None:
    deadlines = Deadlines(10.0)
    for _ in range(1000):
        with deadlines.scope():
            await asyncio.sleep(0)
    # Only the last scope can still be queued: each new one drops the finished ones.
    assert len(deadlines) <= 1


async def test_the_task_can_be_cancelled_again_after_a_timeout() -> None:
    deadlines = Deadlines(0.01)

    async def times_out_then_waits() -> None:
        with pytest.raises(TimeoutError), deadlines.scope():
            await asyncio.sleep(1)
        await asyncio.sleep(10)

    task = asyncio.create_task(times_out_then_waits())
    await asyncio.sleep(0.05)
    assert not task.done()
    assert task.cancelling() == 0  # the timeout's own cancel was taken back
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_the_delay_must_be_positive() -> None:
    with pytest.raises(ValueError, match="delay"):
        Deadlines(0)


def test_a_scope_needs_a_task() -> None:
    deadlines = Deadlines(1.0)
    with pytest.raises(RuntimeError), deadlines.scope():
        pass
