"""What the in-process consumer-core benchmarks share: a subscription to one topic, and a
wait for new records that never ends (each read finds a backlog)."""

from __future__ import annotations

import asyncio

from sluicegate.core.consumers.subscription import RecordFilter

__all__ = ["OneTopic", "never"]


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


async def never() -> None:
    await asyncio.Event().wait()
