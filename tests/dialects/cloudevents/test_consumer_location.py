"""The instance URL of ``POST /ce/consumers`` with a configured public base URL."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sluicegate.config import Settings
from sluicegate.core.gateway import Gateway
from tests.conftest import make_settings
from tests.dialects.cloudevents.conftest import CONSUMER, key_for


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        server={"node_id": "bridge-7", "trusted_proxies": ["127.0.0.1"]},
        cloudevents={"public_base_url": "https://events.example.com/"},
    )


async def test_the_location_starts_with_the_public_base_url(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    consumer = await key_for(gateway, "billing", CONSUMER)
    headers = {**consumer, "x-forwarded-host": "ignored.example.com"}
    response = await client.post("/ce/consumers", headers=headers)
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert location.startswith("https://events.example.com/bridge-7/ce/consumers/~default/")
    path = location.removeprefix("https://events.example.com")
    assert (await client.get(f"{path}/events?timeout=0", headers=consumer)).status_code == 204
