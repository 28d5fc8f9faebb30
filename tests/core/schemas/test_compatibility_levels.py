"""Compatibility levels: which direction, and against which versions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluicegate.core.schemas.avro import AvroSchema
from sluicegate.core.schemas.compatibility import (
    CompatibilityLevel,
    incompatibilities,
    parse_level,
)
from sluicegate.core.schemas.json_schema import JsonSchema
from sluicegate.core.schemas.model import ParsedSchema
from sluicegate.errors import Unprocessable

L = CompatibilityLevel


def avro(*fields: dict[str, Any]) -> AvroSchema:
    return AvroSchema.parse(json.dumps({"type": "record", "name": "R", "fields": list(fields)}))


A = {"name": "a", "type": "int"}
B = {"name": "b", "type": "string"}
B_DEFAULT = {"name": "b", "type": "string", "default": "x"}

V_A = avro(A)
V_AB = avro(A, B)
V_AB_DEFAULT = avro(A, B_DEFAULT)


def ok(level: L, new: ParsedSchema, *previous: ParsedSchema) -> bool:
    history = list(enumerate(previous, start=1))
    return not incompatibilities(level, new, history)


# One step at a time: each row is (new, old) and whether each level accepts it.
STEPS: list[tuple[str, AvroSchema, AvroSchema, dict[L, bool]]] = [
    (
        "add field with default",
        V_AB_DEFAULT,
        V_A,
        {L.BACKWARD: True, L.FORWARD: True, L.FULL: True, L.NONE: True},
    ),
    (
        "add field without default",
        V_AB,
        V_A,
        {L.BACKWARD: False, L.FORWARD: True, L.FULL: False, L.NONE: True},
    ),
    (
        "remove field without default",
        V_A,
        V_AB,
        {L.BACKWARD: True, L.FORWARD: False, L.FULL: False, L.NONE: True},
    ),
    (
        "remove field with default",
        V_A,
        V_AB_DEFAULT,
        {L.BACKWARD: True, L.FORWARD: True, L.FULL: True, L.NONE: True},
    ),
    (
        "change a type",
        avro({"name": "a", "type": "string"}),
        V_A,
        {L.BACKWARD: False, L.FORWARD: False, L.FULL: False, L.NONE: True},
    ),
    (
        "widen int to long",
        avro({"name": "a", "type": "long"}),
        V_A,
        {L.BACKWARD: True, L.FORWARD: False, L.FULL: False, L.NONE: True},
    ),
]


@pytest.mark.parametrize(("name", "new", "old", "expected"), STEPS, ids=[s[0] for s in STEPS])
def test_single_step(name: str, new: AvroSchema, old: AvroSchema, expected: dict[L, bool]) -> None:
    for level, accepted in expected.items():
        assert ok(level, new, old) is accepted, level
        if level is not L.NONE:
            # With one previous version, the transitive level decides the same.
            assert ok(L(f"{level}_TRANSITIVE"), new, old) is accepted, level


def test_backward_checks_the_latest_only_transitive_checks_all() -> None:
    # v1 {a}; v2 {a, b="x"}; v3 {a, b}: v3 reads v2's data, not v1's (no b, no default).
    assert ok(L.BACKWARD, V_AB, V_A, V_AB_DEFAULT)
    assert not ok(L.BACKWARD_TRANSITIVE, V_AB, V_A, V_AB_DEFAULT)


def test_forward_checks_the_latest_only_transitive_checks_all() -> None:
    # v1 {a, b}; v2 {a, b="x"}; v3 {a}: v2 reads v3's data (default), v1 cannot.
    assert ok(L.FORWARD, V_A, V_AB, V_AB_DEFAULT)
    assert not ok(L.FORWARD_TRANSITIVE, V_A, V_AB, V_AB_DEFAULT)


def test_full_transitive_needs_both_directions_against_all() -> None:
    assert ok(L.FULL, V_A, V_AB, V_AB_DEFAULT)
    assert not ok(L.FULL_TRANSITIVE, V_A, V_AB, V_AB_DEFAULT)
    assert ok(L.FULL_TRANSITIVE, V_AB_DEFAULT, V_A, V_AB_DEFAULT)


def test_none_accepts_anything_even_another_type() -> None:
    assert ok(L.NONE, JsonSchema.parse('{"type": "string"}'), V_A)


def test_nothing_to_be_incompatible_with() -> None:
    for level in L:
        assert ok(level, V_AB)


def test_messages_say_direction_and_version() -> None:
    assert incompatibilities(L.FULL, V_AB, [(1, V_A)]) == [
        "FULL: the new schema cannot read data written with version 1: "
        "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1: reader field 'b' has no default "
        "value and is missing from the writer"
    ]
    assert incompatibilities(L.FORWARD_TRANSITIVE, V_A, [(1, V_AB), (2, V_AB_DEFAULT)]) == [
        "FORWARD_TRANSITIVE: version 1 cannot read data written with the new schema: "
        "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1: reader field 'b' has no default "
        "value and is missing from the writer"
    ]


def test_schema_type_change_is_incompatible() -> None:
    assert incompatibilities(L.BACKWARD, JsonSchema.parse("{}"), [(3, V_A)]) == [
        "BACKWARD: the new schema cannot read data written with version 3: "
        "SCHEMA_TYPE_CHANGED: a JSON schema cannot read AVRO data"
    ]


def test_all_versions_override() -> None:
    history: list[tuple[int, ParsedSchema]] = [(1, V_A), (2, V_AB_DEFAULT)]
    assert incompatibilities(L.BACKWARD, V_AB, history) == []
    assert incompatibilities(L.BACKWARD, V_AB, history, all_versions=True) != []


def test_json_levels() -> None:
    closed = JsonSchema.parse(
        '{"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}'
    )
    wider = JsonSchema.parse(
        '{"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, '
        '"additionalProperties": false}'
    )
    assert ok(L.BACKWARD, wider, closed)
    assert not ok(L.FORWARD, wider, closed)


@pytest.mark.parametrize("text", ["backward", "FULL_TRANSITIVE", "None"])
def test_parse_level_any_case(text: str) -> None:
    assert parse_level(text) == text.upper()


@pytest.mark.parametrize("value", ["SIDEWAYS", "", None, 3])
def test_parse_level_refuses_others(value: object) -> None:
    with pytest.raises(Unprocessable) as caught:
        parse_level(value)
    assert caught.value.detail["reason"] == "invalid_compatibility_level"
    assert caught.value.message.startswith("Invalid compatibility level. Valid values are")
