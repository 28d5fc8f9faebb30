"""Every OpenAPI document the gateway serves: current, complete, and internally consistent.

Parametrized over ``openapi.DOCUMENTS``, so a document added later is checked the same way.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from typing import Any

import pytest

from sluicegate.app import GatewayApp
from sluicegate.openapi import DOCUMENTS, load_document

NAMES = sorted(DOCUMENTS)
#: The documents generated from code (``<package>.openapi.build_document``); the rest are
#: written by hand.
BUILT = [name for name in NAMES if importlib.util.find_spec(f"{DOCUMENTS[name][0]}.openapi")]
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in _METHODS
    ]


@pytest.mark.parametrize("name", BUILT)
def test_saved_document_is_the_built_one(name: str) -> None:
    package, _ = DOCUMENTS[name]
    builder = importlib.import_module(f"{package}.openapi")
    assert load_document(name) == builder.build_document(), f"run: python -m {package}.openapi"


def test_every_route_is_in_one_document(app: GatewayApp) -> None:
    routed = {
        # A ``{name:path}`` parameter (it may hold ``/``) is ``{name}`` in a document.
        (route.path.replace(":path}", "}"), method.lower())
        for route in app.router.routes
        # The gateway's own (health, metrics, these documents), the console's page and
        # scripts (files, not an API), and the registry's mirror.
        if route.dialect not in {"gateway", "console"} and not route.path.startswith("/registry/")
        for method in route.methods
    }
    documented = [
        (path, method) for name in NAMES for path, method, _ in _operations(load_document(name))
    ]
    assert len(documented) == len(set(documented)), "an operation is in two documents"
    assert routed == set(documented)


@pytest.mark.parametrize("name", NAMES)
def test_path_parameters_are_declared(name: str) -> None:
    for path, method, operation in _operations(load_document(name)):
        in_path = set(re.findall(r"\{(\w+)\}", path))
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == in_path, f"{method} {path}"


@pytest.mark.parametrize("name", NAMES)
def test_references_resolve(name: str) -> None:
    document = load_document(name)
    for kind, found in re.findall(r'"#/components/(\w+)/(\w+)"', json.dumps(document)):
        assert found in document["components"][kind], f"#/components/{kind}/{found}"


def _resolved(document: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """A response object, or the one its ``$ref`` names in ``components/responses``."""
    reference = response.get("$ref")
    if reference is None:
        return response
    resolved: dict[str, Any] = document["components"]["responses"][reference.rsplit("/", 1)[1]]
    return resolved


@pytest.mark.parametrize("name", NAMES)
def test_links_name_real_operations_and_parameters(name: str) -> None:
    document = load_document(name)
    by_id = {op["operationId"]: op for _, _, op in _operations(document) if "operationId" in op}
    assert len(by_id) == len({op.get("operationId") for _, _, op in _operations(document)} - {None})
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            for link_name, link in response.get("links", {}).items():
                where = f"{method} {path} {status} → {link_name}"
                assert link["operationId"] in by_id, where
                target = by_id[link["operationId"]]
                parameters = {p["name"] for p in target.get("parameters", [])}
                assert set(link.get("parameters", {})) <= parameters, where


@pytest.mark.parametrize("name", NAMES)
def test_every_error_body_is_described(name: str) -> None:
    document = load_document(name)
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                media = _resolved(document, response).get("content", {})
                assert media, f"{method} {path} {status}: the error body is not described"
                assert all("schema" in m for m in media.values()), f"{method} {path} {status}"
