"""What the registry keeps in its internal topic, and the keys it keeps it under.

One topic (``__sluicegate_schemas``) holds three kinds of entries, so that every node
applies them in the order they were written — a version never arrives before its schema:

* ``schema:<id>`` → ``StoredSchema``; never deleted, so an id keeps meaning the same
  schema for any data written with it (as Confluent: deleting versions keeps the id).
* ``version:<version>:<subject>`` → ``StoredVersion``; rewritten with ``deleted`` on a
  soft delete, a tombstone on a permanent one. The subject comes last: it may hold ``:``.
* ``config`` (global) and ``config:<subject>`` → ``StoredConfig``; a tombstone resets.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from sluicegate.core.schemas.compatibility import CompatibilityLevel
from sluicegate.core.schemas.model import SchemaReference, SchemaType

__all__ = [
    "StoredConfig",
    "StoredEntry",
    "StoredSchema",
    "StoredVersion",
    "config_key",
    "parse_key",
    "schema_key",
    "version_key",
]

STATE_TOPIC = "schemas"


class StoredSchema(msgspec.Struct, frozen=True, kw_only=True, tag="schema", tag_field="kind"):
    id: int
    schema_type: SchemaType
    #: The text as first registered: what clients get back.
    schema: str
    #: The normal form that decides identity (see ``avro.py``); stored so a restart need
    #: not parse every schema before it can answer.
    canonical: str
    references: tuple[SchemaReference, ...] = ()


class StoredVersion(msgspec.Struct, frozen=True, kw_only=True, tag="version", tag_field="kind"):
    subject: str
    version: int
    schema_id: int
    deleted: bool = False


class StoredConfig(msgspec.Struct, frozen=True, kw_only=True, tag="config", tag_field="kind"):
    #: ``None`` for the global level.
    subject: str | None
    compatibility: CompatibilityLevel


StoredEntry = StoredSchema | StoredVersion | StoredConfig


def schema_key(schema_id: int) -> str:
    """The key of a schema by id."""
    return f"schema:{schema_id}"


def version_key(subject: str, version: int) -> str:
    """The key of one version of a subject."""
    return f"version:{version}:{subject}"


def config_key(subject: str | None) -> str:
    """The key of a subject's compatibility level, or of the global one."""
    return "config" if subject is None else f"config:{subject}"


def parse_key(
    key: str,
) -> (
    tuple[Literal["schema"], int]
    | tuple[Literal["version"], tuple[str, int]]
    | tuple[Literal["config"], str | None]
    | None
):
    """What a key names (for tombstones, which carry no value); ``None`` if unknown."""
    kind, _, rest = key.partition(":")
    if kind == "schema" and rest.isdigit():
        return "schema", int(rest)
    if kind == "version":
        version, _, subject = rest.partition(":")
        if version.isdigit():
            return "version", (subject, int(version))
    if kind == "config":
        return "config", rest if key != "config" else None
    return None
