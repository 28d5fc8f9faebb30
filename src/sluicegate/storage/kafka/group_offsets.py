"""Consumer groups on Kafka: membership is this node's, committed offsets are Kafka's.

A member is an HTTP consumer this node serves (``storage.groups``), not a Kafka consumer:
Kafka's group protocol would cost a connection set and a heartbeat thread per member.
Committed offsets go to Kafka's own ``__consumer_offsets`` (fenced by the coordinator
first when a member commits), so Kafka's tools show each group's lag.
"""

from __future__ import annotations

from collections.abc import Mapping

from sluicegate.core.records import TopicPartition
from sluicegate.storage.groups import GroupCoordinator, check_offsets
from sluicegate.storage.kafka.node import KafkaNode
from sluicegate.storage.kafka.topics import KafkaTopics

__all__ = ["GroupOffsets"]


class GroupOffsets:
    """``commit_offsets`` and ``committed_offsets`` of the Kafka log."""

    def __init__(self, node: KafkaNode, topics: KafkaTopics, groups: GroupCoordinator) -> None:
        self._node = node
        self._topics = topics
        self._groups = groups

    def _group(self, group: str) -> str:
        return self._node.prefix + group

    async def commit(
        self,
        group: str,
        offsets: Mapping[TopicPartition, int],
        *,
        member_id: str | None,
        generation: int | None,
    ) -> None:
        """Store the next offsets in ``__consumer_offsets``, fenced if a member is given."""
        admin = self._node.running_admin()
        check_offsets(offsets)
        keyed = {self._topics.checked(tp)[1]: offset for tp, offset in offsets.items()}
        if member_id is not None:
            self._groups.check_owner(group, member_id, generation, offsets)
        if keyed:
            await admin.commit(self._group(group), keyed)

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        """Committed next offsets of ``group`` on ``topic``, by partition."""
        admin = self._node.running_admin()
        found = await self._topics.known(topic)
        kafka_name = self._topics.kafka_name(topic)
        return await admin.committed(self._group(group), kafka_name, found.partitions)
