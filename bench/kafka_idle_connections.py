"""Kafka mode: what idle consumers cost in connections to the broker.

Run: ``python -m bench.run --only kafka-idle`` (also part of ``kafka-all``).

- ``kafka-idle-broker-connections``: the established TCP connections of the server and
  its reader process to the broker's port (``bench.kafka_consume.broker_connections``)
  while ``IDLE_POLLS`` topics v1 long polls (on ``IDLE_TOPICS`` idle topics) and
  ``IDLE_SOCKETS`` CloudEvents WebSocket consumers (each in a group of its own) wait,
  against the count before any of them was opened: the node's fixed few. A consumer must
  cost memory, never a connection, so the ratio is 1.0. A long poll answered at its
  timeout is sent again at once, so all of them wait while the connections are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from typing import Any

import httpx
import msgspec

from bench.cloudevents_ws import EVENT, _connect
from bench.http_produce import _entry
from bench.kafka_consume import broker_connections
from bench.kafka_produce import kafka_cluster, kafka_server_env
from bench.probes import read_answer
from bench.servers import SERVER_CPU, spread_helper_threads
from bench.topics_v1 import _request, idle_poll_caps
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["run"]

IDLE_POLLS = 10_000
IDLE_SOCKETS = 1_000
IDLE_TOPICS = 100
#: Seconds the server may take to park them all (each asks Kafka where its partition ends).
PATIENCE = 300
_POLL = b'{"since_time": "2999-01-01T00:00:00Z", "timeout_secs": 60}'


async def _keep_polling(host: str, port: int, path: str) -> None:
    """One idle long poll, asked again whenever it is answered (at its timeout) and sent
    again on a new connection if a busy server dropped it before it was read."""
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.5)
            continue
        try:
            while True:
                writer.write(_request(path, _POLL))
                await read_answer(reader)
        except (OSError, asyncio.IncompleteReadError):
            await asyncio.sleep(0.5)
        finally:
            writer.close()


async def _socket(port: int, group: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An idle WebSocket consumer; connecting again if a busy server dropped it."""
    while True:
        try:
            return await _connect(port, f"/ce/ws?group={group}&test=false")
        except (OSError, asyncio.IncompleteReadError):
            await asyncio.sleep(0.5)


async def _waiting(client: httpx.AsyncClient) -> float | None:
    """Waits parked on the server's log, or None if it did not answer in time (busy)."""
    try:
        metrics = (await client.get("/metrics")).text
    except httpx.TimeoutException:
        return None
    return next(
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("sluicegate_storage_waiters ")
    )


async def _idle(url: str, pid: int, bootstrap: str) -> dict[str, dict[str, Any]]:
    host, port_text = url.removeprefix("http://").split(":")
    port = int(port_text)
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        topics = []
        for n in range(IDLE_TOPICS):
            created = await client.post("/admin/v1/topics", json={"name": f"bench-idle-{n}"})
            created.raise_for_status()
            topics.append(int(created.json()["id"]))
        # The WebSocket consumers' type exists and has an event each group is given first.
        produced = await client.post(
            "/ce/produce/event",
            content=msgspec.json.encode({**EVENT, "id": "idle-0"}),
            headers={"content-type": "application/cloudevents+json"},
        )
        produced.raise_for_status()
        before = broker_connections(pid, bootstrap)
        opening = time.monotonic()
        polls = []
        sockets = []
        try:
            # The WebSockets first: their handshakes must not queue behind 10,000 polls.
            for start in range(0, IDLE_SOCKETS, 250):
                sockets += await asyncio.gather(
                    *(_socket(port, f"idle{n}") for n in range(start, start + 250))
                )
            for start in range(0, IDLE_POLLS, 500):
                # In steps, so the server's accept queue never overflows.
                polls += [
                    asyncio.create_task(
                        _keep_polling(
                            host, port, f"/api/v1/topics/{topics[n % IDLE_TOPICS]}/consume"
                        )
                    )
                    for n in range(start, start + 500)
                ]
                await asyncio.sleep(0.1)
            # Counted once every consumer waits, or at the end of the patience (the figure
            # then says how many did: on a busy machine Kafka's answers come slowly).
            waiting = 0.0
            deadline = time.monotonic() + PATIENCE
            while time.monotonic() < deadline:
                answer = await _waiting(client)
                waiting = waiting if answer is None else answer
                if waiting >= IDLE_POLLS + IDLE_SOCKETS:
                    break
                await asyncio.sleep(1)
            parking = time.monotonic() - opening
            during = broker_connections(pid, bootstrap)
        finally:
            for task in polls:
                task.cancel()
            for _, writer in sockets:
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.gather(*polls, return_exceptions=True)
    return {
        "kafka-idle-broker-connections": _entry(
            during,
            "connections",
            before,
            long_polls=IDLE_POLLS,
            websockets=IDLE_SOCKETS,
            before=before,
            waiting=round(waiting),
            seconds=round(parking, 1),
        )
    }


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Count the connections (``duration`` does not apply: the sizes are fixed)."""
    caps = {
        **idle_poll_caps(),
        "SLUICEGATE_LIMITS__MAX_WEBSOCKETS": str(IDLE_SOCKETS + 100),
        "SLUICEGATE_LIMITS__MAX_WEBSOCKETS_PER_CLIENT": str(IDLE_SOCKETS + 100),
        "SLUICEGATE_CLOUDEVENTS__MAX_CONSUMER_INSTANCES_PER_CLIENT": str(IDLE_SOCKETS + 100),
        # Raw idle sockets answer no pings: none is due while they are counted.
        "SLUICEGATE_CLOUDEVENTS__WEBSOCKET_PING_INTERVAL": "600",
    }
    with (
        kafka_cluster() as bootstrap,
        tempfile.TemporaryDirectory() as data_dir,
        serve_in_subprocess(
            data_dir, cpu=SERVER_CPU, env={**caps, **kafka_server_env(bootstrap)}
        ) as server,
    ):
        spread_helper_threads(server.pid)
        return asyncio.run(_idle(server.url, server.pid, bootstrap))
