"""Avro schema resolution: can a reader schema read data written with a writer schema?

The rules are the Avro specification's "Schema Resolution" as Avro's Java
``SchemaCompatibility`` applies them (which is what Confluent runs):

* same primitive, or a promotion: int → long, float, double; long → float, double;
  float → double; string ↔ bytes;
* records, enums and fixed match by unqualified name, or a reader alias naming the
  writer's full name; a reader field found in the writer (by name or alias) must
  resolve, one missing from the writer needs a default; writer-only fields are skipped;
* an enum reader must know every writer symbol, unless it has a default symbol;
* fixed sizes must be equal; arrays and maps resolve their items and values;
* a writer union resolves only if every branch does; a reader union if any branch
  reads the writer's type.

Messages use Avro's incompatibility names and a JSON pointer into the reader schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluicegate.core.schemas.avro import PRIMITIVES, AvroSchema

__all__ = ["read_errors"]

_PROMOTIONS = frozenset(
    {
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    }
)


def read_errors(reader: AvroSchema, writer: AvroSchema) -> list[str]:
    """Why ``reader`` cannot read data written with ``writer``; empty if it can."""
    checker = _Checker(reader.names, writer.names)
    checker.check(reader.parsed, writer.parsed, "")
    return checker.errors


class _Checker:
    def __init__(self, reader_names: Mapping[str, Any], writer_names: Mapping[str, Any]) -> None:
        self._reader_names = reader_names
        self._writer_names = writer_names
        # Recursive types: a pair of named types already being compared is assumed to
        # resolve, as Java does; the first comparison reports any real problem.
        self._in_progress: set[tuple[str, str]] = set()
        self.errors: list[str] = []

    def check(self, reader: Any, writer: Any, path: str) -> None:
        reader = _definition(reader, self._reader_names)
        writer = _definition(writer, self._writer_names)
        if isinstance(writer, list):
            for branch in writer:
                self.check(reader, branch, path)
            return
        if isinstance(reader, list):
            if not any(self._resolves(branch, writer) for branch in reader):
                self._error(
                    "MISSING_UNION_BRANCH",
                    path,
                    f"reader union lacks a branch for writer type {_type_name(writer)}",
                )
            return
        reader_type, writer_type = _type_of(reader), _type_of(writer)
        if reader_type != writer_type:
            if (writer_type, reader_type) not in _PROMOTIONS:
                self._error(
                    "TYPE_MISMATCH",
                    path,
                    f"reader type {_type_name(reader)} cannot read writer type "
                    f"{_type_name(writer)}",
                )
            return
        if reader_type in PRIMITIVES:
            return
        if reader_type in ("record", "error", "enum", "fixed") and not _names_match(reader, writer):
            self._error(
                "NAME_MISMATCH",
                path,
                f"reader name {reader['name']!r} does not match writer name {writer['name']!r}",
            )
            return
        if reader_type in ("record", "error"):
            self._record(reader, writer, path)
        elif reader_type == "enum":
            self._enum(reader, writer, path)
        elif reader_type == "fixed":
            if reader["size"] != writer["size"]:
                self._error(
                    "FIXED_SIZE_MISMATCH",
                    f"{path}/size",
                    f"reader fixed size {reader['size']} differs from writer size {writer['size']}",
                )
        elif reader_type == "array":
            self.check(reader["items"], writer["items"], f"{path}/items")
        elif reader_type == "map":
            self.check(reader["values"], writer["values"], f"{path}/values")

    def _record(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        pair = (reader["name"], writer["name"])
        if pair in self._in_progress:
            return
        self._in_progress.add(pair)
        try:
            writer_fields = {field["name"]: field for field in writer["fields"]}
            for index, field in enumerate(reader["fields"]):
                where = f"{path}/fields/{index}"
                match = writer_fields.get(field["name"])
                for alias in field.get("aliases", ()):
                    match = match or writer_fields.get(alias)
                if match is not None:
                    self.check(field["type"], match["type"], f"{where}/type")
                elif "default" not in field:
                    self._error(
                        "READER_FIELD_MISSING_DEFAULT_VALUE",
                        where,
                        f"reader field {field['name']!r} has no default value and is missing "
                        "from the writer",
                    )
        finally:
            self._in_progress.discard(pair)

    def _enum(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        if "default" in reader:
            return
        known = set(reader["symbols"])
        missing = [symbol for symbol in writer["symbols"] if symbol not in known]
        if missing:
            self._error(
                "MISSING_ENUM_SYMBOLS",
                f"{path}/symbols",
                f"reader enum {reader['name']!r} lacks writer symbols {missing} and has no "
                "default symbol",
            )

    def _resolves(self, reader: Any, writer: Any) -> bool:
        trial = _Checker(self._reader_names, self._writer_names)
        trial._in_progress = set(self._in_progress)
        trial.check(reader, writer, "")
        return not trial.errors

    def _error(self, kind: str, path: str, description: str) -> None:
        self.errors.append(f"{kind} at {path or '/'}: {description}")


def _definition(node: Any, names: Mapping[str, Any]) -> Any:
    if isinstance(node, str):
        return node if node in PRIMITIVES else names[node]
    return node


def _type_of(node: Any) -> str:
    return node if isinstance(node, str) else str(node["type"])


def _type_name(node: Any) -> str:
    if isinstance(node, list):
        return "union"
    kind = _type_of(node)
    return f"{kind} {node['name']}" if isinstance(node, dict) and "name" in node else kind


def _names_match(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    reader_full, writer_full = str(reader["name"]), str(writer["name"])
    if reader_full.rsplit(".", 1)[-1] == writer_full.rsplit(".", 1)[-1]:
        return True
    namespace = reader_full.rpartition(".")[0]
    aliases = {
        alias if "." in alias or not namespace else f"{namespace}.{alias}"
        for alias in reader.get("aliases", ())
    }
    return writer_full in aliases
