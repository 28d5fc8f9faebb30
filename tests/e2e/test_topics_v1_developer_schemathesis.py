"""Schemathesis against the topics v1 developer API's OpenAPI document on a real server.

No generated request may get a 5xx, and every response must conform to the document
(status codes, content types, bodies).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from sluicegate.testing.process import ServerProcess, serve_in_subprocess

ADMIN_KEY = "sg_schemathesis_admin_key_0123456789abcdef"
OPERATIONS = [
    "GET /api/event_streams/topics",
    "POST /api/event_streams/topics",
    "DELETE /api/event_streams/topics/{topic_id}",
    "GET /api/event_streams/topics/{topic_id}",
    "PUT /api/event_streams/topics/{topic_id}",
    "PUT /api/event_streams/topics/{topic_id}/purge",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Authentication on: schemathesis also checks that requests without it are refused.
    with serve_in_subprocess(
        tmp_path_factory.mktemp("data"), args=(), env={"SLUICEGATE_ADMIN_KEY": ADMIN_KEY}
    ) as server:
        yield server


def test_developer_api_conforms(server: ServerProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi/topics-v1-developer.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert sorted(op.label for op in operations) == sorted(OPERATIONS)
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        def conforms(case: Any) -> None:
            case.call_and_validate(
                base_url=server.url,
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                # Schema-valid is not always valid: field names must be unique among their
                # siblings, and ids name topics that may not exist. JSON Schema cannot say
                # either, so a 400 or 404 for such a request is right, not a failure.
                excluded_checks=[positive_data_acceptance],
            )

        conforms()
