"""Bodies of the topic admin API."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "PartitionInfo",
    "ProduceBatch",
    "ProduceResult",
    "RecordOut",
    "RecordsOut",
    "TopicCreate",
    "TopicOut",
    "TopicPatch",
]


class TopicCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    partitions: int = 1
    retention_ms: int | None = None
    retention_bytes: int | None = None
    config: dict[str, Any] = msgspec.field(default_factory=dict)


class TopicPatch(msgspec.Struct, forbid_unknown_fields=True):
    partitions: int | msgspec.UnsetType = msgspec.UNSET
    retention_ms: int | msgspec.UnsetType | None = msgspec.UNSET
    retention_bytes: int | msgspec.UnsetType | None = msgspec.UNSET
    config: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class PartitionInfo(msgspec.Struct):
    partition: int
    low: int
    high: int


class TopicOut(msgspec.Struct, omit_defaults=True):
    name: str
    id: int
    partitions: int
    retention_ms: int | None
    retention_bytes: int | None
    config: dict[str, Any]
    created_at: str
    updated_at: str
    partition_offsets: list[PartitionInfo] | None = None


class NewRecordIn(msgspec.Struct, forbid_unknown_fields=True):
    """A record to produce; key and value are UTF-8 text (None for null)."""

    value: str | None
    key: str | None = None
    partition: int | None = None


class ProduceBatch(msgspec.Struct, forbid_unknown_fields=True):
    records: list[NewRecordIn]


class ProduceResult(msgspec.Struct):
    offsets: list[tuple[int, int]]


class RecordOut(msgspec.Struct):
    partition: int
    offset: int
    timestamp: str
    key: str | None
    value: str | None
    headers: list[tuple[str, str]]
    #: "utf-8" when key, value and header values are text as shown, else "base64".
    encoding: str


class RecordsOut(msgspec.Struct):
    records: list[RecordOut]
    #: The offset to ask for next.
    next_offset: int
    high_watermark: int
