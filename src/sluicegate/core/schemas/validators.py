"""The compiled check of a topic's value schema, for producers that publish plain JSON.

A topic's schema is the latest version of the registry subject ``<topic>-value``
(Confluent's topic naming strategy), so the topics v1 developer API, records v2 producers
and any Confluent client share it. Per publish the look-up is two dict hits and an int
comparison: the answer per topic is remembered with the registry's change count, and each
schema id is compiled once.

JSON Schema versions are compiled with ``jsonschema-rs`` (Rust; a valid message is
checked without leaving native code, and an invalid one lists every violation, which
``fastjsonschema`` cannot: it stops at the first). ``bench/topics_v1.py`` measures both.
A batch of messages is checked in one call, as the items of an array, when the schema
holds no reference (``compile_batch_schema``); only a batch that fails is checked message
by message, to say which messages break the schema and how. Nothing is ever fetched over
the network: ``$ref`` resolves inside the schema and to its registered references. An
Avro latest version makes the message Avro: it is checked and written with that schema in
Confluent's wire format, so Avro consumers of the topic (and records v2
``serializer=confluent`` readers) read what topics v1 publishes.
"""

from __future__ import annotations

from typing import Any, Protocol

import jsonschema_rs
import msgspec

from sluicegate.core.schemas.avro import AvroSchema
from sluicegate.core.schemas.json_schema import JsonSchema
from sluicegate.core.schemas.model import LATEST
from sluicegate.core.schemas.naming import subject_name
from sluicegate.core.schemas.registry import SchemaRegistry
from sluicegate.errors import InvalidSchema, SubjectNotFound

__all__ = [
    "TopicSchemas",
    "ValueSchema",
    "Violation",
    "compile_batch_schema",
    "compile_json_schema",
    "describe_violations",
]

#: Topics (and subjects) whose answer is remembered; beyond this the memory starts over.
_TOPICS_REMEMBERED = 10_000
#: Compiled schemas kept; beyond this the memory starts over.
_SCHEMAS_COMPILED = 1_000


class Violation(msgspec.Struct, frozen=True, gc=False):
    """One way a message breaks its schema: where (a JSON pointer) and why."""

    pointer: str
    reason: str


#: Violations an answer lists at most: a large message can break its schema in thousands
#: of places.
MAX_VIOLATIONS_SHOWN = 100


def describe_violations(violations: list[Violation]) -> tuple[str, list[dict[str, str]]]:
    """The first ``MAX_VIOLATIONS_SHOWN`` violations as one line of text, and as objects
    ``{"pointer", "reason"}`` for an error body."""
    shown = violations[:MAX_VIOLATIONS_SHOWN]
    listed = "; ".join(f"{v.pointer or '/'}: {v.reason}" for v in shown)
    if len(violations) > len(shown):
        listed += f"; and {len(violations) - len(shown)} more"
    return listed, [msgspec.structs.asdict(v) for v in shown]


class ValueSchema(Protocol):
    """A topic's current value schema, ready to check and write messages."""

    schema_id: int

    def violations(self, datum: object) -> list[Violation]:
        """Every way ``datum`` breaks the schema; empty if it complies."""

    def serialize(self, raw: bytes, datum: object) -> bytes:
        """The stored value of a complying message (``raw`` is its JSON text)."""

    def serialize_all(self, raws: list[bytes], data: list[object]) -> list[bytes] | None:
        """The stored values of messages known to comply all at once; ``None``: ask each.

        ``None`` says nothing about any message: check each with ``violations``.
        """


def _pointer(path: list[str | int]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def compile_json_schema(document: Any, resources: dict[str, Any]) -> Any:
    """A ``jsonschema-rs`` validator; draft 7 without ``$schema``, as the registry reads it.

    Raises ``jsonschema_rs.ValidationError`` or ``ValueError`` for what it cannot compile,
    or would read otherwise than its draft says (then Python's ``jsonschema`` checks).
    """
    return _compile(document, document, resources)


#: ``$schema`` of the drafts without ``dependencies`` (split into ``dependentRequired``
#: and ``dependentSchemas``), which jsonschema-rs still applies in them.
_WITHOUT_DEPENDENCIES = ("/draft/2019-09/", "/draft/2020-12/")


def _compile(document: Any, compiled: Any, resources: dict[str, Any]) -> Any:
    """``compiled`` under the draft ``document`` names (draft 7 if none), offline."""
    draft = document.get("$schema") if isinstance(document, dict) else None
    cls: type[jsonschema_rs.Validator] = jsonschema_rs.Draft7Validator
    if isinstance(draft, str):
        if any(marker in draft for marker in _WITHOUT_DEPENDENCIES) and _has_any(
            document, _DEPENDENCIES
        ):
            raise ValueError(f"jsonschema-rs applies dependencies, which {draft} does not have")
        cls = jsonschema_rs.validator_cls_for(document)
    registry = jsonschema_rs.Registry(resources=list(resources.items())) if resources else None
    return cls(compiled, registry=registry, offline=True)


#: Keywords that resolve another schema by its location. A document with none of them
#: means the same wherever it sits, so it can check a batch as an array's ``items``.
_REFERENCES = frozenset({"$ref", "$dynamicRef", "$recursiveRef"})
_DEPENDENCIES = frozenset({"dependencies"})


def _has_any(node: Any, keys: frozenset[str]) -> bool:
    """Whether an object anywhere in ``node`` has one of ``keys`` (a property of that name
    counts too: a false alarm costs only the slower validator)."""
    if isinstance(node, dict):
        return not keys.isdisjoint(node) or any(_has_any(value, keys) for value in node.values())
    if isinstance(node, list):
        return any(_has_any(item, keys) for item in node)
    return False


def compile_batch_schema(document: Any, resources: dict[str, Any]) -> Any | None:
    """A validator of arrays whose every item ``document`` accepts, if it can be one.

    One call checks a whole batch in native code instead of a call per message. ``None``
    for a document with references: they may name places relative to its root.
    """
    if _has_any(document, _REFERENCES):
        return None
    items = document
    if isinstance(document, dict):
        # ``$schema`` belongs at a document's root; the validator's class carries its draft.
        items = {key: value for key, value in document.items() if key != "$schema"}
    return _compile(document, {"type": "array", "items": items}, resources)


class _JsonValues:
    """Messages stored as their JSON text, checked with a compiled validator."""

    __slots__ = ("_all_valid", "_is_valid", "_validator", "schema_id")

    def __init__(self, schema_id: int, validator: Any, batch_validator: Any | None) -> None:
        self.schema_id = schema_id
        self._validator = validator
        self._is_valid = validator.is_valid
        self._all_valid = batch_validator.is_valid if batch_validator is not None else None

    def violations(self, datum: object) -> list[Violation]:
        if self._is_valid(datum):
            return []
        return [
            Violation(_pointer(error.instance_path), error.message)
            for error in self._validator.iter_errors(datum)
        ]

    def serialize(self, raw: bytes, datum: object) -> bytes:
        return raw

    def serialize_all(self, raws: list[bytes], data: list[object]) -> list[bytes] | None:
        all_valid = self._all_valid
        if all_valid is not None and all_valid(data):
            return raws
        return None


class _CheckedJsonValues:
    """A JSON Schema ``jsonschema-rs`` cannot compile: checked as the registry checks it."""

    __slots__ = ("_schema", "schema_id")

    def __init__(self, schema_id: int, schema: JsonSchema) -> None:
        self.schema_id = schema_id
        self._schema = schema

    def violations(self, datum: object) -> list[Violation]:
        try:
            self._schema.validate(datum)
        except InvalidSchema as exc:
            message, _, where = exc.message.rpartition(" - at ")
            return [Violation(where.removeprefix("$").replace(".", "/"), message)]
        return []

    def serialize(self, raw: bytes, datum: object) -> bytes:
        return raw

    def serialize_all(self, raws: list[bytes], data: list[object]) -> list[bytes] | None:
        return None


class _AvroValues:
    """Messages written with an Avro schema in Confluent's wire format."""

    __slots__ = ("_registry", "schema_id")

    def __init__(self, schema_id: int, registry: SchemaRegistry) -> None:
        self.schema_id = schema_id
        self._registry = registry

    def violations(self, datum: object) -> list[Violation]:
        try:
            self._registry.encode_confluent(self.schema_id, datum)
        except InvalidSchema as exc:
            return [Violation("", exc.message)]
        return []

    def serialize(self, raw: bytes, datum: object) -> bytes:
        return self._registry.encode_confluent(self.schema_id, datum)

    def serialize_all(self, raws: list[bytes], data: list[object]) -> list[bytes] | None:
        return None


class TopicSchemas:
    """Each topic's (or subject's) current value schema, compiled once per schema id."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._by_topic: dict[str, tuple[int, ValueSchema | None]] = {}
        self._by_subject: dict[str, tuple[int, ValueSchema | None]] = {}
        self._compiled: dict[int, ValueSchema] = {}

    def for_topic(self, topic: str) -> ValueSchema | None:
        """The schema messages to ``topic`` must comply with; ``None``: any JSON."""
        known = self._by_topic.get(topic)
        if known is not None and known[0] == self._registry.changes:
            return known[1]
        return self._remember(
            self._by_topic, topic, subject_name("topic", topic, None, is_key=False)
        )

    def for_subject(self, subject: str) -> ValueSchema | None:
        """The latest schema of ``subject``; ``None`` if it has no live version."""
        known = self._by_subject.get(subject)
        if known is not None and known[0] == self._registry.changes:
            return known[1]
        return self._remember(self._by_subject, subject, subject)

    def _remember(
        self, cache: dict[str, tuple[int, ValueSchema | None]], key: str, subject: str
    ) -> ValueSchema | None:
        changes = self._registry.changes
        schema = self._current(subject)
        if len(cache) >= _TOPICS_REMEMBERED:
            cache.clear()
        cache[key] = (changes, schema)
        return schema

    def _current(self, subject: str) -> ValueSchema | None:
        try:
            registered = self._registry.get_version(subject, LATEST)
        except SubjectNotFound:
            return None
        compiled = self._compiled.get(registered.id)
        if compiled is None:
            compiled = self._compile(registered.id)
            if len(self._compiled) >= _SCHEMAS_COMPILED:
                self._compiled.clear()
            self._compiled[registered.id] = compiled
        return compiled

    def _compile(self, schema_id: int) -> ValueSchema:
        parsed = self._registry.parsed(schema_id)
        if isinstance(parsed, AvroSchema):
            return _AvroValues(schema_id, self._registry)
        assert isinstance(parsed, JsonSchema)  # the registry holds Avro and JSON only
        try:
            validator = compile_json_schema(parsed.document, parsed.resources)
            batch_validator = compile_batch_schema(parsed.document, parsed.resources)
        except (jsonschema_rs.ValidationError, ValueError):
            # The registry accepted it (Python's jsonschema); a regex or format
            # jsonschema-rs reads otherwise must not make the topic unwritable.
            return _CheckedJsonValues(schema_id, parsed)
        return _JsonValues(schema_id, validator, batch_validator)
