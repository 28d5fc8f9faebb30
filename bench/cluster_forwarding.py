"""Nodes on one Kafka cluster: a consumer's backlog read through the node holding it and
through another node (every poll forwarded, or the WebSocket proxied), and produce through
three nodes round-robin against one node.

Run: ``python -m bench.run --only cluster``. Both nodes run on this machine against the
broker of ``bench.kafka_produce.kafka_cluster``. 20,000 events are produced once; each
measurement creates an instance of a new group on node A (so it starts at the first
event) and reads the whole backlog in polls of ``batch_size`` events, confirming each
batch with the next poll (``confirm=true``): directly on A, then through B, alternating
``_ROUNDS`` times each; the best of each is kept.

- ``cluster-forwarded-long-poll-consume``: events/s read through B, against the same read
  on A (target: ratio ≥ 0.8, forwarding costs at most a fifth).
- ``cluster-forwarded-long-poll-cpu-per-event``: CPU time of both nodes per event read
  through B, against the same read on A (``/proc/<pid>/stat``; ≤ 1.25 is the same target
  seen as cost: what a node spends on CPU, it cannot spend on throughput).
- ``cluster-forwarded-empty-poll-cpu``: CPU time of both nodes per empty poll (204) sent
  through B, against the same poll sent to A: what one forwarded request costs, which a
  batch of events shares.
- ``cluster-forwarded-websocket-consume``: events/s of a WebSocket consumer (``/ce/ws``)
  of a group served by A, connected through B (proxied), against the same connected to
  A; confirmed every 1,000 events; best of ``_ROUNDS`` each (target: ratio ≥ 0.8), and
  ``cluster-forwarded-websocket-cpu-per-event`` the CPU of both nodes per event.
- ``cluster-produce-three-nodes``: events/s produced by ``_PRODUCERS`` concurrent clients
  sending batches of ``_PRODUCE_BATCH`` to A, B and C in turn, against the same sent to A
  only (target: ratio ≥ 1: coordination costs nothing on the produce path; on two cores
  this is no scale-out measure). Each node's CPU per request is reported beside it, and
  ``cluster-producer-ceiling`` is confluent-kafka's producer alone on the same broker in
  the same run: what N nodes can reach is min(N x one node's rate at one core, the broker).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import connect

from bench.kafka_produce import _entry, kafka_cluster, kafka_server_env, producer_ceiling
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["run"]

EVENTS = 20_000
_BATCH = 500
#: Direct and forwarded reads alternate this many times each; the best of each is kept
#: (on a shared machine a run swings by 2-3x with what else runs).
_ROUNDS = 3
#: Empty polls timed per measurement of the per-request cost.
_EMPTY_POLLS = 500
_SECRET = "bench-cluster-secret-0123456789abcdef0123"
#: A WebSocket reader confirms every this many events (the window is 10,000).
_WS_CONFIRM_EVERY = 1000
#: Produce: requests in flight at once, events per request, requests per measurement.
_PRODUCERS = 8
_PRODUCE_BATCH = 20
_PRODUCE_REQUESTS = 1500


def _produce(http: httpx.Client) -> None:
    headers = {"content-type": "application/cloudevents-batch+json"}
    for start in range(0, EVENTS, _BATCH):
        events = [
            {
                "specversion": "1.0",
                "id": f"e{n}",
                "source": "urn:bench",
                "type": "Bench.Event",
                "partitionkey": f"k{n % 64}",
                "data": {"n": n},
            }
            for n in range(start, start + _BATCH)
        ]
        answer = http.post("/ce/produce/events", json=events, headers=headers)
        answer.raise_for_status()


def _cpu_seconds(pids: tuple[int, ...]) -> float:
    """User and system CPU time the processes ``pids`` used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _read_backlog(
    owner: httpx.Client, reader: httpx.Client, pids: tuple[int, ...]
) -> tuple[float, float]:
    """Events/s of one new instance on ``owner`` reading the backlog through ``reader``,
    and the CPU microseconds per event both nodes spent on it."""
    created = owner.post("/ce/consumers", params={"group": f"g{uuid.uuid4().hex[:8]}"})
    created.raise_for_status()
    path = urlsplit(created.headers["location"]).path
    read = 0
    cpu = _cpu_seconds(pids)
    started = time.perf_counter()
    params = {"timeout": "5"}
    while read < EVENTS:
        answer = reader.get(f"{path}/events", params=params)
        if answer.status_code == 204:
            raise RuntimeError(f"the backlog ended after {read} of {EVENTS} events")
        answer.raise_for_status()
        read += len(answer.json())
        params = {"timeout": "5", "confirm": "true"}
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds(pids) - cpu
    owner.delete(path)
    return read / elapsed, cpu / read * 1e6


def _empty_polls(owner: httpx.Client, reader: httpx.Client, pids: tuple[int, ...]) -> float:
    """CPU microseconds both nodes spend per empty poll (``timeout=0``, answered 204) of an
    instance on ``owner`` sent to ``reader``: the per-request cost, with no events."""
    created = owner.post("/ce/consumers", params={"group": f"g{uuid.uuid4().hex[:8]}"})
    created.raise_for_status()
    path = urlsplit(created.headers["location"]).path
    # Read the backlog first, so the polls measured find nothing.
    while (
        reader.get(f"{path}/events", params={"timeout": "0", "confirm": "true"}).status_code == 200
    ):
        pass
    cpu = _cpu_seconds(pids)
    for _ in range(_EMPTY_POLLS):
        answer = reader.get(f"{path}/events", params={"timeout": "0"})
        if answer.status_code != 204:
            raise RuntimeError(f"an empty poll answered {answer.status_code}")
    cpu = _cpu_seconds(pids) - cpu
    owner.delete(path)
    return cpu / _EMPTY_POLLS * 1e6


def _placed_on(owner: httpx.Client) -> str:
    """A new group, served by ``owner`` from now on (its first consumer was created there)."""
    group = f"g{uuid.uuid4().hex[:8]}"
    created = owner.post("/ce/consumers", params={"group": group})
    created.raise_for_status()
    owner.delete(urlsplit(created.headers["location"]).path).raise_for_status()
    return group


async def _ws_backlog(url: str, group: str, pids: tuple[int, ...]) -> tuple[float, float]:
    """Events/s of a WebSocket consumer of ``group`` connected to ``url``, and the CPU
    microseconds per event the nodes ``pids`` spent on it."""
    target = url.replace("http://", "ws://") + f"/ce/ws?group={group}"
    cpu = _cpu_seconds(pids)
    started = time.perf_counter()
    async with connect(
        target,
        subprotocols=["cloudevents.json"],
        max_size=None,
        compression=None,  # type: ignore[list-item]
    ) as ws:
        read = 0
        while read < EVENTS:
            async with asyncio.timeout(30):
                await ws.recv(decode=False)
            read += 1
            if read % _WS_CONFIRM_EVERY == 0:
                await ws.send(f"confirm:{read}")  # offsets count from 1 per connection
    elapsed = time.perf_counter() - started
    return read / elapsed, (_cpu_seconds(pids) - cpu) / read * 1e6


async def _produce_through(urls: list[str], pids: tuple[int, ...]) -> tuple[float, list[float]]:
    """Events/s produced through ``urls`` in turn, and each node's CPU µs per request."""
    clients = [httpx.AsyncClient(base_url=url, timeout=60) for url in urls]
    turn = itertools.cycle(clients)
    headers = {"content-type": "application/cloudevents-batch+json"}
    left = _PRODUCE_REQUESTS
    counter = itertools.count()

    async def producer() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            start = next(counter) * _PRODUCE_BATCH
            events = [
                {
                    "specversion": "1.0",
                    "id": f"p{uuid.uuid4().hex}",
                    "source": "urn:bench",
                    "type": "Bench.Produced",
                    "partitionkey": f"k{(start + n) % 64}",
                    "data": {"n": start + n},
                }
                for n in range(_PRODUCE_BATCH)
            ]
            answer = await next(turn).post("/ce/produce/events", json=events, headers=headers)
            answer.raise_for_status()

    try:
        before = [_cpu_seconds((pid,)) for pid in pids]
        started = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(_PRODUCERS)))
        elapsed = time.perf_counter() - started
        spent = [_cpu_seconds((pid,)) - cpu for pid, cpu in zip(pids, before, strict=True)]
    finally:
        for client in clients:
            await client.aclose()
    per_node = _PRODUCE_REQUESTS / len(urls)
    return _PRODUCE_REQUESTS * _PRODUCE_BATCH / elapsed, [
        round(cpu / per_node * 1e6) if i < len(urls) else round(cpu / _PRODUCE_REQUESTS * 1e6)
        for i, cpu in enumerate(spent)
    ]


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Direct against forwarded consume, and produce through three nodes against one."""
    with kafka_cluster() as bootstrap, tempfile.TemporaryDirectory() as directory:
        shared = kafka_server_env(bootstrap)
        env = {**shared, "SLUICEGATE_CLUSTER__SECRET": _SECRET}
        with (
            serve_in_subprocess(
                Path(directory) / "a", env={**env, "SLUICEGATE_CLUSTER__NODE_ID": "node-a"}
            ) as a,
            serve_in_subprocess(
                Path(directory) / "b", env={**env, "SLUICEGATE_CLUSTER__NODE_ID": "node-b"}
            ) as b,
            serve_in_subprocess(
                Path(directory) / "c", env={**env, "SLUICEGATE_CLUSTER__NODE_ID": "node-c"}
            ) as c,
            httpx.Client(base_url=a.url, timeout=60) as on_a,
            httpx.Client(base_url=b.url, timeout=60) as on_b,
        ):
            _produce(on_a)
            _wait_for_node(on_b, "node-a")
            pids = (a.pid, b.pid)
            direct, forwarded = [], []
            ws_direct, ws_forwarded = [], []
            for _ in range(_ROUNDS):
                direct.append(_read_backlog(on_a, on_a, pids))
                forwarded.append(_read_backlog(on_a, on_b, pids))
                ws_direct.append(asyncio.run(_ws_backlog(a.url, _placed_on(on_a), pids)))
                ws_forwarded.append(asyncio.run(_ws_backlog(b.url, _placed_on(on_a), pids)))
            empty_direct = min(_empty_polls(on_a, on_a, pids) for _ in range(_ROUNDS))
            empty_forwarded = min(_empty_polls(on_a, on_b, pids) for _ in range(_ROUNDS))
            _wait_for_node(on_b, "node-c")
            all_pids = (a.pid, b.pid, c.pid)
            one_node, three_nodes = [], []
            for _ in range(_ROUNDS):
                one_node.append(asyncio.run(_produce_through([a.url], all_pids)))
                three_nodes.append(asyncio.run(_produce_through([a.url, b.url, c.url], all_pids)))
            ceiling = producer_ceiling(bootstrap, min(duration, 5.0))
    best_one = max(one_node)
    best_three = max(three_nodes)
    return {
        "cluster-forwarded-long-poll-consume": _entry(
            max(rate for rate, _ in forwarded),
            "events/s",
            max(rate for rate, _ in direct),
            target_ratio=0.8,
            direct_runs=[round(rate) for rate, _ in direct],
            forwarded_runs=[round(rate) for rate, _ in forwarded],
        ),
        # CPU time holds its meaning on a busy machine, where rates swing 2-3x.
        "cluster-forwarded-long-poll-cpu-per-event": _entry(
            min(cpu for _, cpu in forwarded),
            "µs CPU/event (both nodes)",
            min(cpu for _, cpu in direct),
            target_ratio=1.25,
        ),
        "cluster-forwarded-empty-poll-cpu": _entry(
            empty_forwarded, "µs CPU/request (both nodes)", empty_direct
        ),
        "cluster-forwarded-websocket-consume": _entry(
            max(rate for rate, _ in ws_forwarded),
            "events/s",
            max(rate for rate, _ in ws_direct),
            target_ratio=0.8,
            direct_runs=[round(rate) for rate, _ in ws_direct],
            forwarded_runs=[round(rate) for rate, _ in ws_forwarded],
        ),
        "cluster-forwarded-websocket-cpu-per-event": _entry(
            min(cpu for _, cpu in ws_forwarded),
            "µs CPU/event (both nodes)",
            min(cpu for _, cpu in ws_direct),
            target_ratio=1.25,
        ),
        "cluster-produce-three-nodes": _entry(
            best_three[0],
            "events/s",
            best_one[0],
            target_ratio=1.0,
            one_node_runs=[round(rate) for rate, _ in one_node],
            three_node_runs=[round(rate) for rate, _ in three_nodes],
            # µs CPU per request each node (A, B, C) served; with one node, B and C
            # serve none and their figure is per request of the whole run (idle cost).
            one_node_cpu_per_request=best_one[1],
            three_node_cpu_per_request=best_three[1],
            events_per_request=_PRODUCE_BATCH,
        ),
        "cluster-producer-ceiling": _entry(ceiling, "records/s", ceiling),
    }


def _wait_for_node(http: httpx.Client, node_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = http.get("/admin/v1/nodes").json()
        if any(node["node_id"] == node_id and node["live"] for node in listed):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{node_id} never appeared live")
