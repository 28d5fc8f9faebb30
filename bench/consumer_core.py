"""What the in-process consumer-core benchmarks share: a backlog to read, a subscription to
one topic, and a wait for new records that never ends (each read finds the backlog)."""

from __future__ import annotations

import asyncio

from sluicegate.core.consumers.subscription import RecordFilter
from sluicegate.core.records import NewRecord
from sluicegate.core.topics import TopicSpec
from sluicegate.storage.base import Log

__all__ = ["OneTopic", "fill_backlog", "never"]


class OneTopic:
    """A consumer instance's subscription: one topic, every record of it."""

    def __init__(self, topic: str) -> None:
        self._topics = frozenset({topic})

    def version(self) -> int:
        return 0

    async def topics(self) -> frozenset[str]:
        return self._topics

    def filter(self, topic: str) -> RecordFilter | None:
        return None

    def every_instance(self, topic: str) -> bool:
        return False


async def never() -> None:
    await asyncio.Event().wait()


async def fill_backlog(log: Log, topic: str, partitions: int, count: int) -> None:
    """``count`` records of one small JSON value, round-robin over ``partitions`` of a new
    ``topic``, appended 5,000 at a time."""
    await log.create_topic(TopicSpec(name=topic, partitions=partitions))
    value = b'{"order": 12345, "note": "' + b"x" * 60 + b'"}'
    for start in range(0, count, 5000):
        await log.append(
            [
                NewRecord(topic=topic, partition=n % partitions, key=None, value=value)
                for n in range(start, min(start + 5000, count))
            ]
        )
