"""Properties over generated schemas: parse never crashes, normal forms are stable, every
schema reads its own data, and whatever the Avro checker calls compatible, fastavro's own
schema resolution can actually read."""

from __future__ import annotations

import io
import itertools
import json
from typing import Any

import fastavro
import fastavro.utils
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sluicegate.core.schemas.avro import AvroSchema
from sluicegate.core.schemas.avro_compatibility import read_errors as avro_read_errors
from sluicegate.core.schemas.json_compatibility import read_errors as json_read_errors
from sluicegate.core.schemas.json_schema import JsonSchema
from sluicegate.errors import InvalidSchema

PRIMITIVES = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _avro_node(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    field = st.fixed_dictionaries(
        {"name": st.sampled_from(["a", "b", "c", "d"]), "type": children},
        optional={"default": st.none()},
    )
    return st.one_of(
        st.builds(lambda items: {"type": "array", "items": items}, children),
        st.builds(lambda values: {"type": "map", "values": values}, children),
        st.lists(children, min_size=1, max_size=3),
        st.builds(
            lambda fields: {"type": "record", "name": "?", "fields": fields},
            st.lists(field, max_size=4, unique_by=lambda f: f["name"]),
        ),
        st.builds(
            lambda symbols: {"type": "enum", "name": "?", "symbols": symbols},
            st.lists(st.sampled_from(["X", "Y", "Z"]), min_size=1, max_size=3, unique=True),
        ),
        st.builds(lambda size: {"type": "fixed", "name": "?", "size": size}, st.integers(0, 3)),
    )


AVRO = st.recursive(st.sampled_from(PRIMITIVES), _avro_node, max_leaves=8)


def _name_types(node: Any, counter: itertools.count[int]) -> Any:
    """Named types get T0, T1... in document order, so two similar schemas share names."""
    if isinstance(node, list):
        return [_name_types(branch, counter) for branch in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if node.get("name") == "?":
        node["name"] = f"T{next(counter)}"
    for key in ("items", "values"):
        if key in node:
            node[key] = _name_types(node[key], counter)
    if "fields" in node:
        node["fields"] = [
            {**field, "type": _name_types(field["type"], counter)} for field in node["fields"]
        ]
    return node


def avro_or_reject(document: Any) -> AvroSchema:
    try:
        return AvroSchema.parse(json.dumps(_name_types(document, itertools.count())))
    except InvalidSchema:
        assume(False)
        raise


@SETTINGS
@given(AVRO)
def test_avro_normal_form_is_a_fixed_point(document: Any) -> None:
    schema = avro_or_reject(document)
    assert AvroSchema.parse(schema.canonical).canonical == schema.canonical


@SETTINGS
@given(AVRO)
def test_every_avro_schema_reads_its_own_data(document: Any) -> None:
    schema = avro_or_reject(document)
    assert avro_read_errors(schema, schema) == []
    for datum in fastavro.utils.generate_many(schema.parsed, 3):
        schema.validate(datum)
        assert schema.decode(schema.encode(datum)) is not None or datum is None


@SETTINGS
@given(AVRO, AVRO)
def test_compatible_means_fastavro_can_resolve(reader_document: Any, writer_document: Any) -> None:
    reader, writer = avro_or_reject(reader_document), avro_or_reject(writer_document)
    errors = avro_read_errors(reader, writer)
    assert all(isinstance(error, str) for error in errors)
    if errors:
        return
    for datum in fastavro.utils.generate_many(writer.parsed, 5):
        payload = writer.encode(datum)
        try:
            fastavro.schemaless_reader(io.BytesIO(payload), writer.parsed, reader.parsed)
        except UnicodeDecodeError:
            # Avro lets bytes be read as a string; random bytes that are not UTF-8 can't
            # be read so by any reader, which says nothing about the schemas.
            continue


JSON_LEAF = st.one_of(
    st.builds(dict),
    st.booleans(),
    st.sampled_from(
        [{"type": t} for t in ("string", "integer", "number", "boolean", "null", "object", "array")]
    ),
    st.builds(lambda n: {"type": "string", "maxLength": n}, st.integers(0, 5)),
    st.builds(lambda n: {"type": "integer", "minimum": n}, st.integers(-2, 2)),
    st.builds(
        lambda values: {"enum": values},
        st.lists(st.sampled_from(["a", "b", 1]), min_size=1, unique=True),
    ),
)


def _json_node(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    names = st.sampled_from(["p", "q", "r"])
    return st.one_of(
        st.builds(
            lambda props, required, closed: {
                "type": "object",
                "properties": props,
                "required": sorted(set(required) & set(props)),
                **({"additionalProperties": False} if closed else {}),
            },
            st.dictionaries(names, children, max_size=3),
            st.lists(names, max_size=3),
            st.booleans(),
        ),
        st.builds(lambda items: {"type": "array", "items": items}, children),
        st.builds(lambda options: {"anyOf": options}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda inner: {"not": inner}, children),
    )


JSON_SCHEMAS = st.recursive(JSON_LEAF, _json_node, max_leaves=8)


@SETTINGS
@given(JSON_SCHEMAS)
def test_every_json_schema_accepts_what_it_accepts(document: Any) -> None:
    schema = JsonSchema.parse(json.dumps(document))
    assert json_read_errors(schema, schema) == []
    assert JsonSchema.parse(schema.canonical).canonical == schema.canonical


@SETTINGS
@given(JSON_SCHEMAS, JSON_SCHEMAS)
def test_json_checker_never_crashes(reader: Any, writer: Any) -> None:
    errors = json_read_errors(
        JsonSchema.parse(json.dumps(reader)), JsonSchema.parse(json.dumps(writer))
    )
    assert all(isinstance(error, str) for error in errors)
