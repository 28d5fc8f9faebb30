"""Bodies of the topics v1 developer API (Workato's topic admin), and their checks.

Unknown fields in a request are ignored, as Workato's API ignores them (clients written
for it send ``folder_id``); every field that is read is checked, and an error names it.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import msgspec

from sluicegate.core.records import format_timestamp
from sluicegate.core.schema_topics import SchemaTopic, value_subject
from sluicegate.errors import BadRequest
from sluicegate.http.json_body import decode_json

__all__ = [
    "DEFAULT_RETENTION_SECONDS",
    "MAX_DESCRIPTION_LENGTH",
    "MAX_RETENTION_SECONDS",
    "TopicCreate",
    "TopicOut",
    "TopicUpdateIn",
    "check_description",
    "decode",
    "retention_ms",
    "topic_out",
]

#: Workato's default: 168 hours.
DEFAULT_RETENTION_SECONDS = 604_800
#: 100 years; ``null`` keeps messages forever.
MAX_RETENTION_SECONDS = 3_155_760_000
MAX_DESCRIPTION_LENGTH = 1024

T = TypeVar("T")


class TopicCreate(msgspec.Struct):
    name: str
    schema: Any
    retention: float | None = DEFAULT_RETENTION_SECONDS
    description: str | None = ""
    #: sluicegate's addition: more partitions spread load, at the cost of one cursor order.
    partitions: int = 1


class TopicUpdateIn(msgspec.Struct):
    """Every field optional; what is absent stays as it is."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    schema: Any = msgspec.UNSET
    retention: float | msgspec.UnsetType | None = msgspec.UNSET
    description: str | msgspec.UnsetType | None = msgspec.UNSET
    #: As on create; partitions only grow (Kafka's rule).
    partitions: int | msgspec.UnsetType = msgspec.UNSET


class TopicOut(msgspec.Struct):
    id: int
    name: str
    description: str
    #: Seconds; ``None``: kept forever.
    retention: int | float | None
    partitions: int
    schema_subject: str
    schema_id: int | None
    schema_version: int | None
    created_at: str
    updated_at: str
    #: Left out of a listing unless ``include_schema`` is set.
    schema: Any = msgspec.UNSET


def decode(body: bytes, kind: type[T]) -> T:
    """``body`` as ``kind``; ``BadRequest`` naming the field that is wrong."""
    return decode_json(body, msgspec.json.Decoder(kind).decode)


def retention_ms(seconds: float | None) -> int | None:
    """Workato's retention in seconds as the log's milliseconds; ``None``: forever."""
    if seconds is None:
        return None
    if not math.isfinite(seconds) or not 1 <= seconds <= MAX_RETENTION_SECONDS:
        raise BadRequest(
            f"retention: expected seconds between 1 and {MAX_RETENTION_SECONDS} "
            f"(or null to keep messages forever), got {seconds}",
            field="retention",
        )
    return round(seconds * 1000)


def check_description(description: str | None) -> str:
    """``description`` if it is short enough to keep with the topic; null is none."""
    if description is None:
        return ""
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise BadRequest(
            f"description: at most {MAX_DESCRIPTION_LENGTH} characters, got {len(description)}",
            field="description",
        )
    return description


def _seconds(milliseconds: int | None) -> int | float | None:
    if milliseconds is None:
        return None
    whole, rest = divmod(milliseconds, 1000)
    return whole if rest == 0 else milliseconds / 1000


def topic_out(described: SchemaTopic, *, with_schema: bool = True) -> TopicOut:
    """The developer API's view of a topic."""
    topic, registered = described.topic, described.registered
    return TopicOut(
        id=topic.id,
        name=topic.name,
        description=described.description,
        retention=_seconds(topic.retention_ms),
        partitions=topic.partitions,
        schema_subject=value_subject(topic.name),
        schema_id=None if registered is None else registered.id,
        schema_version=None if registered is None else registered.version,
        created_at=format_timestamp(topic.created_at),
        updated_at=format_timestamp(topic.updated_at),
        schema=described.schema if with_schema else msgspec.UNSET,
    )
