"""``unless_stopped``: a step of a start is awaited, unless a stop comes first."""

from __future__ import annotations

import asyncio

import pytest

from sluicegate.errors import ConfigError
from sluicegate.stopping import unless_stopped


async def test_a_step_that_ends_first_is_awaited_and_its_error_raised() -> None:
    serving = asyncio.create_task(asyncio.sleep(60))
    try:
        assert await unless_stopped(asyncio.sleep(0), serving) is True

        async def refused() -> None:
            raise ConfigError("cluster.node_id", "taken")

        with pytest.raises(ConfigError):
            await unless_stopped(refused(), serving)
        assert not serving.done()
    finally:
        serving.cancel()


async def test_a_server_stopped_first_cancels_the_step() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def waits_for_the_cluster() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def stopped() -> None:
        await started.wait()

    serving = asyncio.create_task(stopped())
    assert await unless_stopped(waits_for_the_cluster(), serving) is False
    assert cancelled.is_set()


async def test_a_stop_made_here_is_cancelled_and_one_passed_in_is_left() -> None:
    before = asyncio.all_tasks()
    assert await unless_stopped(asyncio.sleep(0), asyncio.Event().wait()) is True
    await asyncio.sleep(0)  # the cancelled watcher ends
    assert asyncio.all_tasks() == before
    serving = asyncio.create_task(asyncio.sleep(60))
    assert await unless_stopped(asyncio.sleep(0), serving) is True
    assert not serving.done()
    serving.cancel()
