"""A consumer group as this node sees it: its instances here and their delivery counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluicegate.core.consumers.counts import DeliveryCounts

if TYPE_CHECKING:
    from sluicegate.core.consumers.instance import ConsumerInstance

__all__ = ["LocalGroup"]


class LocalGroup:
    """The instances of one storage group on this node; gone with its last instance."""

    __slots__ = ("counts", "instances", "name")

    def __init__(self, name: str) -> None:
        #: The group's name in storage (``Log.join_group``, committed offsets).
        self.name = name
        self.instances: dict[str, ConsumerInstance] = {}
        self.counts = DeliveryCounts()

    def changed(self, source: ConsumerInstance | None = None) -> None:
        """Membership or a subscription changed: every other instance looks again now.

        A long-polling instance would otherwise learn of partitions it was just given
        (say, from an instance that was deleted) only at its poll's timeout.
        """
        for instance in self.instances.values():
            if instance is not source:
                instance.wake()
