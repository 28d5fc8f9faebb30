"""Avro: parsing, identity, the checks fastavro skips, validation messages, encoding."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from sluicegate.core.schemas.avro import AvroSchema
from sluicegate.errors import InvalidRecord, InvalidSchema

ORDER: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "com.acme",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {
            "name": "lines",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Line",
                    "fields": [
                        {"name": "sku", "type": "string"},
                        {"name": "quantity", "type": "int"},
                    ],
                },
            },
        },
        {"name": "tags", "type": {"type": "map", "values": "string"}, "default": {}},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
    ],
}
VALID_ORDER: dict[str, Any] = {
    "id": 7,
    "note": None,
    "lines": [{"sku": "a", "quantity": 1}, {"sku": "b", "quantity": 2}],
    "tags": {"k": "v"},
    "status": "PAID",
    "digest": b"\x00\x01\x02\x03",
}


def parse(document: object) -> AvroSchema:
    return AvroSchema.parse(json.dumps(document))


def invalid_schema_message(document: object) -> str:
    text = document if isinstance(document, str) else json.dumps(document)
    with pytest.raises(InvalidSchema) as caught:
        AvroSchema.parse(text)
    return caught.value.message


# -- identity --------------------------------------------------------------------------


def test_whitespace_key_order_and_namespace_style_do_not_change_identity() -> None:
    spaced = json.dumps(ORDER, indent=4)
    reordered = json.dumps(dict(reversed(list(ORDER.items()))))
    qualified = json.dumps({**ORDER, "name": "com.acme.Order", "namespace": None})
    forms = {AvroSchema.parse(text).canonical for text in (spaced, reordered, qualified)}
    assert forms == {parse(ORDER).canonical}


def test_bare_primitive_equals_its_object_form() -> None:
    assert AvroSchema.parse('"string"').canonical == parse({"type": "string"}).canonical


@pytest.mark.parametrize(
    "change",
    [
        {"fields": [{"name": "id", "type": "long", "default": 0}]},
        {"fields": [{"name": "id", "type": {"type": "long", "logicalType": "timestamp-millis"}}]},
        {"fields": [{"name": "id", "type": "long", "doc": "the id"}]},
        {"fields": [{"name": "id", "type": "long", "aliases": ["key"]}]},
    ],
)
def test_attributes_that_change_meaning_change_identity(change: dict[str, Any]) -> None:
    base = {"type": "record", "name": "R", "fields": [{"name": "id", "type": "long"}]}
    changed = {**base, **change}
    assert parse(base).canonical != parse(changed).canonical
    # ...whereas Parsing Canonical Form cannot tell most of them apart.
    assert (
        parse(base).parsing_canonical_form
        == '{"name":"R","type":"record","fields":[{"name":"id","type":"long"}]}'
    )


def test_full_name_is_that_of_the_named_type() -> None:
    assert parse(ORDER).full_name == "com.acme.Order"
    assert parse({"type": "enum", "name": "x.E", "symbols": ["A"]}).full_name == "x.E"
    assert AvroSchema.parse('"string"').full_name is None
    assert AvroSchema.parse('["null", "string"]').full_name is None


def test_references_supply_named_types() -> None:
    line = parse({"type": "record", "name": "Line", "namespace": "com.acme", "fields": []})
    order = AvroSchema.parse(
        json.dumps(
            {"type": "record", "name": "O", "fields": [{"name": "l", "type": "com.acme.Line"}]}
        ),
        [line],
    )
    assert order.encode({"l": {}}) == b""
    assert (
        invalid_schema_message(
            {"type": "record", "name": "O", "fields": [{"name": "l", "type": "com.acme.Line"}]}
        )
        == "Invalid Avro schema: unknown type 'com.acme.Line'"
    )


# -- schemas that must be refused ------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{", "Invalid Avro schema: not valid JSON (Input data was truncated)"),
        ("", "Invalid Avro schema: not valid JSON (Input data was truncated)"),
        ("5", "Invalid Avro schema: expected a JSON object, array or string, got int 5"),
        ('"nope"', "Invalid Avro schema: unknown type 'nope'"),
        ({"type": "record", "name": "R"}, "Invalid Avro schema: record 'R' has no fields"),
        ({"type": "fixed", "name": "F"}, "Invalid Avro schema: missing attribute 'size'"),
        (
            {"type": "fixed", "name": "F", "size": -1},
            "Invalid Avro schema at /: fixed size must be a non-negative integer, got -1",
        ),
        (
            {"type": "record", "name": "1R", "fields": []},
            "Invalid Avro schema at /: invalid name '1R'",
        ),
        (
            {"type": "record", "name": "R", "fields": [{"name": "a-b", "type": "int"}]},
            "Invalid Avro schema at /fields/0: invalid field name 'a-b'",
        ),
        (
            {
                "type": "record",
                "name": "R",
                "fields": [{"name": "a", "type": "int"}, {"name": "a", "type": "long"}],
            },
            "Invalid Avro schema at /fields/1: duplicate field name 'a'",
        ),
        (["int", "int"], "Invalid Avro schema at /1: duplicate union branch int"),
        (["int", ["null"]], "Invalid Avro schema at /1: a union may not directly contain a union"),
        ([], "Invalid Avro schema at /: a union needs at least one branch"),
        (
            {"type": "enum", "name": "E", "symbols": ["A", "A"]},
            "Invalid Avro schema: All symbols in an enum must be unique",
        ),
        (
            {"type": "enum", "name": "E", "symbols": ["1A"]},
            "Invalid Avro schema: Every symbol must match the regular expression "
            "[A-Za-z_][A-Za-z0-9_]*",
        ),
        (
            {
                "type": "record",
                "name": "R",
                "fields": [{"name": "a", "type": ["null", "int"], "default": 1}],
            },
            "Invalid Avro schema at /fields/0: default 1 of field 'a' does not match the "
            "union's first branch null",
        ),
        (
            {
                "type": "record",
                "name": "R",
                "fields": [{"name": "a", "type": "int", "default": "x"}],
            },
            "Invalid Avro schema: Default value <x> must match schema type: int",
        ),
        (
            {"type": "bytes", "logicalType": "decimal", "scale": 2},
            "Invalid Avro schema at /: decimal precision must be a positive integer, got None",
        ),
        (
            {
                "type": "record",
                "name": "R",
                "fields": [
                    {
                        "name": "d",
                        "type": {"type": "fixed", "name": "F", "size": 4, "logicalType": "decimal"},
                    }
                ],
            },
            "Invalid Avro schema at /fields/0/type: decimal precision must be a positive "
            "integer, got None",
        ),
    ],
)
def test_invalid_schemas(document: object, message: str) -> None:
    assert invalid_schema_message(document) == message


def test_deep_nesting_is_refused_not_a_crash() -> None:
    document: object = "string"
    for _ in range(300):
        document = {"type": "array", "items": document}
    assert invalid_schema_message(document) == (
        "Invalid Avro schema: nested deeper than 128 levels"
    )
    assert invalid_schema_message("[" * 100_000).startswith("Invalid Avro schema: not valid JSON")


def test_bytes_default_may_be_a_string_for_a_bytes_first_union() -> None:
    parse(
        {
            "type": "record",
            "name": "R",
            "fields": [{"name": "b", "type": ["bytes", "null"], "default": "\u00ff"}],
        }
    )


# -- validation ------------------------------------------------------------------------


def mismatch(datum: object, schema: AvroSchema | None = None) -> str:
    with pytest.raises(InvalidSchema) as caught:
        (schema or parse(ORDER)).validate(datum)
    return caught.value.message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "7"}, 'Expected long, got string "7" - at $.id'),
        (
            {"id": 2**63},
            "Expected long in [-9223372036854775808, 9223372036854775807], "
            "got int 9223372036854775808 - at $.id",
        ),
        ({"id": True}, "Expected long, got boolean True - at $.id"),
        ({"note": 5}, "Expected one of [null, string], got int 5 - at $.note"),
        (
            {"lines": [{"sku": "a", "quantity": 1}, {"sku": "b", "quantity": 1.5}]},
            "Expected int, got float 1.5 - at $.lines[1].quantity",
        ),
        (
            {"lines": [{"sku": "a"}]},
            "Missing required field 'quantity' (int) - at $.lines[0]",
        ),
        ({"lines": "abc"}, 'Expected array, got string "abc" - at $.lines'),
        ({"tags": {"k": 1}}, 'Expected string, got int 1 - at $.tags["k"]'),
        (
            {"status": "LOST"},
            "Expected a symbol of enum com.acme.Status [NEW, PAID], "
            'got string "LOST" - at $.status',
        ),
        (
            {"digest": b"\x00"},
            "Expected fixed com.acme.Digest (4 bytes), got bytes b'\\x00' - at $.digest",
        ),
        ({"note": "x" * 100}, None),
    ],
)
def test_validation_names_the_field(change: dict[str, Any], message: str | None) -> None:
    datum = {**VALID_ORDER, **change}
    if message is None:
        parse(ORDER).validate(datum)
    else:
        assert mismatch(datum) == message


def test_missing_top_level_field_and_wrong_top_level_type() -> None:
    datum = dict(VALID_ORDER)
    del datum["status"]
    assert mismatch(datum) == "Missing required field 'status' (enum com.acme.Status) - at $"
    assert mismatch(5) == "Expected record com.acme.Order, got int 5 - at $"
    assert mismatch(None) == "Expected record com.acme.Order, got null - at $"


def test_long_values_are_cut_in_messages() -> None:
    schema = AvroSchema.parse('"int"')
    assert mismatch("y" * 100, schema) == (
        'Expected int, got string "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy... - at $'
    )


def test_union_of_records_blames_the_branch_of_the_same_shape() -> None:
    schema = parse(
        ["null", {"type": "record", "name": "P", "fields": [{"name": "x", "type": "int"}]}]
    )
    assert mismatch({"x": "1"}, schema) == 'Expected int, got string "1" - at $.x'


# -- encoding --------------------------------------------------------------------------


def test_encode_decode_round_trip() -> None:
    schema = parse(ORDER)
    payload = schema.encode(VALID_ORDER)
    # Read as JSON shows it: bytes in Avro's JSON encoding, which encode takes back.
    read = schema.decode(payload)
    assert read == {**VALID_ORDER, "digest": "\x00\x01\x02\x03"}
    assert schema.encode(read) == payload


def test_encode_is_avro_binary() -> None:
    # zig-zag varint 1 → 0x02; a string is its length then its bytes.
    record = parse(
        {
            "type": "record",
            "name": "R",
            "fields": [{"name": "a", "type": "int"}, {"name": "s", "type": "string"}],
        }
    )
    assert record.encode({"a": 1, "s": "hi"}) == b"\x02\x04hi"


def test_encode_refuses_invalid_data() -> None:
    with pytest.raises(InvalidSchema, match=r"at \$\.id$"):
        parse(ORDER).encode({**VALID_ORDER, "id": "x"})


def test_decode_of_garbage_is_an_invalid_record() -> None:
    with pytest.raises(InvalidRecord, match="data is not Avro written with this schema"):
        parse(ORDER).decode(b"\x02")


LINKED = {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}
TREE = {
    "type": "record",
    "name": "T",
    "fields": [{"name": "kids", "type": {"type": "array", "items": "T"}}],
}


def nested(levels: int) -> bytes:
    """A ``LINKED`` record ``levels`` deep: each level the union's second branch."""
    return b"\x02" * levels + b"\x00"


@pytest.mark.parametrize("levels", [100_000, 5_000, 2_000])
def test_data_of_a_recursive_schema_nested_past_the_stack_is_an_invalid_record(
    levels: int,
) -> None:
    # Another Kafka client can write it; fastavro's C reader overflowed the C stack on
    # it, which killed the process (a segmentation fault, not an exception).
    with pytest.raises(InvalidRecord, match="nested deeper than the gateway reads Avro"):
        parse(LINKED).decode(nested(levels))


@pytest.mark.parametrize("levels", [1, 250, 1_000])
def test_data_of_a_recursive_schema_within_the_bounds_reads(levels: int) -> None:
    read = parse(LINKED).decode(nested(levels))
    for _ in range(levels):
        assert isinstance(read, dict)
        read = read["next"]
    assert read == {"next": None}


def test_a_long_record_of_a_recursive_schema_reads_as_the_c_reader_would() -> None:
    # Past the C reader's bytes, the Python reader: same values.
    schema = parse(TREE)
    wide = {"kids": [{"kids": [{"kids": []}] * 3}] * 400}
    payload = schema.encode(wide)
    assert len(payload) > 1024
    assert schema.decode(payload) == wide


@pytest.mark.parametrize(
    ("kind", "recursive"),
    [
        (LINKED, True),
        (TREE, True),
        ({"type": "map", "values": {"type": "array", "items": "long"}}, False),
        (
            {
                "type": "record",
                "name": "A",
                "fields": [
                    {
                        "name": "b",
                        "type": {
                            "type": "record",
                            "name": "B",
                            "fields": [{"name": "x", "type": "int"}],
                        },
                    },
                    {"name": "c", "type": "B"},  # used twice, holding no A
                ],
            },
            False,
        ),
        (
            {
                "type": "record",
                "name": "A",
                "fields": [
                    {
                        "name": "b",
                        "type": [
                            "null",
                            {
                                "type": "record",
                                "name": "B",
                                "fields": [{"name": "a", "type": ["null", "A"]}],
                            },
                        ],
                    }
                ],
            },
            True,
        ),
    ],
)
def test_a_schema_is_recursive_when_a_named_type_can_hold_itself(
    kind: object, recursive: bool
) -> None:
    assert parse(kind)._recursive is recursive


def field_of(kind: object) -> AvroSchema:
    return parse({"type": "record", "name": "R", "fields": [{"name": "v", "type": kind}]})


DATE = {"type": "int", "logicalType": "date"}
MICROS = {"type": "long", "logicalType": "timestamp-micros"}
UUID = {"type": "string", "logicalType": "uuid"}


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (DATE, 2**31 - 1, "would not read back"),
        (MICROS, 2**62, "would not read back"),
        (["null", UUID], "not-a-uuid", "a uuid that is not one"),
        ("float", 1e300, "beyond the range of Avro's 32-bit float"),
        ({"type": "array", "items": {"type": "map", "values": "float"}}, [{"a": -1e39}], "float"),
    ],
)
def test_values_fastavro_writes_but_cannot_read_back_are_refused(
    kind: object, value: object, message: str
) -> None:
    # Stored, each would fail (or turn into ``null``) for every consumer after.
    with pytest.raises(InvalidSchema, match=message):
        field_of(kind).encode({"v": value})


def test_a_named_type_used_again_by_name_is_read_back_too() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "v", "type": "float"}, {"name": "next", "type": ["null", "Node"]}],
    }
    with pytest.raises(InvalidSchema, match="32-bit float"):
        parse(node).encode({"v": 1.0, "next": {"v": 1e39, "next": None}})
    assert parse(node).encode({"v": 1.0, "next": None}) == b"\x00\x00\x80\x3f\x00"


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (DATE, 19_000),
        (DATE, -719_162),  # 0001-01-01, the first day Python has
        (MICROS, 1_700_000_000_000_000),
        (UUID, "123e4567-e89b-12d3-a456-426614174000"),
        ("float", 3.4e38),
        ("double", 1e300),
    ],
)
def test_values_in_range_are_stored(kind: object, value: object) -> None:
    schema = field_of(kind)
    assert schema.decode(schema.encode({"v": value})) is not None


def test_a_stored_value_past_pythons_dates_is_an_invalid_record_not_a_crash() -> None:
    # Written by another Kafka client (valid Avro): its readers here must not fail.
    payload = b"\xfe\xff\xff\xff\x0f"  # the int 2**31 - 1, zig-zag
    with pytest.raises(InvalidRecord, match="data is not Avro written with this schema"):
        field_of(DATE).decode(payload)


DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}


@pytest.mark.parametrize(
    ("kind", "sent", "read"),
    [
        ("bytes", "\u0000\u00ff\u0041", "\u0000\u00ffA"),  # Avro's JSON encoding
        ({"type": "fixed", "name": "F4", "size": 4}, "abcd", "abcd"),
        (["null", "bytes"], "xy", "xy"),
        ({"type": "map", "values": "bytes"}, {"k": "\u00e9"}, {"k": "\u00e9"}),
        (DECIMAL, 12.34, Decimal("12.34")),
        (DECIMAL, "12.3", Decimal("12.30")),  # as it is read: a string holding the number
        (DECIMAL, 12, Decimal("12.00")),
        (["null", DECIMAL], 1.5, Decimal("1.50")),
    ],
)
def test_binary_values_travel_in_avros_json_encoding(
    kind: object, sent: object, read: object
) -> None:
    schema = field_of(kind)
    assert schema.decode(schema.encode({"v": sent})) == {"v": read}


def test_a_string_in_a_union_with_a_string_branch_stays_a_string() -> None:
    schema = field_of(["null", "string", "bytes"])
    assert schema.encode({"v": "xy"}) == b"\x02\x04xy"  # branch 1: the string


@pytest.mark.parametrize(
    ("kind", "sent", "message"),
    [
        ("bytes", "\u0100", "code points 0-255"),
        ({"type": "fixed", "name": "F4", "size": 4}, "abc", "fixed F4"),
        (DECIMAL, "\u0004\u00d2", "Expected a decimal"),
        (DECIMAL, 12.345, "a decimal does not fit its schema"),
        (DECIMAL, 1_234_567_890, "a decimal does not fit its schema"),
    ],
)
def test_binary_values_that_cannot_be_stored_are_refused(
    kind: object, sent: object, message: str
) -> None:
    with pytest.raises(InvalidSchema, match=message):
        field_of(kind).encode({"v": sent})


def decimal(precision: int, scale: int) -> dict[str, Any]:
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


FIXED_DECIMAL = {
    "type": "fixed",
    "name": "F3",
    "size": 3,  # holds 8388607: precision 6, but not every 7 digits
    "logicalType": "decimal",
    "precision": 6,
    "scale": 2,
}


RECORD_WITH_DECIMAL = {
    "type": "record",
    "name": "P",
    "fields": [{"name": "d", "type": decimal(5, 2)}],
}


@pytest.mark.parametrize(
    ("kind", "sent", "message"),
    [
        # fastavro counts the digits as sent, before padding to the scale: 9999900 went in.
        (decimal(6, 2), 99999, "99999 needs 7 digits at scale 2, over its precision of 6 - at $.v"),
        (decimal(5, 2), 99999, "99999 needs 7 digits at scale 2, over its precision of 5 - at $.v"),
        (
            decimal(5, 2),
            1234.5,
            "1234.5 needs 6 digits at scale 2, over its precision of 5 - at $.v",
        ),
        (
            decimal(5, 2),
            "-1234.5",
            "-1234.5 needs 6 digits at scale 2, over its precision of 5 - at $.v",
        ),
        (
            decimal(9, 2),
            1e300,
            "1E+300 needs 303 digits at scale 2, over its precision of 9 - at $.v",
        ),
        # Counted, not built: a billion zeros would take the server down.
        (
            decimal(9, 2),
            "1e999999999",
            "1E+999999999 needs 1000000002 digits at scale 2, over its precision of 9 - at $.v",
        ),
        (FIXED_DECIMAL, 99999, "99999 needs 7 digits at scale 2, over its precision of 6 - at $.v"),
        (
            FIXED_DECIMAL,
            83886.07,
            "83886.07 needs 7 digits at scale 2, over its precision of 6 - at $.v",
        ),
        # In a union none of whose branches takes it, the reason, not "expected one of".
        (
            ["null", decimal(5, 2)],
            1234.5,
            "1234.5 needs 6 digits at scale 2, over its precision of 5 - at $.v",
        ),
        (
            ["null", FIXED_DECIMAL],
            "99999",
            "99999 needs 7 digits at scale 2, over its precision of 6 - at $.v",
        ),
        (
            ["null", RECORD_WITH_DECIMAL],
            {"d": 99999},
            "99999 needs 7 digits at scale 2, over its precision of 5 - at $.v.d",
        ),
        (
            {"type": "array", "items": decimal(5, 2)},
            [1, 1234.5],
            "1234.5 needs 6 digits at scale 2, over its precision of 5 - at $.v[1]",
        ),
        (
            {"type": "map", "values": decimal(5, 2)},
            {"k": 99999},
            "99999 needs 7 digits at scale 2, over its precision of 5 - at $.v.k",
        ),
        # Past the scale: refused as before, now naming the field.
        (
            decimal(9, 2),
            12.345,
            "12.345 has 3 digits after the point, over its scale of 2 - at $.v",
        ),
    ],
)
def test_decimals_past_their_precision_are_refused(
    kind: object, sent: object, message: str
) -> None:
    with pytest.raises(InvalidSchema) as caught:
        field_of(kind).encode({"v": sent})
    assert caught.value.message == f"a decimal does not fit its schema: {message}"


@pytest.mark.parametrize(
    "sent",
    [
        Decimal("99999"),
        Decimal("-1000.0"),
        99999,
        Decimal("1E+3"),
        Decimal("NaN"),
        Decimal("-Infinity"),
    ],
)
def test_decimals_given_as_python_values_are_checked_too(sent: object) -> None:
    # ``encode`` takes them as they are (no JSON in between): the same rule holds.
    with pytest.raises(InvalidSchema, match=r"^a decimal does not fit its schema: .* - at \$\.v$"):
        field_of(decimal(5, 2)).encode({"v": sent})


@pytest.mark.parametrize(
    ("kind", "sent", "payload"),
    [
        (decimal(5, 2), 99.5, b"\x04\x26\xde"),  # unscaled 9950: padded to the scale
        (decimal(5, 2), 999.99, b"\x06\x01\x86\x9f"),
        (decimal(5, 2), "-999.99", b"\x06\xfe\x79\x61"),
        (decimal(5, 2), Decimal("999"), b"\x06\x01\x86\x3c"),
        (decimal(5, 2), Decimal("0E+9"), b"\x02\x00"),  # zero: one digit, whatever its exponent
        (decimal(5, 2), 0, b"\x02\x00"),
        (decimal(5, 0), Decimal("1E+4"), b"\x04\x27\x10"),
        (FIXED_DECIMAL, 9999.99, b"\x0f\x42\x3f"),
        (FIXED_DECIMAL, -9999.99, b"\xf0\xbd\xc1"),
        (["null", decimal(5, 2)], 99.5, b"\x02\x04\x26\xde"),
    ],
)
def test_decimals_that_fit_are_stored_as_before(kind: object, sent: object, payload: bytes) -> None:
    assert field_of(kind).encode({"v": sent}) == payload


def test_a_union_of_decimals_never_writes_one_past_its_branch() -> None:
    wide = {**FIXED_DECIMAL, "name": "Wide", "size": 8, "precision": 12}
    schema = field_of([decimal(5, 2), wide])
    assert schema.encode({"v": 99.5}) == b"\x00\x04\x26\xde"
    # fastavro writes a union's first branch its check passes: it counted five digits and
    # wrote 9999900 to the decimal(5, 2). Now it counts seven, and stops at that branch
    # rather than trying the next (a limit of fastavro): refused, not stored wrong.
    with pytest.raises(InvalidSchema, match=r"^a decimal does not fit its schema: "):
        schema.encode({"v": 99999})


def record_with(*fields: dict[str, Any]) -> AvroSchema:
    return parse(
        {"type": "record", "name": "BD", "fields": [{"name": "a", "type": "int"}, *fields]}
    )


@pytest.mark.parametrize(
    ("field", "stored"),
    [
        ({"name": "by", "type": "bytes", "default": "\u00ff"}, b"\xff"),
        (
            {
                "name": "fx",
                "type": {"type": "fixed", "name": "F2", "size": 2},
                "default": "\u0000a",
            },
            b"\x00a",
        ),
        # A decimal's default is its bytes, not a number: "1" is the byte 0x31, 0.49.
        ({"name": "d", "type": decimal(5, 2), "default": "\u0000\u0001"}, Decimal("0.01")),
        ({"name": "d", "type": decimal(5, 2), "default": "1"}, Decimal("0.49")),
        ({"name": "d", "type": decimal(5, 2), "default": "\u00ff"}, Decimal("-0.01")),
        ({"name": "d", "type": FIXED_DECIMAL, "default": "\u0000\u0000\u0064"}, Decimal("1.00")),
        # A union's default is a value of its first branch, even where a string would go
        # to a string branch if sent.
        ({"name": "u", "type": ["bytes", "null"], "default": "\u00ff"}, b"\xff"),
        ({"name": "u", "type": ["bytes", "string"], "default": "xy"}, b"xy"),
        ({"name": "u", "type": ["null", "bytes"], "default": None}, None),
        (
            {"name": "l", "type": {"type": "array", "items": "bytes"}, "default": ["a", "\u00e9"]},
            [b"a", b"\xe9"],
        ),
        (
            {"name": "m", "type": {"type": "map", "values": "bytes"}, "default": {"k": "\u0001"}},
            {"k": b"\x01"},
        ),
        # Strings, numbers, enums: as fastavro applied them before.
        ({"name": "s", "type": "string", "default": "x"}, "x"),
        (
            {
                "name": "e",
                "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]},
                "default": "B",
            },
            "B",
        ),
    ],
)
def test_binary_and_decimal_defaults_are_applied(field: dict[str, Any], stored: object) -> None:
    schema = record_with(field)
    payload = schema.encode({"a": 1})
    assert payload == schema.encode({"a": 1, field["name"]: stored})
    back = schema.decode(payload)
    assert isinstance(back, dict)
    assert back["a"] == 1


def test_defaults_in_nested_records_are_applied() -> None:
    inner = {
        "type": "record",
        "name": "In",
        "fields": [
            {"name": "b", "type": "bytes", "default": "z"},
            {"name": "d", "type": decimal(5, 2), "default": "\u0001"},
        ],
    }
    schema = record_with(
        {"name": "inner", "type": inner, "default": {"b": "\u00ff"}},
        {"name": "items", "type": {"type": "array", "items": "In"}},
    )
    # The record's default names b, leaves d to its own default; each item takes both.
    assert schema.decode(schema.encode({"a": 1, "items": [{}, {"b": "q", "d": 2}]})) == {
        "a": 1,
        "inner": {"b": "\u00ff", "d": Decimal("0.01")},
        "items": [{"b": "z", "d": Decimal("0.01")}, {"b": "q", "d": Decimal("2.00")}],
    }


def test_present_fields_are_not_taken_for_their_defaults() -> None:
    schema = record_with(
        {"name": "by", "type": "bytes", "default": "\u00ff"},
        {"name": "d", "type": decimal(5, 2), "default": "\u0001"},
    )
    assert schema.decode(schema.encode({"a": 1, "by": "x", "d": "1"})) == {
        "a": 1,
        "by": "x",
        "d": Decimal("1.00"),  # a value sent is a number, a default is bytes
    }
    with pytest.raises(InvalidSchema, match=r"Expected bytes, got int 5 - at \$\.by$"):
        schema.encode({"a": 1, "by": 5})


def test_a_default_that_cannot_be_bytes_is_refused_naming_it() -> None:
    schema = record_with({"name": "by", "type": "bytes", "default": "\u0100"})
    with pytest.raises(InvalidSchema, match=r"code point 0x100 - at \$\.by \(its default\)$"):
        schema.encode({"a": 1})
    past = record_with({"name": "d", "type": decimal(2, 0), "default": "\u0001\u0000"})
    with pytest.raises(InvalidSchema, match=r"256 needs 3 digits .* - at \$\.d \(its default\)$"):
        past.encode({"a": 1})
