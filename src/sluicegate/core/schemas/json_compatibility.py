"""JSON Schema compatibility: does a reader schema accept every document a writer accepts?

Deciding inclusion of JSON Schemas in general is out of reach; this is a sound subset in
the spirit of Confluent's checker. A change is compatible only if it provably keeps every
writer document valid for the reader:

* ``type``: the reader must allow every writer type (``integer`` fits in ``number``);
  ``TYPE_CHANGED`` when none overlap, ``TYPE_NARROWED`` otherwise.
* objects: a property the reader requires and the writer does not is
  ``REQUIRED_PROPERTY_ADDED``; a writer property the reader's closed content model
  (``additionalProperties: false``) has no place for is
  ``PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL``; a reader property a writer with an open
  content model may carry with any value is ``PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL``
  (as in Confluent: in an open model, adding a property is not backward compatible;
  close the writer or add the property to both); closing an open model is
  ``ADDITIONAL_PROPERTIES_REMOVED``. Shared properties are compared recursively.
* bounds: ``minimum``/``maxLength``/``minItems``... may only widen; ``pattern``,
  ``multipleOf``, ``enum`` and ``const`` may not narrow.
* arrays: ``items`` (also the tuple forms) recursively, ``uniqueItems`` may not be added.
* ``anyOf``/``oneOf`` (treated alike): each writer branch must fit some reader branch;
  ``allOf``: each reader part must accept the writer or one of its parts; ``not``: the
  writer's excluded set must contain the reader's.
* ``$ref`` is followed (inside the schema and into references); recursion is cut off.
* Any other constraining keyword (``if``, ``dependencies``, ``propertyNames``...) may not
  change at all (``UNSUPPORTED_KEYWORD_CHANGED``). Annotations (``title``,
  ``description``, ``default``, ``format``...) never matter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from sluicegate.core.schemas.json_schema import JsonSchema

__all__ = ["read_errors"]

_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "$id",
        "id",
        "$schema",
        "readOnly",
        "writeOnly",
        "deprecated",
        "format",
        "contentEncoding",
        "contentMediaType",
        "definitions",
        "$defs",
        "$anchor",
        "$vocabulary",
    }
)
_MODELLED = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "minProperties",
        "maxProperties",
        "items",
        "prefixItems",
        "additionalItems",
        "minItems",
        "maxItems",
        "uniqueItems",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
    }
)
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


def read_errors(reader: JsonSchema, writer: JsonSchema) -> list[str]:
    """Why a document valid for ``writer`` might be invalid for ``reader``; empty if none."""
    checker = _Checker(_Side(reader), _Side(writer))
    checker.check(reader.document, writer.document, "")
    return checker.errors


class _Side:
    """One schema's root and references, to follow ``$ref``."""

    def __init__(self, schema: JsonSchema) -> None:
        self.root = schema.document
        self.resources = schema.resources

    def resolve(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 32:
            node = self._lookup(node["$ref"])
            seen += 1
        return node

    def _lookup(self, ref: str) -> Any:
        name, _, pointer = ref.partition("#")
        document = self.root if not name else self.resources.get(name)
        if document is None:
            return True  # unresolvable refs were refused at registration; stay permissive
        for token in (t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]):
            if isinstance(document, dict) and token in document:
                document = document[token]
            elif isinstance(document, list) and token.isdigit() and int(token) < len(document):
                document = document[int(token)]
            else:
                return True
        return document


class _Checker:
    def __init__(self, reader: _Side, writer: _Side) -> None:
        self._reader = reader
        self._writer = writer
        self._in_progress: set[tuple[int, int]] = set()
        self.errors: list[str] = []

    def check(self, reader: Any, writer: Any, path: str) -> None:
        reader = _as_schema(self._reader.resolve(reader))
        writer = _as_schema(self._writer.resolve(writer))
        if writer is False or _accepts_anything(reader):
            return
        if reader is False:
            self._error("TYPE_NARROWED", path, "the reader accepts no value here")
            return
        pair = (id(reader), id(writer))
        if pair in self._in_progress:
            return
        self._in_progress.add(pair)
        try:
            self._compare(reader, writer, path)
        finally:
            self._in_progress.discard(pair)

    def _compare(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        writer_types = _types(writer)
        self._types(reader, writer_types, path)
        self._values(reader, writer, path)
        self._bounds(reader, writer, path)
        if writer_types is None or "object" in writer_types:
            self._object(reader, writer, path)
        if writer_types is None or "array" in writer_types:
            self._array(reader, writer, path)
        self._combinators(reader, writer, path)
        for keyword in sorted(set(reader) | set(writer)):
            if keyword in _ANNOTATIONS or keyword in _MODELLED:
                continue
            if reader.get(keyword) != writer.get(keyword):
                self._error(
                    "UNSUPPORTED_KEYWORD_CHANGED",
                    f"{path}/{keyword}",
                    f"keyword {keyword!r} changed; changes to it are treated as incompatible",
                )

    def _types(self, reader: dict[str, Any], writer_types: set[str] | None, path: str) -> None:
        reader_types = _types(reader)
        if reader_types is None:
            return
        if writer_types is None:
            self._error(
                "TYPE_NARROWED",
                f"{path}/type",
                f"the reader allows only {_list(reader_types)}; the writer allows any type",
            )
            return
        missing = {
            kind
            for kind in writer_types
            if kind not in reader_types and not (kind == "integer" and "number" in reader_types)
        }
        if not missing:
            return
        if missing == writer_types:
            self._error(
                "TYPE_CHANGED",
                f"{path}/type",
                f"type changed from {_list(writer_types)} to {_list(reader_types)}",
            )
        else:
            self._error(
                "TYPE_NARROWED",
                f"{path}/type",
                f"type {_list(missing)} is no longer allowed (now {_list(reader_types)})",
            )

    def _values(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        allowed = _allowed_values(reader)
        if allowed is None:
            return
        produced = _allowed_values(writer)
        if produced is None:
            self._error(
                "ENUM_NARROWED", f"{path}/enum", "the reader restricts values the writer does not"
            )
            return
        missing = [value for value in produced if value not in allowed]
        if missing:
            self._error(
                "ENUM_NARROWED",
                f"{path}/enum",
                f"values {json.dumps(missing)} are no longer allowed",
            )

    def _bounds(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        for keyword, tighter in [
            *((k, _greater) for k in _LOWER_BOUNDS),
            *((k, _smaller) for k in _UPPER_BOUNDS),
        ]:
            if keyword in reader and _tightened(reader[keyword], writer.get(keyword), tighter):
                self._error(
                    f"{_snake(keyword)}_NARROWED",
                    f"{path}/{keyword}",
                    f"{keyword} is {reader[keyword]!r} for the reader, "
                    f"{writer.get(keyword, 'absent')!r} for the writer",
                )
        if "multipleOf" in reader and not _divides(reader["multipleOf"], writer.get("multipleOf")):
            self._error(
                "MULTIPLE_OF_CHANGED",
                f"{path}/multipleOf",
                f"multipleOf {reader['multipleOf']!r} does not divide the writer's "
                f"{writer.get('multipleOf', 'absent')!r}",
            )
        if "pattern" in reader and reader["pattern"] != writer.get("pattern"):
            self._error(
                "PATTERN_CHANGED",
                f"{path}/pattern",
                f"pattern {reader['pattern']!r} differs from the writer's "
                f"{writer.get('pattern', 'absent')!r}",
            )

    def _object(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        required = _strings(reader.get("required")) - _strings(writer.get("required"))
        for name in sorted(required):
            self._error(
                "REQUIRED_PROPERTY_ADDED",
                f"{path}/required",
                f"property {name!r} is required by the reader but not by the writer",
            )
        reader_properties = _mapping(reader.get("properties"))
        writer_properties = _mapping(writer.get("properties"))
        for name, writer_property in writer_properties.items():
            if _as_schema(writer_property) is False:
                continue  # the writer never produces it
            where = f"{path}/properties/{_escape(name)}"
            reader_property = _property_schema(reader, name)
            if reader_property is False:
                self._error(
                    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                    where,
                    f"property {name!r} of the writer is not allowed by the reader's closed "
                    "content model",
                )
            else:
                self.check(reader_property, writer_property, where)
        for name, reader_property in reader_properties.items():
            if name in writer_properties:
                continue
            where = f"{path}/properties/{_escape(name)}"
            writer_property = _property_schema(writer, name)
            if writer_property is False:
                continue
            if _accepts_anything(writer_property) and not _accepts_anything(reader_property):
                self._error(
                    "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                    where,
                    f"property {name!r} is new in the reader and the writer's open content "
                    "model may carry it with any value",
                )
            else:
                self.check(reader_property, writer_property, where)
        self._pattern_properties(reader, writer, path)
        writer_additional = _as_schema(writer.get("additionalProperties", True))
        reader_additional = _as_schema(reader.get("additionalProperties", True))
        if writer_additional is False:
            return
        if reader_additional is False:
            self._error(
                "ADDITIONAL_PROPERTIES_REMOVED",
                f"{path}/additionalProperties",
                "the reader closes a content model the writer leaves open",
            )
        else:
            self.check(reader_additional, writer_additional, f"{path}/additionalProperties")

    def _pattern_properties(
        self, reader: dict[str, Any], writer: dict[str, Any], path: str
    ) -> None:
        reader_patterns = _mapping(reader.get("patternProperties"))
        writer_patterns = _mapping(writer.get("patternProperties"))
        if reader_patterns == writer_patterns:
            return
        reader_additional = reader.get("additionalProperties", True)
        writer_additional = writer.get("additionalProperties", True)
        for pattern, schema in writer_patterns.items():
            where = f"{path}/patternProperties/{_escape(pattern)}"
            self.check(reader_patterns.get(pattern, reader_additional), schema, where)
        for pattern, schema in reader_patterns.items():
            if pattern not in writer_patterns:
                where = f"{path}/patternProperties/{_escape(pattern)}"
                self.check(schema, writer_additional, where)

    def _array(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        if reader.get("uniqueItems") is True and writer.get("uniqueItems") is not True:
            self._error(
                "UNIQUE_ITEMS_ADDED", f"{path}/uniqueItems", "the reader requires unique items"
            )
        reader_tuple, reader_rest = _item_schemas(reader)
        writer_tuple, writer_rest = _item_schemas(writer)
        for index in range(max(len(reader_tuple), len(writer_tuple))):
            self.check(
                reader_tuple[index] if index < len(reader_tuple) else reader_rest,
                writer_tuple[index] if index < len(writer_tuple) else writer_rest,
                f"{path}/items/{index}" if reader_tuple else f"{path}/items",
            )
        self.check(reader_rest, writer_rest, f"{path}/items")

    def _combinators(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        for keyword in ("anyOf", "oneOf"):
            reader_branches = reader.get(keyword)
            if not isinstance(reader_branches, list):
                continue
            writer_branches = writer.get(keyword)
            if not isinstance(writer_branches, list):
                writer_branches = [_without(writer, ("anyOf", "oneOf"))]
            for index, branch in enumerate(writer_branches):
                if not any(self._accepts(option, branch) for option in reader_branches):
                    self._error(
                        "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                        f"{path}/{keyword}",
                        f"writer alternative {index} is accepted by no {keyword} branch "
                        "of the reader",
                    )
        reader_parts = reader.get("allOf")
        if isinstance(reader_parts, list) and reader_parts != writer.get("allOf"):
            writer_parts = writer.get("allOf")
            candidates = [_without(writer, ("allOf",))]
            if isinstance(writer_parts, list):
                candidates.extend(writer_parts)
            for index, part in enumerate(reader_parts):
                if not any(self._accepts(part, candidate) for candidate in candidates):
                    self._error(
                        "ALL_OF_CHANGED",
                        f"{path}/allOf/{index}",
                        "this part of the reader's allOf does not accept the writer's documents",
                    )
        if "not" in reader:
            if "not" not in writer:
                self._error("NOT_ADDED", f"{path}/not", "the reader adds a 'not' exclusion")
            # Excluding less is fine: the writer's excluded set must hold the reader's.
            elif not _Checker(self._writer, self._reader).check_ok(writer["not"], reader["not"]):
                self._error(
                    "NOT_CHANGED", f"{path}/not", "the reader excludes values the writer allows"
                )

    def _accepts(self, reader: Any, writer: Any) -> bool:
        trial = _Checker(self._reader, self._writer)
        trial._in_progress = set(self._in_progress)
        return trial.check_ok(reader, writer)

    def check_ok(self, reader: Any, writer: Any) -> bool:
        """Whether ``reader`` accepts every document ``writer`` does."""
        self.check(reader, writer, "")
        return not self.errors

    def _error(self, kind: str, path: str, description: str) -> None:
        self.errors.append(f"{kind} at #{path}: {description}")


def _as_schema(node: Any) -> Any:
    """``True`` as ``{}``; ``False`` and objects as they are; anything else as ``{}``."""
    if node is False or isinstance(node, dict):
        return node
    return {}


def _accepts_anything(node: Any) -> bool:
    node = _as_schema(node)
    return isinstance(node, dict) and all(key in _ANNOTATIONS for key in node)


def _types(schema: dict[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    return None


def _allowed_values(schema: dict[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    values = schema.get("enum")
    return values if isinstance(values, list) else None


def _property_schema(schema: dict[str, Any], name: str) -> Any:
    """The subschema ``schema`` applies to property ``name`` (``False``: not allowed)."""
    properties = _mapping(schema.get("properties"))
    if name in properties:
        return properties[name]
    for pattern, subschema in _mapping(schema.get("patternProperties")).items():
        if _pattern_matches(pattern, name):
            return subschema
    return _as_schema(schema.get("additionalProperties", True))


def _pattern_matches(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False


def _item_schemas(schema: dict[str, Any]) -> tuple[list[Any], Any]:
    """Positional item schemas and the schema of the items after them."""
    if isinstance(schema.get("prefixItems"), list):
        return list(schema["prefixItems"]), schema.get("items", True)
    items = schema.get("items", True)
    if isinstance(items, list):
        return list(items), schema.get("additionalItems", True)
    return [], items


def _without(schema: dict[str, Any], keywords: tuple[str, ...]) -> dict[str, Any]:
    return {key: value for key, value in schema.items() if key not in keywords}


def _tightened(reader: Any, writer: Any, tighter: Callable[[float, float], bool]) -> bool:
    if not _number(reader):
        return bool(reader != writer)
    return not _number(writer) or tighter(reader, writer)


def _greater(reader: float, writer: float) -> bool:
    return reader > writer


def _smaller(reader: float, writer: float) -> bool:
    return reader < writer


def _divides(reader: Any, writer: Any) -> bool:
    if not _number(reader) or not _number(writer) or reader <= 0:
        return bool(reader == writer)
    quotient = writer / reader
    return bool(abs(quotient - round(quotient)) < 1e-9)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _strings(value: Any) -> set[str]:
    return {item for item in value if isinstance(item, str)} if isinstance(value, list) else set()


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(kinds: set[str]) -> str:
    return ", ".join(sorted(kinds))


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _snake(keyword: str) -> str:
    return "".join(f"_{c}" if c.isupper() else c.upper() for c in keyword)
