"""``sluicegate serve``'s start: each step the server waits for ends when it is stopped."""

from __future__ import annotations

import asyncio

import pytest

from sluicegate.cli.serve import _unless_stopped
from sluicegate.errors import ConfigError


async def test_a_step_that_ends_first_is_awaited_and_its_error_raised() -> None:
    serving = asyncio.create_task(asyncio.sleep(60))
    try:
        assert await _unless_stopped(asyncio.sleep(0), serving) is True

        async def refused() -> None:
            raise ConfigError("cluster.node_id", "taken")

        with pytest.raises(ConfigError):
            await _unless_stopped(refused(), serving)
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
    assert await _unless_stopped(waits_for_the_cluster(), serving) is False
    assert cancelled.is_set()
