"""The topic registry: what Kafka does not keep about a topic, in a compacted topic.

Kafka knows a topic's name, partitions and configs; sluicegate also needs a stable integer
id per topic (topics v1 addresses topics by it) and the dialects' free-form settings
(``Topic.config``). Both live in the single-partition, compacted topic
``<prefix>__sluicegate-topics``, in the format of ``core.state_topic`` (key = topic name,
value = JSON, tombstone = deleted), and every node replays and follows it. The registry
sits beneath the ``Log`` (it decides which topics the log has), so it is replayed with the
backend's own reader rather than through ``StateTopic``, which sits above it.

Ids come from the log itself: a topic's id is one past the offset of the record that
created it (ids start at 1, as SQLite's AUTOINCREMENT does). Offsets are unique and
never reused, even after compaction, so no two nodes can hand out the same id, and a
deleted topic's id never comes back. A record that creates a name that already exists
lost a race with another node and is ignored by every node alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import msgspec

from sluicegate.core.records import Record
from sluicegate.core.topics import Topic, is_internal
from sluicegate.errors import UnknownTopic

__all__ = ["REGISTRY_TOPIC", "TopicEntry", "TopicRegistry", "encode_entry"]

logger = logging.getLogger(__name__)

#: The registry's Kafka topic (after the prefix); outside the names gateways may create.
REGISTRY_TOPIC = "__sluicegate-topics"


class TopicEntry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A registry record's value. ``id`` is absent on the record that creates a topic."""

    id: Annotated[int, msgspec.Meta(ge=1)] | None = None
    partitions: Annotated[int, msgspec.Meta(ge=1)]
    retention_ms: int | None = None
    retention_bytes: int | None = None
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: int
    updated_at: int


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TopicEntry)


def encode_entry(topic: Topic, *, creating: bool) -> bytes:
    """The registry value for ``topic``; without an id if this record creates it."""
    return _encoder.encode(
        TopicEntry(
            id=None if creating else topic.id,
            partitions=topic.partitions,
            retention_ms=topic.retention_ms,
            retention_bytes=topic.retention_bytes,
            config=topic.config,
            created_at=topic.created_at,
            updated_at=topic.updated_at,
        )
    )


class TopicRegistry:
    """Topics by name and id, as the registry topic says up to ``position``."""

    def __init__(
        self,
        on_removed: Callable[[Topic], None],
        on_resized: Callable[[str], None],
        on_unreadable: Callable[[], None],
    ) -> None:
        self._on_removed = on_removed
        #: Told of a topic name whose partitions changed: created (perhaps again after a
        #: deletion), or grown, here or on another node.
        self._on_resized = on_resized
        #: Told of each record skipped as unreadable (the log counts them).
        self._on_unreadable = on_unreadable
        self.by_name: dict[str, Topic] = {}
        self.by_id: dict[int, Topic] = {}
        #: Ids of topics deleted since the replay began: a late update never revives one.
        self._deleted: set[int] = set()
        #: The next registry offset to apply.
        self.position = 0

    def partition_count(self, name: str) -> int:
        """Partitions of the topic ``name``; 0 if there is none."""
        found = self.by_name.get(name)
        return 0 if found is None else found.partitions

    def get(self, name: str) -> Topic:
        topic = self.by_name.get(name)
        if topic is None:
            raise UnknownTopic(f"topic {name!r} does not exist", topic=name)
        return topic

    def get_by_id(self, topic_id: int) -> Topic:
        topic = self.by_id.get(topic_id)
        if topic is None:
            raise UnknownTopic(f"no topic with id {topic_id}", topic_id=topic_id)
        return topic

    def topics(self, *, include_internal: bool) -> list[Topic]:
        return sorted(
            (t for t in self.by_name.values() if include_internal or not is_internal(t.name)),
            key=lambda t: t.name,
        )

    def apply(self, record: Record) -> None:
        """Apply one registry record (in offset order)."""
        self.position = record.offset + 1
        if record.key is None:
            return
        try:
            name = record.key.decode()
            entry = None if record.value is None else _decoder.decode(record.value)
        except (UnicodeDecodeError, msgspec.DecodeError) as exc:
            # Not the gateway's (anything with write access may append here): raising would
            # stop this node, and every node at its next start, as state_topic says.
            logger.error(
                "skipping registry record %d, which the gateway cannot read: %s", record.offset, exc
            )
            self._on_unreadable()
            return
        current = self.by_name.get(name)
        if entry is None:
            if current is not None:
                self._remove(current)
            return
        if entry.id is None:
            if current is not None:
                return  # another node created this name first
            topic_id = record.offset + 1
        elif current is not None and current.id == entry.id:
            topic_id = entry.id
        elif current is None and entry.id not in self._deleted and entry.id not in self.by_id:
            # The creating record was compacted away: this update carries the id.
            topic_id = entry.id
        else:
            return  # an update of a topic that was deleted (and perhaps created again)
        partitions = entry.partitions
        if current is not None and current.id == topic_id:
            # Kafka never shrinks a topic: an update written from an entry read before a
            # growth (``KafkaTopics.adopt_outside_changes``) keeps the growth.
            partitions = max(partitions, current.partitions)
        topic = Topic(
            name=name,
            id=topic_id,
            partitions=partitions,
            retention_ms=entry.retention_ms,
            retention_bytes=entry.retention_bytes,
            config=entry.config,
            created_at=entry.created_at,
            updated_at=entry.updated_at,
        )
        self.by_name[name] = topic
        self.by_id[topic_id] = topic
        if current is None or partitions != current.partitions:
            self._on_resized(name)

    def _remove(self, topic: Topic) -> None:
        del self.by_name[topic.name]
        self.by_id.pop(topic.id, None)
        self._deleted.add(topic.id)
        self._on_removed(topic)
