"""What every backend accepts as a topic's settings, and how an update changes a topic."""

from __future__ import annotations

import msgspec

from sluicegate.core.topics import (
    MAX_RETENTION,
    Topic,
    TopicSpec,
    TopicUpdate,
    validate_topic_name,
)
from sluicegate.errors import BadRequest, InvalidPartition, OffsetOutOfRange

__all__ = [
    "MAX_PARTITIONS",
    "check_partitions",
    "invalid_partition",
    "offset_out_of_range",
    "updated_topic",
    "validate_spec",
]

#: More partitions than this is a typo, not a plan; Kafka's own tooling warns far below.
MAX_PARTITIONS = 10_000


def _check_retention(field: str, value: int | None) -> None:
    # Past a signed 64-bit integer no backend can store it (SQLite's INTEGER, Kafka's
    # retention.ms): refused here, never left to fail a commit.
    if value is not None and not 0 <= value <= MAX_RETENTION:
        raise BadRequest(
            f"{field} must be from 0 to {MAX_RETENTION} or null (keep forever), got {value}",
            field=field,
        )


def check_partitions(count: int, minimum: int) -> None:
    """Raise ``BadRequest`` unless ``minimum <= count <= MAX_PARTITIONS``."""
    if not minimum <= count <= MAX_PARTITIONS:
        grow = " (partitions can only grow)" if minimum > 1 else ""
        raise BadRequest(
            f"partitions must be between {minimum} and {MAX_PARTITIONS}{grow}, got {count}",
            field="partitions",
        )


def validate_spec(spec: TopicSpec) -> None:
    """Raise ``BadRequest`` (or ``InvalidTopicName``) for a spec no backend should accept."""
    validate_topic_name(spec.name)
    check_partitions(spec.partitions, 1)
    _check_retention("retention_ms", spec.retention_ms)
    _check_retention("retention_bytes", spec.retention_bytes)


def updated_topic(old: Topic, update: TopicUpdate, now: int) -> Topic:
    """``old`` with ``update`` applied at ``now`` (µs); ``BadRequest`` if it is invalid."""
    changes: dict[str, object] = {"updated_at": now}
    if update.partitions is not msgspec.UNSET:
        check_partitions(update.partitions, old.partitions)
        changes["partitions"] = update.partitions
    if update.retention_ms is not msgspec.UNSET:
        _check_retention("retention_ms", update.retention_ms)
        changes["retention_ms"] = update.retention_ms
    if update.retention_bytes is not msgspec.UNSET:
        _check_retention("retention_bytes", update.retention_bytes)
        changes["retention_bytes"] = update.retention_bytes
    if update.config is not msgspec.UNSET:
        changes["config"] = update.config
    return msgspec.structs.replace(old, **changes)


def compacted(topic: Topic) -> bool:
    """Whether ``topic`` is compacted (its ``cleanup.policy`` names ``compact``): Kafka
    refuses a record without a key there, which embedded storage refuses alike."""
    policy = topic.config.get("cleanup.policy")
    return isinstance(policy, str) and "compact" in policy


def keyless_refused(topic: str) -> BadRequest:
    """The error for a record without a key in a compacted topic."""
    return BadRequest(
        f"topic {topic!r} is compacted (cleanup.policy compact): every record needs a key",
        topic=topic,
    )


def invalid_partition(topic: str, index: int, count: int) -> InvalidPartition:
    """The error for a partition the topic does not have, naming the ones it has."""
    return InvalidPartition(
        f"partition {index} does not exist: topic {topic!r} has partitions 0-{count - 1}",
        topic=topic,
        partition=index,
    )


def offset_out_of_range(
    topic: str, partition: int, offset: int, low: int, high: int
) -> OffsetOutOfRange:
    """The error for a read from a position outside a partition's watermarks."""
    return OffsetOutOfRange(
        f"offset {offset} is out of range for {topic}/{partition}: "
        f"expected {low} (low watermark) to {high} (high watermark)",
        topic=topic,
        partition=partition,
        offset=offset,
        low=low,
        high=high,
    )
