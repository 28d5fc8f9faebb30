"""What the idle benchmarks ask a running server: how many waits it has parked, and how
long its event loop takes to answer while they wait."""

from __future__ import annotations

import asyncio
import time

import httpx

__all__ = ["PROBE", "loop_lags_ms", "parked", "read_answer"]

#: What ``loop_lags_ms`` measures, as the results name it.
PROBE = "/healthz round trip, one keep-alive connection"


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


async def loop_lags_ms(url: str, probes: int = 300) -> list[float]:
    """``/healthz`` round trips, one every 10 ms: the event loop's lag as a client sees it.

    The probe is one keep-alive connection written and read by hand, so a round trip holds
    the server's time and the loopback's, not an HTTP client's: an ``httpx`` round trip to
    an idle server took 2.2 ms at the median and 4.1 at p99 here, 1.7 ms of which were
    httpx's own, against 0.47 and 0.7-1.0 ms by hand (the design notes have the figures).
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    request = b"GET /healthz HTTP/1.1\r\nhost: bench\r\n\r\n"
    lags = []
    try:
        for _ in range(probes):
            started = time.perf_counter()
            writer.write(request)
            status, _ = await read_answer(reader)
            if status != 200:
                raise RuntimeError(f"/healthz answered {status}")
            lags.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.01)
    finally:
        writer.close()
    return lags


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One whole HTTP/1.1 answer from ``reader``: its status and its body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *fields = head.split(b"\r\n")
    length = 0
    for field in fields:
        if field.lower().startswith(b"content-length:"):
            length = int(field.split(b":", 1)[1])
    return int(status_line.split(b" ", 2)[1]), await reader.readexactly(length)
