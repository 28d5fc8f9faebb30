"""Schemathesis against the topics v1 developer API's document on a real server (see
conformance)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.e2e.conformance import check_conformance

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
    # Schema-valid is not always valid: field names must be unique among their siblings,
    # and ids name topics that may not exist; JSON Schema cannot say either.
    labels = check_conformance(server.url, "topics-v1-developer", ADMIN_KEY, max_examples=60)
    assert sorted(labels) == sorted(OPERATIONS)
