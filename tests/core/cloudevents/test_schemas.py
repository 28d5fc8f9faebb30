"""Event types' data schemas: drafts by $schema or keywords, the registry subject, config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sluicegate.config import CloudEventSchema
from sluicegate.core.cloudevents.schemas import (
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
