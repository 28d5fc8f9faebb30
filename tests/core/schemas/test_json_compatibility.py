"""JSON Schema compatibility: does the reader accept every document the writer accepts?"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from sluicegate.core.schemas.json_compatibility import read_errors
from sluicegate.core.schemas.json_schema import JsonSchema


def errors(reader: object, writer: object) -> list[str]:
    return read_errors(JsonSchema.parse(json.dumps(reader)), JsonSchema.parse(json.dumps(writer)))


def obj(
    properties: dict[str, Any], *, required: Sequence[str] = (), closed: bool = False
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


S = {"type": "string"}
I = {"type": "integer"}  # noqa: E741


def test_identical() -> None:
    assert errors(obj({"a": S}, required=["a"]), obj({"a": S}, required=["a"])) == []


def test_type_changed() -> None:
    assert errors(I, S) == ["TYPE_CHANGED at #/type: type changed from string to integer"]


def test_type_widened_and_narrowed() -> None:
    assert errors({"type": ["string", "null"]}, S) == []
    assert errors(S, {"type": ["string", "null"]}) == [
        "TYPE_NARROWED at #/type: type null is no longer allowed (now string)"
    ]


def test_integer_fits_in_number_not_back() -> None:
    assert errors({"type": "number"}, I) == []
    assert errors(I, {"type": "number"}) == [
        "TYPE_CHANGED at #/type: type changed from number to integer"
    ]


def test_typing_an_untyped_schema_narrows() -> None:
    assert errors(S, {}) == [
        "TYPE_NARROWED at #/type: the reader allows only string; the writer allows any type"
    ]
    assert errors({}, S) == []
    assert errors(True, S) == []


def test_new_required_property() -> None:
    assert errors(
        obj({"a": S, "b": S}, required=["a", "b"], closed=True),
        obj({"a": S, "b": S}, required=["a"], closed=True),
    ) == [
        "REQUIRED_PROPERTY_ADDED at #/required: property 'b' is required by the reader but "
        "not by the writer"
    ]


def test_dropping_required_is_fine() -> None:
    assert errors(obj({"a": S}), obj({"a": S}, required=["a"])) == []


def test_property_removed_from_closed_model() -> None:
    assert errors(obj({"a": S}, closed=True), obj({"a": S, "b": I}, closed=True)) == [
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL at #/properties/b: property 'b' of the "
        "writer is not allowed by the reader's closed content model"
    ]


def test_property_removed_from_open_model_is_fine() -> None:
    assert errors(obj({"a": S}), obj({"a": S, "b": I})) == []


def test_optional_property_added_to_closed_writer_is_fine() -> None:
    assert errors(obj({"a": S, "b": I}, closed=True), obj({"a": S}, closed=True)) == []


def test_property_added_where_writer_is_open() -> None:
    assert errors(obj({"a": S, "b": I}), obj({"a": S})) == [
        "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL at #/properties/b: property 'b' is new in the "
        "reader and the writer's open content model may carry it with any value"
    ]


def test_closing_an_open_model() -> None:
    assert errors(obj({"a": S}, closed=True), obj({"a": S})) == [
        "ADDITIONAL_PROPERTIES_REMOVED at #/additionalProperties: the reader closes a content "
        "model the writer leaves open"
    ]


def test_nested_property_type_change_names_the_path() -> None:
    reader = obj({"address": obj({"zip": I})})
    writer = obj({"address": obj({"zip": S})})
    assert errors(reader, writer) == [
        "TYPE_CHANGED at #/properties/address/properties/zip/type: type changed from string "
        "to integer"
    ]


@pytest.mark.parametrize(
    ("reader", "writer", "expected"),
    [
        ({"enum": ["a", "b", "c"]}, {"enum": ["a", "b"]}, []),
        (
            {"enum": ["a"]},
            {"enum": ["a", "b"]},
            ['ENUM_NARROWED at #/enum: values ["b"] are no longer allowed'],
        ),
        ({"const": "a"}, {"enum": ["a"]}, []),
        (
            {"enum": ["a"]},
            S,
            ["ENUM_NARROWED at #/enum: the reader restricts values the writer does not"],
        ),
        ({"maxLength": 10}, {"maxLength": 5}, []),
        (
            {"maxLength": 5},
            {"maxLength": 10},
            [
                "MAX_LENGTH_NARROWED at #/maxLength: maxLength is 5 for the reader, "
                "10 for the writer"
            ],
        ),
        (
            {"minimum": 1},
            {"minimum": 0},
            ["MINIMUM_NARROWED at #/minimum: minimum is 1 for the reader, 0 for the writer"],
        ),
        (
            {"minimum": 0},
            {},
            ["MINIMUM_NARROWED at #/minimum: minimum is 0 for the reader, 'absent' for the writer"],
        ),
        ({"minItems": 1}, {"minItems": 2}, []),
        ({"multipleOf": 2}, {"multipleOf": 4}, []),
        (
            {"multipleOf": 4},
            {"multipleOf": 2},
            ["MULTIPLE_OF_CHANGED at #/multipleOf: multipleOf 4 does not divide the writer's 2"],
        ),
        ({"pattern": "^a"}, {"pattern": "^a"}, []),
        (
            {"pattern": "^a"},
            {"pattern": "^b"},
            ["PATTERN_CHANGED at #/pattern: pattern '^a' differs from the writer's '^b'"],
        ),
        (
            {"pattern": "^a"},
            {},
            ["PATTERN_CHANGED at #/pattern: pattern '^a' differs from the writer's 'absent'"],
        ),
        ({"title": "x", "description": "y", "format": "email"}, {"type": "string"}, []),
    ],
)
def test_values_and_bounds(
    reader: dict[str, Any], writer: dict[str, Any], expected: list[str]
) -> None:
    assert errors(reader, writer) == expected


def test_array_items() -> None:
    assert (
        errors({"type": "array", "items": {"type": "number"}}, {"type": "array", "items": I}) == []
    )
    assert errors({"type": "array", "items": I}, {"type": "array", "items": S}) == [
        "TYPE_CHANGED at #/items/type: type changed from string to integer"
    ]
    assert errors({"type": "array", "uniqueItems": True}, {"type": "array"}) == [
        "UNIQUE_ITEMS_ADDED at #/uniqueItems: the reader requires unique items"
    ]


def test_tuple_items() -> None:
    assert errors({"type": "array", "items": [S, I]}, {"type": "array", "items": [S, I]}) == []
    assert errors({"type": "array", "items": [S, S]}, {"type": "array", "items": [S, I]}) == [
        "TYPE_CHANGED at #/items/1/type: type changed from integer to string"
    ]


def test_references_are_followed() -> None:
    def with_zip(kind: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"zip": {"$ref": "#/definitions/zip"}},
            "definitions": {"zip": kind},
        }

    assert errors(with_zip(S), with_zip(S)) == []
    assert errors(with_zip(I), with_zip(S)) == [
        "TYPE_CHANGED at #/properties/zip/type: type changed from string to integer"
    ]


def test_recursive_references_terminate() -> None:
    tree = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}}
    assert errors(tree, tree) == []


def test_any_of_each_writer_branch_needs_a_reader_branch() -> None:
    assert errors({"anyOf": [S, I, {"type": "null"}]}, {"anyOf": [S, I]}) == []
    assert errors({"anyOf": [S]}, {"anyOf": [S, I]}) == [
        "COMBINED_TYPE_SUBSCHEMAS_CHANGED at #/anyOf: writer alternative 1 is accepted by no "
        "anyOf branch of the reader"
    ]
    assert errors({"oneOf": [S, I]}, S) == []


def test_not() -> None:
    assert errors({"not": S}, {"not": S}) == []
    assert errors({}, {"not": S}) == []
    assert errors({"not": S}, {}) == ["NOT_ADDED at #/not: the reader adds a 'not' exclusion"]
    assert errors({"not": {"type": ["string", "integer"]}}, {"not": S}) == [
        "NOT_CHANGED at #/not: the reader excludes values the writer allows"
    ]


def test_unmodelled_keywords_may_not_change() -> None:
    if_then = {"if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["b"]}}
    assert errors(if_then, if_then) == []
    assert errors(if_then, {}) == [
        "UNSUPPORTED_KEYWORD_CHANGED at #/if: keyword 'if' changed; changes to it are treated "
        "as incompatible",
        "UNSUPPORTED_KEYWORD_CHANGED at #/then: keyword 'then' changed; changes to it are "
        "treated as incompatible",
    ]


def test_boolean_schemas() -> None:
    assert errors(True, False) == []
    assert errors(False, False) == []
    assert errors(False, S) == ["TYPE_NARROWED at #: the reader accepts no value here"]
