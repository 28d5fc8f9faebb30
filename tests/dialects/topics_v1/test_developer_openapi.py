"""The developer API's OpenAPI document covers exactly its routes and stays coherent."""

from __future__ import annotations

import json
import re

from sluicegate.config import load_settings
from sluicegate.core.gateway import Gateway
from sluicegate.dialects.topics_v1.developer import routes
from sluicegate.openapi import load_document
from sluicegate.storage.sqlite import SqliteLog

DOCUMENT = load_document("topics-v1-developer")


def test_every_route_is_documented_and_nothing_else() -> None:
    # Building the routes needs a gateway but no running storage.
    settings = load_settings(environ={}, overrides={"storage": {"data_dir": "never-opened"}})
    gateway = Gateway(settings, SqliteLog(settings.storage.data_dir))
    routed = {(route.path, method.lower()) for route in routes(gateway) for method in route.methods}
    documented = {(path, method) for path, ops in DOCUMENT["paths"].items() for method in ops}
    assert routed == documented


def test_path_parameters_are_declared() -> None:
    for path, operations in DOCUMENT["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for operation in operations.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path


def test_references_resolve() -> None:
    text = json.dumps(DOCUMENT)
    for name in re.findall(r'"#/components/schemas/(\w+)"', text):
        assert name in DOCUMENT["components"]["schemas"]


def test_every_operation_documents_the_errors_every_request_can_get() -> None:
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            assert {"200", "401", "429", "500", "503"} <= set(operation["responses"]), (
                method,
                path,
            )
