"""What every backend accepts as a topic's settings, and how an update changes a topic."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from sluicegate.core.records import NewRecord
from sluicegate.core.topics import (
    MAX_RETENTION,
    Topic,
    TopicSpec,
    TopicUpdate,
    validate_topic_name,
)
from sluicegate.errors import BadRequest, InvalidPartition, OffsetOutOfRange, PayloadTooLarge

__all__ = [
    "KAFKA_TOPIC_CONFIGS",
    "MAX_PARTITIONS",
    "check_partitions",
    "compacted",
    "config_text",
    "invalid_partition",
    "keyless_refused",
    "max_message_bytes",
    "offset_out_of_range",
    "record_batch_bytes",
    "too_large",
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


def config_text(value: object) -> str:
    """A topic config's value as Kafka takes it: booleans in lower case, the rest as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _whole(low: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            return low <= int(text) <= 2**63 - 1
        except ValueError:
            return False

    return check


def _ratio(text: str) -> bool:
    try:
        return 0.0 <= float(text) <= 1.0
    except ValueError:
        return False


def _policy(text: str) -> bool:
    parts = [part.strip() for part in text.split(",")]
    return bool(parts) and all(part in ("compact", "delete") for part in parts)


#: The Kafka topic configs a topic's ``config`` may carry (Kafka applies them; embedded
#: storage keeps them), each with what Kafka takes for it. Checked on both backends, so
#: that a topic embedded storage took would be taken by Kafka too.
KAFKA_TOPIC_CONFIGS: Mapping[str, tuple[Callable[[str], bool], str]] = {
    "cleanup.policy": (_policy, "delete, compact, or both separated by a comma"),
    "compression.type": (
        lambda text: text in ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
        "uncompressed, zstd, lz4, snappy, gzip or producer",
    ),
    "delete.retention.ms": (_whole(0), "a whole number of milliseconds, >= 0"),
    "max.compaction.lag.ms": (_whole(1), "a whole number of milliseconds, >= 1"),
    "max.message.bytes": (_whole(0), "a whole number of bytes, >= 0"),
    "min.cleanable.dirty.ratio": (_ratio, "a number from 0 to 1"),
    "min.compaction.lag.ms": (_whole(0), "a whole number of milliseconds, >= 0"),
    "min.insync.replicas": (_whole(1), "a whole number, >= 1"),
    "segment.bytes": (_whole(14), "a whole number of bytes, >= 14"),
    "segment.ms": (_whole(1), "a whole number of milliseconds, >= 1"),
}


def _check_config(config: Mapping[str, Any]) -> None:
    for key, (valid, expected) in KAFKA_TOPIC_CONFIGS.items():
        if key in config and not valid(config_text(config[key])):
            raise BadRequest(
                f"config {key!r} must be {expected}, got {config[key]!r}", field=f"config.{key}"
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
    _check_config(spec.config)


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
        _check_config(update.config)
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


def max_message_bytes(topic: Topic) -> int | None:
    """The topic's ``max.message.bytes``, if its config sets one (checked when it was set)."""
    limit = topic.config.get("max.message.bytes")
    return None if limit is None else int(config_text(limit))


#: A record batch's fixed part in Kafka's format (magic 2): base offset, length, leader
#: epoch, magic, CRC, attributes, last offset delta, two timestamps, producer id and
#: epoch, base sequence, record count.
_BATCH_OVERHEAD = 61


def _varint_bytes(n: int) -> int:
    """Bytes of ``n`` as Kafka writes lengths in a record: a zig-zag varint."""
    zigzag = (n << 1) ^ (n >> 63)
    return max(1, (zigzag.bit_length() + 6) // 7)


def _field_bytes(data: bytes | None) -> int:
    return 1 if data is None else _varint_bytes(len(data)) + len(data)


def record_batch_bytes(record: NewRecord) -> int:
    """Bytes of a Kafka record batch holding ``record`` alone, uncompressed: what a broker
    compares with ``max.message.bytes`` when a producer sends the record by itself."""
    body = 3 + _field_bytes(record.key) + _field_bytes(record.value)  # attributes, deltas
    body += _varint_bytes(len(record.headers))
    for name, value in record.headers:
        body += _field_bytes(name.encode()) + _field_bytes(value)
    return _BATCH_OVERHEAD + _varint_bytes(body) + body


def too_large(topic: str, size: int, limit: int) -> PayloadTooLarge:
    """The error for a record over its topic's ``max.message.bytes``."""
    return PayloadTooLarge(
        f"the record is larger than topic {topic!r} accepts: {size} bytes as Kafka counts a "
        f"record batch of it, over the topic's max.message.bytes of {limit}",
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
