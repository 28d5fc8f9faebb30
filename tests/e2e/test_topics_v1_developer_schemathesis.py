"""Schemathesis against the topics v1 developer API's document on a real server (see
conformance)."""

from __future__ import annotations

from sluicegate.testing.process import ServerProcess
from tests.e2e.conformance import check_conformance
from tests.helpers import E2E_ADMIN_KEY

OPERATIONS = [
    "GET /api/event_streams/topics",
    "POST /api/event_streams/topics",
    "DELETE /api/event_streams/topics/{topic_id}",
    "GET /api/event_streams/topics/{topic_id}",
    "PUT /api/event_streams/topics/{topic_id}",
    "PUT /api/event_streams/topics/{topic_id}/purge",
]


def test_developer_api_conforms(admin_server: ServerProcess) -> None:
    # Schema-valid is not always valid: field names must be unique among their siblings,
    # and ids name topics that may not exist; JSON Schema cannot say either.
    labels = check_conformance(
        admin_server.url, "topics-v1-developer", E2E_ADMIN_KEY, max_examples=60
    )
    assert sorted(labels) == sorted(OPERATIONS)
