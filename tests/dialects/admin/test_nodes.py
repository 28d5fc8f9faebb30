"""``GET /admin/v1/nodes`` in-process, on the embedded log: one node, this one."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sluicegate.config import Settings
from tests.conftest import make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        auth={"enabled": False},
        cluster={"node_id": "gw-1", "advertised_url": "http://10.0.0.5:8080/"},
    )


async def test_the_embedded_log_has_one_node(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/v1/nodes")
    assert response.status_code == 200, response.text
    (node,) = response.json()
    assert node["node_id"] == "gw-1"
    assert node["url"] == "http://10.0.0.5:8080"
    assert node["live"] is True
    assert node["this_node"] is True
    assert node["heartbeat_age"] == 0
    assert (node["instances"], node["streams"]) == (0, 0)
    assert node["started_at"].endswith("Z")


async def test_instance_counts_are_this_node_s(client: httpx.AsyncClient) -> None:
    created = await client.post("/ce/consumers")
    assert created.status_code == 201, created.text
    assert "/gw-1/ce/consumers/" in created.headers["location"]
    (node,) = (await client.get("/admin/v1/nodes")).json()
    assert node["instances"] == 1
