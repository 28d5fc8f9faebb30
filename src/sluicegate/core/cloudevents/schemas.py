"""JSON Schemas for the ``data`` of each event type, kept in the schema registry.

Each event type has one registry subject, ``ce.type.<type>`` (``subject_for``); its
latest live version is the schema events of that type must satisfy. It is set through
the admin API (``PUT /admin/v1/cloudevents/types/{type}/schema``), the config file
(``[[cloudevents.schemas]]``, registered at start) or, being a registry subject, any
Confluent client; versions, compatibility levels and deletes are the registry's.

Drafts: Draft 6, Draft 7, 2019-09 and 2020-12, as MConnect Events documents. A schema
names its draft with ``$schema``; one that does not is read in the draft its keywords
belong to (``detect_draft``), and that ``$schema`` is written into the registered
schema, so the registry, the compiled validator and any reader agree on it. Keywords of
Draft 6 only validate alike in Draft 6 and Draft 7, so such a schema is Draft 7.

On produce, ``for_type`` answers from memory: one dict hit per type while the registry
does not change, and a compiled ``jsonschema-rs`` validator per schema id
(``core/schemas/validators.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from sluicegate.config import CloudEventSchema
from sluicegate.core.cloudevents.event import check_type
from sluicegate.core.schemas.model import LATEST, RegisteredSchema
from sluicegate.core.schemas.registry import MAX_SUBJECT_LENGTH, SchemaRegistry
from sluicegate.core.schemas.validators import TopicSchemas, ValueSchema
from sluicegate.errors import (
    BadRequest,
    ConfigError,
    IncompatibleSchema,
    InvalidSchema,
    SubjectNotFound,
)

__all__ = ["DRAFTS", "SUBJECT_PREFIX", "EventSchemas", "detect_draft", "subject_for"]

SUBJECT_PREFIX = "ce.type."

DRAFT6 = "http://json-schema.org/draft-06/schema#"
DRAFT7 = "http://json-schema.org/draft-07/schema#"
DRAFT2019 = "https://json-schema.org/draft/2019-09/schema"
DRAFT2020 = "https://json-schema.org/draft/2020-12/schema"
#: The drafts an event type's schema may be written in, by their ``$schema`` URIs.
DRAFTS = {"draft-06": DRAFT6, "draft-07": DRAFT7, "2019-09": DRAFT2019, "2020-12": DRAFT2020}

_ONLY_2020 = frozenset({"prefixItems", "$dynamicRef", "$dynamicAnchor"})
_ONLY_2019 = frozenset({"$recursiveRef", "$recursiveAnchor"})
_SINCE_2019 = frozenset(
    {
        "$defs",
        "$anchor",
        "$vocabulary",
        "unevaluatedProperties",
        "unevaluatedItems",
        "dependentRequired",
        "dependentSchemas",
        "minContains",
        "maxContains",
        "contentSchema",
    }
)

# Where subschemas are: keywords holding one, a map of them, or an array of them.
_ONE = frozenset(
    {
        "additionalProperties",
        "additionalItems",
        "contains",
        "propertyNames",
        "if",
        "then",
        "else",
        "not",
        "unevaluatedProperties",
        "unevaluatedItems",
        "contentSchema",
        "items",
    }
)
_MAP = frozenset(
    {"properties", "patternProperties", "definitions", "$defs", "dependentSchemas", "dependencies"}
)
_ARRAY = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})


def subject_for(event_type: str) -> str:
    """The registry subject holding ``event_type``'s data schema."""
    return SUBJECT_PREFIX + event_type


def _keywords(schema: Any) -> Iterator[tuple[str, Any]]:
    """Every (keyword, value) of ``schema`` and of each subschema in it."""
    if not isinstance(schema, dict):
        return
    for keyword, value in schema.items():
        yield keyword, value
        if keyword in _ONE and isinstance(value, dict):
            yield from _keywords(value)
        if keyword in _MAP and isinstance(value, dict):
            for sub in value.values():
                yield from _keywords(sub)
        if keyword in _ARRAY and isinstance(value, list):
            for sub in value:
                yield from _keywords(sub)


def detect_draft(schema: Any) -> str:
    """The ``$schema`` URI of the draft ``schema``'s keywords belong to (Draft 7 if any)."""
    seen: set[str] = set()
    array_items = False
    for keyword, value in _keywords(schema):
        seen.add(keyword)
        array_items = array_items or (keyword == "items" and isinstance(value, list))
    if seen & _ONLY_2020 and (seen & _ONLY_2019 or array_items):
        raise InvalidSchema(
            "Invalid JSON Schema: it mixes keywords of 2019-09 and 2020-12; "
            "name its draft with $schema"
        )
    if seen & _ONLY_2020:
        return DRAFT2020
    if seen & _ONLY_2019:
        return DRAFT2019
    if seen & _SINCE_2019:
        # 2020-12 replaced the array form of items by prefixItems.
        return DRAFT2019 if array_items else DRAFT2020
    return DRAFT7


def _with_draft(text: str) -> str:
    """``text`` with its draft named: checked if ``$schema`` is there, else detected."""
    try:
        document = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InvalidSchema(f"Invalid JSON Schema: not valid JSON ({exc})") from None
    if isinstance(document, bool):
        return text
    if not isinstance(document, dict):
        raise InvalidSchema("Invalid JSON Schema: expected an object or a boolean")
    named = document.get("$schema")
    if named is None:
        return msgspec.json.encode({"$schema": detect_draft(document), **document}).decode()
    if not isinstance(named, str) or named.rstrip("#") not in {
        uri.rstrip("#") for uri in DRAFTS.values()
    }:
        raise InvalidSchema(
            f"Invalid JSON Schema: $schema {str(named)[:100]!r} is not one of the drafts "
            f"event data schemas may use: {', '.join(DRAFTS.values())}"
        )
    return text


class EventSchemas:
    """Event types' data schemas: set, read, delete, and the compiled check on produce."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._compiled = TopicSchemas(registry)

    def for_type(self, event_type: str) -> ValueSchema | None:
        """The schema events of ``event_type`` must satisfy; ``None``: any data."""
        return self._compiled.for_subject(SUBJECT_PREFIX + event_type)

    async def set(self, event_type: str, schema: str) -> RegisteredSchema:
        """Register ``schema`` (JSON Schema text) as ``event_type``'s latest data schema.

        ``InvalidSchema`` if it does not parse or names another draft,
        ``IncompatibleSchema`` if the subject's compatibility level refuses it.
        """
        check_type(event_type)
        if len(subject_for(event_type)) > MAX_SUBJECT_LENGTH:
            raise BadRequest(
                f"an event type with a data schema has at most "
                f"{MAX_SUBJECT_LENGTH - len(SUBJECT_PREFIX)} characters"
            )
        return await self._registry.register(subject_for(event_type), _with_draft(schema), "JSON")

    def get(self, event_type: str) -> RegisteredSchema | None:
        """``event_type``'s current data schema, if it has one."""
        try:
            return self._registry.get_version(subject_for(event_type), LATEST)
        except SubjectNotFound:
            return None

    async def delete(self, event_type: str) -> list[int]:
        """Remove ``event_type``'s data schema (every version); ``SubjectNotFound`` if none."""
        subject = subject_for(event_type)
        versions = await self._registry.delete_subject(subject)
        await self._registry.delete_subject(subject, permanent=True)
        return versions

    async def load_configured(self, configured: Sequence[CloudEventSchema]) -> None:
        """Register the schemas of ``[[cloudevents.schemas]]``; ``ConfigError`` naming the
        entry for one that cannot be read or registered."""
        for index, entry in enumerate(configured):
            where = f"cloudevents.schemas[{index}]"
            text = _configured_text(entry, where)
            try:
                await self.set(entry.type, text)
            except (BadRequest, IncompatibleSchema) as exc:
                raise ConfigError(where, f"type {entry.type!r}: {exc.message}") from None


def _configured_text(entry: CloudEventSchema, where: str) -> str:
    if entry.file is not None:
        try:
            return Path(entry.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}.file", f"cannot read {entry.file}: {exc}") from None
    if isinstance(entry.schema, str):
        return entry.schema
    return msgspec.json.encode(entry.schema).decode()
