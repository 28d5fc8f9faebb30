"""Topics v1 developer API with authentication on: who sees and changes which topic, and
the per-client rate limit in this dialect's error format."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sluicegate.config import Settings
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.gateway import Gateway
from sluicegate.core.topics import TopicSpec
from tests.conftest import make_settings

TOPICS = "/api/event_streams/topics"
SCHEMA = [{"name": "id", "type": "integer"}]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    rates = {"topics_v1": {"rate_per_second": 0.01, "burst": 20}}
    return make_settings(tmp_path, limits={"dialect_rates": rates})


async def key_for(gateway: Gateway, name: str, permissions: Permissions) -> dict[str, str]:
    await gateway.clients.create_client(name, permissions)
    created = await gateway.clients.create_key(name)
    return {"authorization": f"Bearer {created.key}"}


async def test_the_list_shows_topics_with_any_permission(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    for name in ("orders", "payments", "audit", "secret"):
        await gateway.topics.create(TopicSpec(name=name))
    headers = await key_for(
        gateway,
        "app-mixed",
        Permissions(produce=["orders"], consume=["payments"], admin=["audit"]),
    )
    listed = (await client.get(TOPICS, headers=headers)).json()
    assert [t["name"] for t in listed["data"]] == ["orders", "payments", "audit"]
    assert listed["count"] == 3
    nobody = await key_for(gateway, "app-nobody", Permissions())
    assert (await client.get(TOPICS, headers=nobody)).json() == {
        "data": [],
        "count": 0,
        "page": 1,
        "per_page": 100,
    }


async def test_everything_else_needs_admin_on_the_topic(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    owner = await key_for(gateway, "app-owner", Permissions(admin=["orders*"]))
    producer = await key_for(gateway, "app-producer", Permissions(produce=["orders"]))
    created = await client.post(TOPICS, json={"name": "orders", "schema": SCHEMA}, headers=owner)
    assert created.status_code == 200, created.text
    topic_id = created.json()["data"]["id"]

    refused = await client.post(TOPICS, json={"name": "payments", "schema": SCHEMA}, headers=owner)
    assert refused.status_code == 403
    assert refused.json() == {
        "message": "client 'app-owner' may not administer topic 'payments'",
        "code": "forbidden",
    }
    one = f"{TOPICS}/{topic_id}"
    for method, url in [("GET", one), ("PUT", one), ("PUT", f"{one}/purge"), ("DELETE", one)]:
        response = await client.request(method, url, json={}, headers=producer)
        assert response.status_code == 403, (method, url, response.text)
        assert response.json()["code"] == "forbidden"
    assert (await client.get(one, headers=owner)).status_code == 200
    # An unknown id is a 404 whoever asks: there is no topic to check a permission on.
    assert (await client.get(f"{TOPICS}/999", headers=producer)).status_code == 404
    unauthenticated = await client.get(TOPICS)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["code"] == "unauthenticated"
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")


async def test_the_rate_limit_is_429_with_retry_after(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    headers = await key_for(gateway, "app-busy", Permissions(admin=["*"]))
    statuses = [(await client.get(TOPICS, headers=headers)).status_code for _ in range(21)]
    assert statuses == [200] * 20 + [429]
    limited = await client.get(TOPICS, headers=headers)
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
