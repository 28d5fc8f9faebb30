"""Hooks for the schemathesis runs (loaded through ``SCHEMATHESIS_HOOKS``).

A schema registry request carries a schema as text; generated text almost never parses, and
references almost never name a registered subject, so nearly every registration would be
refused (422) and stateful runs would end at their first step. Here three in four bodies
meant to be valid, sent to the operations that take a schema, are replaced with schemas
that parse, so that subjects, versions and ids get registered and their links followed.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import strategies as st

_SCHEMA_PATHS = {
    "/subjects/{subject}/versions",
    "/subjects/{subject}",
    "/compatibility/subjects/{subject}/versions",
    "/compatibility/subjects/{subject}/versions/{version}",
}

_VALID_BODIES = [
    {"schema": json.dumps("string")},
    {
        "schema": json.dumps(
            {"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}]}
        )
    },
    {
        "schema": json.dumps({"type": "object", "properties": {"id": {"type": "integer"}}}),
        "schemaType": "JSON",
    },
]


def _takes_a_schema(case: Any) -> bool:
    operation = case.operation
    return bool(operation.method.upper() == "POST" and operation.path in _SCHEMA_PATHS)


def _body_is_meant_valid(case: Any) -> bool:
    # A body generated to be invalid stays as it is: the run expects it to be refused.
    meta = case.meta
    if meta is None:
        return True
    for location, info in meta.components.items():
        if getattr(location, "value", location) == "body":
            return bool(getattr(info.mode, "value", info.mode) == "positive")
    return True


@schemathesis.hook
def flatmap_case(context: Any, case: Any) -> st.SearchStrategy[Any]:
    if not (_takes_a_schema(case) and _body_is_meant_valid(case)):
        return st.just(case)

    def with_body(index: int) -> Any:
        if index < len(_VALID_BODIES):
            case.body = dict(_VALID_BODIES[index])
        return case

    # One in four keeps its generated body.
    return st.integers(0, len(_VALID_BODIES)).map(with_body)
