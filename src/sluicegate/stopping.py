"""Awaiting a step of a start unless a stop comes first.

A node's start may wait a long time (a Kafka cluster that is away, its state read again
after an outage); SIGTERM or ``close()`` must end that wait at once rather than after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

__all__ = ["unless_stopped"]


async def unless_stopped(step: Awaitable[None], stop: Awaitable[object]) -> bool:
    """Await ``step`` to its end, unless ``stop`` ends first: then cancel ``step``.
    Whether ``step`` ended (its error, if any, raised).

    ``stop`` is only watched: a coroutine is wrapped in a task and cancelled afterwards,
    a task or future passed in is left as it is. ``step`` is cancelled too if the caller
    is.
    """
    task = asyncio.ensure_future(step)
    stopping = asyncio.ensure_future(stop)
    try:
        await asyncio.wait((task, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if stopping is not stop:  # made here: ours to cancel
            stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return False
    task.result()
    return True
