"""Caps on work in flight: overall (503 beyond) and per client (429 beyond).

A slot is taken or refused at once — nothing queues — so a flood of requests, long polls
or WebSocket connections costs a counter increment each, never unbounded memory. Use one
``ConcurrencyLimiter`` per kind of work (requests, long polls, WebSockets)::

    async with limiter.slot(principal.name):
        ...
"""

from __future__ import annotations

from types import TracebackType

from sluicegate.config import LimitSettings
from sluicegate.errors import Overloaded, RateLimited

__all__ = ["ConcurrencyLimiter", "Slot"]


class Slot:
    """One unit of work in flight; released on leaving the ``async with`` block."""

    __slots__ = ("_client", "_limiter")

    def __init__(self, limiter: ConcurrencyLimiter, client: str) -> None:
        self._limiter = limiter
        self._client = client

    async def __aenter__(self) -> None:
        self._limiter.acquire(self._client)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._limiter.release(self._client)


class ConcurrencyLimiter:
    """Counts work in flight per client and overall, refusing what exceeds either cap."""

    def __init__(self, kind: str, total: int, per_client: int, *, retry_after: float = 1.0) -> None:
        if total < 1 or per_client < 1:
            raise ValueError("caps must be >= 1")
        #: What is counted ("requests", "long polls", "WebSocket connections"), for messages.
        self.kind = kind
        self.total = total
        self.per_client = per_client
        self.retry_after = retry_after
        self.in_flight = 0
        self._by_client: dict[str, int] = {}

    @classmethod
    def for_requests(cls, limits: LimitSettings) -> ConcurrencyLimiter:
        """The cap on concurrent HTTP requests from ``limits``."""
        return cls(
            "requests", limits.max_concurrent_requests, limits.max_concurrent_requests_per_client
        )

    @classmethod
    def for_long_polls(cls, limits: LimitSettings) -> ConcurrencyLimiter:
        """The cap on concurrent long polls from ``limits``."""
        return cls("long polls", limits.max_long_polls, limits.max_long_polls_per_client)

    @classmethod
    def for_websockets(cls, limits: LimitSettings) -> ConcurrencyLimiter:
        """The cap on open WebSocket connections from ``limits``."""
        return cls("WebSocket connections", limits.max_websockets, limits.max_websockets_per_client)

    def slot(self, client: str) -> Slot:
        """An async context manager holding one slot for ``client``."""
        return Slot(self, client)

    def acquire(self, client: str) -> None:
        """Take a slot now or raise: ``RateLimited`` (client's cap), ``Overloaded`` (total)."""
        by_client = self._by_client
        held = by_client.get(client, 0)
        if held >= self.per_client or self.in_flight >= self.total:
            raise self._refusal(client, held)
        by_client[client] = held + 1
        self.in_flight += 1

    def _refusal(self, client: str, held: int) -> RateLimited | Overloaded:
        if held >= self.per_client:
            return RateLimited(
                f"client {client!r} already has {held} {self.kind} in flight "
                f"(limit {self.per_client})",
                retry_after=self.retry_after,
            )
        return Overloaded(
            f"the gateway has {self.total} {self.kind} in flight; try again shortly",
            retry_after=self.retry_after,
        )

    def release(self, client: str) -> None:
        """Give back a slot taken with ``acquire``."""
        by_client = self._by_client
        held = by_client.pop(client, 0) - 1
        # Idle clients are forgotten, so the map only holds clients with work in flight.
        if held > 0:
            by_client[client] = held
        self.in_flight -= 1

    def held_by(self, client: str) -> int:
        """Slots ``client`` holds now."""
        return self._by_client.get(client, 0)
