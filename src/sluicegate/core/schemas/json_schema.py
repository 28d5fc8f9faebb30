"""JSON Schema: parse and check with ``jsonschema``, a normal form for identity, validate.

Schemas without ``$schema`` (or with one ``jsonschema`` does not know) are draft 7, as in
Confluent's registry. ``$ref`` resolves inside the schema and to the schemas named by its
references (by the reference's ``name``); nothing is ever fetched over the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import msgspec
from jsonschema.exceptions import SchemaError, best_match
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT7

from sluicegate.core.schemas.model import SchemaType
from sluicegate.errors import InvalidRecord, InvalidSchema

__all__ = ["JsonSchema"]

_MAX_DEPTH = 128


class JsonSchema:
    """A JSON Schema document checked once, with its validator built once."""

    schema_type = SchemaType.JSON

    def __init__(self, document: Any, resources: dict[str, Any]) -> None:
        self.document = document
        #: Referenced documents by the names ``$ref`` uses, transitively.
        self.resources = resources
        self.canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
        title = document.get("title") if isinstance(document, dict) else None
        self.full_name: str | None = title if isinstance(title, str) and title else None
        validator_class = _validator_class(document)
        self._registry: Registry[Any] = Registry().with_resources(
            (name, Resource.from_contents(contents, default_specification=DRAFT7))
            for name, contents in resources.items()
        )
        self._validator = validator_class(document, registry=self._registry)
        self._encode = msgspec.json.Encoder().encode

    @classmethod
    def parse(cls, text: str, references: Mapping[str, JsonSchema] | None = None) -> JsonSchema:
        """Parse ``text``; ``references`` maps a ``$ref`` name to a registered schema."""
        try:
            document = msgspec.json.decode(text)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise InvalidSchema(f"Invalid JSON Schema: not valid JSON ({exc})") from None
        if not isinstance(document, (dict, bool)):
            raise InvalidSchema(
                f"Invalid JSON Schema: expected an object or a boolean, got {_json_type(document)}"
            )
        _check_depth(document, 0)
        try:
            _validator_class(document).check_schema(document)
        except SchemaError as exc:
            raise InvalidSchema(
                f"Invalid JSON Schema: {exc.message} - at {exc.json_path}"
            ) from None
        resources: dict[str, Any] = {}
        for name, reference in (references or {}).items():
            resources.update(reference.resources)
            resources[name] = reference.document
        schema = cls(document, resources)
        schema._check_references()
        return schema

    def _check_references(self) -> None:
        if not isinstance(self.document, dict) or _has_nested_id(self.document):
            return  # relative references under a nested $id are resolved at validation
        root = Resource.from_contents(self.document, default_specification=DRAFT7)
        resolver = self._registry.with_resource("", root).resolver("")
        for ref in _refs(self.document):
            try:
                resolver.lookup(ref)
            except Unresolvable:
                raise InvalidSchema(f"Invalid JSON Schema: unresolvable $ref {ref!r}") from None

    def validate(self, datum: object) -> None:
        """Raise ``InvalidSchema`` naming the path of the first problem in ``datum``."""
        try:
            error = best_match(self._validator.iter_errors(datum))
        except Unresolvable as exc:
            raise InvalidSchema(f"JSON Schema has an unresolvable $ref: {exc}") from None
        if error is not None:
            raise InvalidSchema(f"{error.message} - at {error.json_path}")

    def encode(self, datum: object) -> bytes:
        """Validate ``datum``, then write it as compact JSON."""
        self.validate(datum)
        try:
            return self._encode(datum)
        except (TypeError, ValueError) as exc:
            raise InvalidSchema(f"data cannot be written as JSON: {exc}") from None

    def decode(self, payload: bytes) -> object:
        """Read a JSON payload."""
        try:
            return msgspec.json.decode(payload)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise InvalidRecord(f"data is not JSON: {exc}") from None


def _validator_class(document: Any) -> Any:
    dialect = document.get("$schema") if isinstance(document, dict) else None
    if dialect is not None and not isinstance(dialect, str):
        raise InvalidSchema("Invalid JSON Schema: $schema must be a string")
    return jsonschema.validators.validator_for(document, default=jsonschema.Draft7Validator)


def _check_depth(node: object, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise InvalidSchema(f"Invalid JSON Schema: nested deeper than {_MAX_DEPTH} levels")
    if isinstance(node, dict):
        for value in node.values():
            _check_depth(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _check_depth(value, depth + 1)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for key, value in node.items():
            if key not in _DATA_KEYWORDS:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _has_nested_id(document: dict[str, Any]) -> bool:
    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            return "$id" in node or any(
                walk(value) for key, value in node.items() if key not in _DATA_KEYWORDS
            )
        if isinstance(node, list):
            return any(walk(value) for value in node)
        return False

    return any(walk(value) for key, value in document.items() if key not in _DATA_KEYWORDS)


#: Keywords whose values are data, not subschemas.
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})


def _json_type(value: object) -> str:
    return {type(None): "null", int: "integer", float: "number", str: "string", list: "array"}.get(
        type(value), type(value).__name__
    )
