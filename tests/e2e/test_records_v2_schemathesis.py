"""Schemathesis against the records v2 OpenAPI document of a real server.

No generated request may get a 5xx, and every response must conform to the document
(status codes, content types, bodies).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from sluicegate.testing.process import ServerProcess, serve_in_subprocess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serve_in_subprocess(tmp_path_factory.mktemp("data")) as server:
        yield server


@pytest.fixture(scope="module")
def records_v2_schema(server: ServerProcess) -> Any:
    return schemathesis.openapi.from_url(f"{server.url}/openapi/records-v2.json")


schema = schemathesis.pytest.from_fixture("records_v2_schema")


@schema.parametrize()
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_records_v2_conforms(case: Any, server: ServerProcess) -> None:
    case.call_and_validate(base_url=server.url)
