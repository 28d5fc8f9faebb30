"""Instructions per request: the CPU cost of a request, counted instead of timed.

    python -m bench.instructions [--requests N]      (or: python -m bench.run --only cpu)

wrk on this shared two-core machine moves by several percent from run to run, so it
cannot show a change that saves a few percent. Valgrind's callgrind counts the
instructions a process executes, on every thread, whatever else runs on the machine.

The driver (``python -m bench.instructions drive TARGET N``) builds the server exactly as
``sluicegate serve`` does (the same uvicorn config, uvloop, GC tuning, SQLite log with
``synchronous=FULL``) and feeds uvicorn's httptools protocol with 64 in-memory
connections, each sending its next request as soon as its response is written: the
server's whole path from bytes in to bytes out, minus the kernel's socket work; the
commit process is counted too (valgrind follows child processes). Each
target runs twice, with ``N`` and ``6 N`` requests; the difference of the two counts
divided by ``5 N`` is the cost of one request with start-up and shut-down cancelled out.

Targets: ``http-baseline`` (``bench.baseline_app``), ``records-v2-text`` and
``records-v2-avro`` (the bodies of ``bench.http_produce``), ``records-v2-text-auth``,
the text request with an API key, and topics v1's ``topics-v1-publish`` (one message, no
schema) and ``topics-v1-batch-publish-schema`` (100 messages against a JSON Schema), the
bodies of ``bench.topics_v1_throughput``, and the CloudEvents producer's
``cloudevents-raw`` (``POST /ce/produce/raw``: the headers and body of
``bench.cloudevents_produce``'s raw benchmark) and ``cloudevents-batch`` (its 100
structured events in one ``POST /ce/produce/events``), each request with ids never sent
before, so that every event is stored rather than acknowledged as a duplicate. The ratio
is baseline / target, comparable to the request-rate ratios: 0.5 means twice the
baseline's cost. The baseline of
``records-v2-text-auth`` is ``records-v2-text``: its ratio is what authentication leaves
of a request's budget, as ``bench.auth_overhead`` measures with wrk.

``records-v2-text-kafka`` (not in the default set: it needs a broker,
``$SLUICEGATE_BENCH_KAFKA_BOOTSTRAP`` or ``$SLUICEGATE_TEST_KAFKA_BOOTSTRAP``) is the text
request on a gateway stored in Kafka, counted on the event loop's thread only
(callgrind's ``--separate-threads``): librdkafka's threads poll on timers, and under
valgrind a request takes milliseconds, so their counts say more about the slowdown than
about the request. The loop's count is what the single-record ratio on Kafka is bound by;
compare it with ``records-v2-text``'s, which includes the commit process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.in_memory import MemoryConnection

__all__ = ["run"]

TARGETS = (
    "http-baseline",
    "records-v2-text",
    "records-v2-avro",
    "records-v2-text-auth",
    "topics-v1-publish",
    "topics-v1-batch-publish-schema",
    "cloudevents-raw",
    "cloudevents-batch",
)
#: Targets on a gateway stored in Kafka, counted on the event loop's thread only.
KAFKA_TARGETS = ("records-v2-text-kafka",)
#: The key the ``records-v2-text-auth`` target authenticates with (its admin client's).
_KEY = "sg_instructions_benchmark_key_0123456789"
CONNECTIONS = 64
_COLLECTED = re.compile(rb"Collected : (\d+)")
#: A callgrind output file's count (one thread's, with ``--separate-threads``).
_TOTALS = re.compile(rb"^(?:totals|summary): (\d+)", re.MULTILINE)
#: valgrind's lines start with the process id: the first is the driver's.
_FIRST_PID = re.compile(rb"==(\d+)==")


def _kafka_bootstrap() -> str:
    """The broker of the Kafka targets: the benchmarks' or the tests'."""
    bootstrap = os.environ.get("SLUICEGATE_BENCH_KAFKA_BOOTSTRAP") or os.environ.get(
        "SLUICEGATE_TEST_KAFKA_BOOTSTRAP"
    )
    if not bootstrap:
        raise RuntimeError(
            "the Kafka targets need a broker: set SLUICEGATE_BENCH_KAFKA_BOOTSTRAP "
            "(python -m sluicegate.testing.kafka_broker run starts one)"
        )
    return bootstrap


def _request(path: str, body: str, authorization: str = "") -> bytes:
    data = body.encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n{authorization}"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _drive(target: str, requests: int) -> None:
    from bench.http_produce import AVRO_BODY, TEXT_BODY
    from sluicegate.cli.serve import tune_gc
    from sluicegate.config import load_settings
    from sluicegate.http.servers.uvicorn import uvicorn_config

    with tempfile.TemporaryDirectory() as data_dir:
        auth = target == "records-v2-text-auth"
        overrides: dict[str, Any] = {"storage": {"data_dir": data_dir}, "auth": {"enabled": auth}}
        if target in KAFKA_TARGETS:
            overrides["storage"]["backend"] = "kafka"
            overrides["kafka"] = {
                "bootstrap_servers": _kafka_bootstrap(),
                "topic_prefix": f"instructions-{uuid.uuid4().hex[:8]}.",
            }
        settings = load_settings(environ={}, overrides=overrides)
        if target == "http-baseline":
            from bench.baseline_app import app

            request = _request("/", TEXT_BODY)
            await _connections(uvicorn_config(app, settings), request, requests, tune_gc)
            return
        if target.startswith("topics-v1"):
            await _topics_v1(target, settings, requests, tune_gc)
            return
        if target.startswith("cloudevents"):
            await _cloudevents(target, settings, requests, tune_gc)
            return
        query = "?serializer=confluent" if target == "records-v2-avro" else ""
        body = AVRO_BODY if target == "records-v2-avro" else TEXT_BODY
        authorization = f"Authorization: Bearer {_KEY}\r\n" if auth else ""
        request = _request(f"/v2/topics/bench/records{query}", body, authorization)
        async with _started(settings) as (gateway, config):
            if auth:
                await gateway.clients.bootstrap_admin(_KEY)
            await _connections(config(), request, requests, tune_gc)


@contextlib.asynccontextmanager
async def _started(settings: Any) -> AsyncIterator[tuple[Any, Callable[[], Any]]]:
    """A gateway built as ``sluicegate serve`` builds it, started on its log, and the
    maker of the uvicorn config serving it (called once the benchmark's setup is done)."""
    from sluicegate.app import build_app
    from sluicegate.core.gateway import Gateway
    from sluicegate.http.servers.uvicorn import uvicorn_config
    from sluicegate.observability.metrics import Metrics
    from sluicegate.storage.base import running
    from sluicegate.storage.factory import open_log

    metrics = Metrics()
    log = open_log(settings, observe_commit=metrics.observe_commit)
    async with running(log):
        gateway = Gateway(settings, log)
        await gateway.start()
        yield gateway, lambda: uvicorn_config(build_app(gateway, metrics=metrics), settings)


#: Records published before the counted runs of ``topics-v1-publish``.
_PREFILLED = 17_000


async def _topics_v1(target: str, settings: Any, requests: int, tune: Any) -> None:
    import json

    from bench.topics_v1_throughput import BATCH_BODY, BODY, SCHEMA
    from sluicegate.core.records import NewRecord
    from sluicegate.core.topics import TopicSpec

    async with _started(settings) as (gateway, config):
        topic = await gateway.topics.create(TopicSpec(name="bench", partitions=1))
        if target == "topics-v1-publish":
            # Past the offsets whose message ids fit two varint bytes, as the wrk
            # benchmark's topic is half a second into its run: an id's cost depends on it.
            value = BODY.encode()
            for _ in range(_PREFILLED // 1000):
                await gateway.log.append(
                    [NewRecord("bench", 0, None, value, (), len(value))] * 1000
                )
            request = _request(f"/api/v1/topics/{topic.id}/publish", BODY)
        else:
            await gateway.schemas.register("bench-value", json.dumps(SCHEMA), "JSON")
            request = _request(f"/api/v1/batch/topics/{topic.id}/publish", BATCH_BODY)
        await _connections(config(), request, requests, tune)


async def _cloudevents(target: str, settings: Any, requests: int, tune: Any) -> None:
    from bench.cloudevents_produce import requests_of

    async with _started(settings) as (_, config):
        # One maker for the warm-up and the counted round: every request has new ids (the
        # same ids again would be acknowledged as duplicates, not stored). Its own cost, a
        # counter and for the batch one str.replace over the 20 KB body, is counted too.
        make = requests_of(target.removeprefix("cloudevents-"))
        await _connections(config(), make, requests, tune, status=b"202")


async def _connections(
    config: Any,
    request: bytes | Callable[[], bytes],
    requests: int,
    tune: Any,
    status: bytes = b"200",
) -> None:
    from uvicorn.server import ServerState

    config.load()
    # The protocol sluicegate serves with (uvicorn's httptools one, or one derived from it).
    protocol_class = config.http_protocol_class
    loop = asyncio.get_running_loop()
    state = ServerState()
    make = request if callable(request) else lambda: request

    async def round_of(count: int) -> None:
        connections = [
            MemoryConnection(
                protocol_class(config=config, server_state=state, app_state={}, _loop=loop),
                make,
                count,
                status,
            )
            for _ in range(CONNECTIONS)
        ]
        for connection in connections:
            connection.start()
        await asyncio.gather(*(c.done for c in connections))

    await round_of(8)  # warm-up: topic created, schema registered, caches filled
    tune()
    await round_of(max(1, requests // CONNECTIONS))


def _count(target: str, requests: int) -> int:
    """Instructions callgrind counts for one driver run of ``requests`` requests."""
    with tempfile.TemporaryDirectory() as scratch:
        loop_only = target in KAFKA_TARGETS
        command = [
            "valgrind",
            "--tool=callgrind",
            # The commit process too: its work is part of every request's cost.
            "--trace-children=yes",
            f"--separate-threads={'yes' if loop_only else 'no'}",
            f"--callgrind-out-file={scratch}/callgrind.out.%p",
            "--dump-instr=no",
            "--collect-jumps=no",
            sys.executable,
            "-m",
            "bench.instructions",
            "drive",
            target,
            str(requests),
        ]
        root = Path(__file__).resolve().parent.parent
        done = subprocess.run(command, cwd=root, capture_output=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"{target}: the driver failed:\n{done.stderr.decode()[-2000:]}")
        if loop_only:
            # The driver's main thread: the first thread of the first process.
            pid = _FIRST_PID.search(done.stderr)
            assert pid is not None, "valgrind names the process on every line"
            main = Path(scratch) / f"callgrind.out.{int(pid[1])}-01"
            found = _TOTALS.search(main.read_bytes())
            if found is None:
                raise RuntimeError(f"{target}: no totals in {main.name}")
            return int(found[1])
        counts = [int(found) for found in _COLLECTED.findall(done.stderr)]
        if not counts:
            raise RuntimeError(f"{target}: no instruction count in callgrind's output")
        return sum(counts)  # one count per process


def per_request(target: str, requests: int) -> int:
    """Instructions one request costs: the difference of a short and a long run."""
    # The two runs count the same whatever runs beside them: run them side by side.
    with ThreadPoolExecutor(max_workers=2) as pool:
        short, long = pool.map(lambda n: _count(target, n), (requests, 6 * requests))
    return round((long - short) / (5 * (requests // CONNECTIONS) * CONNECTIONS))


def run(duration: float = 10.0, requests: int = 1280) -> dict[str, dict[str, Any]]:
    """Instructions per request for every target (``duration`` is not used: counts don't
    depend on time)."""
    if shutil.which("valgrind") is None:
        raise RuntimeError("bench.instructions needs valgrind (apt-get install valgrind)")
    counts = {target: per_request(target, requests) for target in TARGETS}
    # The authenticated request is measured against the same request without
    # authentication, as bench.auth_overhead does with wrk; the others against the bare app.
    bases = dict.fromkeys(TARGETS, counts["http-baseline"])
    bases["records-v2-text-auth"] = counts["records-v2-text"]
    return {
        f"cpu-{target}": {
            "value": count,
            "unit": "instructions/request",
            "baseline": bases[target],
            "ratio": round(bases[target] / count, 3),
        }
        for target, count in counts.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    drive = sub.add_parser("drive", help="one driver run (what valgrind runs)")
    drive.add_argument("target", choices=TARGETS + KAFKA_TARGETS)
    drive.add_argument("requests", type=int)
    parser.add_argument("--requests", type=int, default=1280, help="requests in the short run")
    parser.add_argument(
        "--only", nargs="*", choices=TARGETS + KAFKA_TARGETS, help="targets to count"
    )
    args = parser.parse_args()
    if args.command == "drive":
        from sluicegate.cli.event_loop import run_async

        run_async(_drive(args.target, args.requests))
        return
    for target in args.only or TARGETS:
        print(f"{target}: {per_request(target, args.requests):,} instructions/request", flush=True)


if __name__ == "__main__":
    main()
