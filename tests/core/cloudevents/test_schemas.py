"""Event types' data schemas: drafts by $schema or keywords, the registry subject, config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from sluicegate.config import CloudEventSchema
from sluicegate.core.cloudevents.schemas import (
    DRAFT6,
    DRAFT7,
    DRAFT2019,
    DRAFT2020,
    EventSchemas,
    detect_draft,
    subject_for,
)
from sluicegate.core.gateway import Gateway
from sluicegate.errors import ConfigError, InvalidSchema


@pytest.mark.parametrize(
    ("schema", "draft"),
    [
        ({"type": "object", "properties": {"if": {"type": "string"}}}, DRAFT7),
        ({"if": {"required": ["a"]}, "then": {"required": ["b"]}}, DRAFT7),
        ({"const": 1, "contains": {"type": "string"}}, DRAFT7),
        ({"$defs": {"a": {"type": "string"}}, "$ref": "#/$defs/a"}, DRAFT2020),
        ({"properties": {"a": {"dependentRequired": {"x": ["y"]}}}}, DRAFT2020),
        ({"prefixItems": [{"type": "string"}]}, DRAFT2020),
        ({"$recursiveRef": "#"}, DRAFT2019),
        ({"items": [{"type": "string"}], "unevaluatedItems": False}, DRAFT2019),
        ({"anyOf": [{"not": {"$dynamicRef": "#meta"}}]}, DRAFT2020),
    ],
)
def test_the_draft_is_told_by_the_keywords(schema: dict[str, Any], draft: str) -> None:
    assert detect_draft(schema) == draft


def test_keywords_of_two_drafts_that_exclude_each_other_are_refused() -> None:
    with pytest.raises(InvalidSchema, match="mixes keywords of 2019-09 and 2020-12"):
        detect_draft({"prefixItems": [{}], "$recursiveRef": "#"})


async def test_set_names_the_detected_draft_and_validates_in_it(gateway: Gateway) -> None:
    schemas = gateway.event_schemas
    registered = await schemas.set(
        "Order.Created",
        json.dumps({"type": "array", "prefixItems": [{"type": "integer"}], "items": False}),
    )
    assert registered.subject == subject_for("Order.Created") == "ce.type.Order.Created"
    assert json.loads(registered.schema)["$schema"] == DRAFT2020
    check = schemas.for_type("Order.Created")
    assert check is not None
    assert check.violations([1]) == []
    assert [v.pointer for v in check.violations(["x"])] == ["/0"]
    assert check.violations([1, 2]) != []  # items: false in 2020-12 closes the tuple
    assert schemas.for_type("Other") is None


async def test_an_explicit_draft_is_kept_and_others_are_refused(gateway: Gateway) -> None:
    schemas = gateway.event_schemas
    text = json.dumps({"$schema": "http://json-schema.org/draft-06/schema#", "type": "string"})
    assert (await schemas.set("T6", text)).schema == text
    draft4 = json.dumps({"$schema": "http://json-schema.org/draft-04/schema#"})
    with pytest.raises(InvalidSchema, match="not one of the drafts"):
        await schemas.set("T4", draft4)
    with pytest.raises(InvalidSchema, match="not valid JSON"):
        await schemas.set("T", "{")


async def test_delete_removes_the_type_schema(gateway: Gateway) -> None:
    schemas = gateway.event_schemas
    await schemas.set("Gone", '{"type": "object"}')
    assert schemas.get("Gone") is not None
    assert await schemas.delete("Gone") == [1]
    assert schemas.get("Gone") is None
    assert schemas.for_type("Gone") is None


async def test_configured_schemas_from_a_file_or_inline(gateway: Gateway, tmp_path: Path) -> None:
    path = tmp_path / "order.json"
    path.write_text('{"type": "object", "required": ["id"]}')
    schemas = EventSchemas(gateway.schemas)
    await schemas.load_configured(
        [
            CloudEventSchema(type="Order.Created", file=str(path)),
            CloudEventSchema(type="Order.Paid", schema={"type": "string"}),
        ]
    )
    created = schemas.for_type("Order.Created")
    assert created is not None
    assert created.violations({}) != []
    paid = schemas.for_type("Order.Paid")
    assert paid is not None
    assert paid.violations("x") == []
    with pytest.raises(ConfigError, match=r"cloudevents.schemas\[0\].file: cannot read"):
        await schemas.load_configured([CloudEventSchema(type="X", file=str(tmp_path / "no"))])
    with pytest.raises(ConfigError, match=r"cloudevents.schemas\[0\]: type 'X'"):
        await schemas.load_configured([CloudEventSchema(type="X", schema="[1]")])


# -- validating data in each draft ----------------------------------------------------------

IF_THEN: dict[str, Any] = {"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}}
DEPENDENT_REQUIRED: dict[str, Any] = {"type": "object", "dependentRequired": {"a": ["b"]}}
DEPENDENCIES: dict[str, Any] = {"type": "object", "dependencies": {"a": ["b"]}}
PREFIX_ITEMS: dict[str, Any] = {"type": "array", "prefixItems": [{"type": "integer"}]}
ARRAY_ITEMS: dict[str, Any] = {"type": "array", "items": [{"type": "integer"}]}
CLOSED_TUPLE_2019: dict[str, Any] = {
    "type": "array",
    "items": [{"type": "integer"}],
    "unevaluatedItems": False,
}
CLOSED_TUPLE_2020: dict[str, Any] = {
    "type": "array",
    "prefixItems": [{"type": "integer"}],
    "items": False,
}
UNEVALUATED: dict[str, Any] = {
    "type": "object",
    "properties": {"a": {}},
    "unevaluatedProperties": False,
}
CONTAINS: dict[str, Any] = {"type": "array", "contains": {"const": 1}}
MIN_CONTAINS: dict[str, Any] = {"type": "array", "contains": {"const": 1}, "minContains": 2}


def drafted(draft: str | None, schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` naming ``draft`` with ``$schema`` (``None``: told by its keywords)."""
    return schema if draft is None else {"$schema": draft, **schema}


#: (draft named by $schema or None, schema, data, whether the data is valid in that draft):
#: most chosen so that another draft would decide otherwise; the rest are their
#: counterparts (the keyword satisfied, or a keyword every one of these drafts has).
DRAFT_CASES = [
    # Draft 6: if/then/else, dependentRequired, prefixItems... are no keywords; what
    # Draft 6 has (items as an array, dependencies, and contains, new in Draft 6) applies.
    pytest.param(DRAFT6, IF_THEN, {"a": 1}, True, id="6-if-then-ignored"),
    pytest.param(DRAFT6, ARRAY_ITEMS, ["x"], False, id="6-array-items-apply"),
    pytest.param(DRAFT6, DEPENDENCIES, {"a": 1}, False, id="6-dependencies-apply"),
    pytest.param(DRAFT6, DEPENDENT_REQUIRED, {"a": 1}, True, id="6-dependentRequired-ignored"),
    pytest.param(DRAFT6, CONTAINS, [2], False, id="6-contains-applies"),
    pytest.param(DRAFT6, PREFIX_ITEMS, ["x"], True, id="6-prefixItems-ignored"),
    # Draft 7: if/then/else apply; 2019-09's and 2020-12's keywords do not.
    pytest.param(DRAFT7, IF_THEN, {"a": 1}, False, id="7-then-applies"),
    pytest.param(DRAFT7, IF_THEN, {"a": 1, "b": 2}, True, id="7-then-satisfied"),
    pytest.param(DRAFT7, IF_THEN, {"c": 1}, True, id="7-if-false"),
    pytest.param(DRAFT7, DEPENDENCIES, {"a": 1}, False, id="7-dependencies-apply"),
    pytest.param(DRAFT7, DEPENDENT_REQUIRED, {"a": 1}, True, id="7-dependentRequired-ignored"),
    pytest.param(DRAFT7, UNEVALUATED, {"b": 1}, True, id="7-unevaluated-ignored"),
    pytest.param(DRAFT7, ARRAY_ITEMS, ["x"], False, id="7-array-items-apply"),
    pytest.param(DRAFT7, PREFIX_ITEMS, ["x"], True, id="7-prefixItems-ignored"),
    pytest.param(DRAFT7, MIN_CONTAINS, [1, 2], True, id="7-minContains-ignored"),
    # 2019-09: dependentRequired, unevaluated*, minContains and items as an array apply;
    # prefixItems (2020-12) does not.
    pytest.param(DRAFT2019, IF_THEN, {"a": 1}, False, id="2019-then-applies"),
    pytest.param(DRAFT2019, DEPENDENT_REQUIRED, {"a": 1}, False, id="2019-dependentRequired"),
    pytest.param(DRAFT2019, DEPENDENT_REQUIRED, {"a": 1, "b": 1}, True, id="2019-dep-ok"),
    pytest.param(DRAFT2019, UNEVALUATED, {"b": 1}, False, id="2019-unevaluated-applies"),
    pytest.param(DRAFT2019, UNEVALUATED, {"a": 1}, True, id="2019-unevaluated-ok"),
    pytest.param(DRAFT2019, MIN_CONTAINS, [1, 2], False, id="2019-minContains-applies"),
    pytest.param(DRAFT2019, ARRAY_ITEMS, ["x"], False, id="2019-array-items-apply"),
    pytest.param(DRAFT2019, ARRAY_ITEMS, [1, "x"], True, id="2019-array-items-tuple"),
    pytest.param(DRAFT2019, CLOSED_TUPLE_2019, [1, 2], False, id="2019-unevaluatedItems"),
    pytest.param(DRAFT2019, PREFIX_ITEMS, ["x"], True, id="2019-prefixItems-ignored"),
    # "dependencies is no longer a keyword" (the 2019-09 and 2020-12 meta-schemas): split
    # into dependentRequired and dependentSchemas.
    pytest.param(DRAFT2019, DEPENDENCIES, {"a": 1}, True, id="2019-dependencies-ignored"),
    # 2020-12: prefixItems applies, and items after it is for the rest of the array.
    pytest.param(DRAFT2020, PREFIX_ITEMS, ["x"], False, id="2020-prefixItems-apply"),
    pytest.param(DRAFT2020, PREFIX_ITEMS, [1, "x"], True, id="2020-prefixItems-tuple"),
    pytest.param(DRAFT2020, CLOSED_TUPLE_2020, [1], True, id="2020-closed-tuple-ok"),
    pytest.param(DRAFT2020, CLOSED_TUPLE_2020, [1, 2], False, id="2020-items-after-prefix"),
    pytest.param(DRAFT2020, DEPENDENT_REQUIRED, {"a": 1}, False, id="2020-dependentRequired"),
    pytest.param(DRAFT2020, UNEVALUATED, {"b": 1}, False, id="2020-unevaluated-applies"),
    pytest.param(DRAFT2020, IF_THEN, {"a": 1}, False, id="2020-then-applies"),
    pytest.param(DRAFT2020, DEPENDENCIES, {"a": 1}, True, id="2020-dependencies-ignored"),
    # No $schema: the draft the keywords belong to.
    pytest.param(None, IF_THEN, {"a": 1}, False, id="detected-7-then-applies"),
    pytest.param(None, DEPENDENCIES, {"a": 1}, False, id="detected-7-dependencies"),
    pytest.param(None, ARRAY_ITEMS, ["x"], False, id="detected-7-array-items"),
    pytest.param(None, DEPENDENT_REQUIRED, {"a": 1}, False, id="detected-2020-dependent"),
    pytest.param(None, UNEVALUATED, {"b": 1}, False, id="detected-2020-unevaluated"),
    pytest.param(None, PREFIX_ITEMS, ["x"], False, id="detected-2020-prefixItems"),
    pytest.param(None, CLOSED_TUPLE_2020, [1, 2], False, id="detected-2020-closed-tuple"),
    pytest.param(None, CLOSED_TUPLE_2019, [1, 2], False, id="detected-2019-unevaluatedItems"),
    pytest.param(None, CLOSED_TUPLE_2019, [1], True, id="detected-2019-tuple-ok"),
    pytest.param(None, MIN_CONTAINS, [1, 2], False, id="detected-2020-minContains"),
]


#: A pattern Python's ``re`` reads and ``jsonschema-rs`` cannot compile: a schema holding it
#: is checked by the registry's own validator (Python's ``jsonschema``) instead.
NOT_FOR_RUST = "a{,3}"


def on_the_python_fallback(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with an unrelated property whose pattern only Python compiles."""
    properties = {**schema.get("properties", {}), "zz": {"pattern": NOT_FOR_RUST}}
    return {**schema, "properties": properties}


def test_the_fallback_pattern_is_one_jsonschema_rs_cannot_compile() -> None:
    with pytest.raises(jsonschema_rs.ValidationError, match='is not a "regex"'):
        jsonschema_rs.validator_for({"pattern": NOT_FOR_RUST})


@pytest.mark.parametrize("fallback", [False, True], ids=["compiled", "python-fallback"])
@pytest.mark.parametrize(("draft", "schema", "data", "valid"), DRAFT_CASES)
async def test_data_is_validated_in_the_schemas_draft(
    gateway: Gateway,
    draft: str | None,
    schema: dict[str, Any],
    data: Any,
    valid: bool,
    fallback: bool,
) -> None:
    schemas = gateway.event_schemas
    if fallback:
        schema = on_the_python_fallback(schema)
    registered = await schemas.set("Order.Created", json.dumps(drafted(draft, schema)))
    if draft is not None:
        assert json.loads(registered.schema)["$schema"] == draft
    check = schemas.for_type("Order.Created")
    assert check is not None
    violations = check.violations(data)
    assert (violations == []) is valid, violations


#: Data valid only in some drafts: (schema, data) whose verdicts, in this order, tell the
#: four drafts apart.
PROBES: list[tuple[dict[str, Any], Any]] = [
    (IF_THEN, {"a": 1}),  # valid in Draft 6 only: if/then/else came in Draft 7
    (DEPENDENT_REQUIRED, {"a": 1}),  # valid in Drafts 6 and 7: dependentRequired is 2019-09's
    (PREFIX_ITEMS, ["x"]),  # valid but in 2020-12: prefixItems is 2020-12's
]
VERDICTS = {
    DRAFT6: (True, True, True),
    DRAFT7: (False, True, True),
    DRAFT2019: (False, False, True),
    DRAFT2020: (False, False, False),
}


@pytest.mark.parametrize(
    ("named", "draft"),
    [
        (DRAFT6, DRAFT6),
        (DRAFT7, DRAFT7),
        (DRAFT2019, DRAFT2019),
        (DRAFT2020, DRAFT2020),
        # The same URIs with (or without) the empty fragment: the same drafts.
        ("http://json-schema.org/draft-06/schema", DRAFT6),
        ("http://json-schema.org/draft-07/schema", DRAFT7),
        ("https://json-schema.org/draft/2019-09/schema#", DRAFT2019),
        ("https://json-schema.org/draft/2020-12/schema#", DRAFT2020),
    ],
)
async def test_the_draft_named_by_schema_decides_every_verdict(
    gateway: Gateway, named: str, draft: str
) -> None:
    schemas = gateway.event_schemas
    verdicts = []
    for n, (schema, data) in enumerate(PROBES):
        registered = await schemas.set(f"Probe.{n}", json.dumps(drafted(named, schema)))
        assert json.loads(registered.schema)["$schema"] == named  # kept as written
        check = schemas.for_type(f"Probe.{n}")
        assert check is not None
        verdicts.append(check.violations(data) == [])
    assert tuple(verdicts) == VERDICTS[draft]


async def test_each_draft_is_detected_and_written_in_before_validating(gateway: Gateway) -> None:
    schemas = gateway.event_schemas
    detected: list[tuple[str, dict[str, Any], str]] = [
        ("T7", IF_THEN, DRAFT7),
        ("T2019", CLOSED_TUPLE_2019, DRAFT2019),
        ("T2020", DEPENDENT_REQUIRED, DRAFT2020),
    ]
    for event_type, schema, draft in detected:
        registered = await schemas.set(event_type, json.dumps(schema))
        assert json.loads(registered.schema) == {"$schema": draft, **schema}
        shown = schemas.get(event_type)
        assert shown is not None
        assert json.loads(shown.schema)["$schema"] == draft


async def test_the_array_form_of_items_is_refused_in_2020_12(gateway: Gateway) -> None:
    with pytest.raises(InvalidSchema, match="is not of type 'object', 'boolean'"):
        await gateway.event_schemas.set("T", json.dumps(drafted(DRAFT2020, ARRAY_ITEMS)))
    assert gateway.event_schemas.for_type("T") is None
