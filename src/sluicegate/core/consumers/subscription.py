"""What a consumer instance reads: a set of topics that may grow, and a filter per topic.

The consumer core knows nothing of CloudEvents: the caller says which topics an
instance subscribes to now and which of their records it receives (CloudEvents: the
types the client may consume, where one topic holds several types). ``version()``
changes whenever ``topics()`` may answer differently (an event type produced for the
first time), and every instance compares it at each read, re-joining its group if its
topics grew: none needs a restart. To wake the instances waiting in a long poll at once,
the caller also calls ``ConsumerInstances.subscriptions_changed``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sluicegate.core.records import Record

__all__ = ["RecordFilter", "Subscription"]

#: The records of a chunk read from one partition that are delivered, in their order;
#: the others are skipped (and committed past). A chunk at a time, not a record at a
#: time: a filter that can decide for a whole chunk at once (every record of one event
#: type, say) then makes no Python call per record.
RecordFilter = Callable[[list[Record]], list[Record]]


class Subscription(Protocol):
    """The topics an instance reads and the records of each that it receives."""

    def version(self) -> int:
        """A number that changes whenever ``topics`` may answer differently."""
        ...

    async def topics(self) -> frozenset[str]:
        """The topics to read now; each must exist."""
        ...

    def filter(self, topic: str) -> RecordFilter | None:
        """The filter of ``topic``'s records; ``None`` delivers every record (fastest)."""
        ...

    def every_instance(self, topic: str) -> bool:
        """Whether every instance reads all of ``topic``, each from a position of its own,
        instead of the group sharing its partitions out (see ``instance``)."""
        ...
