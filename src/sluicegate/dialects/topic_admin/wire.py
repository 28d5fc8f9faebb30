"""Bodies of the topic admin API."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from sluicegate.core.topics import MAX_RETENTION

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


# The bounds below are checked where topics are validated, with messages that name the
# field; here they are only described (``extra_json_schema``), for the OpenAPI document.
TopicName = Annotated[
    str,
    msgspec.Meta(
        description="1-249 characters of [a-zA-Z0-9._-], not '.' or '..'",
        extra_json_schema={"pattern": "^[a-zA-Z0-9._-]{1,249}$"},
    ),
]
Partitions = Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 1})]
Retention = Annotated[
    int,
    msgspec.Meta(
        description="null: keep forever",
        extra_json_schema={"minimum": 0, "maximum": MAX_RETENTION},
    ),
]


class TopicCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: TopicName
    partitions: Partitions = 1
    retention_ms: Retention | None = None
    retention_bytes: Retention | None = None
    config: dict[str, Any] = msgspec.field(default_factory=dict)


class TopicPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Changes to a topic: absent fields stay as they are; partitions only grow; ``config``
    is a merge patch (the keys given change, ``null`` removes one, the others stay)."""

    partitions: Partitions | msgspec.UnsetType = msgspec.UNSET
    retention_ms: Retention | msgspec.UnsetType | None = msgspec.UNSET
    retention_bytes: Retention | msgspec.UnsetType | None = msgspec.UNSET
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


# A produce request's rows, decoded a hundred at a time, never hold themselves:
# ``gc=False`` keeps the cyclic garbage collector from tracking (and counting toward its
# next collection) every row of every batch.


class NewRecordIn(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A record to produce; key and value are UTF-8 text (None for null)."""

    value: str | None
    key: str | None = None
    #: None: chosen by key (or spread when the key is null), as Kafka's default partitioner.
    partition: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})] | None = None


class ProduceBatch(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    records: list[NewRecordIn]


class ProduceResult(msgspec.Struct, gc=False):
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
