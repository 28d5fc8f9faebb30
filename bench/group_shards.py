"""What group shards cost: a claim on Kafka, and the commit fence in the consumer core.
Run: ``python -m bench.run --only group-shards``.

- ``group-shards-claim``: milliseconds (wall) for a node to claim a free shard on the
  Kafka broker (``GroupShards.acquire``: the claim appended, the topic read back to its
  end), median of ``CLAIMS`` claims, against one heartbeat write in the same run
  (``Membership.beat``: a plain ``StateTopic.put``). Paid by the first consumer of a group
  whose shard nobody holds, and once per shard after a node dies; never per request.
- ``group-shards-fenced-confirm``: the consumer core in process on the SQLite log,
  ``BACKLOG`` events read in batches of ``BATCH`` with a confirmation (a commit) after each,
  with every commit fenced by the lease (``GroupShards.check_held``), in events per CPU
  second of this process (``time.process_time``, which other processes on a busy machine
  do not inflate), median of ``ROUNDS`` alternating rounds, against the same without
  placement; ``check_held_ns``: the fence alone, CPU nanoseconds per call.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.consumer_core import OneTopic, fill_backlog, never
from bench.http_produce import _entry
from bench.kafka_produce import kafka_cluster
from sluicegate.config import ClusterSettings, KafkaSettings, load_settings
from sluicegate.core.consumers.registry import ConsumerInstances
from sluicegate.core.gateway import Gateway
from sluicegate.core.group_shards import GroupShards
from sluicegate.core.membership import Membership
from sluicegate.storage.base import Log, running
from sluicegate.storage.factory import open_log
from sluicegate.storage.kafka import KafkaLog

__all__ = ["run"]

CLAIMS = 32
BACKLOG = 30_000
PARTITIONS = 12
BATCH = 100
ROUNDS = 5
TOPIC = "bench.shards"


async def _shards(log: Log, node_id: str) -> GroupShards:
    # No heartbeat task runs here: a timeout longer than the bench keeps this node live.
    settings = ClusterSettings(
        node_id=node_id,
        advertised_url="http://bench:1",
        heartbeat_interval=1800.0,
        heartbeat_timeout=3600.0,
        group_shards=64,
    )
    membership = Membership(log, settings, shared=True)
    await membership.start()
    shards = GroupShards(log, membership, settings)
    await shards.load()
    return shards


async def _claims(bootstrap: str) -> dict[str, Any]:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap, topic_prefix=f"bench-shards-{uuid.uuid4().hex[:8]}."
    )
    async with running(KafkaLog(settings, node_id="bench")) as log:
        shards = await _shards(log, "bench")
        membership = shards._membership
        groups: dict[int, str] = {}
        for n in range(10_000):
            groups.setdefault(shards.shard(f"ce/bench/g{n}"), f"ce/bench/g{n}")
        claim_ms, beat_ms = [], []
        for group in list(groups.values())[:CLAIMS]:
            started = time.perf_counter()
            await shards.acquire(group)
            claim_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await membership.beat()
            beat_ms.append((time.perf_counter() - started) * 1000)
    claim, beat = statistics.median(claim_ms), statistics.median(beat_ms)
    print(f"claim: {claim:.1f} ms, heartbeat write: {beat:.1f} ms (medians of {CLAIMS})")
    return _entry(claim, "ms", beat, claims=CLAIMS, baseline_is="one heartbeat write")


async def _read_all(instances: ConsumerInstances, group: str) -> None:
    instance = await instances.create("bench", group, OneTopic(TOPIC))
    read = 0
    while read < BACKLOG:
        batch = await instance.next_batch(BATCH, 0, never)
        read += len(batch)
        await instance.confirm()
    await instances.discard(instance)


async def _fenced(data_dir: Path) -> dict[str, Any]:
    settings = load_settings(environ={}, overrides={"storage": {"data_dir": str(data_dir)}})
    async with running(open_log(settings)) as log:
        gateway = Gateway(settings, log)
        await gateway.start()
        await fill_backlog(log, TOPIC, PARTITIONS, BACKLOG)
        instances = gateway.consumers
        # The same log shared by "several nodes": this one holds every group it is asked.
        placement = await _shards(log, "bench")
        rates: dict[bool, list[float]] = {False: [], True: []}
        for round_ in range(ROUNDS):
            for fenced in (False, True) if round_ % 2 == 0 else (True, False):
                instances.placement = placement if fenced else None
                started = time.process_time()
                await _read_all(instances, f"ce/bench/g{round_}-{fenced}")
                rates[fenced].append(BACKLOG / (time.process_time() - started))
        # The fence alone, per call (one per commit): CPU nanoseconds.
        calls = 100_000
        started = time.process_time()
        for _ in range(calls):
            placement.check_held("ce/bench/g0-True")
        check_ns = (time.process_time() - started) / calls * 1e9
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    print(f"fenced confirm: {on:,.0f} vs {off:,.0f} events/cpu-s; check_held {check_ns:,.0f} ns")
    return _entry(
        on,
        "events/cpu-s",
        off,
        events=BACKLOG,
        batch=BATCH,
        rounds=ROUNDS,
        clock="process CPU time",
        target_ratio=0.95,
        check_held_ns=round(check_ns),
    )


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Both figures (bounded by their counts, not ``duration``)."""
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as data_dir:
        results["group-shards-fenced-confirm"] = asyncio.run(_fenced(Path(data_dir)))
    with kafka_cluster() as bootstrap:
        results["group-shards-claim"] = asyncio.run(_claims(bootstrap))
    return results
