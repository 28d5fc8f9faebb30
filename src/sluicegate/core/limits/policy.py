"""Every limit the app applies per request, built once from ``limits`` settings."""

from __future__ import annotations

import time
from collections.abc import Callable

from sluicegate.config import LimitSettings
from sluicegate.core.limits.concurrency import ConcurrencyLimiter
from sluicegate.core.limits.json_limits import JsonLimits
from sluicegate.core.limits.rate import RateLimiter

__all__ = ["Limits"]


class Limits:
    """Rates per (client, dialect), caps on requests, long polls and WebSockets, JSON shape."""

    def __init__(
        self, settings: LimitSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = RateLimiter.from_settings(settings, clock=clock)
        self.requests = ConcurrencyLimiter.for_requests(settings)
        self.long_polls = ConcurrencyLimiter.for_long_polls(settings)
        self.websockets = ConcurrencyLimiter.for_websockets(settings)
        self.json = JsonLimits.from_settings(settings)
