"""The OpenAPI document: saved file equals the built one, and it covers every route."""

from __future__ import annotations

import json
import re
from importlib import resources

from sluicegate.dialects.schema_registry.openapi import build_document
from sluicegate.dialects.schema_registry.routes import routes


def test_saved_document_is_current() -> None:
    saved = resources.files("sluicegate.dialects.schema_registry").joinpath("openapi.json")
    assert json.loads(saved.read_text("utf-8")) == build_document(), (
        "run: python -m sluicegate.dialects.schema_registry.openapi"
    )


def test_every_route_is_documented_and_nothing_else() -> None:
    document = build_document()
    routed = {
        (route.path, method.lower())
        for route in routes(None)  # type: ignore[arg-type]  # only the table is read
        for method in route.methods
    }
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert routed == documented


def test_path_parameters_are_declared() -> None:
    for path, operations in build_document()["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for operation in operations.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path


def test_references_resolve() -> None:
    document = build_document()
    text = json.dumps(document)
    for name in re.findall(r'"#/components/schemas/(\w+)"', text):
        assert name in document["components"]["schemas"]
