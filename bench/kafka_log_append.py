"""Kafka mode below HTTP: ``KafkaLog.append`` of batches of 100 records, 64 tasks at once.

- ``kafka-log-batch-100``: records/s that 64 tasks appending batches of 100 records (each
  a transaction's share, group-committed) get from the log alone, in this process, against
  the ceiling of the broker in the same run (``bench.kafka_produce.producer_ceiling``:
  confluent-kafka's producer alone, ``acks=all``, idempotent, records of the same size).
  What the gateway's request path costs on top is ``kafka-batch-100`` (``bench.kafka_produce``).

Run: ``python -m bench.run --only kafka-log``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from bench.http_produce import _entry
from bench.kafka_produce import BATCH, KEY, VALUE, kafka_cluster, producer_ceiling
from sluicegate.config import KafkaSettings
from sluicegate.core.records import NewRecord
from sluicegate.core.topics import TopicSpec
from sluicegate.storage.base import running
from sluicegate.storage.kafka import KafkaLog

__all__ = ["run"]

TASKS = 64


async def _appending(bootstrap: str, duration: float) -> float:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap, topic_prefix=f"bench-log-{uuid.uuid4().hex[:8]}."
    )
    async with running(KafkaLog(settings, node_id="bench")) as log:
        await log.create_topic(TopicSpec(name="batches"))
        batch = [NewRecord("batches", 0, KEY.encode(), VALUE.encode())] * BATCH
        await log.append(batch)  # warm-up: the producers' ids, metadata, the transaction
        appended = 0
        deadline = time.monotonic() + duration

        async def appender() -> None:
            nonlocal appended
            while time.monotonic() < deadline:
                await log.append(batch)
                appended += BATCH

        started = time.monotonic()
        await asyncio.gather(*(appender() for _ in range(TASKS)))
        return appended / (time.monotonic() - started)


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Appends of batches of 100 for ``duration`` seconds, then the producer alone."""
    with kafka_cluster() as bootstrap:
        rate = asyncio.run(_appending(bootstrap, duration))
        ceiling = producer_ceiling(bootstrap, duration)
    return {
        "kafka-log-batch-100": _entry(
            rate, "records/s", ceiling, tasks=TASKS, batch=BATCH, target_ratio=0.5
        )
    }
