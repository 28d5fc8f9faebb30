"""JSON Schema compatibility: does the reader accept every document the writer accepts?"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from sluicegate.core.schemas.compatibility import CompatibilityLevel, incompatibilities
from sluicegate.core.schemas.json_compatibility import read_errors
from sluicegate.core.schemas.json_schema import JsonSchema
from sluicegate.errors import InvalidSchema


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
        "COMBINED_TYPE_SUBSCHEMAS_CHANGED at #/anyOf: no anyOf branch of the reader accepts the "
        "writer's documents (writer alternative anyOf/1)"
    ]
    assert errors({"oneOf": [S, I]}, S) == []


def test_not() -> None:
    assert errors({"not": S}, {"not": S}) == []
    assert errors({}, {"not": S}) == []
    assert errors({"not": S}, {}) == ["NOT_ADDED at #/not: the reader adds a 'not' exclusion"]
    assert errors({"not": {"type": ["string", "integer"]}}, {"not": S}) == [
        "NOT_CHANGED at #/not: the reader excludes values the writer allows"
    ]


def test_unmodelled_keywords_may_not_be_added() -> None:
    if_then = {"if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["b"]}}
    assert errors(if_then, if_then) == []
    assert errors({}, if_then) == []
    assert errors(if_then, {}) == [
        "UNSUPPORTED_KEYWORD_CHANGED at #/if: keyword 'if' changed; changes to it are treated "
        "as incompatible"
    ]


def test_boolean_schemas() -> None:
    assert errors(True, False) == []
    assert errors(False, False) == []
    assert errors(False, S) == ["TYPE_NARROWED at #: the reader accepts no value here"]


# -- the writer's combinators, dropped and provable constraints, in every level ------------


def verdicts(old: object, new: object) -> dict[str, bool]:
    """Whether ``new`` may follow ``old`` in BACKWARD, FORWARD and FULL."""
    parsed_old = JsonSchema.parse(json.dumps(old))
    parsed_new = JsonSchema.parse(json.dumps(new))
    return {
        level: not incompatibilities(CompatibilityLevel(level), parsed_new, [(1, parsed_old)])
        for level in ("BACKWARD", "FORWARD", "FULL")
    }


NULL = {"type": "null"}
ALL = {"BACKWARD": True, "FORWARD": True, "FULL": True}
BACKWARD_ONLY = {"BACKWARD": True, "FORWARD": False, "FULL": False}
FORWARD_ONLY = {"BACKWARD": False, "FORWARD": True, "FULL": False}
NONE = {"BACKWARD": False, "FORWARD": False, "FULL": False}


def nested(schema: object) -> dict[str, Any]:
    return obj({"a": schema}, required=["a"], closed=True)


def tagged(kind: str) -> dict[str, Any]:
    """A variant of a tagged union: objects whose ``kind`` is ``kind``."""
    return obj({"kind": {"const": kind}, "value": S}, required=["kind"])


COMBINATOR_CASES = [
    pytest.param({"oneOf": [NULL, S]}, {"type": ["null", "string"]}, ALL, id="oneOf-to-type-list"),
    pytest.param(
        nested({"oneOf": [NULL, S]}),
        nested({"type": ["null", "string"]}),
        ALL,
        id="nested-oneOf-to-type-list",
    ),
    pytest.param({"anyOf": [NULL, S]}, {"type": ["null", "string"]}, ALL, id="anyOf-to-type-list"),
    pytest.param(nested({"anyOf": [S]}), nested(S), ALL, id="one-branch-anyOf-made-plain"),
    pytest.param({"oneOf": [NULL, S]}, {"anyOf": [NULL, S]}, ALL, id="oneOf-to-anyOf"),
    pytest.param(
        nested({"oneOf": [NULL, obj({"x": I})]}),
        nested({"anyOf": [NULL, obj({"x": I})]}),
        ALL,
        id="nested-oneOf-to-anyOf",
    ),
    pytest.param({"allOf": [obj({"a": S})]}, obj({"a": S}), ALL, id="one-branch-allOf-made-plain"),
    pytest.param(
        {"type": "object", "allOf": [{"properties": {"a": S}}, {"required": ["a"]}]},
        obj({"a": S}, required=["a"]),
        ALL,
        id="allOf-parts-merged",
    ),
    pytest.param(
        {"oneOf": [NULL, S]},
        {"type": ["null", "string", "integer"]},
        BACKWARD_ONLY,
        id="type-added",
    ),
    pytest.param(
        {"oneOf": [obj({"kind": {"const": "a"}}, required=["kind"]), NULL]},
        {"oneOf": [obj({"kind": {"const": "a"}}, required=["kind"]), NULL, S]},
        BACKWARD_ONLY,
        id="oneOf-branch-added",
    ),
    pytest.param(
        {"oneOf": [tagged("a"), tagged("b")]},
        {"oneOf": [tagged("a"), tagged("b"), tagged("c")]},
        BACKWARD_ONLY,
        id="tagged-union-variant-added",
    ),
    # Their unsafe twins: a writer branch the reader does not accept.
    pytest.param(
        {"oneOf": [NULL, S, I]}, {"type": ["null", "string"]}, FORWARD_ONLY, id="twin-type"
    ),
    pytest.param(
        nested({"oneOf": [NULL, I]}), nested({"type": ["null", "string"]}), NONE, id="twin-nested"
    ),
    pytest.param(
        {"oneOf": [{"type": "number"}, I]},
        {"anyOf": [{"type": "number"}, I]},
        BACKWARD_ONLY,
        id="twin-anyOf-to-oneOf-with-overlapping-branches",
    ),
    pytest.param({"allOf": [obj({"a": S})]}, obj({"a": I}), NONE, id="twin-allOf"),
    pytest.param(
        {"oneOf": [obj({"kind": {"const": "a"}}, required=["kind"]), NULL]},
        {"oneOf": [obj({"kind": {"const": "a"}}, required=["kind"]), NULL, {"type": "object"}]},
        NONE,
        id="twin-oneOf-branch-overlapping",
    ),
]

PROPERTY_NAMES = {"pattern": "^[a-z]+$"}
DEPENDENCIES = {"a": ["b"]}
CONDITION = {
    "if": {"properties": {"a": {"const": 1}}, "required": ["a"]},
    "then": {"required": ["b"]},
}
OPEN = {"type": "object", "properties": {"a": I, "b": S}}
CLOSED = {**OPEN, "additionalProperties": False}

UNMODELLED_CASES = [
    pytest.param(
        {**OPEN, "propertyNames": PROPERTY_NAMES}, OPEN, BACKWARD_ONLY, id="propertyNames-dropped"
    ),
    pytest.param(
        {**OPEN, "dependencies": DEPENDENCIES}, OPEN, BACKWARD_ONLY, id="dependencies-dropped"
    ),
    pytest.param(
        {**OPEN, "dependentRequired": DEPENDENCIES},
        OPEN,
        BACKWARD_ONLY,
        id="dependentRequired-dropped",
    ),
    pytest.param({**OPEN, **CONDITION}, OPEN, BACKWARD_ONLY, id="if-then-dropped"),
    pytest.param(
        {**OPEN, **CONDITION, "else": {"required": ["a"]}},
        {**OPEN, **CONDITION},
        BACKWARD_ONLY,
        id="else-dropped",
    ),
    pytest.param(
        {**OPEN, "required": ["b"]},
        {**OPEN, "required": ["b"], "dependencies": DEPENDENCIES},
        ALL,
        id="dependency-the-writer-meets-anyway",
    ),
    # Their unsafe twins: the constraint changed, not dropped.
    pytest.param(
        {**OPEN, "propertyNames": PROPERTY_NAMES},
        {**OPEN, "propertyNames": {"pattern": "^[a-y]+$"}},
        NONE,
        id="twin-propertyNames-changed",
    ),
    pytest.param(
        {**OPEN, "dependencies": DEPENDENCIES},
        {**OPEN, "dependencies": {"b": ["a"]}},
        NONE,
        id="twin-dependencies-changed",
    ),
    pytest.param(
        {**OPEN, **CONDITION},
        {**OPEN, **CONDITION, "then": {"required": ["a", "b"]}},
        FORWARD_ONLY,
        id="twin-then-narrowed",
    ),
]

PROVABLE_CASES = [
    pytest.param(CLOSED, {**CLOSED, "propertyNames": PROPERTY_NAMES}, ALL, id="names-all-match"),
    pytest.param(
        {**OPEN, "propertyNames": {"maxLength": 3}},
        {**OPEN, "propertyNames": {"maxLength": 5}},
        BACKWARD_ONLY,
        id="names-bound-widened",
    ),
    pytest.param(
        {**CLOSED, "properties": {"a": I, "b": S, "c": False}},
        {
            **CLOSED,
            "properties": {"a": I, "b": S, "c": False},
            "propertyNames": {"enum": ["a", "b"]},
        },
        ALL,
        id="names-the-writer-forbids-do-not-count",
    ),
    # Their unsafe twins: a name that does not match, or a writer that allows any name.
    pytest.param(
        CLOSED, {**CLOSED, "propertyNames": {"pattern": "^a"}}, FORWARD_ONLY, id="twin-name-fails"
    ),
    pytest.param(
        OPEN, {**OPEN, "propertyNames": PROPERTY_NAMES}, FORWARD_ONLY, id="twin-writer-open"
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), COMBINATOR_CASES)
def test_writer_combinators(old: object, new: object, expected: dict[str, bool]) -> None:
    assert verdicts(old, new) == expected


@pytest.mark.parametrize(("old", "new", "expected"), UNMODELLED_CASES)
def test_unmodelled_constraints_dropped(
    old: object, new: object, expected: dict[str, bool]
) -> None:
    assert verdicts(old, new) == expected


@pytest.mark.parametrize(("old", "new", "expected"), PROVABLE_CASES)
def test_property_names_proved(old: object, new: object, expected: dict[str, bool]) -> None:
    assert verdicts(old, new) == expected


def test_incompatible_writer_branches_are_named() -> None:
    assert errors({"type": ["null", "string"]}, {"oneOf": [NULL, S, I]}) == [
        "TYPE_CHANGED at #/type: type changed from integer to null, string "
        "(writer alternative oneOf/2)"
    ]
    assert errors({"oneOf": [NULL, S]}, {"type": ["null", "string", "integer"]}) == [
        "COMBINED_TYPE_SUBSCHEMAS_CHANGED at #/oneOf: no oneOf branch of the reader accepts "
        "the writer's integer documents"
    ]
    assert errors({"oneOf": [{"type": "number"}, I]}, I) == [
        "COMBINED_TYPE_SUBSCHEMAS_CHANGED at #/oneOf: the writer's documents may match more "
        "than one oneOf branch of the reader"
    ]


def test_a_writer_of_few_values_is_asked_of_the_reader() -> None:
    assert errors({"type": "string", "pattern": "^[a-c]$"}, {"enum": ["a", "b"]}) == []
    assert errors({"type": "string", "pattern": "^[a-c]$"}, {"enum": ["a", "d"]}) == [
        "TYPE_NARROWED at #/type: the reader allows only string; the writer allows any type",
        "PATTERN_CHANGED at #/pattern: pattern '^[a-c]$' differs from the writer's 'absent'",
    ]


def test_references_inside_a_referenced_schema_are_its_own() -> None:
    other = JsonSchema.parse(
        json.dumps({"definitions": {"id": S}, "properties": {"id": {"$ref": "#/definitions/id"}}})
    )
    reader = JsonSchema.parse(
        json.dumps({"$ref": "other.json", "definitions": {"id": I}}), {"other.json": other}
    )
    writer = JsonSchema.parse(json.dumps({"properties": {"id": S}}))
    assert read_errors(reader, writer) == []
    assert read_errors(writer, reader) == []


def test_cycles_through_no_property_are_refused() -> None:
    looping = {"anyOf": [{"$ref": "#"}, S]}
    assert errors(looping, S) == []
    assert errors(looping, I) == [
        "COMBINED_TYPE_SUBSCHEMAS_CHANGED at #/anyOf: no anyOf branch of the reader accepts the "
        "writer's documents"
    ]
    assert errors({"allOf": [{"$ref": "#"}]}, S) == [
        "UNSUPPORTED_KEYWORD_CHANGED at #/allOf/0/$ref: a $ref cycle that passes through no "
        "property or item cannot be decided"
    ]


# -- cases where the checker on main said compatible and the validator disagreed ------------

DRAFT_2020 = "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(
    ("reader", "writer", "document"),
    [
        pytest.param({"enum": [1]}, {"enum": [True]}, True, id="true-is-not-1"),
        pytest.param({"multipleOf": 0.1}, {"multipleOf": 0.3}, 0.3, id="float-multipleOf"),
        pytest.param(
            {"properties": {"p": {}}, "patternProperties": {"p": I}},
            {"properties": {"p": S}, "additionalProperties": I},
            {"p": "x"},
            id="pattern-beside-a-property",
        ),
        pytest.param(
            {"patternProperties": {"^xy": I}},
            {"patternProperties": {"^x": S}, "additionalProperties": False},
            {"xy": "s"},
            id="overlapping-patterns",
        ),
        pytest.param(
            {"type": "array", "items": I, "prefixItems": [{}]},
            {"type": "array", "items": [S], "additionalItems": False},
            ["x"],
            id="prefixItems-is-not-draft-7",
        ),
        pytest.param({"const": 1, "enum": [2]}, {"const": 1}, 1, id="const-and-enum"),
        pytest.param({"oneOf": [{"type": "number"}, I]}, I, 1, id="oneOf-is-not-anyOf"),
        pytest.param(
            {"$schema": DRAFT_2020, "properties": {"a": {}}, "unevaluatedProperties": False},
            {
                "$schema": DRAFT_2020,
                "properties": {"a": {}, "b": {}},
                "unevaluatedProperties": False,
            },
            {"b": 1},
            id="unevaluatedProperties-depends-on-its-neighbours",
        ),
        pytest.param(
            {"$schema": DRAFT_2020, "$defs": {"x": {}}, "$ref": "#/$defs/x", "type": "string"},
            {"$schema": DRAFT_2020},
            1,
            id="ref-siblings-apply-from-2019-09",
        ),
    ],
)
def test_refuses_what_the_validator_refuses(
    reader: object, writer: object, document: object
) -> None:
    reader_schema = JsonSchema.parse(json.dumps(reader))
    writer_schema = JsonSchema.parse(json.dumps(writer))
    writer_schema.validate(document)
    with pytest.raises(InvalidSchema):
        reader_schema.validate(document)
    assert read_errors(reader_schema, writer_schema) != []


def test_writer_parts_are_merged_keyword_by_keyword() -> None:
    bounded = {"type": "integer", "minimum": 0, "maximum": 10}
    assert errors(bounded, {"allOf": [{"type": "integer", "minimum": 0}, {"maximum": 10}]}) == []
    assert (
        errors(
            {"enum": ["b", "c"]}, {"allOf": [{"enum": ["a", "b", "c"]}, {"enum": ["b", "c", "d"]}]}
        )
        == []
    )
    assert errors(S, {"allOf": [S, I]}) == []  # no document is both
    items = {"type": "array", "items": [S, I], "additionalItems": False}
    assert (
        errors(
            items, {"allOf": [{"type": "array", "items": [S]}, {"items": [{}, I], "maxItems": 2}]}
        )
        == []
    )


def nested_any_of(depth: int, leaf: str) -> dict[str, Any]:
    """Three branches per level and a string: 3 ** depth leaves."""
    if depth == 0:
        return {"type": leaf}
    branches = [nested_any_of(depth - 1, leaf) for _ in range(3)]
    return {"anyOf": [*branches, {"type": "string", "maxLength": depth}]}


def test_writers_too_large_to_multiply_out_are_taken_a_level_at_a_time() -> None:
    assert errors(nested_any_of(4, "number"), nested_any_of(4, "integer")) == []


def test_unchanged_parts_are_compatible_however_large() -> None:
    assert errors(nested_any_of(5, "integer"), nested_any_of(5, "integer")) == []


def test_comparisons_past_the_budget_are_refused() -> None:
    assert errors(nested_any_of(4, "integer"), nested_any_of(4, "number")) == [
        "SCHEMAS_TOO_COMPLEX at #: comparing needs more than 10000 steps; treated as incompatible"
    ]


def test_recursion_through_two_nots_ends() -> None:
    # Main recursed until Python's limit here: each 'not' made a new checker.
    no_self = {
        "not": {"type": "object", "properties": {"p": {"$ref": "#"}}, "additionalProperties": False}
    }
    assert errors(no_self, no_self) == []
    assert errors(no_self, {"allOf": [no_self], "definitions": {"d": {}}}) == []
