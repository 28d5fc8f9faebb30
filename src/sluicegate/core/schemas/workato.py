"""Workato's schema format, and its translation to JSON Schema.

A Workato schema is a list of field objects, as Workato's developer API takes them for
event topics (and its connector SDK for any data):

    [{"name": "id", "type": "integer"},
     {"name": "email", "type": "string", "optional": true, "label": "E-mail"},
     {"name": "lines", "type": "array", "of": "object",
      "properties": [{"name": "sku"}, {"name": "qty", "type": "number"}]}]

The translation, the one place these rules live:

* ``type`` (default ``string``): ``string``, ``integer``, ``number``, ``boolean`` map to
  the JSON types of the same name; ``date`` is a string of ``format: date``
  (``2024-05-01``); ``date_time`` and ``timestamp`` are strings of ``format: date-time``
  (RFC 3339, ``2024-05-01T12:00:00Z``): Workato's ``timestamp`` is a point in time sent as
  text, not a number of seconds. ``object`` is an object whose fields are ``properties``;
  ``array`` is an array whose items are objects of ``properties`` when ``of`` is
  ``object`` (or absent with ``properties`` given), values of the type ``of`` names, or
  anything when neither is given.
* ``optional`` (default ``false``): a required field must be present and not null; an
  optional one may be absent or null (Workato sends null for an empty optional field).
* Unknown properties are allowed at every level, as Workato accepts them
  (``additionalProperties`` is left open).
* UI attributes (``label``, ``hint``, ``control_type``, ``pick_list``, ``sticky``...)
  are kept with the schema as given and constrain nothing; they are not copied into the
  JSON Schema, so changing only a label does not make a new schema version. What is kept
  must still be well-formed: ``label``, ``hint`` and ``control_type`` are text, ``of`` is
  a type and ``properties`` a field list on any field.

A plain JSON Schema object is accepted too, checked as the registry checks JSON Schema.
Anything else is ``InvalidSchema`` naming the field path (``schema[2].properties[0].type``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from sluicegate.core.schemas.json_schema import JsonSchema
from sluicegate.errors import InvalidSchema

__all__ = ["DRAFT_7", "WORKATO_TYPES", "ValueSchema", "parse_value_schema", "to_json_schema"]

DRAFT_7 = "http://json-schema.org/draft-07/schema#"

#: Workato's field types and the JSON Schema of a value of each (without null).
_SCALARS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "date_time": {"type": "string", "format": "date-time"},
    "timestamp": {"type": "string", "format": "date-time"},
}
WORKATO_TYPES: tuple[str, ...] = (*_SCALARS, "object", "array")
_TYPE_LIST = ", ".join(WORKATO_TYPES)

#: UI attributes that are text when given (they constrain nothing).
_UI_TEXT = ("label", "hint", "control_type")

#: Deeper than this is a mistake (or an attack), not a schema.
_MAX_DEPTH = 32


class ValueSchema(msgspec.Struct, frozen=True, kw_only=True):
    """A topic's value schema: as the client gave it, and as JSON Schema text to register."""

    given: Any
    #: The JSON Schema document, compact, keys sorted (the registry compares normal forms).
    text: str


def parse_value_schema(given: object, path: str = "schema") -> ValueSchema:
    """A Workato field list or a JSON Schema object; ``InvalidSchema`` otherwise."""
    if isinstance(given, list):
        document = to_json_schema(given, path)
    elif isinstance(given, dict):
        document = given
    else:
        raise InvalidSchema(
            f"{path}: expected a list of Workato field objects or a JSON Schema object, "
            f"got {_kind(given)}",
            field=path,
        )
    text = msgspec.json.encode(document, order="sorted").decode()
    try:
        JsonSchema.parse(text)
    except InvalidSchema as exc:
        raise InvalidSchema(f"{path}: {exc.message}", field=path) from None
    return ValueSchema(given=given, text=text)


def to_json_schema(fields: list[Any], path: str = "schema") -> dict[str, Any]:
    """The draft-7 JSON Schema of an object with Workato ``fields``."""
    return {"$schema": DRAFT_7, **_object(fields, path, 0)}


def _object(fields: object, path: str, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise InvalidSchema(f"{path}: nested deeper than {_MAX_DEPTH} levels", field=path)
    if not isinstance(fields, list):
        raise InvalidSchema(
            f"{path}: expected a list of field objects, got {_kind(fields)}", field=path
        )
    properties: dict[str, Any] = {}
    required: list[str] = []
    for index, field in enumerate(fields):
        field_path = f"{path}[{index}]"
        name, schema, optional = _field(field, field_path, depth)
        if name in properties:
            raise InvalidSchema(
                f"{field_path}.name: duplicate field name {name!r}", field=f"{field_path}.name"
            )
        properties[name] = schema
        if not optional:
            required.append(name)
    document: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        document["required"] = required
    return document


def _field(field: object, path: str, depth: int) -> tuple[str, dict[str, Any], bool]:
    """A field's name, the JSON Schema of its value, and whether it is optional."""
    if not isinstance(field, dict):
        raise InvalidSchema(f"{path}: expected a field object, got {_kind(field)}", field=path)
    name = field.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidSchema(
            f"{path}.name: every field needs a non-empty string name, got {_shown(name)}",
            field=f"{path}.name",
        )
    optional = field.get("optional", False)
    if not isinstance(optional, bool):
        raise InvalidSchema(
            f"{path}.optional: expected true or false, got {_shown(optional)}",
            field=f"{path}.optional",
        )
    for attribute in _UI_TEXT:
        if attribute in field and not isinstance(field[attribute], str):
            raise InvalidSchema(
                f"{path}.{attribute}: expected a string, got {_shown(field[attribute])}",
                field=f"{path}.{attribute}",
            )
    kind = _type(field.get("type", "string"), f"{path}.type")
    # ``of`` (for anything but an array) and a scalar's ``properties`` say nothing about
    # the value, but they are kept and returned, so they must be well-formed all the same.
    if kind != "array" and "of" in field:
        _type(field["of"], f"{path}.of")
    if kind not in ("object", "array") and "properties" in field:
        _object(field["properties"], f"{path}.properties", depth + 1)
    if kind == "object":
        schema = _object(field.get("properties", []), f"{path}.properties", depth + 1)
    elif kind == "array":
        schema = {"type": "array", "items": _items(field, path, depth)}
    else:
        schema = dict(_SCALARS[kind])
    if optional:
        schema["type"] = [schema["type"], "null"]
    return name, schema, optional


def _items(field: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
    """The JSON Schema of an array field's items, from its ``of`` and ``properties``."""
    has_properties = "properties" in field
    of = _type(field["of"], f"{path}.of") if "of" in field else "object" if has_properties else None
    if of == "object":
        return _object(field.get("properties", []), f"{path}.properties", depth + 1)
    if has_properties:
        raise InvalidSchema(
            f"{path}.properties: only an array of objects has properties, "
            f"but this array's items are {of}",
            field=f"{path}.properties",
        )
    if of is None:
        return {}
    if of == "array":
        return {"type": "array"}  # Workato cannot say more about nested arrays' items
    return dict(_SCALARS[of])


def _type(value: object, path: str) -> str:
    if isinstance(value, str) and value in WORKATO_TYPES:
        return value
    raise InvalidSchema(
        f"{path}: unknown type {_shown(value)}; expected one of {_TYPE_LIST}", field=path
    )


def _kind(value: object) -> str:
    """How JSON would call ``value``'s type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _shown(value: object) -> str:
    text = msgspec.json.encode(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
