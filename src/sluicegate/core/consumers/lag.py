"""Each consumer group's lag and health, for /metrics and the admin API.

Per partition a group has read here: its committed position, the partition's high
watermark, the lag between them (events not confirmed yet, whether delivered or not),
and the age of the oldest of them (the log-append time of the first record at or after
the committed position). On Kafka a transaction's commit marker takes an offset: past the
last record, markers count as no lag; between records they count as one event each.
Per group: those summed by topic, the oldest age, its live instances, its
``max_deliveries`` and its deliveries, redeliveries and dead-letters.

Cost: a snapshot asks the log for each partition's watermarks once (several groups
reading one partition share the answer) and reads one record per lagging partition. It
is kept ``ttl`` seconds, so that a scrape every few seconds — or several scrapers —
cost one round of log calls per ``ttl``, not one per scrape per partition (on Kafka
each is a broker request).

The groups are the ones this node knows (``ConsumerInstances.groups``): live here, or
idle since their last instance here ended (bounded). A group served by another node
only is not listed here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec

from sluicegate.core.consumers.group import LocalGroup
from sluicegate.core.consumers.registry import ConsumerInstances
from sluicegate.core.records import TopicPartition, Watermarks
from sluicegate.errors import SluicegateError
from sluicegate.storage.base import Log

__all__ = ["DEFAULT_TTL", "GroupFigures", "GroupLag", "PartitionLag"]

#: Seconds a snapshot is served before the log is asked again.
DEFAULT_TTL = 5.0


# Untracked by the collector (``gc=False``): they hold no container, or none that could
# refer back to them, and a snapshot holds one per partition of every group known.
class PartitionLag(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    topic: str
    partition: int
    committed: int
    high: int
    lag: int
    #: Seconds since the oldest unconfirmed event was appended (0 without lag).
    oldest_unconfirmed_age: float


class GroupFigures(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    #: The storage group (``ce/<client>/<group>`` for CloudEvents).
    group: str
    instances: int
    max_deliveries: int
    lag: int
    lag_by_topic: dict[str, int]
    oldest_unconfirmed_age: float
    deliveries: int
    redeliveries: int
    dead_letters: int
    partitions: list[PartitionLag]


class GroupLag:
    """Snapshots of every known group's figures, at most one round of log calls per ttl."""

    def __init__(
        self,
        log: Log,
        instances: ConsumerInstances,
        *,
        ttl: float = DEFAULT_TTL,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._log = log
        self._instances = instances
        self.ttl = ttl
        self._monotonic = monotonic
        self._clock = clock
        self._taken = -float("inf")
        self._lock = asyncio.Lock()
        #: The last snapshot, by storage group name (``refresh`` renews it).
        self.snapshot: dict[str, GroupFigures] = {}

    async def refresh(self) -> dict[str, GroupFigures]:
        """The current snapshot, taken again if older than ``ttl``."""
        async with self._lock:
            if self._monotonic() - self._taken >= self.ttl:
                self.snapshot = await self._take()
                self._taken = self._monotonic()
        return self.snapshot

    async def _take(self) -> dict[str, GroupFigures]:
        marks: dict[TopicPartition, Watermarks | None] = {}
        appended: dict[tuple[TopicPartition, int], tuple[int, int] | None] = {}
        now_us = round(self._clock() * 1_000_000)
        out: dict[str, GroupFigures] = {}
        for group in self._instances.groups():
            partitions: list[PartitionLag] = []
            for tp, committed in sorted(group.committed.items()):
                if tp not in marks:
                    marks[tp] = await self._watermarks(tp)
                mark = marks[tp]
                if mark is None:
                    continue  # the topic is gone
                start = min(max(committed, mark.low), mark.high)
                lag = mark.high - start
                age = 0.0
                if lag:
                    key = (tp, start)
                    if key not in appended:
                        appended[key] = await self._first(tp, start)
                    first = appended[key]
                    if first is None:
                        lag = 0  # only offsets without a record (Kafka's commit markers)
                    else:
                        lag = mark.high - first[0]
                        age = max(0.0, (now_us - first[1]) / 1_000_000)
                partitions.append(
                    PartitionLag(
                        topic=tp.topic,
                        partition=tp.partition,
                        committed=committed,
                        high=mark.high,
                        lag=lag,
                        oldest_unconfirmed_age=age,
                    )
                )
            out[group.name] = _figures(group, partitions)
        return out

    async def _watermarks(self, tp: TopicPartition) -> Watermarks | None:
        try:
            return await self._log.watermarks(tp)
        except SluicegateError:
            return None

    async def _first(self, tp: TopicPartition, offset: int) -> tuple[int, int] | None:
        """The offset and append time of the first record at or after ``offset``."""
        try:
            records = await self._log.read(tp, offset, max_records=1, max_bytes=1)
        except SluicegateError:
            return None
        return (records[0].offset, records[0].timestamp) if records else None


def _figures(group: LocalGroup, partitions: list[PartitionLag]) -> GroupFigures:
    by_topic: dict[str, int] = {}
    for p in partitions:
        by_topic[p.topic] = by_topic.get(p.topic, 0) + p.lag
    return GroupFigures(
        group=group.name,
        instances=len(group.instances),
        max_deliveries=group.max_deliveries,
        lag=sum(by_topic.values()),
        lag_by_topic=by_topic,
        oldest_unconfirmed_age=max((p.oldest_unconfirmed_age for p in partitions), default=0.0),
        deliveries=group.deliveries,
        redeliveries=group.redeliveries,
        dead_letters=group.dead_letters,
        partitions=partitions,
    )
