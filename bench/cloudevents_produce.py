"""CloudEvents produce benchmarks. Run: ``python -m bench.run --only cloudevents-produce``.

- ``cloudevents-produce-raw``: ``POST /ce/produce/raw`` (binary mode: ``ce-`` headers and
  a small JSON body), 64 connections, durable on SQLite, taking turns with the bare-ASGI
  baseline of the same run (see ``bench.http_produce``); ratio = raw rate / baseline rate
  (target ≥ 0.5).
- ``cloudevents-produce-batch``: ``POST /ce/produce/events``, 100 structured events per
  request (keyed by 20 customers, so each request writes to up to 12 partitions), 16
  connections, durable on SQLite; events/s against the 250,000 target.

Every request carries ids never sent before (wrk's ``request()`` numbers them per thread
and run): a repeated ``source`` + ``id`` would be acknowledged without being stored, and
the benchmark would measure de-duplication instead of storage.

Where the server's time goes, without sockets or wrk (CPU time counts on a busy machine
where wall time does not): ``python -m bench.cloudevents_produce profile batch|raw
[--requests N] [--cprofile FILE]`` serves the same requests to the gateway built as
``sluicegate serve`` builds it (uvicorn's protocol fed in memory, as ``bench.instructions``
does; durable on SQLite with its commit process), each with new ids, and prints the CPU
time per event of this process and of its event loop's thread alone (the process's also
counts the SQLite checkpoints of a thread, which the server's loop does not wait for);
with ``--cprofile`` the run is profiled and the top entries by own time printed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import tempfile
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.http_produce import TEXT_BODY, _entry, _wrk
from bench.in_memory import MemoryConnection
from bench.servers import SERVER_CPU, baseline_server, spread_helper_threads
from bench.wrk import WrkResult, combined
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["requests_of", "run"]

EVENTS_PER_BATCH = 100
DATA = {"order": 1001, "total": 12.5, "currency": "EUR", "note": "x" * 60}
RAW_HEADERS = {
    "ce-specversion": "1.0",
    "ce-source": "urn:bench:shop",
    "ce-type": "Bench.Order.Created",
    "ce-time": "2025-01-31T12:00:00Z",
    "ce-partitionkey": "customer-42",
}
# Each request gets ids of its own: ``__RUN__`` (this wrk run), the thread, a counter.
_NUMBERING = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
"""
RAW_LUA = (
    "\n".join(f'wrk.headers["{name}"] = "{value}"' for name, value in RAW_HEADERS.items())
    + _NUMBERING
    + """
function request()
  counter = counter + 1
  wrk.headers["ce-id"] = "__RUN__-" .. tid .. "-" .. counter
  return wrk.format()
end
"""
)
BATCH_LUA = (
    _NUMBERING
    + """
function request()
  counter = counter + 1
  local body = string.gsub(wrk.body, "@ID@", "__RUN__-" .. tid .. "-" .. counter)
  return wrk.format(nil, nil, nil, body)
end
"""
)


def _batch_body() -> str:
    events = [
        {
            "specversion": "1.0",
            "id": f"@ID@-{n}",
            "source": "urn:bench:shop",
            "type": "Bench.Order.Created",
            "time": "2025-01-31T12:00:00Z",
            "partitionkey": f"customer-{n % 20}",
            "data": DATA,
        }
        for n in range(EVENTS_PER_BATCH)
    ]
    return json.dumps(events)


def _check(result: WrkResult, what: str) -> None:
    if not result.ok:
        raise RuntimeError(f"{what}: wrk saw errors: {dict(result)}")


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Raw produce against the baseline in turns, then batch produce; ``duration`` s each."""
    raw_body = json.dumps(DATA)
    batch_body = _batch_body()
    batch_type = "application/cloudevents-batch+json"
    with (
        baseline_server() as base_url,
        tempfile.TemporaryDirectory() as data_dir,
        serve_in_subprocess(data_dir, cpu=SERVER_CPU) as server,
    ):
        spread_helper_threads(server.pid)
        raw_url = f"{server.url}/ce/produce/raw"
        batch_url = f"{server.url}/ce/produce/events"
        # One of each first: the type's topic is created, and either form must be accepted.
        headers = {**RAW_HEADERS, "ce-id": "warm-up", "content-type": "application/json"}
        httpx.post(raw_url, content=raw_body, headers=headers).raise_for_status()
        warm = batch_body.replace("@ID@", "warm-up")
        httpx.post(batch_url, content=warm, headers={"content-type": batch_type}).raise_for_status()

        _wrk(base_url, TEXT_BODY, 2)
        _wrk(raw_url, raw_body, 2, lua=RAW_LUA)
        baseline: list[WrkResult] = []
        raw: list[WrkResult] = []
        for turn in range(max(2, round(duration))):
            order = [(baseline, base_url, TEXT_BODY, ""), (raw, raw_url, raw_body, RAW_LUA)]
            for results, url, body, lua in order[turn % 2 :] + order[: turn % 2]:
                result = _wrk(url, body, 1, lua=lua)
                _check(result, url)
                results.append(result)
        base_rps, _ = combined(baseline)
        raw_rps, raw_p99 = combined(raw)

        batch = _wrk(
            batch_url,
            batch_body,
            duration,
            connections=16,
            content_type=batch_type,
            lua=BATCH_LUA,
        )
        _check(batch, "batch")
    return {
        "cloudevents-http-baseline": _entry(base_rps, "requests/s", base_rps),
        "cloudevents-produce-raw": _entry(
            raw_rps, "requests/s", base_rps, p99_ms=raw_p99, durable=True, target_ratio=0.5
        ),
        "cloudevents-produce-batch": _entry(
            batch.rps * EVENTS_PER_BATCH,
            "events/s",
            250_000,
            requests_per_second=round(batch.rps, 1),
            p99_ms=batch["p99_us"] / 1000,
            durable=True,
        ),
    }


# -- in process: CPU per event, and the profile ------------------------------------


def requests_of(kind: str) -> Callable[[], bytes]:
    """A maker of ``kind`` requests, each with ids of its own."""
    serial = 0
    batch = _batch_body()
    raw_body = json.dumps(DATA).encode()
    raw_head = "".join(f"{name}: {value}\r\n" for name, value in RAW_HEADERS.items())

    def make() -> bytes:
        nonlocal serial
        serial += 1
        if kind == "batch":
            body = batch.replace("@ID@", f"p-{serial}").encode()
            head = (
                "POST /ce/produce/events HTTP/1.1\r\nHost: bench\r\n"
                "Content-Type: application/cloudevents-batch+json\r\n"
            )
        else:
            body = raw_body
            head = (
                f"POST /ce/produce/raw HTTP/1.1\r\nHost: bench\r\n{raw_head}ce-id: p-{serial}\r\n"
                "Content-Type: application/json\r\n"
            )
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    return make


async def _in_process(kind: str, requests: int, connections: int, profile: str | None) -> None:
    from uvicorn.server import ServerState

    from sluicegate.app import build_app
    from sluicegate.cli.serve import tune_gc
    from sluicegate.config import load_settings
    from sluicegate.core.gateway import Gateway
    from sluicegate.http.servers.uvicorn import uvicorn_config
    from sluicegate.observability.metrics import Metrics
    from sluicegate.storage.base import running
    from sluicegate.storage.factory import open_log

    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(
            environ={}, overrides={"storage": {"data_dir": data_dir}, "auth": {"enabled": False}}
        )
        metrics = Metrics()
        async with running(open_log(settings, observe_commit=metrics.observe_commit)) as log:
            gateway = Gateway(settings, log)
            await gateway.start()
            config = uvicorn_config(build_app(gateway, metrics=metrics), settings)
            config.load()
            loop = asyncio.get_running_loop()
            state = ServerState()
            make = requests_of(kind)

            async def round_of(count: int) -> None:
                clients = [
                    MemoryConnection(
                        config.http_protocol_class(
                            config=config, server_state=state, app_state={}, _loop=loop
                        ),
                        make,
                        count,
                        b"202",
                    )
                    for _ in range(connections)
                ]
                for client in clients:
                    client.start()
                await asyncio.gather(*(client.done for client in clients))

            await round_of(4)  # warm-up: the type's topic, its registration, caches
            tune_gc()
            rounds = max(1, requests // connections)
            profiler = cProfile.Profile() if profile else None
            started, cpu = time.perf_counter(), time.process_time()
            loop_cpu = time.thread_time()
            if profiler is not None:
                profiler.enable()
            await round_of(rounds)
            if profiler is not None:
                profiler.disable()
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            loop_cpu = time.thread_time() - loop_cpu
    events = rounds * connections * (EVENTS_PER_BATCH if kind == "batch" else 1)
    print(
        f"{kind}: {events:,} events in {rounds * connections:,} requests, "
        f"{cpu / events * 1e6:.2f} us of CPU per event ({events / cpu:,.0f} events per "
        f"CPU-second), {loop_cpu / events * 1e6:.2f} us of it on the event loop's thread; "
        f"wall {wall:.2f} s{' (profiled)' if profile else ''}"
    )
    if profiler is not None and profile:
        profiler.dump_stats(profile)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description="CloudEvents produce, served in process")
    sub = parser.add_subparsers(dest="command", required=True)
    profile = sub.add_parser("profile", help="CPU per event, optionally cProfile")
    profile.add_argument("kind", choices=("batch", "raw"))
    profile.add_argument("--requests", type=int, default=0, help="640 batches or 12,800 raw")
    profile.add_argument("--connections", type=int, default=0, help="16 batch, 64 raw")
    profile.add_argument("--cprofile", metavar="FILE", help="profile into FILE and print it")
    args = parser.parse_args()
    from sluicegate.cli.event_loop import run_async

    batch = args.kind == "batch"
    requests = args.requests or (640 if batch else 12_800)
    connections = args.connections or (16 if batch else 64)
    run_async(_in_process(args.kind, requests, connections, args.cprofile))


if __name__ == "__main__":
    main()
