"""Topics: names, settings and what a backend reports about one."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from sluicegate.errors import InvalidTopicName

__all__ = [
    "INTERNAL_PREFIX",
    "MAX_RETENTION",
    "RESERVED_PREFIX",
    "Topic",
    "TopicSpec",
    "TopicUpdate",
    "is_internal",
    "validate_topic_name",
]

_LEGAL = re.compile(r"[a-zA-Z0-9._-]{1,249}")

#: Names starting with this are internal: Kafka's own topics (``__consumer_offsets``,
#: ``__transaction_state``, ``__share_group_state``…) and the gateway's. They are hidden
#: from listings and from the dialects, which can neither create nor read one: on a Kafka
#: cluster shared with other applications (and an empty ``kafka.topic_prefix``) a dialect's
#: name is the Kafka name, and Kafka's internal topics must never be taken as a dialect's.
RESERVED_PREFIX = "__"
#: Topics whose names start with this hold the gateway's own state (schemas, clients).
INTERNAL_PREFIX = f"{RESERVED_PREFIX}sluicegate"

#: Retention settings are Kafka longs (``retention.ms``, ``retention.bytes``).
MAX_RETENTION = 2**63 - 1


def validate_topic_name(name: str) -> str:
    """Return ``name`` if Kafka accepts it as a topic name, else raise ``InvalidTopicName``."""
    if not isinstance(name, str) or not _LEGAL.fullmatch(name):
        raise InvalidTopicName(
            f"invalid topic name {name!r}: expected 1-249 characters of [a-zA-Z0-9._-]",
            topic=name if isinstance(name, str) else None,
        )
    if name in {".", ".."}:
        raise InvalidTopicName(f"invalid topic name {name!r}: '.' and '..' are not allowed")
    return name


def is_internal(name: str) -> bool:
    """Whether ``name`` is reserved for internal topics (``RESERVED_PREFIX``)."""
    return name.startswith(RESERVED_PREFIX)


class TopicSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What to create. ``None`` retention means keep forever (Kafka's ``-1``)."""

    name: str
    partitions: int = 1
    retention_ms: int | None = None
    retention_bytes: int | None = None
    #: Free-form settings the dialects keep with the topic (description, schema reference...).
    config: dict[str, Any] = msgspec.field(default_factory=dict)


class TopicUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """Changes to a topic; ``msgspec.UNSET`` fields stay as they are."""

    partitions: int | msgspec.UnsetType = msgspec.UNSET
    retention_ms: int | msgspec.UnsetType | None = msgspec.UNSET
    retention_bytes: int | msgspec.UnsetType | None = msgspec.UNSET
    config: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class Topic(msgspec.Struct, frozen=True, kw_only=True):
    """A topic as stored."""

    name: str
    #: Stable, never reused integer id (the topics-v1 dialect addresses topics by it).
    id: int
    partitions: int
    retention_ms: int | None
    retention_bytes: int | None
    config: dict[str, Any]
    #: Microseconds since the epoch.
    created_at: int
    updated_at: int
