"""Long polls: waiting on the log for new records, under the long-poll caps.

A long poll is woken by the log (``Log.wait``: a future parked per partition, resolved
after the commit that passes its position), never by a polling loop. It holds one slot
of ``Limits.long_polls`` while it waits — taken only when there is nothing to return
yet — so a flood of idle consumers is refused at the per-client and overall caps
instead of costing memory. A consumer that goes away stops waiting at once: its waiter
is removed from the log (the ``waiters`` gauge on ``/metrics`` drops) rather than parked
until its timeout.

When the server stops, ``end()`` ends every long poll at once as if its timeout had
passed, so that each consumer gets its usual empty answer now instead of a request cut
off at the end of the graceful shutdown; a poll that comes later does not wait at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from sluicegate.core.limits.concurrency import ConcurrencyLimiter
from sluicegate.core.records import TopicPartition
from sluicegate.errors import StorageUnavailable
from sluicegate.storage.base import Log

__all__ = ["Abandoned", "LongPolls"]


class Abandoned(Exception):
    """The consumer went away while its long poll waited; nobody is left to answer."""


class LongPolls:
    """Waits on one log, counted against one limiter (``Limits.long_polls``)."""

    def __init__(self, log: Log, limiter: ConcurrencyLimiter | None) -> None:
        # ``None``: waits counted elsewhere (a WebSocket stream holds its connection's
        # slot of ``Limits.websockets`` for as long as it is open).
        self._log = log
        self._limiter = limiter
        #: Waits under way now (for /metrics).
        self.waiting = 0
        #: Set by ``end()``: every wait, now and later, ends at once.
        self.ended = False
        #: The log's waits of the long polls under way, which ``end()`` cancels. A set, not
        #: one future every wait also waits on: 10,000 idle polls would leave that future
        #: 10,000 callbacks, each removed by a walk of the list when its poll ends.
        self._log_waits: set[asyncio.Future[bool]] = set()

    def end(self) -> None:
        """End every request's wait under way, and every later one at once, as a timeout
        does. (A stream's waits end when the stream is closed: ``Streams.close_all``.)"""
        self.ended = True
        for waiting in self._log_waits:
            waiting.cancel()

    def wait(
        self,
        client: str,
        positions: Mapping[TopicPartition, int],
        timeout: float,
        gone: Callable[[], Awaitable[object]] | None,
        wake: asyncio.Future[None] | None = None,
    ) -> Coroutine[Any, Any, bool]:
        """Wait until a partition passes its position (True) or ``timeout`` (False).

        ``gone()`` completes when the consumer has gone away: then the wait ends at once
        and ``Abandoned`` is raised (``None``: a consumer whose wait ends by cancellation,
        a stream, which need not pay a future and a callback per wait for it). ``wake``,
        when given, ends the wait early too (True): something other than data changed
        what the consumer should read (a consumer instance's partitions moved, or its
        subscription grew). A stream's wait (no ``gone``, no limiter) runs in the
        caller's task (``_wait_in_task``). Beyond the caps:
        ``RateLimited`` (this client's) or ``Overloaded`` (the gateway's), both with
        ``retry_after``, before any waiting.

        Not a coroutine itself but the one that waits: an idle stream would otherwise
        hold one more coroutine, and its frame, for each of its waits.
        """
        if gone is None and wake is not None and self._limiter is None:
            return self._wait_in_task(positions, timeout, wake)
        return self._wait_raced(client, positions, timeout, gone, wake)

    async def _wait_raced(
        self,
        client: str,
        positions: Mapping[TopicPartition, int],
        timeout: float,
        gone: Callable[[], Awaitable[object]] | None,
        wake: asyncio.Future[None] | None,
    ) -> bool:
        """``wait`` in a task of its own, raced against ``gone``, ``wake`` and ``end()``."""
        self._raise_if_unreachable()
        if self.ended:
            return False
        limiter = self._limiter
        if limiter is not None:
            limiter.acquire(client)
        self.waiting += 1
        try:
            waiting = asyncio.ensure_future(self._log.wait(positions, timeout))
            self._log_waits.add(waiting)
            watching = None if gone is None else asyncio.ensure_future(gone())
            ends: set[asyncio.Future[Any]] = {waiting}
            if watching is not None:
                ends.add(watching)
            if wake is not None:
                ends.add(wake)
            left = False
            try:
                await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            finally:
                # Also when this task is cancelled: neither may outlive the request.
                if watching is not None:
                    if watching.done() and not watching.cancelled():
                        left = True
                        watching.exception()  # retrieved: a failed receive only means "gone"
                    watching.cancel()
                self._log_waits.discard(waiting)
                if not waiting.done():
                    waiting.cancel()
                    # The log's own finally clause unparks the waiter before this returns.
                    await asyncio.gather(waiting, return_exceptions=True)
            if left:
                raise Abandoned
            if self.ended:
                return False  # the server stops: answer now, as at the timeout
            # Woken early (``wake``), or the log's answer.
            if waiting.cancelled() or waiting.result():
                return True
            # Nothing came: not "nothing new" if the storage could not be reached.
            self._raise_if_unreachable()
            return False
        finally:
            self.waiting -= 1
            if limiter is not None:
                limiter.release(client)

    def _raise_if_unreachable(self) -> None:
        """``StorageUnavailable`` (503) for a request's long poll while the storage is
        known to be unreachable. A stream (``_wait_in_task``) waits through an outage
        instead: its connection stays, and records flow again once the storage is back."""
        why = self._log.unreachable()
        if why is not None:
            raise StorageUnavailable(f"{why}; nothing can be read now")

    async def _wait_in_task(
        self, positions: Mapping[TopicPartition, int], timeout: float, wake: asyncio.Future[None]
    ) -> bool:
        """``wait`` for a stream: the log is awaited in the caller's task and ``wake``
        interrupts it by cancelling that task, instead of a task of its own raced against
        ``wake`` (which an idle stream would hold, with its coroutine, context and
        callbacks, for as long as it waits)."""
        if wake.done():
            return True
        task = asyncio.current_task()
        assert task is not None
        waiting = True
        woken = False

        def interrupt(_: object) -> None:
            nonlocal woken
            # Runs from the loop, possibly after the wait ended: then it does nothing.
            if waiting:
                woken = True
                task.cancel()

        wake.add_done_callback(interrupt)
        try:
            return await self._log.wait(positions, timeout)
        except asyncio.CancelledError:
            # The log's own finally clause has unparked the waiter. Ours (the count is
            # back to 0): woken early; else the caller is cancelled and it goes on.
            if woken and task.uncancel() == 0:
                return True
            raise
        finally:
            waiting = False
            wake.remove_done_callback(interrupt)
