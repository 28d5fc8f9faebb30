"""Avro schemas: parse and check with fastavro, a normal form for identity, validate, encode.

Identity. Avro's Parsing Canonical Form drops ``default``, ``aliases`` and logical types,
so two schemas that read data differently (a field default, ``timestamp-millis`` versus
a bare ``long``) would share one form. Like Confluent, the registry must give those
different ids, so ``canonical`` is a *normal* form instead: what fastavro parsed (full
names, namespaces resolved), every attribute kept, keys sorted, no whitespace, and
``{"type": "int"}`` written as ``"int"``. ``parsing_canonical_form`` is still there for
fingerprints.

fastavro accepts some schemas Avro's Java parser refuses (duplicate field names, invalid
names, unions with duplicate branches, a union default that does not match the first
branch); Java consumers must be able to read what we register, so ``parse`` refuses
them too.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeGuard

import fastavro
import fastavro._read_py
import msgspec
from fastavro.schema import SchemaParseException, UnknownType, to_parsing_canonical_form
from fastavro.validation import validate as fastavro_validate

from sluicegate.core.schemas.model import SchemaType
from sluicegate.errors import InvalidRecord, InvalidSchema

__all__ = ["AvroSchema", "describe_mismatch"]

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_DEPTH = 128
#: The most bytes a record of a recursive schema may have for fastavro's C reader to read
#: it. That reader recurses on the C stack, one frame per level of the data, and a record
#: nested some thousands of levels deep (which another Kafka client may write: a level
#: costs a byte) overflows the stack and kills the process; a level takes at least one
#: byte, so this many bytes nest at most this deep (2,000 levels took well under the
#: 8 MiB of a main thread's stack, measured; 5,000 overflowed it; records are decoded on
#: the event loop's thread). Longer records of such schemas are read by fastavro's Python
#: reader, whose depth Python's recursion limit bounds (about 300 levels of a list).
_C_READER_MAX_BYTES = 1024
_PARSE_ERRORS = (SchemaParseException, UnknownType, KeyError, TypeError, ValueError, AttributeError)
#: What fastavro raises for bytes it cannot read; ``ArithmeticError`` for a logical type's
#: value past what Python's ``date``/``datetime`` hold (valid Avro all the same).
_DECODE_ERRORS = (
    EOFError,
    ValueError,
    IndexError,
    TypeError,
    KeyError,
    UnicodeDecodeError,
    ArithmeticError,
)
#: Logical types whose values fastavro writes as given but reads into a Python value,
#: which fails for some of them (a ``date`` of 2**31 - 1 days, a ``uuid`` that is not one).
_CONVERTED_ON_READ = frozenset(
    {
        "date",
        "time-millis",
        "time-micros",
        "timestamp-millis",
        "timestamp-micros",
        "timestamp-nanos",
        "local-timestamp-millis",
        "local-timestamp-micros",
        "local-timestamp-nanos",
        "uuid",
    }
)


class AvroSchema:
    """An Avro schema parsed once; thread-safe to share (nothing mutates it after parse)."""

    schema_type = SchemaType.AVRO

    def __init__(self, parsed: Any, names: dict[str, Any]) -> None:
        self.parsed = parsed
        #: Every named type this schema can use, its references' included, by full name.
        self.names = names
        self.canonical = json.dumps(_normal(parsed), sort_keys=True, separators=(",", ":"))
        self.full_name: str | None = (
            parsed["name"] if isinstance(parsed, dict) and parsed.get("type") in NAMED else None
        )
        # What ``encode`` must read back to be sure that every reader can (see there).
        kinds = _kinds(parsed, names, set())
        self._read_back = bool(kinds & _CONVERTED_ON_READ)
        self._floats = "float" in kinds
        #: ``bytes`` or ``fixed`` somewhere: JSON holds those in Avro's JSON encoding.
        self._binary = bool(kinds & {"bytes", "fixed"})
        #: A named type that can hold itself: its data nests as deep as its bytes go.
        self._recursive = _recursive(parsed, names)

    @classmethod
    def parse(cls, text: str, references: Iterable[AvroSchema] = ()) -> AvroSchema:
        """Parse ``text``; named types of ``references`` may be used by name."""
        try:
            document = msgspec.json.decode(text)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise InvalidSchema(f"Invalid Avro schema: not valid JSON ({exc})") from None
        named: dict[str, Any] = {}
        for reference in references:
            named.update(reference.names)
        if not isinstance(document, (str, dict, list)):
            raise InvalidSchema(
                "Invalid Avro schema: expected a JSON object, array or string, "
                f"got {_describe(document)}"
            )
        _check_document(document, 0)
        try:
            parsed = fastavro.parse_schema(document, named_schemas=named)
            _Structure(named).check(parsed, "")
        except _PARSE_ERRORS as exc:
            raise InvalidSchema(f"Invalid Avro schema: {_parse_error_text(exc)}") from None
        return cls(parsed, named)

    @property
    def parsing_canonical_form(self) -> str:
        """Avro's Parsing Canonical Form (for fingerprints, not identity)."""
        return str(to_parsing_canonical_form(self.parsed))

    def validate(self, datum: object) -> None:
        """Raise ``InvalidSchema`` whose message names the first field that does not match."""
        try:
            valid = fastavro_validate(datum, self.parsed, raise_errors=False)
        except ValueError as exc:  # a decimal past its precision or scale
            raise InvalidSchema(f"a decimal does not fit its schema: {exc}") from None
        if not valid:
            message = describe_mismatch(self.parsed, datum, self.names)
            raise InvalidSchema(message)

    def encode(self, datum: object) -> bytes:
        """Validate ``datum`` (a JSON value, see ``from_json``), then write Avro binary
        (no header).

        What fastavro validates and writes is not always what it can read: a logical
        type's value past Python's dates (a ``date`` of 2**31 - 1 days) or a ``uuid``
        that is not one are written as given and fail every read after, and a ``float``
        past 32 bits is written as infinity, which JSON shows as ``null``. Such a record
        would stop every consumer at it, so a schema with those types has each datum read
        back before it is stored, and refused (``InvalidSchema``) if it does not come
        back.
        """
        if self._binary:
            datum = self.from_json(datum)
        self.validate(datum)
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, self.parsed, datum)
        except ValueError as exc:  # a decimal past its precision or scale
            raise InvalidSchema(f"a decimal does not fit its schema: {exc}") from None
        payload = buffer.getvalue()
        if self._read_back or self._floats:
            try:
                back = fastavro.schemaless_reader(io.BytesIO(payload), self.parsed, None)
            except _DECODE_ERRORS as exc:
                raise InvalidSchema(
                    f"a value would not read back with this schema ({exc}): a date, time "
                    "or timestamp out of range, or a uuid that is not one"
                ) from None
            if self._floats and not _finite(back):
                raise InvalidSchema(
                    "a float is beyond the range of Avro's 32-bit float (about ±3.4e38); "
                    "a double holds it"
                )
        return payload

    def decode(self, payload: bytes) -> object:
        """Read Avro binary written with this schema, as JSON shows it: ``bytes`` and
        ``fixed`` in Avro's JSON encoding (``from_json`` takes it back)."""
        reader = fastavro.schemaless_reader
        if self._recursive and len(payload) > _C_READER_MAX_BYTES:
            reader = fastavro._read_py.schemaless_reader
        try:
            datum = reader(io.BytesIO(payload), self.parsed, None)
        except _DECODE_ERRORS as exc:
            raise InvalidRecord(f"data is not Avro written with this schema: {exc}") from None
        except RecursionError:
            raise InvalidRecord("data nested deeper than the gateway reads Avro") from None
        return _binary_as_text(datum) if self._binary else datum

    def from_json(self, datum: object) -> object:
        """``datum`` as fastavro writes it, from the JSON form of Avro's JSON encoding,
        as Confluent's REST proxy takes it: a ``bytes`` or ``fixed`` value is a string
        whose code points 0-255 are its bytes (``"\\u00ff\\u0001"``). A ``decimal`` is
        a JSON number or a string holding one (``12.34``, ``"12.34"``), the way it is
        shown when read; its bytes in that encoding would be read as a number too often
        to be told apart. Unions are untagged, as everywhere here: a string goes to a
        ``string`` branch before a binary one.

        A field left out takes its ``default``, which the schema holds in Avro's JSON
        encoding too; a decimal must fit its precision and scale, as Java writes it.
        """
        try:
            return _FromJson(self.names).convert(self.parsed, datum, "$")
        except _Misfit as exc:
            raise InvalidSchema(f"a decimal does not fit its schema: {exc}") from None


def _kinds(node: Any, names: Mapping[str, Any], seen: set[str]) -> set[str]:
    """Every primitive type and logical type ``node`` can hold, through named types."""
    if isinstance(node, str):
        if node in PRIMITIVES:
            return {node}
        named = names.get(node)
        if named is None or node in seen:
            return set()
        seen.add(node)
        return _kinds(named, names, seen)
    if isinstance(node, list):
        return set().union(*(_kinds(branch, names, seen) for branch in node))
    if not isinstance(node, dict):
        return set()
    kind = node.get("type")
    found = _kinds(kind, names, seen) if isinstance(kind, (str, list, dict)) else set()
    if kind in NAMED:
        found.add(kind)
    logical = node.get("logicalType")
    if isinstance(logical, str):
        found.add(logical)
    name = node.get("name")
    if kind in NAMED and isinstance(name, str):
        seen.add(name)
    for field in node.get("fields", ()):
        if isinstance(field, dict):
            found |= _kinds(field.get("type"), names, seen)
    for child in ("items", "values"):
        if child in node:
            found |= _kinds(node[child], names, seen)
    return found


def _recursive(parsed: Any, names: Mapping[str, Any]) -> bool:
    """Whether a named type of ``parsed`` can hold a value of itself (a list, a tree)."""
    # Named types are visited once each: True while being walked, False once walked.
    walking: dict[str, bool] = {}

    def walk(node: Any) -> bool:
        if isinstance(node, str):
            if node in walking:
                return walking[node]
            named = names.get(node)
            return named is not None and walk(named)
        if isinstance(node, list):
            return any(walk(branch) for branch in node)
        if not isinstance(node, dict):
            return False
        kind = node.get("type")
        name = node.get("name") if kind in NAMED else None
        if isinstance(name, str):
            if name in walking:
                return walking[name]
            walking[name] = True
        found = (
            (kind not in NAMED and isinstance(kind, (str, list, dict)) and walk(kind))
            or any(walk(field.get("type")) for field in node.get("fields", ()))
            or any(walk(node[child]) for child in ("items", "values") if child in node)
        )
        if isinstance(name, str):
            walking[name] = False
        return found

    try:
        return walk(parsed)
    except RecursionError:  # named types chained deeper than Python's stack: assume so
        return True


_DECIMAL = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


class _Misfit(Exception):
    """A decimal past its schema's precision or scale (``from_json`` raises it as
    ``InvalidSchema``). Kept apart from the other refusals so that a union none of whose
    branches takes the value says this, not just "expected one of"."""


class _FromJson:
    """``AvroSchema.from_json``: a walk of the schema beside the datum."""

    def __init__(self, names: dict[str, Any]) -> None:
        self._names = names

    def convert(self, node: Any, datum: object, path: str) -> object:
        node = _resolve(node, self._names)
        if isinstance(node, list):
            return self._union(node, datum, path)
        kind = node.get("type") if isinstance(node, dict) else node
        if isinstance(kind, (dict, list)):  # {"type": {...}}: the type inside
            return self.convert(kind, datum, path)
        if kind in ("bytes", "fixed"):
            return self._binary(node, datum, path)
        if kind in ("record", "error") and isinstance(datum, dict):
            return self._record(node, datum, path, self.convert)
        if kind == "array" and isinstance(datum, list):
            return [
                self.convert(node["items"], item, f"{path}[{i}]") for i, item in enumerate(datum)
            ]
        if kind == "map" and isinstance(datum, dict):
            return {k: self.convert(node["values"], v, f"{path}.{k}") for k, v in datum.items()}
        return datum

    def _record(
        self,
        node: dict[str, Any],
        datum: dict[str, Any],
        path: str,
        convert: Callable[[Any, object, str], object],
    ) -> dict[str, Any]:
        converted = dict(datum)
        for field in node["fields"]:
            name = field["name"]
            if name in datum:
                converted[name] = convert(field["type"], datum[name], f"{path}.{name}")
            elif "default" in field:
                # fastavro would write the default as the schema holds it: a ``bytes``
                # default is a string there, which it refuses as bytes.
                converted[name] = self._default(field["type"], field["default"], f"{path}.{name}")
        return converted

    def _default(self, node: Any, value: object, path: str) -> object:
        """A field's ``default`` as fastavro writes it. The Avro specification gives it in
        Avro's JSON encoding, which differs from what ``convert`` takes in two ways: a
        union's default is a value of its first branch, and a decimal's is the string of
        its bytes (two's complement), not a number."""
        node = _resolve(node, self._names)
        if isinstance(node, list):  # never empty: ``parse`` refuses an empty union
            return self._default(node[0], value, path)
        kind = node.get("type") if isinstance(node, dict) else node
        if isinstance(kind, (dict, list)):
            return self._default(kind, value, path)
        if kind in ("bytes", "fixed") and isinstance(value, str):
            raw = _latin1(value, f"{path} (its default)")
            if isinstance(node, dict) and node.get("logicalType") == "decimal":
                scale = node.get("scale", 0)
                unscaled = int.from_bytes(raw, "big", signed=True)
                return _fit(node, Decimal(f"{unscaled}E{-scale}"), f"{path} (its default)")
            return raw
        if kind in ("record", "error") and isinstance(value, dict):
            return self._record(node, value, path, self._default)
        if kind == "array" and isinstance(value, list):
            return [
                self._default(node["items"], item, f"{path}[{i}]") for i, item in enumerate(value)
            ]
        if kind == "map" and isinstance(value, dict):
            return {k: self._default(node["values"], v, f"{path}.{k}") for k, v in value.items()}
        return value

    def _binary(self, node: Any, datum: object, path: str) -> object:
        if isinstance(node, dict) and node.get("logicalType") == "decimal":
            value = _as_decimal(datum)
            if value is not None:
                return _fit(node, value, path)
            if isinstance(datum, str):
                raise InvalidSchema(
                    f"Expected a decimal (a JSON number, or a string holding one), got "
                    f"{_describe(datum)} - at {path}"
                )
            return datum
        if isinstance(datum, str):
            return _latin1(datum, path)
        return datum

    def _union(self, branches: list[Any], datum: object, path: str) -> object:
        resolved = [_resolve(branch, self._names) for branch in branches]
        kinds = [b.get("type") if isinstance(b, dict) else b for b in resolved]
        if isinstance(datum, str):
            if any(kind in ("string", "enum") for kind in kinds):
                return datum
        elif isinstance(datum, (bool, int, float)):
            if any(kind in ("int", "long", "float", "double", "boolean") for kind in kinds):
                return datum
        elif datum is None:
            return datum
        # The first branch the converted value fits; as it was if none does (and then
        # validation says why), unless a branch took it as a decimal it does not fit.
        misfit: _Misfit | None = None
        for branch in resolved:
            try:
                converted = self.convert(branch, datum, path)
            except _Misfit as exc:
                misfit = misfit or exc
                continue
            except InvalidSchema:
                continue
            if _matches(branch, converted, self._names):
                return converted
        if misfit is not None:
            raise misfit
        return datum


def _latin1(text: str, path: str) -> bytes:
    """The bytes a string of Avro's JSON encoding stands for: its code points 0-255."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise InvalidSchema(
            f"Expected bytes in Avro's JSON encoding (a string of code points "
            f"0-255), got a code point {ord(text[exc.start]):#x} - at {path}"
        ) from None


def _as_decimal(datum: object) -> Decimal | None:
    """The decimal a JSON number, a string holding one, or a ``Decimal`` is; else None."""
    if isinstance(datum, Decimal):
        return datum
    if isinstance(datum, (int, float)) and not isinstance(datum, bool):
        return Decimal(repr(datum)) if isinstance(datum, float) else Decimal(datum)
    if isinstance(datum, str) and _DECIMAL.fullmatch(datum):
        return Decimal(datum)
    return None


def _fit(node: dict[str, Any], value: Decimal, path: str) -> Decimal:
    """``value`` at the scale of decimal ``node`` (the unscaled integer fastavro writes
    either way), as Java's decimal conversion takes it; ``_Misfit`` if it does not fit.

    fastavro counts the digits of the value as given, before it pads them to the scale:
    99999 passes a decimal(6, 2) and is written as 9999900, seven digits, which Java's
    readers refuse (for ``fixed``, its size holds what the precision does: ``parse``
    refuses a precision it cannot). At the scale, the digits fastavro counts are those it
    writes, so its own check agrees, also where it picks a union's branch.
    """
    precision = node.get("precision")
    if not isinstance(precision, int):
        return value  # no precision to check against: left to fastavro, as before
    scale = node.get("scale", 0)
    shown = _cut(str(value))
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # NaN, infinity: no bytes hold them
        raise _Misfit(f"{shown} is not a finite number - at {path}")
    if -exponent > scale:  # even trailing zeros, as fastavro (and so far here) refuses them
        places = -exponent
        raise _Misfit(
            f"{shown} has {places} digits after the point, over its scale of {scale} - at {path}"
        )
    # Counted before the digits are made: "1e999999999" must not build a billion zeros.
    length = 1 if digits == (0,) else len(digits) + exponent + scale
    if length > precision:
        raise _Misfit(
            f"{shown} needs {length} digits at scale {scale}, over its precision of "
            f"{precision} - at {path}"
        )
    unscaled = (0,) if digits == (0,) else digits + (0,) * (exponent + scale)
    return Decimal((sign, unscaled, -scale))


def _binary_as_text(datum: object) -> object:
    """A read datum with every ``bytes`` value as the string Avro's JSON encoding makes."""
    if isinstance(datum, bytes):
        return datum.decode("latin-1")
    if isinstance(datum, dict):
        return {key: _binary_as_text(value) for key, value in datum.items()}
    if isinstance(datum, list):
        return [_binary_as_text(item) for item in datum]
    return datum


def _finite(datum: object) -> bool:
    """Whether no float anywhere in ``datum`` (as fastavro reads it) is infinite or NaN."""
    if isinstance(datum, float):
        return math.isfinite(datum)
    if isinstance(datum, dict):
        return all(_finite(value) for value in datum.values())
    if isinstance(datum, list):
        return all(_finite(item) for item in datum)
    return True


def _parse_error_text(exc: BaseException) -> str:
    if isinstance(exc, UnknownType):
        return f"unknown type {exc.name!r}"
    if isinstance(exc, KeyError):
        return f"missing attribute {exc.args[0]!r}"
    return str(exc)


def _check_document(node: object, depth: int) -> None:
    """Checks fastavro cannot make after parsing: nesting depth, records without fields."""
    # Our own walkers recurse; a hostile schema must not reach Python's recursion limit.
    if depth > _MAX_DEPTH:
        raise InvalidSchema(f"Invalid Avro schema: nested deeper than {_MAX_DEPTH} levels")
    if isinstance(node, dict):
        if node.get("type") in ("record", "error") and "fields" not in node:
            raise InvalidSchema(f"Invalid Avro schema: record {node.get('name')!r} has no fields")
        for value in node.values():
            _check_document(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _check_document(value, depth + 1)


def _normal(node: Any) -> Any:
    """fastavro's parsed form without its private keys, bare primitives as names."""
    if isinstance(node, list):
        return [_normal(branch) for branch in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"type"} and node["type"] in PRIMITIVES:
        return node["type"]
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("__fastavro") or key == "__named_schemas":
            continue
        if key in ("type", "items", "values"):
            result[key] = _normal(value)
        elif key == "fields":
            result[key] = [_normal(field) for field in value]
        else:
            result[key] = value
    return result


class _Structure:
    """The checks Avro's Java parser makes and fastavro skips."""

    def __init__(self, names: dict[str, Any]) -> None:
        self._names = names
        self._seen: set[str] = set()

    def check(self, node: Any, path: str) -> None:
        if isinstance(node, str):
            return
        if isinstance(node, list):
            self._union(node, path)
            return
        kind = node["type"]
        if kind in NAMED:
            name = node["name"]
            if name in self._seen:
                return
            self._seen.add(name)
            self._name(name, path)
        if node.get("logicalType") == "decimal" and kind in ("bytes", "fixed"):
            # fastavro parses a decimal without one, then fails on every value written
            # or read (a KeyError): a schema nothing could use.
            precision = node.get("precision")
            if not isinstance(precision, int) or isinstance(precision, bool) or precision < 1:
                self._fail(path, f"decimal precision must be a positive integer, got {precision!r}")
        if kind in ("record", "error"):
            self._record(node, path)
        elif kind == "enum":
            for symbol in node["symbols"]:
                if not isinstance(symbol, str) or not _NAME.fullmatch(symbol):
                    self._fail(path, f"invalid enum symbol {symbol!r}")
        elif kind == "fixed":
            size = node["size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                self._fail(path, f"fixed size must be a non-negative integer, got {size!r}")
        elif kind == "array":
            self.check(node["items"], f"{path}/items")
        elif kind == "map":
            self.check(node["values"], f"{path}/values")

    def _record(self, node: dict[str, Any], path: str) -> None:
        fields = node["fields"]
        if not isinstance(fields, list):
            self._fail(path, "record fields must be an array")
        seen: set[str] = set()
        for index, field in enumerate(fields):
            name = field["name"]
            where = f"{path}/fields/{index}"
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                self._fail(where, f"invalid field name {name!r}")
            if name in seen:
                self._fail(where, f"duplicate field name {name!r}")
            seen.add(name)
            self.check(field["type"], f"{where}/type")
            if "default" in field and isinstance(field["type"], list):
                self._union_default(field["type"], field["default"], name, where)

    def _union(self, branches: list[Any], path: str) -> None:
        if not branches:
            self._fail(path, "a union needs at least one branch")
        seen: set[str] = set()
        for index, branch in enumerate(branches):
            if isinstance(branch, list):
                self._fail(f"{path}/{index}", "a union may not directly contain a union")
            key = _branch_key(branch)
            if key in seen:
                self._fail(f"{path}/{index}", f"duplicate union branch {key}")
            seen.add(key)
            self.check(branch, f"{path}/{index}")

    def _union_default(self, branches: list[Any], default: object, field: str, path: str) -> None:
        first = _resolve(branches[0], self._names) if branches else None
        kind = first if isinstance(first, str) else first.get("type") if first else None
        if kind in ("bytes", "fixed") and isinstance(default, str):
            return  # Avro JSON encodes bytes defaults as strings
        if first is None or not _matches(branches[0], default, self._names):
            self._fail(
                path,
                f"default {default!r} of field {field!r} does not match the union's first "
                f"branch {_label(branches[0], self._names) if branches else 'none'}",
            )

    def _name(self, full_name: str, path: str) -> None:
        if not isinstance(full_name, str) or not all(
            _NAME.fullmatch(part) for part in full_name.split(".")
        ):
            self._fail(path, f"invalid name {full_name!r}")

    @staticmethod
    def _fail(path: str, message: str) -> None:
        raise InvalidSchema(f"Invalid Avro schema at {path or '/'}: {message}")


def _branch_key(branch: Any) -> str:
    if isinstance(branch, str):
        return branch
    kind = branch["type"]
    return str(branch["name"]) if kind in NAMED else str(kind)


def _resolve(node: Any, names: Mapping[str, Any]) -> Any:
    """A named type's definition for a reference by name; anything else as is."""
    if isinstance(node, str) and node not in PRIMITIVES:
        return names.get(node, node)
    if isinstance(node, dict) and node.get("type") in PRIMITIVES:
        return node["type"] if "logicalType" not in node else node
    return node


def _matches(node: Any, datum: object, names: dict[str, Any]) -> bool:
    # fastavro validates whole parsed schemas only: wrap ``node`` as the one field of a
    # record that carries every named type, so its rules stay the single source of truth.
    probe = {
        "type": "record",
        "name": "probe",
        "fields": [{"name": "value", "type": node}],
        "__fastavro_parsed": True,
        "__named_schemas": names,
    }
    try:
        return bool(fastavro_validate({"value": datum}, probe, raise_errors=False))
    except ValueError:  # a decimal past its precision or scale
        return False


def describe_mismatch(schema: Any, datum: object, names: dict[str, Any]) -> str:
    """Why ``datum`` does not match ``schema``: expected, got, and the path to the field."""
    return _Mismatch(names).find(schema, datum, "$")


class _Mismatch:
    def __init__(self, names: dict[str, Any]) -> None:
        self._names = names

    def find(self, node: Any, datum: object, path: str) -> str:
        resolved = _resolve(node, self._names)
        if isinstance(resolved, list):
            same_kind = [b for b in resolved if _kind_fits(_resolve(b, self._names), datum)]
            if len(same_kind) == 1:
                return self.find(same_kind[0], datum, path)
            return self._expected(node, datum, path)
        kind = resolved if isinstance(resolved, str) else resolved.get("type")
        if kind in ("record", "error") and isinstance(datum, Mapping):
            return self._record(resolved, datum, path)
        if kind == "array" and _is_sequence(datum):
            for index, item in enumerate(datum):
                if not _matches(resolved["items"], item, self._names):
                    return self.find(resolved["items"], item, f"{path}[{index}]")
        if kind == "map" and isinstance(datum, Mapping):
            for key, value in datum.items():
                if not isinstance(key, str):
                    return f"Expected string map keys, got {_describe(key)} - at {path}"
                if not _matches(resolved["values"], value, self._names):
                    return self.find(resolved["values"], value, f"{path}[{json.dumps(key)}]")
        if kind == "enum" and isinstance(datum, str):
            symbols = ", ".join(resolved["symbols"])
            return (
                f"Expected a symbol of enum {resolved['name']} [{symbols}], "
                f"got {_describe(datum)} - at {path}"
            )
        return self._expected(node, datum, path)

    def _record(self, record: dict[str, Any], datum: Mapping[Any, Any], path: str) -> str:
        for field in record["fields"]:
            name = field["name"]
            value = datum.get(name)
            if _matches(field["type"], value, self._names):
                continue
            if name not in datum:
                label = _label(field["type"], self._names)
                return f"Missing required field {name!r} ({label}) - at {path}"
            return self.find(field["type"], value, f"{path}.{name}")
        return f"Expected record {record['name']}, got {_describe(datum)} - at {path}"

    def _expected(self, node: Any, datum: object, path: str) -> str:
        label = _label(node, self._names)
        if label in _INT_RANGES and isinstance(datum, int) and not isinstance(datum, bool):
            low, high = _INT_RANGES[label]
            label = f"{label} in [{low}, {high}]"
        return f"Expected {label}, got {_describe(datum)} - at {path}"


_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def _kind_fits(node: Any, datum: object) -> bool:
    """Whether ``datum`` has the shape of ``node`` (to pick the union branch to blame)."""
    kind = node if isinstance(node, str) else node.get("type")
    if isinstance(datum, Mapping):
        return kind in ("record", "error", "map")
    if _is_sequence(datum):
        return kind == "array"
    return False


def _is_sequence(datum: object) -> TypeGuard[Sequence[Any]]:
    return isinstance(datum, Sequence) and not isinstance(datum, (str, bytes, bytearray))


def _label(node: Any, names: Mapping[str, Any]) -> str:
    resolved = _resolve(node, names)
    if isinstance(resolved, list):
        return "one of [" + ", ".join(_label(b, names) for b in resolved) + "]"
    if isinstance(resolved, str):
        return resolved
    kind = resolved["type"]
    if kind in PRIMITIVES:
        return f"{kind} ({resolved['logicalType']})"
    if kind == "fixed":
        return f"fixed {resolved['name']} ({resolved['size']} bytes)"
    if kind in NAMED:
        return f"{'record' if kind == 'error' else kind} {resolved['name']}"
    return str(kind)


_JSON_NAMES = {
    type(None): "null",
    bool: "boolean",
    int: "int",
    float: "float",
    str: "string",
    bytes: "bytes",
    dict: "object",
    list: "array",
}


def _describe(datum: object) -> str:
    name = _JSON_NAMES.get(type(datum), type(datum).__name__)
    if datum is None or isinstance(datum, (dict, list)):
        return name
    return f"{name} {_cut(json.dumps(datum) if isinstance(datum, str) else repr(datum))}"


def _cut(text: str) -> str:
    """``text`` cut to 40 characters, for a message."""
    return text[:37] + "..." if len(text) > 40 else text
