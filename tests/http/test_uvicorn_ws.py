"""The queue and the flag that replace ``asyncio.Queue`` and ``asyncio.Event`` in
uvicorn's WebSocket protocol (``http/servers/uvicorn_ws.py``): the same behaviour for
what uvicorn asks of them, cancellation included. The protocol itself is served in the
WebSocket consumer's tests (``tests/dialects/cloudevents``)."""

from __future__ import annotations

import asyncio

import pytest

from sluicegate.http.servers.uvicorn_ws import _Flag, _Inbox


async def test_the_inbox_hands_items_out_in_order() -> None:
    inbox = _Inbox()
    assert inbox.empty()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert inbox.qsize() == 2
    assert [await inbox.get(), await inbox.get()] == [1, 2]
    assert inbox.empty()


async def test_a_get_waits_for_the_next_item_and_holds_no_future_after() -> None:
    inbox = _Inbox()
    getting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not getting.done()
    inbox.put_nowait("message")
    assert await getting == "message"
    assert inbox._getters is None


async def test_a_cancelled_get_loses_nothing_and_hands_its_wake_up_on() -> None:
    inbox = _Inbox()
    first = asyncio.ensure_future(inbox.get())
    second = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("message")  # wakes ``first``...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    async with asyncio.timeout(1):
        assert await second == "message"
    assert inbox._getters is None


async def test_a_cancelled_wait_leaves_no_getter() -> None:
    inbox = _Inbox()
    getting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    getting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getting
    assert inbox._getters is None
    inbox.put_nowait(1)
    assert await inbox.get() == 1


async def test_the_flag_blocks_while_clear_and_releases_every_waiter() -> None:
    flag = _Flag()
    assert flag.is_set()
    assert await flag.wait()
    flag.clear()
    waiting = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    cancelled = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiting)
    cancelled.cancel()
    await asyncio.sleep(0)
    flag.set()
    assert await asyncio.gather(*waiting) == [True, True, True]
    assert flag._waiters is None
