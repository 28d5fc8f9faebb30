"""Avro schema resolution: can the reader read what the writer wrote?"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluicegate.core.schemas.avro import AvroSchema
from sluicegate.core.schemas.avro_compatibility import read_errors


def errors(reader: object, writer: object) -> list[str]:
    return read_errors(AvroSchema.parse(json.dumps(reader)), AvroSchema.parse(json.dumps(writer)))


def record(*fields: dict[str, Any], name: str = "R", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def field(name: str, kind: object, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, **extra}


A = field("a", "int")


def test_identical_records_are_compatible() -> None:
    assert errors(record(A), record(A)) == []


def test_reader_field_with_default_may_be_missing_from_writer() -> None:
    assert errors(record(A, field("b", "string", default="x")), record(A)) == []


def test_reader_field_without_default_must_be_in_writer() -> None:
    assert errors(record(A, field("b", "string")), record(A)) == [
        "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1: reader field 'b' has no default "
        "value and is missing from the writer"
    ]


def test_writer_only_fields_are_skipped() -> None:
    assert errors(record(A), record(A, field("b", "string"))) == []


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    ],
)
def test_promotions(writer: str, reader: str) -> None:
    assert errors(reader, writer) == []
    assert errors(record(field("a", reader)), record(field("a", writer))) == []


@pytest.mark.parametrize(
    ("writer", "reader"),
    [("long", "int"), ("double", "float"), ("float", "long"), ("string", "int"), ("null", "int")],
)
def test_no_demotions(writer: str, reader: str) -> None:
    assert errors(reader, writer) == [
        f"TYPE_MISMATCH at /: reader type {reader} cannot read writer type {writer}"
    ]


def test_type_change_in_a_field_names_the_path() -> None:
    assert errors(record(field("a", "string")), record(A)) == [
        "TYPE_MISMATCH at /fields/0/type: reader type string cannot read writer type int"
    ]


def test_nested_record_path() -> None:
    inner_writer = record(field("x", "int"), field("y", "long"), name="Inner")
    inner_reader = record(field("x", "int"), field("y", "int"), name="Inner")
    assert errors(record(field("in", inner_reader)), record(field("in", inner_writer))) == [
        "TYPE_MISMATCH at /fields/0/type/fields/1/type: reader type int cannot read writer "
        "type long"
    ]


# -- enums -----------------------------------------------------------------------------


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "E", "symbols": list(symbols), **extra}


def test_enum_reader_may_know_more_symbols() -> None:
    assert errors(enum("A", "B", "C"), enum("A", "B")) == []


def test_enum_reader_must_know_writer_symbols() -> None:
    assert errors(enum("A"), enum("A", "B", "C")) == [
        "MISSING_ENUM_SYMBOLS at /symbols: reader enum 'E' lacks writer symbols ['B', 'C'] "
        "and has no default symbol"
    ]


def test_enum_reader_default_absorbs_unknown_symbols() -> None:
    assert errors(enum("A", "UNKNOWN", default="UNKNOWN"), enum("A", "B")) == []


def test_enum_names_must_match() -> None:
    assert errors(enum("A"), {**enum("A"), "name": "F"}) == [
        "NAME_MISMATCH at /: reader name 'E' does not match writer name 'F'"
    ]


# -- unions ----------------------------------------------------------------------------


def test_reader_union_reads_any_of_its_branches() -> None:
    assert errors(["null", "string"], "string") == []
    assert errors(["null", "long"], "int") == []  # through a promotion


def test_reader_union_without_a_branch_for_the_writer() -> None:
    assert errors(["null", "int"], "string") == [
        "MISSING_UNION_BRANCH at /: reader union lacks a branch for writer type string"
    ]


def test_every_writer_branch_must_be_readable() -> None:
    assert errors("string", ["null", "string"]) == [
        "TYPE_MISMATCH at /: reader type string cannot read writer type null"
    ]
    assert errors(["string", "null", "int"], ["null", "string"]) == []


def test_making_a_field_optional_is_backward_compatible_only() -> None:
    optional = record(field("a", ["null", "int"], default=None))
    required = record(A)
    assert errors(optional, required) == []
    assert errors(required, optional) == [
        "TYPE_MISMATCH at /fields/0/type: reader type int cannot read writer type null"
    ]


# -- arrays, maps, fixed ---------------------------------------------------------------


def test_array_items_and_map_values_resolve() -> None:
    assert errors({"type": "array", "items": "long"}, {"type": "array", "items": "int"}) == []
    assert errors({"type": "array", "items": "int"}, {"type": "array", "items": "long"}) == [
        "TYPE_MISMATCH at /items: reader type int cannot read writer type long"
    ]
    assert errors({"type": "map", "values": "int"}, {"type": "map", "values": "string"}) == [
        "TYPE_MISMATCH at /values: reader type int cannot read writer type string"
    ]


def test_array_is_not_a_map() -> None:
    assert errors({"type": "array", "items": "int"}, {"type": "map", "values": "int"}) == [
        "TYPE_MISMATCH at /: reader type array cannot read writer type map"
    ]


def test_fixed_size_and_name() -> None:
    four = {"type": "fixed", "name": "F", "size": 4}
    assert errors(four, four) == []
    assert errors(four, {**four, "size": 8}) == [
        "FIXED_SIZE_MISMATCH at /size: reader fixed size 4 differs from writer size 8"
    ]
    assert errors(four, {**four, "name": "G"}) == [
        "NAME_MISMATCH at /: reader name 'F' does not match writer name 'G'"
    ]


# -- names -----------------------------------------------------------------------------


def test_record_names_compare_unqualified() -> None:
    assert errors(record(A, namespace="a.b"), record(A, namespace="c.d")) == []


def test_record_name_mismatch_unless_reader_alias() -> None:
    assert errors(record(A, name="New"), record(A, name="Old")) == [
        "NAME_MISMATCH at /: reader name 'New' does not match writer name 'Old'"
    ]
    assert errors(record(A, name="New", aliases=["Old"]), record(A, name="Old")) == []


def test_field_alias_finds_renamed_writer_field() -> None:
    assert errors(record(field("b", "int", aliases=["a"])), record(A)) == []


def test_named_type_references_are_followed() -> None:
    point = record(field("x", "int"), name="Point")
    writer = record(field("p", point), field("q", "Point"), name="Pair")
    reader_point = record(field("x", "long"), field("z", "int", default=0), name="Point")
    reader = record(field("p", reader_point), field("q", "Point"), name="Pair")
    assert errors(reader, writer) == []
    bad_point = record(field("x", "string"), name="Point")
    bad = record(field("p", bad_point), field("q", "Point"), name="Pair")
    # Each use of the named type is reported where it is used.
    assert errors(bad, writer) == [
        "TYPE_MISMATCH at /fields/0/type/fields/0/type: reader type string cannot read "
        "writer type int",
        "TYPE_MISMATCH at /fields/1/type/fields/0/type: reader type string cannot read "
        "writer type int",
    ]


def test_recursive_records_terminate() -> None:
    linked = record(A, field("next", ["null", "Node"], default=None), name="Node")
    assert errors(linked, linked) == []
    grown = record(
        A, field("next", ["null", "Node"], default=None), field("w", "int", default=1), name="Node"
    )
    assert errors(grown, linked) == []
    strict = record(
        A, field("next", ["null", "Node"], default=None), field("w", "int"), name="Node"
    )
    assert errors(strict, linked) == [
        "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/2: reader field 'w' has no default "
        "value and is missing from the writer"
    ]
