"""What a task that was cancelled leaves behind, let go of.

A cancelled task keeps the ``CancelledError`` it ended with until someone asks for its
result, and that error's traceback holds the task's last frames. Those frames often refer
back to the task (``asyncio.current_task()`` kept in a local, an ``asyncio.timeout``,
which holds its task): a reference cycle that only a full collection frees, with
everything the frames held — for a stream, its consumer instance, cursors, transport and
protocol. ``sluicegate serve`` tunes the collector to run rarely (``cli/serve.py``,
``tune_gc``), so a server closing many streams grew by tens of MB before a full
collection ran. ``asyncio.gather(return_exceptions=True)`` makes a new error for a
cancelled child and leaves the stored one in place; only the task's result hands it over.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["let_go_of_cancellation"]


def let_go_of_cancellation(task: asyncio.Future[Any]) -> None:
    """If ``task`` (done) was cancelled, take and drop the error it keeps."""
    if task.cancelled():
        with contextlib.suppress(asyncio.CancelledError):
            task.result()
