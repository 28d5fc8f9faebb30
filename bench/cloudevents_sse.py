"""CloudEvents Server-Sent Events consumer benchmark. Run: ``python -m bench.run --only
cloudevents-sse``.

Each consumer reads the backlog ``ROUNDS`` times, in turn, each time as a new group; the
figures are the medians.

- ``cloudevents-sse-backlog``: one ``GET /ce/sse`` stream (HTTP/1.1, uvicorn) reads a
  backlog of ``cloudevents_ws.BACKLOG`` events, confirming every 1,000 with ``POST
  …/confirm`` on its instance URL (on a second connection, one confirmation in flight at a
  time; written by hand, as lean as the WebSocket client); events/s. The baseline is the
  WebSocket consumer reading the same backlog on the same server in the same run
  (``cloudevents_ws._produce_backlog`` and ``_read_backlog``, which confirms every 1,000
  with ``confirm:`` messages): target ratio ≥ 0.8.
- ``cloudevents-sse-cpu-per-event``: the server process's CPU time (user + system, every
  thread, from ``/proc``) per event while the SSE stream reads the backlog, against the
  same while the WebSocket reads it (``ratio`` < 1: SSE costs less). On this shared
  machine CPU time swings with the load too (cache and memory bandwidth are shared), but
  less than the rates do.

The client counts events by the blank line that ends each (``\\n\\n``: the events' JSON has
no line breaks, heartbeats are single comment lines), never decoding them, so that a Python
SSE parser does not measure itself; chunked encoding's framing holds no blank line.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit

from bench import cloudevents_ws
from bench.http_produce import _entry
from bench.servers import SERVER_CPU, spread_helper_threads
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["run"]

CONFIRM_EVERY = cloudevents_ws.CONFIRM_EVERY
ROUNDS = cloudevents_ws.ROUNDS
TARGET_RATIO = 0.8


async def _open(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """A stream opened over a raw socket; its instance URL (the ``Location`` header)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
    writer.write(head.encode() + b"\r\n")
    answer = await reader.readuntil(b"\r\n\r\n")
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"stream refused: {answer[:200]!r}")
    for line in answer.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "location":
            return reader, writer, value.strip()
    raise RuntimeError("no Location in the stream's head")


async def _confirm(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, offset: int
) -> None:
    """``POST {path}/confirm?offset=…`` on a kept-alive connection; raises unless 204."""
    writer.write(
        f"POST {path}/confirm?offset={offset} HTTP/1.1\r\nHost: bench\r\n"
        "Content-Length: 0\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 204"):
        raise RuntimeError(f"confirm refused: {head[:200]!r}")


async def _sse_backlog(port: int, group: str, total: int) -> float:
    """Read ``total`` events of a new group, confirming every ``CONFIRM_EVERY``; events/s.

    As lean as the WebSocket benchmark's client, so that the two compare the server: the
    stream's bytes are only counted, and confirmations go over a second kept-alive
    connection written by hand (one in flight at a time) rather than through an HTTP
    client library, whose CPU would compete with the server's on a 2-core machine."""
    reader, writer, instance = await _open(port, f"/ce/sse?group={group}&test=false")
    path = urlsplit(instance).path
    confirms = await asyncio.open_connection("127.0.0.1", port)
    ends = -1  # the instance event ends with a blank line too
    last = b""
    confirming: asyncio.Task[None] | None = None
    confirmed = 0
    started = time.perf_counter()
    while ends < total:
        data = await reader.read(1 << 20)
        if not data:
            raise RuntimeError(f"the stream ended after {ends} events")
        # A blank line split between two reads: "\n" | "\n…" (events never hold "\n\n\n").
        ends += data.count(b"\n\n") + (last == b"\n" and data[:1] == b"\n")
        last = data[-1:]
        if ends - confirmed >= CONFIRM_EVERY and (confirming is None or confirming.done()):
            if confirming is not None:
                confirming.result()
            confirmed = ends - ends % CONFIRM_EVERY
            confirming = asyncio.ensure_future(_confirm(*confirms, path, confirmed))
    seconds = time.perf_counter() - started
    if confirming is not None:
        await confirming
    writer.close()
    confirms[1].close()
    return total / seconds


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far, every thread included."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(url: str, pid: int) -> dict[str, dict[str, Any]]:
    """``ROUNDS`` reads of the backlog by each consumer in turn (each a new group): the
    median rates and CPU per event, so that neither gets the warmer machine."""
    port = int(url.rsplit(":", 1)[1])
    total = cloudevents_ws.BACKLOG
    await cloudevents_ws._produce_backlog(url)
    rates: dict[str, list[float]] = {"sse": [], "ws": []}
    cpu: dict[str, list[float]] = {"sse": [], "ws": []}
    for turn in range(ROUNDS):
        before = _cpu_seconds(pid)
        rates["ws"].append(
            await cloudevents_ws._read_backlog(port, f"group=ws-backlog-{turn}&test=false")
        )
        cpu["ws"].append((_cpu_seconds(pid) - before) / total)
        before = _cpu_seconds(pid)
        rates["sse"].append(await _sse_backlog(port, f"sse-backlog-{turn}", total))
        cpu["sse"].append((_cpu_seconds(pid) - before) / total)
    sse, ws = statistics.median(rates["sse"]), statistics.median(rates["ws"])
    sse_cpu, ws_cpu = statistics.median(cpu["sse"]), statistics.median(cpu["ws"])
    print(
        f"backlog, medians of {ROUNDS}: SSE {sse:,.0f} events/s, WebSocket {ws:,.0f} events/s; "
        f"server CPU {sse_cpu * 1e6:.1f} and {ws_cpu * 1e6:.1f} µs an event",
        flush=True,
    )
    return {
        "cloudevents-sse-backlog": _entry(
            sse,
            "events/s",
            ws,
            baseline_is="WebSocket consumer, same backlog, same server, same run",
            target_ratio=TARGET_RATIO,
            confirm_every=CONFIRM_EVERY,
            events=total,
            rounds=ROUNDS,
        ),
        "cloudevents-sse-ws-backlog": _entry(ws, "events/s", ws, events=total, rounds=ROUNDS),
        "cloudevents-sse-cpu-per-event": _entry(
            sse_cpu * 1e6, "µs", ws_cpu * 1e6, baseline_is="WebSocket, same run"
        ),
    }


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """The SSE backlog benchmark and its WebSocket baseline (bounded by the backlog's size,
    not ``duration``)."""
    with (
        tempfile.TemporaryDirectory() as data_dir,
        serve_in_subprocess(data_dir, cpu=SERVER_CPU) as server,
    ):
        spread_helper_threads(server.pid)
        return asyncio.run(_measure(server.url, server.pid))
