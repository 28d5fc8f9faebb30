"""What the idle benchmarks ask a running server: how many waits it has parked, and how
long its event loop takes to answer while they wait."""

from __future__ import annotations

import asyncio
import time

import httpx

__all__ = ["loop_lags_ms", "parked"]


async def parked(client: httpx.AsyncClient, count: int, what: str, timeout: float) -> None:
    """Return once the server counts ``count`` waits on its log (``/metrics``)."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = (await client.get("/metrics")).text
        waiting = next(
            float(line.split()[1])
            for line in metrics.splitlines()
            if line.startswith("sluicegate_storage_waiters ")
        )
        if waiting >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {waiting} of {count} {what} are waiting")
        await asyncio.sleep(0.2)


async def loop_lags_ms(client: httpx.AsyncClient, probes: int = 300) -> list[float]:
    """``/healthz`` round trips, one every 10 ms: the event loop's lag as a client sees it."""
    lags = []
    for _ in range(probes):
        started = time.perf_counter()
        (await client.get("/healthz")).raise_for_status()
        lags.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.01)
    return lags
