"""Gateway state (schemas, clients, keys) kept in internal topics of the log itself.

This is Confluent Schema Registry's design (its ``_schemas`` topic): each kind of state
is a single-partition topic whose records are ``key → JSON value`` and whose tombstones
(``value = None``) delete a key. Every node replays the topic into memory on start and
follows it afterwards, so the same code works on the embedded SQLite log and on a Kafka
cluster shared by several gateway nodes, and a backup of the log is a backup of the state.

Writes go through the log and are applied only when read back (``put`` appends, then
catches up to the high watermark), so every node applies the same changes in the same
order and a writer reads its own write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

import msgspec

from sluicegate.core.records import NewRecord, Record, TopicPartition
from sluicegate.core.topics import INTERNAL_PREFIX, TopicSpec
from sluicegate.errors import ShuttingDown, TopicExists
from sluicegate.storage.base import Log

__all__ = ["StateTopic"]

T = TypeVar("T")

_READ_BATCH = 1000
_READ_BYTES = 4 * 1024 * 1024


class StateTopic(Generic[T]):
    """A durable ``str → T`` map backed by the internal topic ``__sluicegate_<name>``."""

    def __init__(
        self,
        log: Log,
        name: str,
        value_type: type[T],
        *,
        on_change: Callable[[str, T | None], None] | None = None,
    ) -> None:
        self._log = log
        self.topic = f"{INTERNAL_PREFIX}_{name}"
        self._tp = TopicPartition(self.topic, 0)
        self._decoder = msgspec.json.Decoder(value_type)
        self._encoder = msgspec.json.Encoder()
        self._items: dict[str, T] = {}
        self._position = 0
        self._catch_up_lock = asyncio.Lock()
        self._on_change = on_change

    async def load(self) -> None:
        """Create the topic if needed and replay it into memory."""
        with contextlib.suppress(TopicExists):
            await self._log.create_topic(
                TopicSpec(name=self.topic, partitions=1, config={"cleanup.policy": "compact"})
            )
        self._position = (await self._log.watermarks(self._tp)).low
        await self.catch_up()

    async def catch_up(self) -> None:
        """Apply every record up to the current high watermark."""
        async with self._catch_up_lock:
            high = (await self._log.watermarks(self._tp)).high
            while self._position < high:
                records = await self._log.read(
                    self._tp, self._position, max_records=_READ_BATCH, max_bytes=_READ_BYTES
                )
                if not records:
                    break
                for record in records:
                    self._apply(record)
                self._position = records[-1].offset + 1

    async def follow(self) -> None:
        """Apply changes written by other nodes as they arrive.

        Runs until cancelled, or returns when the log shuts down.
        """
        while True:
            if await self._log.wait({self._tp: self._position}, timeout=30.0):
                await self.catch_up()
                continue
            # No data: the wait timed out, or close() woke us. A closed log answers every
            # wait at once, so looping on would spin without ever yielding.
            try:
                await self._log.check()
            except ShuttingDown:
                return
            await self.catch_up()

    def _apply(self, record: Record) -> None:
        if record.key is None:
            return
        key = record.key.decode()
        if record.value is None:
            self._items.pop(key, None)
            value: T | None = None
        else:
            value = self._decoder.decode(record.value)
            self._items[key] = value
        if self._on_change is not None:
            self._on_change(key, value)

    async def put(self, key: str, value: T) -> None:
        """Durably set ``key``; visible here when this returns."""
        await self._write(key, self._encoder.encode(value))

    async def put_many(self, items: Sequence[tuple[str, T]]) -> None:
        """Durably set several keys in one append: all of them or none."""
        encode = self._encoder.encode
        await self._log.append(
            [
                NewRecord(topic=self.topic, partition=0, key=key.encode(), value=encode(value))
                for key, value in items
            ]
        )
        await self.catch_up()

    async def delete(self, key: str) -> None:
        """Durably remove ``key`` (a tombstone)."""
        await self._write(key, None)

    async def _write(self, key: str, value: bytes | None) -> None:
        await self._log.append(
            [NewRecord(topic=self.topic, partition=0, key=key.encode(), value=value)]
        )
        await self.catch_up()

    def get(self, key: str) -> T | None:
        return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._items.items()))

    def values(self) -> Iterator[T]:
        return iter(list(self._items.values()))
