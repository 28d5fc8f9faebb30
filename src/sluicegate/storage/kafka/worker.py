"""A thread that runs one blocking librdkafka loop, and tells the event loop how it ended.

The backend's consumers and its producer's poller block in librdkafka, so each runs on a
thread of its own. A thread that dies must not leave the gateway serving requests nobody
answers: ``ended`` fails with the thread's exception, and the log's ``run`` awaits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

__all__ = ["Worker"]


class Worker:
    """Runs ``target`` on a daemon thread named ``name``; ``ended`` resolves when it returns."""

    def __init__(self, name: str, target: Callable[[], None], loop: asyncio.AbstractEventLoop):
        self._target = target
        self._loop = loop
        self.ended: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def join(self) -> None:
        """Wait for the thread to end (at once if it never started: opening failed)."""
        if self._thread.ident is not None:
            await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        outcome: BaseException | None = None
        try:
            self._target()
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, which raises it
            outcome = exc
        # A closed loop raises RuntimeError: then nobody is left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._settle, outcome)

    def _settle(self, outcome: BaseException | None) -> None:
        if self.ended.done():
            return
        if outcome is None:
            self.ended.set_result(None)
        else:
            self.ended.set_exception(outcome)
