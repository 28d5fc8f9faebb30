"""Waiting out a storage outage: asking again, further apart, until the storage answers.

Serving requests, an outage is an answer (``503``, ``408``) and the client retries. At
start there is no client: a node whose Kafka cluster is away when it starts, or goes
away while the node reads its state, waits for it rather than exiting and leaving the
restart to a supervisor. Its server answers ``503`` meanwhile (``GatewayApp.starting``).
Nor is there a client for the housekeeping that runs beside the server (the state
topics' followers): one that meets an outage waits it out the same way, since its end
would stop the whole node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sluicegate.errors import StorageTimeout, StorageUnavailable

__all__ = ["RETRY_DELAYS", "until_available"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds before asking again, doubled each time up to the second figure.
RETRY_DELAYS = (1.0, 5.0)


async def until_available(
    step: Callable[[], Awaitable[T]],
    failed: str,
    *,
    on_failure: Callable[[], None] | None = None,
) -> T:
    """``step()``'s answer, asking again for as long as the storage is away.

    Away: ``StorageUnavailable``, or ``StorageTimeout`` (a write not confirmed in time,
    so ``step`` must be safe to repeat). Each failure calls ``on_failure`` and logs a
    warning that starts with ``failed``; any other error ends the wait. Cancelling the
    caller ends it too.
    """
    delay, longest = RETRY_DELAYS
    while True:
        try:
            return await step()
        except (StorageUnavailable, StorageTimeout) as exc:
            if on_failure is not None:
                on_failure()
            logger.warning("%s (%s); asking again in %g s", failed, exc.message, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)
