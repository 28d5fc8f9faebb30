"""What a consumer instance reads: a set of topics that may grow, and a filter per topic.

The consumer core knows nothing of CloudEvents: the caller says which topics an
instance subscribes to now and which of their records it receives (CloudEvents: the
types the client may consume, where one topic holds several types). When the answer may
have changed — an event type produced for the first time — the caller tells the
registry (``ConsumerInstances.subscriptions_changed``) and every instance asks again at
its next read, re-joining its group if its topics grew; none needs a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sluicegate.core.records import Record

__all__ = ["RecordFilter", "Subscription"]

#: Whether a record is delivered; records it refuses are skipped (and committed past).
RecordFilter = Callable[[Record], bool]


class Subscription(Protocol):
    """The topics an instance reads and the records of each that it receives."""

    async def topics(self) -> frozenset[str]:
        """The topics to read now; each must exist."""
        ...

    def filter(self, topic: str) -> RecordFilter | None:
        """The filter of ``topic``'s records; ``None`` delivers every record (fastest)."""
        ...
