"""``run_async``: the loop every command runs on."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from sluicegate.cli.event_loop import run_async


def test_a_coroutine_runs_on_uvloop_and_its_result_is_returned() -> None:
    async def answer() -> tuple[type[asyncio.AbstractEventLoop], int]:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()), 42

    loop_type, value = run_async(answer())
    assert issubclass(loop_type, uvloop.Loop)
    assert value == 42


def test_the_loop_is_closed_after_the_run_even_when_the_coroutine_raises() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def fails() -> None:
        loops.append(asyncio.get_running_loop())
        raise LookupError("from the command")

    with pytest.raises(LookupError, match="from the command"):
        run_async(fails())
    assert loops[0].is_closed()
