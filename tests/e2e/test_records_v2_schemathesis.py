"""Schemathesis against the records v2 OpenAPI document of a real server (see conformance)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.e2e.conformance import check_conformance

ADMIN_KEY = "sg_schemathesis_admin_key_0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Authentication on: schemathesis also checks that requests without it are refused.
    with serve_in_subprocess(
        tmp_path_factory.mktemp("data"), args=(), env={"SLUICEGATE_ADMIN_KEY": ADMIN_KEY}
    ) as server:
        yield server


def test_records_v2_conforms(server: ServerProcess) -> None:
    # Schema-valid is not always valid: avro data must match the Avro schema sent as a
    # string, and avro needs ?serializer=confluent; JSON Schema cannot say either.
    labels = check_conformance(server.url, "records-v2", ADMIN_KEY, max_examples=200)
    assert labels == ["POST /v2/topics/{topic_name}/records"]
