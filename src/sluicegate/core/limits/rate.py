"""Request rates: a token bucket per (client, dialect).

A bucket holds up to ``burst`` tokens and gains ``rate_per_second`` tokens a second; a
request takes one, and a request that finds less than one is refused with ``RateLimited``
whose ``retry_after`` is the time until a token is back. Buckets are created on first
use and dropped once they are full again, so memory follows the *active* clients.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

from sluicegate.config import LimitSettings
from sluicegate.errors import RateLimited

__all__ = ["Rate", "RateLimiter"]

#: Beyond this many buckets, full (idle) ones are dropped before a new one is made.
_PRUNE_AT = 10_000


class Rate:
    """``rate_per_second`` sustained, ``burst`` at once (0: one second's worth, at least 1)."""

    __slots__ = ("burst", "per_second")

    def __init__(self, rate_per_second: float, burst: int = 0) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be > 0")
        self.per_second = float(rate_per_second)
        self.burst = float(burst or max(1, math.ceil(rate_per_second)))

    def describe(self) -> str:
        """A human form such as ``1000 requests per minute`` for error messages."""
        per_minute = self.per_second * 60
        if not self.per_second.is_integer() and abs(per_minute - round(per_minute)) < 1e-6:
            return f"{round(per_minute)} requests per minute"
        return f"{self.per_second:g} requests per second"

    def __repr__(self) -> str:
        return f"Rate({self.per_second!r}, burst={self.burst:g})"


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class RateLimiter:
    """Token buckets per (client, dialect); ``check`` is synchronous and O(1)."""

    def __init__(
        self,
        default: Rate | None = None,
        per_dialect: Mapping[str, Rate] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._default = default
        self._per_dialect = dict(per_dialect or {})
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    @classmethod
    def from_settings(
        cls, limits: LimitSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> RateLimiter:
        """The limiter ``limits.rate_per_second`` and ``limits.dialect_rates`` describe."""
        default = (
            Rate(limits.rate_per_second, limits.rate_burst) if limits.rate_per_second > 0 else None
        )
        per_dialect = {
            name: Rate(rate.rate_per_second, rate.burst)
            for name, rate in limits.dialect_rates.items()
        }
        return cls(default, per_dialect, clock=clock)

    def rate_for(self, dialect: str) -> Rate | None:
        """The rate that applies to ``dialect``; ``None`` means unlimited."""
        return self._per_dialect.get(dialect, self._default)

    def check(self, client: str, dialect: str) -> None:
        """Take a token for one request, or raise ``RateLimited`` with ``retry_after``."""
        rate = self._per_dialect.get(dialect, self._default)
        if rate is None:
            return
        now = self._clock()
        key = (client, dialect)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _PRUNE_AT:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(rate.burst, now)
        else:
            bucket.tokens = min(rate.burst, bucket.tokens + (now - bucket.stamp) * rate.per_second)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        retry_after = (1.0 - bucket.tokens) / rate.per_second
        raise RateLimited(
            f"client {client!r} exceeded {rate.describe()} on the {dialect} API",
            retry_after=retry_after,
            limit=rate.describe(),
        )

    def _prune(self, now: float) -> None:
        full = [
            key
            for key, bucket in self._buckets.items()
            if (rate := self.rate_for(key[1])) is None
            or bucket.tokens + (now - bucket.stamp) * rate.per_second >= rate.burst
        ]
        for key in full:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
