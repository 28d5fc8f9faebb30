"""What the log knows about its topics and partitions, in memory, owned by the loop.

The catalog is loaded once at open and changed only by the writer, on the event loop,
after the transaction that changes the database has committed. Readers therefore never
see a watermark the database does not yet hold. ``PartitionState.next`` is the writer's
scratch pad: the offsets of the transaction being committed, rolled back to ``high`` if
that transaction fails.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from sluicegate.core.records import TopicPartition, Watermarks
from sluicegate.core.topics import Topic, is_internal
from sluicegate.errors import UnknownTopic
from sluicegate.storage.topic_rules import invalid_partition, max_message_bytes

__all__ = ["Catalog", "PartitionState", "TopicState", "load_catalog", "topic_from_row"]


class PartitionState:
    """Watermarks and the timestamp floor of one partition."""

    __slots__ = ("high", "index", "last_ts", "low", "next", "topic_id")

    def __init__(self, topic_id: int, index: int, low: int, high: int, last_ts: int) -> None:
        self.topic_id = topic_id
        self.index = index
        self.low = low
        self.high = high
        self.next = high
        #: Timestamps never go below this, even if the wall clock steps back.
        self.last_ts = last_ts

    def watermarks(self) -> Watermarks:
        """The committed low and high watermark."""
        return Watermarks(low=self.low, high=self.high)


class TopicState:
    """A topic and the state of each of its partitions.

    One is kept per topic for as long as the server runs, so it is kept small: slots,
    and the partitions in a tuple (one object; a list is two), replaced as a whole on
    the rare change that adds partitions.
    """

    __slots__ = ("max_bytes", "partitions", "topic")

    def __init__(self, topic: Topic, partitions: tuple[PartitionState, ...]) -> None:
        self.partitions = partitions
        self.retopic(topic)

    def retopic(self, topic: Topic) -> None:
        """Take ``topic``'s new settings (an update)."""
        self.topic = topic
        #: ``max.message.bytes``, looked up once here rather than in each append.
        self.max_bytes = max_message_bytes(topic)

    def partition(self, index: int) -> PartitionState:
        """The partition, or ``InvalidPartition``."""
        if 0 <= index < len(self.partitions):
            return self.partitions[index]
        raise invalid_partition(self.topic.name, index, len(self.partitions))


def unknown_topic(name: str) -> UnknownTopic:
    """The error for a topic that does not exist."""
    return UnknownTopic(f"topic {name!r} does not exist", topic=name)


class Catalog:
    """Topics by name and by id; ``epoch`` changes whenever a topic is created or changed."""

    def __init__(self, topics: list[TopicState]) -> None:
        self.by_name: dict[str, TopicState] = {t.topic.name: t for t in topics}
        self.by_id: dict[int, TopicState] = {t.topic.id: t for t in topics}
        #: An append validated at one epoch needs no new validation at the same epoch.
        self.epoch = 0
        #: The last sorted listing, and the (epoch, include_internal) it was made at.
        self._listed: tuple[tuple[int, bool], list[Topic]] | None = None

    def get(self, name: str) -> TopicState:
        """The topic called ``name``, or ``UnknownTopic``."""
        state = self.by_name.get(name)
        if state is None:
            raise unknown_topic(name)
        return state

    def get_by_id(self, topic_id: int) -> TopicState:
        """The topic with this id, or ``UnknownTopic``."""
        state = self.by_id.get(topic_id)
        if state is None:
            raise UnknownTopic(f"no topic with id {topic_id}", topic_id=topic_id)
        return state

    def partition(self, tp: TopicPartition) -> PartitionState:
        """The state of ``tp``, or ``UnknownTopic`` / ``InvalidPartition``."""
        return self.get(tp.topic).partition(tp.partition)

    def topics(self, *, include_internal: bool) -> list[Topic]:
        """Topics sorted by name, internal ones only if asked; a new list each time.

        Sorted again only after a topic changed: with 10,000 topics the sort is most of
        what listing them costs, and lists are asked for far more often than topics change.
        """
        key = (self.epoch, include_internal)
        if self._listed is None or self._listed[0] != key:
            listed = sorted(
                (
                    s.topic
                    for s in self.by_name.values()
                    if include_internal or not is_internal(s.topic.name)
                ),
                key=lambda topic: topic.name,
            )
            self._listed = (key, listed)
        return list(self._listed[1])

    def put(self, state: TopicState) -> None:
        """Add a topic or replace it (same id) after its change committed."""
        self.by_name[state.topic.name] = state
        self.by_id[state.topic.id] = state
        self.epoch += 1

    def remove(self, state: TopicState) -> None:
        """Forget a topic after its deletion committed."""
        del self.by_name[state.topic.name]
        del self.by_id[state.topic.id]
        self.epoch += 1


def topic_from_row(row: tuple[Any, ...]) -> Topic:
    """A ``Topic`` from ``SELECT id, name, partitions, retention_ms, retention_bytes, ...``."""
    topic_id, name, partitions, retention_ms, retention_bytes, config, created, updated = row
    return Topic(
        name=name,
        id=topic_id,
        partitions=partitions,
        retention_ms=retention_ms,
        retention_bytes=retention_bytes,
        config=msgspec.json.decode(config),
        created_at=created,
        updated_at=updated,
    )


def load_catalog(conn: sqlite3.Connection) -> Catalog:
    """Read every topic and recover each partition's watermarks (on the writer's thread)."""
    topics = [
        topic_from_row(row)
        for row in conn.execute(
            "SELECT id, name, partitions, retention_ms, retention_bytes, config, created_at,"
            " updated_at FROM topics"
        )
    ]
    starts: dict[tuple[int, int], int] = {
        (topic_id, partition): start
        for topic_id, partition, start in conn.execute(
            "SELECT topic_id, partition, log_start_offset FROM partitions"
        )
    }
    last_chunk = (
        "SELECT end_offset, ts FROM chunks WHERE topic_id = ? AND partition = ?"
        " ORDER BY end_offset DESC LIMIT 1"
    )
    states = []
    for topic in topics:
        partitions = []
        for index in range(topic.partitions):
            low = starts.get((topic.id, index), 0)
            end, last_ts = conn.execute(last_chunk, (topic.id, index)).fetchone() or (low, 0)
            partitions.append(PartitionState(topic.id, index, low, max(end, low), last_ts))
        states.append(TopicState(topic, tuple(partitions)))
    return Catalog(states)
