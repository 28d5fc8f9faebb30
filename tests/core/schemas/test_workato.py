"""Workato's schema format → JSON Schema: each rule, each error, and a property test that
an instance built from a Workato schema validates against its translation."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.core.records import parse_timestamp
from sluicegate.core.schemas.json_schema import JsonSchema
from sluicegate.core.schemas.workato import (
    DRAFT_7,
    WORKATO_TYPES,
    parse_value_schema,
    to_json_schema,
)
from sluicegate.errors import InvalidSchema

# jsonschema checks date-time only with an optional package: use the gateway's own
# RFC 3339 parser, the one the public API reads times with.
FORMATS = jsonschema.FormatChecker(["date"])


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or parse_timestamp(value) is not None


def validator(fields: list[Any]) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(to_json_schema(fields), format_checker=FORMATS)


def is_valid(fields: list[Any], instance: object) -> bool:
    return validator(fields).is_valid(instance)


# -- the translation, rule by rule ---------------------------------------------------


def test_a_flat_schema_translates_to_an_object_with_required_fields() -> None:
    fields = [
        {"name": "id", "type": "integer"},
        {"name": "email", "optional": True, "label": "E-mail", "control_type": "email"},
    ]
    assert to_json_schema(fields) == {
        "$schema": DRAFT_7,
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "email": {"type": ["string", "null"]},
        },
        "required": ["id"],
    }


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("string", "x", 1),
        ("integer", 3, 3.5),
        ("number", 3.5, "3.5"),
        ("boolean", False, "false"),
        ("date", "2024-05-01", "2024-05-01T00:00:00Z"),
        ("date_time", "2024-05-01T12:00:00.5+02:00", "2024-05-01"),
        ("timestamp", "2024-05-01T12:00:00Z", 1714564800),
    ],
)
def test_scalar_types(kind: str, good: object, bad: object) -> None:
    fields = [{"name": "v", "type": kind}]
    assert is_valid(fields, {"v": good})
    assert not is_valid(fields, {"v": bad})


def test_type_defaults_to_string_and_optional_to_required() -> None:
    fields = [{"name": "v"}]
    assert is_valid(fields, {"v": "text"})
    assert not is_valid(fields, {"v": 1})
    assert not is_valid(fields, {})
    assert not is_valid(fields, {"v": None})


def test_an_optional_field_may_be_absent_or_null_but_not_of_another_type() -> None:
    fields = [{"name": "v", "type": "date", "optional": True}]
    assert is_valid(fields, {})
    assert is_valid(fields, {"v": None})
    assert is_valid(fields, {"v": "2024-02-29"})
    assert not is_valid(fields, {"v": "yesterday"})
    assert not is_valid(fields, {"v": 20240229})


def test_unknown_properties_are_allowed_at_every_level() -> None:
    fields = [{"name": "customer", "type": "object", "properties": [{"name": "id"}]}]
    assert is_valid(fields, {"customer": {"id": "c1", "extra": 1}, "extra": True})


def test_object_fields_nest() -> None:
    fields = [
        {
            "name": "customer",
            "type": "object",
            "properties": [
                {"name": "id", "type": "integer"},
                {"name": "address", "type": "object", "properties": [{"name": "city"}]},
            ],
        }
    ]
    assert is_valid(fields, {"customer": {"id": 1, "address": {"city": "Oslo"}}})
    assert not is_valid(fields, {"customer": {"id": 1, "address": {}}})
    assert not is_valid(fields, {"customer": {"id": 1, "address": {"city": 7}}})


def test_an_object_without_properties_is_any_object() -> None:
    fields = [{"name": "meta", "type": "object"}]
    assert is_valid(fields, {"meta": {"anything": [1, 2]}})
    assert not is_valid(fields, {"meta": [1, 2]})


def test_array_of_objects_from_properties_with_or_without_of() -> None:
    lines = [{"name": "sku"}, {"name": "qty", "type": "number"}]
    for field in (
        {"name": "lines", "type": "array", "of": "object", "properties": lines},
        {"name": "lines", "type": "array", "properties": lines},
    ):
        assert is_valid([field], {"lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 0.5}]})
        assert not is_valid([field], {"lines": [{"sku": "a"}]})
        assert not is_valid([field], {"lines": {"sku": "a", "qty": 1}})


def test_array_of_scalars_and_of_anything() -> None:
    assert is_valid([{"name": "tags", "type": "array", "of": "string"}], {"tags": ["a", "b"]})
    assert not is_valid([{"name": "tags", "type": "array", "of": "string"}], {"tags": [1]})
    assert is_valid([{"name": "any", "type": "array"}], {"any": [1, "a", None, {}]})
    dates = [{"name": "days", "type": "array", "of": "date"}]
    assert not is_valid(dates, {"days": ["2024-13-01"]})


def test_ui_attributes_constrain_nothing_and_are_not_translated() -> None:
    plain = [{"name": "status"}]
    dressed = [
        {
            "name": "status",
            "label": "Status",
            "hint": "Pick one",
            "control_type": "select",
            "pick_list": [["Open", "open"], ["Closed", "closed"]],
            "sticky": True,
        }
    ]
    assert to_json_schema(dressed) == to_json_schema(plain)
    assert is_valid(dressed, {"status": "not in the pick list"})


def test_a_scalars_of_and_properties_are_kept_but_constrain_nothing() -> None:
    dressed = [{"name": "s", "of": "integer", "properties": [{"name": "x"}]}]
    assert to_json_schema(dressed) == to_json_schema([{"name": "s"}])


def test_an_empty_schema_is_any_object() -> None:
    assert to_json_schema([]) == {"$schema": DRAFT_7, "type": "object", "properties": {}}


# -- both accepted forms -------------------------------------------------------------


def test_a_workato_list_parses_to_registrable_json_schema_text() -> None:
    fields = [{"name": "id", "type": "integer"}]
    parsed = parse_value_schema(fields)
    assert parsed.given == fields
    assert json.loads(parsed.text) == to_json_schema(fields)
    JsonSchema.parse(parsed.text)  # what the registry will accept


def test_a_json_schema_object_is_taken_as_it_is() -> None:
    document = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}
    parsed = parse_value_schema(document)
    assert parsed.given == document
    assert json.loads(parsed.text) == document


# -- errors name the field path ------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "path", "says"),
    [
        ("orders", "schema", "expected a list of Workato field objects or a JSON Schema object"),
        (None, "schema", "got null"),
        (True, "schema", "got a boolean"),
        ([1], "schema[0]", "expected a field object, got a number"),
        ([{"type": "string"}], "schema[0].name", "non-empty string name"),
        ([{"name": ""}], "schema[0].name", "non-empty string name"),
        ([{"name": "a"}, {"name": "a"}], "schema[1].name", "duplicate field name 'a'"),
        ([{"name": "a", "type": "strng"}], "schema[0].type", "unknown type 'strng'"),
        ([{"name": "a", "type": "String"}], "schema[0].type", "unknown type 'String'"),
        ([{"name": "a", "optional": "yes"}], "schema[0].optional", "expected true or false"),
        (
            [{"name": "o", "type": "object", "properties": [{"name": "p", "type": 5}]}],
            "schema[0].properties[0].type",
            "unknown type 5",
        ),
        (
            [{"name": "o", "type": "object", "properties": {"p": {}}}],
            "schema[0].properties",
            "expected a list of field objects, got an object",
        ),
        ([{"name": "l", "type": "array", "of": "list"}], "schema[0].of", "unknown type 'list'"),
        (
            [{"name": "l", "type": "array", "of": "string", "properties": [{"name": "x"}]}],
            "schema[0].properties",
            "only an array of objects has properties",
        ),
        (
            [{"name": "s", "type": "string", "properties": 6779880}],
            "schema[0].properties",
            "expected a list of field objects, got a number",
        ),
        (
            [{"name": "s", "properties": [{"name": 1}]}],
            "schema[0].properties[0].name",
            "non-empty string name",
        ),
        ([{"name": "s", "of": "list"}], "schema[0].of", "unknown type 'list'"),
        ([{"name": "l", "type": "array", "of": None}], "schema[0].of", "unknown type null"),
        ([{"name": "s", "label": 5}], "schema[0].label", "expected a string, got 5"),
        ([{"name": "s", "hint": []}], "schema[0].hint", "expected a string"),
        ([{"name": "s", "control_type": None}], "schema[0].control_type", "got null"),
        ({"type": "no-such-type"}, "schema", "Invalid JSON Schema"),
        ({"properties": {"a": {"$ref": "#/nowhere"}}}, "schema", "unresolvable $ref"),
    ],
)
def test_invalid_schemas_are_refused_naming_the_path(given: object, path: str, says: str) -> None:
    with pytest.raises(InvalidSchema) as caught:
        parse_value_schema(given)
    assert caught.value.message.startswith(f"{path}: ")
    assert says in caught.value.message
    assert caught.value.detail["field"] == path
    assert caught.value.status == 400


def test_nesting_is_bounded() -> None:
    field: dict[str, Any] = {"name": "leaf"}
    for _ in range(40):
        field = {"name": "n", "type": "object", "properties": [field]}
    with pytest.raises(InvalidSchema, match="nested deeper than 32 levels"):
        parse_value_schema([field])


# -- property: an instance built from a Workato schema validates --------------------

NAMES = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)
SCALARS = [t for t in WORKATO_TYPES if t not in ("object", "array")]
UI = st.fixed_dictionaries(
    {},
    optional={
        "label": st.text(max_size=10),
        "hint": st.text(max_size=10),
        "control_type": st.sampled_from(["text", "select", "date", "checkbox"]),
    },
)


def _field(children: st.SearchStrategy[list[dict[str, Any]]]) -> st.SearchStrategy[dict[str, Any]]:
    def build(
        name: str, kind: str, optional: bool | None, ui: dict[str, Any], sub: list[dict[str, Any]]
    ) -> dict[str, Any]:
        field: dict[str, Any] = {"name": name, **ui}
        if kind != "string" or optional is None:
            field["type"] = kind  # "string" is also the default: sometimes left out
        if optional is not None:
            field["optional"] = optional
        if kind == "object":
            field["properties"] = sub
        elif kind.startswith("array"):
            field["type"] = "array"
            item = kind.removeprefix("array:")
            if item == "object":
                field["properties"] = sub
            elif item != "array":
                field["of"] = item
        return field

    kinds = st.sampled_from(
        [*SCALARS, "object", "array", "array:object", *(f"array:{s}" for s in SCALARS)]
    )
    return st.builds(build, NAMES, kinds, st.none() | st.booleans(), UI, children)


def _unique(fields: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(fields, max_size=4, unique_by=lambda f: f["name"])


WORKATO_SCHEMAS = st.recursive(
    st.just([]), lambda children: _unique(_field(children)), max_leaves=12
)

_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(max_size=8),
    "integer": st.integers(-(2**40), 2**40),
    "number": st.integers(-1000, 1000) | st.floats(allow_nan=False, allow_infinity=False),
    "boolean": st.booleans(),
    "date": st.dates().map(lambda d: d.isoformat()),
    "date_time": st.datetimes().map(lambda d: d.isoformat() + "Z"),
    "timestamp": st.datetimes().map(lambda d: d.isoformat(timespec="milliseconds") + "+00:00"),
}


def _instance(draw: st.DrawFn, fields: list[dict[str, Any]]) -> dict[str, Any]:
    """An object a Workato user would publish for ``fields``."""
    instance: dict[str, Any] = {}
    for field in fields:
        if field.get("optional", False):
            choice = draw(st.sampled_from(["absent", "null", "value"]))
            if choice == "absent":
                continue
            if choice == "null":
                instance[field["name"]] = None
                continue
        instance[field["name"]] = _value(draw, field)
    if draw(st.booleans()):
        instance["not_in_the_schema"] = draw(st.integers())
    return instance


def _value(draw: st.DrawFn, field: dict[str, Any]) -> Any:
    kind = field.get("type", "string")
    if kind == "object":
        return _instance(draw, field["properties"])
    if kind == "array":
        count = draw(st.integers(0, 3))
        if "properties" in field:
            return [_instance(draw, field["properties"]) for _ in range(count)]
        of = field.get("of")
        if of is None:
            return draw(st.lists(st.none() | st.integers() | st.text(max_size=3), max_size=3))
        return [draw(_VALUES[of]) for _ in range(count)]
    return draw(_VALUES[kind])


@st.composite
def schema_and_instance(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    fields = draw(WORKATO_SCHEMAS)
    return fields, _instance(draw, fields)


@settings(max_examples=300, deadline=None)
@given(schema_and_instance())
def test_instances_of_a_workato_schema_validate_against_its_translation(
    case: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    fields, instance = case
    parsed = parse_value_schema(fields)
    checker = jsonschema.Draft7Validator(json.loads(parsed.text), format_checker=FORMATS)
    assert list(checker.iter_errors(instance)) == []
    # And the registry's own validator (what the gateway checks with) agrees.
    JsonSchema.parse(parsed.text).validate(instance)


@settings(max_examples=200, deadline=None)
@given(schema_and_instance())
def test_leaving_out_a_required_field_is_invalid(
    case: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    fields, instance = case
    required = [f["name"] for f in fields if not f.get("optional", False)]
    if not required:
        return
    broken = {k: v for k, v in instance.items() if k != required[0]}
    assert not validator(fields).is_valid(broken)
    nulled = {**instance, required[0]: None}
    assert not validator(fields).is_valid(nulled)
