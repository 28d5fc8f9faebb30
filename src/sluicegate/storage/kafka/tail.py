"""The node-wide tail: one consumer following every partition somebody waits on.

Long polls, WebSocket streams and state topics wait for records past a position. The
node's own appends wake them directly; records written by other nodes (or any Kafka
client) arrive here: the tail consumer is assigned each watched partition at the
position waited for, and reports the highest offset it fetched per partition, once per
``consume`` batch, to the loop. It keeps a partition assigned for a while after its last
waiter left, so a consumer that polls again and again does not churn the assignment.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError
from confluent_kafka import TopicPartition as KafkaPartition

from sluicegate.storage.kafka.assignments import KnownTopics
from sluicegate.storage.kafka.worker import Worker

__all__ = ["Tail"]

_CONSUME_BATCH = 1000
_CONSUME_SECONDS = 0.02
#: Seconds a partition stays watched after its last waiter.
_LINGER = 30.0

_Key = tuple[str, int]


class Tail:
    """Follows watched partitions; ``on_fetched({(kafka_topic, partition): high})``."""

    def __init__(
        self,
        config: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        on_fetched: Callable[[dict[_Key, int]], None],
        on_error: Callable[[KafkaError], None],
    ) -> None:
        self._loop = loop
        self._on_fetched = on_fetched
        self._on_error = on_error
        self._consumer = Consumer({**config, "error_cb": self._error})
        self._assignments = KnownTopics(self._consumer)
        self._changes: queue.SimpleQueue[tuple[_Key, int] | None] = queue.SimpleQueue()
        #: Watched partitions and when they were last asked for (loop side).
        self._watched: dict[_Key, float] = {}
        self.worker = Worker("kafka-tail", self._follow, loop)

    def start(self) -> None:
        self.worker.start()

    def watch(self, key: _Key, position: int) -> None:
        """Follow ``key`` from ``position`` (if not already followed)."""
        if key not in self._watched:
            self._changes.put((key, position))
        self._watched[key] = time.monotonic()

    def forget(self, key: _Key) -> None:
        """Stop following ``key`` (its topic is gone)."""
        if self._watched.pop(key, None) is not None:
            self._changes.put((key, -1))

    def forget_idle(self) -> None:
        """Stop following partitions nobody waited on for a while (call periodically)."""
        cutoff = time.monotonic() - _LINGER
        for key in [k for k, last in self._watched.items() if last < cutoff]:
            self.forget(key)

    async def close(self) -> None:
        self._changes.put(None)
        await self.worker.join()

    def _error(self, error: KafkaError) -> None:
        self._loop.call_soon_threadsafe(self._on_error, error)

    # -- the tail thread -------------------------------------------------------------

    def _follow(self) -> None:
        consumer = self._consumer
        assigned = 0
        try:
            while True:
                added: list[KafkaPartition] = []
                removed: list[KafkaPartition] = []
                while True:
                    try:
                        change = self._changes.get(
                            timeout=_CONSUME_SECONDS if not (assigned or added or removed) else 0
                        )
                    except queue.Empty:
                        break
                    if change is None:
                        return
                    (topic, partition), position = change
                    if position < 0:
                        removed.append(KafkaPartition(topic, partition))
                    else:
                        added.append(KafkaPartition(topic, partition, position))
                if removed:
                    consumer.incremental_unassign(removed)
                    self._assignments.forget(p.topic for p in removed)
                    assigned -= len(removed)
                if added:
                    self._assignments.incremental_assign(added)
                    assigned += len(added)
                if not assigned:
                    continue
                highs: dict[_Key, int] = {}
                for message in consumer.consume(_CONSUME_BATCH, _CONSUME_SECONDS):
                    offset = message.offset()
                    if message.error() is not None or offset is None:
                        continue  # end of partition, or an error librdkafka retries
                    key = (message.topic() or "", message.partition() or 0)
                    highs[key] = max(highs.get(key, 0), offset + 1)
                if highs:
                    self._loop.call_soon_threadsafe(self._on_fetched, highs)
        finally:
            consumer.close()
