"""Soundness of the JSON Schema checker against the validator: whenever the checker says a
reader accepts everything a writer does, no document the writer's validator accepts is
refused by the reader's.

Readers are drawn both independently and as edits of the writer (a keyword dropped, a
branch added, ``oneOf`` turned into ``anyOf``...), so that compatible pairs are common;
documents come from a fixed pool that exercises every keyword drawn, plus drawn ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sluicegate.core.schemas.json_compatibility import read_errors
from sluicegate.core.schemas.json_schema import JsonSchema
from sluicegate.errors import InvalidSchema

TYPES = ["null", "boolean", "integer", "number", "string", "array", "object"]
NAMES = ["p", "q", "ab"]
SCALARS = [None, True, False, 0, 1, -1, 2, 1.0, 2.5, "", "a", "b", "ab", "p"]

LEAF = st.one_of(
    st.just({}),
    st.booleans(),
    st.sampled_from(TYPES).map(lambda t: {"type": t}),
    st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True).map(
        lambda ts: {"type": ts}
    ),
    st.lists(st.sampled_from(SCALARS), min_size=1, max_size=3).map(lambda vs: {"enum": vs}),
    st.sampled_from(SCALARS).map(lambda v: {"const": v}),
    st.builds(
        lambda key, n: {key: n},
        st.sampled_from(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]),
        st.integers(-1, 2),
    ),
    st.sampled_from([2, 1, 0.5, 0.25]).map(lambda n: {"multipleOf": n}),
    st.builds(
        lambda key, n: {key: n}, st.sampled_from(["minLength", "maxLength"]), st.integers(0, 2)
    ),
    st.sampled_from(["^a", "b", "^p$", "^[a-z]*$"]).map(lambda p: {"pattern": p}),
    st.builds(
        lambda key, n: {key: n}, st.sampled_from(["minItems", "maxItems"]), st.integers(0, 2)
    ),
    st.builds(
        lambda key, n: {key: n},
        st.sampled_from(["minProperties", "maxProperties"]),
        st.integers(0, 2),
    ),
    st.just({"uniqueItems": True}),
    st.sampled_from(["^[pq]$", "^p", "b"]).map(lambda p: {"propertyNames": {"pattern": p}}),
    st.sampled_from([{"maxLength": 1}, {"enum": ["p", "q"]}]).map(lambda s: {"propertyNames": s}),
    st.builds(
        lambda a, b: {"dependencies": {a: [b]}}, st.sampled_from(NAMES), st.sampled_from(NAMES)
    ),
    st.builds(
        lambda name, value, needed: {
            "if": {"properties": {name: {"const": value}}, "required": [name]},
            "then": {"required": [needed]},
        },
        st.sampled_from(NAMES),
        st.sampled_from([1, "a"]),
        st.sampled_from(NAMES),
    ),
)


def _beside(extra: Any, schema: Any) -> Any:
    """``schema`` with ``extra``'s keywords added where it has none of its own."""
    if isinstance(extra, dict) and isinstance(schema, dict):
        return {**extra, **schema}
    return schema


def _node(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    names = st.sampled_from(NAMES)
    return st.one_of(
        st.builds(
            lambda kind, props, required, rest, patterns: {
                **({"type": "object"} if kind else {}),
                "properties": props,
                "required": sorted(set(required)),
                **({"additionalProperties": rest} if rest is not None else {}),
                **({"patternProperties": patterns} if patterns else {}),
            },
            st.booleans(),
            st.dictionaries(names, children, max_size=3),
            st.lists(names, max_size=2),
            st.one_of(st.none(), st.booleans(), children),
            st.dictionaries(st.sampled_from(["^a", "b$", "^p"]), children, max_size=2),
        ),
        st.builds(lambda items: {"type": "array", "items": items}, children),
        st.builds(
            lambda items, rest: {"items": items, "additionalItems": rest},
            st.lists(children, min_size=1, max_size=2),
            children,
        ),
        st.builds(
            lambda key, branches: {key: branches},
            st.sampled_from(["anyOf", "oneOf", "allOf"]),
            st.lists(children, min_size=1, max_size=3),
        ),
        st.builds(lambda inner: {"not": inner}, children),
        # Recursion: the whole schema again, one property down.
        st.builds(
            lambda rest: {
                "type": "object",
                "properties": {"p": {"$ref": "#"}},
                "additionalProperties": rest,
            },
            st.booleans(),
        ),
        # A node with a second constraint beside it.
        st.builds(_beside, LEAF, children),
    )


SCHEMAS = st.recursive(LEAF, _node, max_leaves=6)


@st.composite
def _edit(draw: st.DrawFn, schema: Any) -> Any:
    """``schema`` changed in one place, the way a schema's next version often is."""
    if not isinstance(schema, dict) or not schema or draw(st.integers(0, 3)) == 0:
        return draw(
            st.one_of(
                st.just(schema),
                SCHEMAS.map(lambda other: {"anyOf": [schema, other]}),
                SCHEMAS.map(lambda other: {"oneOf": [schema, other]}),
                st.just({"allOf": [schema]}),
                LEAF.map(lambda extra: _beside(extra, schema)),
            )
        )
    key = draw(st.sampled_from(sorted(schema)))
    value = schema[key]
    rest = {k: v for k, v in schema.items() if k != key}
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return rest  # the keyword dropped
    if key in ("oneOf", "anyOf") and choice == 1:
        return {**rest, ("anyOf" if key == "oneOf" else "oneOf"): value}
    if key in ("anyOf", "oneOf", "allOf") and isinstance(value, list) and choice == 1:
        return value[0] if len(value) == 1 else {**rest, key: value[1:]}
    if isinstance(value, dict) and key in ("properties", "patternProperties", "dependencies"):
        if value:
            inner = draw(st.sampled_from(sorted(value)))
            return {**rest, key: {**value, inner: draw(_edit(value[inner]))}}
        return schema
    if isinstance(value, list) and value and key in ("anyOf", "oneOf", "allOf", "items"):
        index = draw(st.integers(0, len(value) - 1))
        return {**rest, key: [*value[:index], draw(_edit(value[index])), *value[index + 1 :]]}
    if key in ("items", "additionalProperties", "additionalItems", "not", "propertyNames"):
        return {**rest, key: draw(_edit(value))}
    if key == "type" and isinstance(value, (str, list)):
        kinds = [value] if isinstance(value, str) else value
        return {**rest, "type": sorted({*kinds, draw(st.sampled_from(TYPES))})}
    return rest


JSON_VALUES = st.recursive(
    st.sampled_from(SCALARS),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from([*NAMES, "x", "b"]), children, max_size=3),
    ),
    max_leaves=6,
)
POOL: list[Any] = [
    *SCALARS,
    3,
    -2,
    0.5,
    "abc",
    "x",
    [],
    [1],
    ["a"],
    [1, 1],
    [1, "a"],
    [None, None],
    ["a", "b", "a"],
    {},
    {"p": 1},
    {"p": "a"},
    {"p": None},
    {"q": 1},
    {"q": "a"},
    {"ab": 1},
    {"ab": "a"},
    {"b": 1},
    {"x": "a"},
    {"p": 1, "q": 1},
    {"p": "a", "q": "a"},
    {"p": 1, "ab": 2},
    {"p": [1]},
    {"p": {}},
    {"p": {"p": 1}},
    {"q": [None, "a"]},
]


def _parse(document: Any) -> JsonSchema:
    try:
        return JsonSchema.parse(json.dumps(document))
    except InvalidSchema:
        assume(False)  # an edit may wrap a non-schema (a dependency's list of names)
        raise


def _validator(schema: JsonSchema) -> Callable[[Any], bool]:
    """The validator the registry uses for ``schema`` (draft 7 unless it names another)."""
    document = schema.document
    validator_class = jsonschema.validators.validator_for(
        document, default=jsonschema.Draft7Validator
    )
    is_valid: Callable[[Any], bool] = validator_class(document).is_valid
    return is_valid


@st.composite
def _pairs(draw: st.DrawFn) -> tuple[Any, Any]:
    writer = draw(SCHEMAS)
    reader = draw(st.one_of(_edit(writer), SCHEMAS))
    return reader, writer


@settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_pairs(), st.lists(JSON_VALUES, max_size=5))
def test_compatible_means_every_writer_document_is_valid_for_the_reader(
    pair: tuple[Any, Any], drawn: list[Any]
) -> None:
    reader_document, writer_document = pair
    reader, writer = _parse(reader_document), _parse(writer_document)
    if read_errors(reader, writer):
        return  # nothing promised
    writer_accepts, reader_accepts = _validator(writer), _validator(reader)
    for document in [*POOL, *drawn]:
        if writer_accepts(document):
            assert reader_accepts(document), (
                f"compatible, yet {json.dumps(document)} is valid for the writer "
                f"{json.dumps(writer_document)} and not for the reader "
                f"{json.dumps(reader_document)}"
            )
