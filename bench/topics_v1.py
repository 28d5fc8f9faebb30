"""Topics v1 benchmarks: publish, batch publish against a schema, a cursor walk, and
10,000 idle long polls. Run: ``python -m bench.run --only topics-v1``.

- ``topics-v1-publish`` (and ``-schema``, against a JSON Schema): 64 connections, durable,
  taking turns with the bare-ASGI baseline of the same run (see ``bench.http_produce``)
  and with records v2 text produce on the same server (``records-v2-text-same-run``);
  ratio = publish rate / baseline rate (target ≥ 0.6).
- ``topics-v1-batch-publish-schema``: 100 valid messages per request against the same
  schema, 64 connections, after those turns; messages/s against the 200,000 target. Not
  one of the turns: a second of it stores about 400,000 messages, whose checkpoint (the
  WAL copied into the database and fsynced) and the kernel's writeback of it run through
  the turns after it, and the publish ratio would measure them (0.58 interleaved against
  0.65 to 0.66 without, on the same server, in one sitting, or after ten seconds of batches
  left eight to settle).
- ``json-schema-jsonschema-rs`` / ``json-schema-fastjsonschema``: the two compiled
  validators checking the benchmark's messages in this process, messages/s; the ratio
  of the first is against the second.
- ``topics-v1-consume-walk``: one client walks a cursor over the topic in batches of 50
  (keep-alive, over a raw socket), messages/s against the 100,000 target.
- ``topics-v1-idle-long-polls``: 10,000 long polls held on idle topics (raw sockets; the
  benchmark raises its own file-descriptor limit, the server inherits it; the server's
  long-poll and request caps are raised for it through the environment). Added resident
  memory of the server (target ≤ 200 MB); ``/healthz`` round trips every 10 ms while they
  wait, as the event loop's lag (p99 target ≤ 10 ms); and 50 publishes to a topic a
  consumer long-polls: the time from the publisher's 200 (durable) to the consumer's
  answer (p99 target ≤ 5 ms), and from sending the publish (with the commit).
"""

from __future__ import annotations

import asyncio
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
import httpx
import msgspec

from bench.http_produce import TEXT_BODY, _entry, take_turns
from bench.probes import PROBE, loop_lags_ms, parked, read_answer
from bench.servers import SERVER_CPU, baseline_server, spread_helper_threads
from bench.topics_v1_throughput import (
    BATCH_BODY,
    BODY,
    SCHEMA,
    WALK_BATCH,
    WALK_MESSAGES,
    create_topic,
    fill_walk_topic,
    walk,
)
from bench.wrk import combined
from sluicegate.core.schemas.validators import compile_json_schema
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["idle_long_polls", "idle_poll_caps", "run", "walk_entry"]

IDLE_POLLS = 10_000
IDLE_TOPICS = 100
PUBLISHES = 50
#: Seconds the server may take to park every idle long poll (each first asks where the
#: partition ends: a query of the storage, a broker round trip on Kafka).
PARK_PATIENCE = 180


def _validators(duration: float) -> dict[str, dict[str, Any]]:
    """Both compiled validators on the benchmark's messages, in this process."""
    compiled_rs = compile_json_schema(SCHEMA, {})
    compiled_fast = fastjsonschema.compile(SCHEMA)
    message = msgspec.json.decode(BODY.encode())
    rates = {}
    for name, check in (
        ("jsonschema-rs", compiled_rs.is_valid),
        ("fastjsonschema", compiled_fast),
    ):
        count, deadline = 0, time.perf_counter() + max(1.0, duration / 4)
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            for _ in range(1000):
                check(message)
            count += 1000
        rates[name] = count / (time.perf_counter() - started)
    return {
        "json-schema-jsonschema-rs": _entry(
            rates["jsonschema-rs"], "messages/s", rates["fastjsonschema"]
        ),
        "json-schema-fastjsonschema": _entry(
            rates["fastjsonschema"], "messages/s", rates["fastjsonschema"]
        ),
    }


def _publish(base_url: str, url: str, duration: float) -> dict[str, dict[str, Any]]:
    plain = create_topic(url, "bench-plain")
    checked = create_topic(url, "bench-schema", SCHEMA)
    targets = {
        "http-baseline": (base_url, BODY),
        "topics-v1-publish": (f"{url}/api/v1/topics/{plain}/publish", BODY),
        "topics-v1-publish-schema": (f"{url}/api/v1/topics/{checked}/publish", BODY),
        # The other dialect's produce on the same server and turns, for comparison.
        "records-v2-text-same-run": (f"{url}/v2/topics/bench-records/records", TEXT_BODY),
    }
    runs = take_turns(targets, duration)
    batch = f"{url}/api/v1/batch/topics/{checked}/publish"
    runs |= take_turns({"topics-v1-batch-publish-schema": (batch, BATCH_BODY)}, duration)
    rates = {name: combined(results) for name, results in runs.items()}
    base = rates["http-baseline"][0]
    results = {
        name: _entry(rates[name][0], "requests/s", base, p99_ms=rates[name][1], durable=True)
        for name in ("topics-v1-publish", "topics-v1-publish-schema", "records-v2-text-same-run")
    }
    results["topics-v1-publish"]["target_ratio"] = 0.6
    batch_rps, batch_p99 = rates["topics-v1-batch-publish-schema"]
    results["topics-v1-batch-publish-schema"] = _entry(
        batch_rps * 100, "messages/s", 200_000, p99_ms=batch_p99, durable=True
    )
    results["http-baseline-topics-v1"] = _entry(base, "requests/s", base)
    return results


async def _fill(url: str, topic: int, messages: int) -> None:
    """Publish ``messages`` in batches of 100, 16 requests at a time."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        batches = iter(range(messages // 100))

        async def publisher() -> None:
            for _ in batches:
                response = await client.post(
                    f"/api/v1/batch/topics/{topic}/publish", content=BATCH_BODY
                )
                response.raise_for_status()

        await asyncio.gather(*(publisher() for _ in range(16)))


def walk_entry(url: str, name: str = "topics-v1-consume-walk") -> dict[str, dict[str, Any]]:
    """One client walks ``WALK_MESSAGES`` messages in batches of 50."""
    rate = walk(url, fill_walk_topic(url))
    return {
        name: _entry(rate, "messages/s", 100_000, batch_size=WALK_BATCH, messages=WALK_MESSAGES)
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _request(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


#: Called once every idle long poll is parked: more entries for the results.
WhileParked = Callable[[], dict[str, dict[str, Any]]]


async def idle_long_polls(
    url: str, pid: int, prefix: str = "topics-v1", while_parked: WhileParked | None = None
) -> dict[str, dict[str, Any]]:
    """``IDLE_POLLS`` long polls parked on idle topics: memory, loop lag, and wake-ups."""
    host, port_text = url.removeprefix("http://").split(":")
    port = int(port_text)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        idle = []
        for n in range(IDLE_TOPICS):
            created = await client.post("/admin/v1/topics", json={"name": f"bench-idle-{n}"})
            idle.append(int(created.json()["id"]))
        hot = int((await client.post("/admin/v1/topics", json={"name": "bench-hot"})).json()["id"])
        rss_before = _rss_mb(pid)
        connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        since = b'{"since_time": "2999-01-01T00:00:00Z", "timeout_secs": 60}'
        opening = time.monotonic()
        for start in range(0, IDLE_POLLS, 500):
            opened = await asyncio.gather(
                *(asyncio.open_connection(host, port) for _ in range(start, start + 500))
            )
            for n, (_, writer) in enumerate(opened, start):
                writer.write(_request(f"/api/v1/topics/{idle[n % IDLE_TOPICS]}/consume", since))
            connections.extend(opened)
        # Every poll is parked once the server counts them all as waiters.
        await parked(client, IDLE_POLLS, "long polls", PARK_PATIENCE)
        parking = time.monotonic() - opening
        rss_after = _rss_mb(pid)
        parked_figures = while_parked() if while_parked is not None else {}
        lags = await loop_lags_ms(url)
        reader, writer = await asyncio.open_connection(host, port)
        after_durable, end_to_end = [], []
        last: str | None = None
        for n in range(PUBLISHES):
            body = b'{"timeout_secs": 30, "since_time": "2999-01-01T00:00:00Z"}'
            if last is not None:
                body = b'{"timeout_secs": 30, "after_message_id": "%s"}' % last.encode()
            writer.write(_request(f"/api/v1/topics/{hot}/consume", body))
            await writer.drain()
            await asyncio.sleep(0.05)  # the consumer is parked before the publish
            sent = time.perf_counter()
            published = await client.post(f"/api/v1/topics/{hot}/publish", json={"n": n})
            durable = time.perf_counter()
            answer = msgspec.json.decode((await read_answer(reader))[1])
            arrived = time.perf_counter()
            last = answer["messages"][0]["message_id"]
            assert last == published.json()["message_id"]
            after_durable.append(max(0.0, arrived - durable) * 1000)
            end_to_end.append((arrived - sent) * 1000)
        writer.close()
        for _, idle_writer in connections:
            idle_writer.close()
    return {
        **parked_figures,
        f"{prefix}-idle-long-polls-rss": _entry(
            rss_after - rss_before,
            "MB",
            200,
            polls=IDLE_POLLS,
            rss_before_mb=round(rss_before),
            parked_in_s=round(parking, 1),
        ),
        f"{prefix}-idle-long-polls-loop-lag-p99": _entry(
            _p99(lags), "ms", 10, polls=IDLE_POLLS, probe=PROBE
        ),
        f"{prefix}-long-poll-wake-p99": _entry(
            _p99(after_durable),
            "ms",
            5,
            polls=IDLE_POLLS,
            end_to_end_p99_ms=round(_p99(end_to_end), 2),
            publishes=PUBLISHES,
        ),
    }


def idle_poll_caps() -> dict[str, str]:
    """Raise this process's descriptor limit (a server it starts inherits it) and return
    the server settings that admit ``IDLE_POLLS`` long polls; the defaults stay as they are."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65_536)), hard))
    return {
        "SLUICEGATE_LIMITS__MAX_LONG_POLLS": str(IDLE_POLLS + 100),
        "SLUICEGATE_LIMITS__MAX_LONG_POLLS_PER_CLIENT": str(IDLE_POLLS + 100),
        "SLUICEGATE_LIMITS__MAX_CONCURRENT_REQUESTS": str(IDLE_POLLS + 1000),
        "SLUICEGATE_LIMITS__MAX_CONCURRENT_REQUESTS_PER_CLIENT": str(IDLE_POLLS + 1000),
    }


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Every topics v1 benchmark; the publish turns take ``duration`` seconds each."""
    caps = idle_poll_caps()
    results = _validators(duration)
    with (
        baseline_server() as base_url,
        tempfile.TemporaryDirectory() as data_dir,
        serve_in_subprocess(data_dir, cpu=SERVER_CPU, env=caps) as server,
    ):
        spread_helper_threads(server.pid)
        results.update(_publish(base_url, server.url, duration))
        results.update(walk_entry(server.url))
        results.update(asyncio.run(idle_long_polls(server.url, server.pid)))
    return results
