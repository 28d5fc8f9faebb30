"""Long polls: waiting on the log for new records, under the long-poll caps.

A long poll is woken by the log (``Log.wait``: a future parked per partition, resolved
after the commit that passes its position), never by a polling loop. It holds one slot
of ``Limits.long_polls`` while it waits — taken only when there is nothing to return
yet — so a flood of idle consumers is refused at the per-client and overall caps
instead of costing memory. A consumer that goes away stops waiting at once: its waiter
is removed from the log (the ``waiters`` gauge on ``/metrics`` drops) rather than parked
until its timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sluicegate.core.limits.concurrency import ConcurrencyLimiter
from sluicegate.core.records import TopicPartition
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

    async def wait(
        self,
        client: str,
        positions: Mapping[TopicPartition, int],
        timeout: float,
        gone: Callable[[], Awaitable[object]],
        wake: asyncio.Future[None] | None = None,
    ) -> bool:
        """Wait until a partition passes its position (True) or ``timeout`` (False).

        ``gone()`` completes when the consumer has gone away: then the wait ends at once
        and ``Abandoned`` is raised. ``wake``, when given, ends the wait early too (True):
        something other than data changed what the consumer should read (a consumer
        instance's partitions moved, or its subscription grew). Beyond the caps:
        ``RateLimited`` (this client's) or ``Overloaded`` (the gateway's), both with
        ``retry_after``, before any waiting.
        """
        limiter = self._limiter
        if limiter is not None:
            limiter.acquire(client)
        self.waiting += 1
        try:
            waiting = asyncio.ensure_future(self._log.wait(positions, timeout))
            watching = asyncio.ensure_future(gone())
            ends: set[asyncio.Future[Any]] = {waiting, watching}
            if wake is not None:
                ends.add(wake)
            left = False
            try:
                await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            finally:
                # Also when this task is cancelled: neither may outlive the request.
                if watching.done() and not watching.cancelled():
                    left = True
                    watching.exception()  # retrieved: a failed receive only means "gone"
                watching.cancel()
                if not waiting.done():
                    waiting.cancel()
                    # The log's own finally clause unparks the waiter before this returns.
                    await asyncio.gather(waiting, return_exceptions=True)
            if left:
                raise Abandoned
            # Woken early (``wake``), or the log's answer.
            return waiting.cancelled() or waiting.result()
        finally:
            self.waiting -= 1
            if limiter is not None:
                limiter.release(client)
