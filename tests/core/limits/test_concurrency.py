"""Concurrency caps with real concurrent tasks: per client 429, overall 503, nothing queues."""

from __future__ import annotations

import asyncio

import pytest

from sluicegate.config import LimitSettings
from sluicegate.core.limits.concurrency import ConcurrencyLimiter
from sluicegate.errors import Overloaded, RateLimited


async def hold(limiter: ConcurrencyLimiter, client: str, release: asyncio.Event) -> str:
    try:
        async with limiter.slot(client):
            await release.wait()
    except RateLimited:
        return "429"
    except Overloaded:
        return "503"
    return "ok"


async def test_per_client_and_total_caps_under_concurrency() -> None:
    limiter = ConcurrencyLimiter("long polls", total=5, per_client=3)
    release = asyncio.Event()
    tasks = [asyncio.create_task(hold(limiter, "a", release)) for _ in range(4)]
    tasks += [asyncio.create_task(hold(limiter, "b", release)) for _ in range(4)]
    await asyncio.sleep(0.01)
    # a takes 3 (its 4th is refused), b gets the 2 left of the 5, then the cap is reached.
    assert limiter.in_flight == 5
    assert limiter.held_by("a") == 3
    assert limiter.held_by("b") == 2
    release.set()
    results = await asyncio.gather(*tasks)
    assert results[:4].count("ok") == 3
    assert results[:4].count("429") == 1
    assert results[4:].count("ok") == 2
    assert results[4:].count("503") == 2
    assert limiter.in_flight == 0
    assert limiter.held_by("a") == 0


async def test_errors_carry_retry_after_and_say_what_is_exhausted() -> None:
    limiter = ConcurrencyLimiter("WebSocket connections", total=1, per_client=1, retry_after=2)
    async with limiter.slot("a"):
        with pytest.raises(RateLimited) as per_client:
            limiter.acquire("a")
        assert per_client.value.retry_after == 2
        assert "client 'a' already has 1 WebSocket connections in flight" in str(per_client.value)
        with pytest.raises(Overloaded) as total:
            limiter.acquire("b")
        assert total.value.retry_after == 2
        assert total.value.status == 503


async def test_slot_is_released_when_the_body_fails() -> None:
    limiter = ConcurrencyLimiter("requests", total=1, per_client=1)
    with pytest.raises(ValueError, match="boom"):
        async with limiter.slot("a"):
            raise ValueError("boom")
    assert limiter.in_flight == 0
    async with limiter.slot("a"):
        assert limiter.held_by("a") == 1


async def test_slot_is_released_when_the_task_is_cancelled() -> None:
    limiter = ConcurrencyLimiter("requests", total=10, per_client=10)
    task = asyncio.create_task(hold(limiter, "a", asyncio.Event()))
    await asyncio.sleep(0.01)
    assert limiter.in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.in_flight == 0


async def test_a_flood_costs_no_memory() -> None:
    limiter = ConcurrencyLimiter("requests", total=10, per_client=10)
    release = asyncio.Event()
    tasks = [asyncio.create_task(hold(limiter, f"c{i % 50}", release)) for i in range(2000)]
    await asyncio.sleep(0.01)
    assert limiter.in_flight == 10
    release.set()
    results = await asyncio.gather(*tasks)
    assert results.count("ok") == 10
    assert limiter.in_flight == 0
    assert limiter._by_client == {}


def test_built_from_settings() -> None:
    settings = LimitSettings(max_long_polls=7, max_long_polls_per_client=2)
    limiter = ConcurrencyLimiter.for_long_polls(settings)
    assert (limiter.total, limiter.per_client) == (7, 2)
    assert ConcurrencyLimiter.for_requests(settings).total == settings.max_concurrent_requests
    assert ConcurrencyLimiter.for_websockets(settings).kind == "WebSocket connections"
    with pytest.raises(ValueError, match="caps"):
        ConcurrencyLimiter("x", total=0, per_client=1)
