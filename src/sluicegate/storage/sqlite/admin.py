"""Topic changes, each an ``Exclusive`` write: create, alter, purge, delete."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import msgspec

from sluicegate.core.topics import Topic, TopicSpec, TopicUpdate
from sluicegate.errors import BadRequest, TopicExists
from sluicegate.storage.sqlite.catalog import Catalog, PartitionState, TopicState
from sluicegate.storage.sqlite.writer import Exclusive
from sluicegate.storage.topic_rules import updated_topic

__all__ = ["AlterTopic", "CreateTopic", "DeleteTopic", "PurgeTopic"]

_INSERT_PARTITION = (
    "INSERT INTO partitions (topic_id, partition, log_start_offset) VALUES (?, ?, 0)"
)


class CreateTopic(Exclusive[Topic]):
    """A new topic with its partitions; the id comes from AUTOINCREMENT, never reused."""

    def __init__(self, catalog: Catalog, spec: TopicSpec, now: int) -> None:
        self._catalog = catalog
        self._spec = spec
        self._now = now
        self._id = 0

    def plan(self) -> bool:
        name = self._spec.name
        if name in self._catalog.by_name:
            raise TopicExists(f"topic {name!r} already exists", topic=name)
        if "." in name or "_" in name:
            # Kafka refuses two names that differ only in '.' and '_' (its metrics names
            # write both alike): refused here too, so that topics can move to Kafka.
            alike = name.replace(".", "_")
            for other in self._catalog.by_name:
                if other.replace(".", "_") == alike:
                    raise BadRequest(
                        f"topic {name!r} collides with existing topic {other!r}: names "
                        "that differ only in '.' and '_' are one name to Kafka",
                        topic=name,
                    )
        return True

    def work(self, conn: sqlite3.Connection) -> None:
        spec = self._spec
        cursor = conn.execute(
            "INSERT INTO topics (name, partitions, retention_ms, retention_bytes, config,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                spec.name,
                spec.partitions,
                spec.retention_ms,
                spec.retention_bytes,
                msgspec.json.encode(spec.config).decode(),
                self._now,
                self._now,
            ),
        )
        assert cursor.lastrowid is not None  # an INSERT into a rowid table always has one
        self._id = cursor.lastrowid
        conn.executemany(_INSERT_PARTITION, [(self._id, p) for p in range(spec.partitions)])

    def apply(self) -> Topic:
        spec = self._spec
        topic = Topic(
            name=spec.name,
            id=self._id,
            partitions=spec.partitions,
            retention_ms=spec.retention_ms,
            retention_bytes=spec.retention_bytes,
            config=spec.config,
            created_at=self._now,
            updated_at=self._now,
        )
        partitions = tuple(PartitionState(self._id, p, 0, 0, 0) for p in range(spec.partitions))
        self._catalog.put(TopicState(topic, partitions))
        return topic


class AlterTopic(Exclusive[Topic]):
    """New settings; added partitions start empty, and groups rebalance onto them."""

    def __init__(
        self,
        catalog: Catalog,
        name: str,
        update: TopicUpdate,
        now: int,
        on_grown: Callable[[str], None],
    ) -> None:
        self._catalog = catalog
        self._name = name
        self._update = update
        self._now = now
        self._on_grown = on_grown
        self._state: TopicState | None = None
        self._topic: Topic | None = None

    def plan(self) -> bool:
        state = self._catalog.get(self._name)
        self._state = state
        self._topic = updated_topic(state.topic, self._update, self._now)
        return True

    def work(self, conn: sqlite3.Connection) -> None:
        assert self._state is not None  # plan() ran
        assert self._topic is not None
        new, old = self._topic, self._state.topic
        conn.execute(
            "UPDATE topics SET partitions = ?, retention_ms = ?, retention_bytes = ?,"
            " config = ?, updated_at = ? WHERE id = ?",
            (
                new.partitions,
                new.retention_ms,
                new.retention_bytes,
                msgspec.json.encode(new.config).decode(),
                new.updated_at,
                new.id,
            ),
        )
        added = range(old.partitions, new.partitions)
        conn.executemany(_INSERT_PARTITION, [(new.id, p) for p in added])

    def apply(self) -> Topic:
        assert self._state is not None  # plan() ran
        assert self._topic is not None
        state, topic = self._state, self._topic
        grown = topic.partitions > state.topic.partitions
        state.partitions += tuple(
            PartitionState(topic.id, p, 0, 0, 0)
            for p in range(state.topic.partitions, topic.partitions)
        )
        state.retopic(topic)
        self._catalog.put(state)
        if grown:
            self._on_grown(topic.name)
        return topic


class PurgeTopic(Exclusive[None]):
    """Every record gone; each low watermark jumps to its high watermark."""

    def __init__(self, catalog: Catalog, name: str) -> None:
        self._catalog = catalog
        self._name = name
        self._state: TopicState | None = None

    def plan(self) -> bool:
        self._state = self._catalog.get(self._name)
        return True

    def work(self, conn: sqlite3.Connection) -> None:
        assert self._state is not None  # plan() ran
        topic_id = self._state.topic.id
        conn.execute("DELETE FROM chunks WHERE topic_id = ?", (topic_id,))
        # No append is in flight during an exclusive write, so ``high`` is final here.
        conn.executemany(
            "UPDATE partitions SET log_start_offset = ? WHERE topic_id = ? AND partition = ?",
            [(p.high, topic_id, p.index) for p in self._state.partitions],
        )

    def apply(self) -> None:
        assert self._state is not None  # plan() ran
        for partition in self._state.partitions:
            partition.low = partition.high


class DeleteTopic(Exclusive[None]):
    """The topic, its records, partitions and committed offsets gone."""

    def __init__(
        self, catalog: Catalog, name: str, on_deleted: Callable[[TopicState], None]
    ) -> None:
        self._catalog = catalog
        self._name = name
        self._on_deleted = on_deleted
        self._state: TopicState | None = None

    def plan(self) -> bool:
        self._state = self._catalog.get(self._name)
        return True

    def work(self, conn: sqlite3.Connection) -> None:
        assert self._state is not None  # plan() ran
        key = (self._state.topic.id,)
        for table in ("chunks", "partitions", "group_offsets"):
            conn.execute(f"DELETE FROM {table} WHERE topic_id = ?", key)
        conn.execute("DELETE FROM topics WHERE id = ?", key)

    def apply(self) -> None:
        assert self._state is not None  # plan() ran
        self._catalog.remove(self._state)
        self._on_deleted(self._state)
