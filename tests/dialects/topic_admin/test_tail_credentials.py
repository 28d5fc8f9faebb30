"""A topic's tail proves its client's credentials again while it lasts: a key revoked,
a client deleted or a permission taken away ends it, as the next request is refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from sluicegate.app import GatewayApp
from sluicegate.config import Settings
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.gateway import Gateway
from tests.conftest import make_settings
from tests.helpers import serving

TOPIC = "orders"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)  # authentication on


@pytest.fixture
async def http(app: GatewayApp, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serving(app, settings) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        yield client


async def _key(gateway: Gateway, name: str, permissions: Permissions) -> dict[str, str]:
    await gateway.clients.create_client(name, permissions)
    created = await gateway.clients.create_key(name)
    return {"authorization": f"Bearer {created.key}"}


async def _revoke(gateway: Gateway) -> None:
    [key] = gateway.clients.keys("watcher")
    await gateway.clients.revoke_key("watcher", key.id)


async def _no_consume(gateway: Gateway) -> None:
    await gateway.clients.update_client("watcher", Permissions(consume=["other"]))


async def _delete(gateway: Gateway) -> None:
    await gateway.clients.delete_client("watcher")


@pytest.mark.parametrize(
    ("change", "status"),
    [(_revoke, 401), (_no_consume, 403), (_delete, 401)],
    ids=["key revoked", "consume taken away", "client deleted"],
)
async def test_the_tail_ends_before_a_record_its_client_may_no_longer_read(
    gateway: Gateway,
    http: httpx.AsyncClient,
    change: Callable[[Gateway], Awaitable[None]],
    status: int,
) -> None:
    admin = await _key(gateway, "ops", Permissions(produce=["*"], admin=["*"]))
    watcher = await _key(gateway, "watcher", Permissions(consume=[TOPIC]))
    created = await http.post("/admin/v1/topics", json={"name": TOPIC}, headers=admin)
    assert created.status_code == 201, created.text

    async def produce(text: str) -> None:
        body = {"value": {"type": "text", "data": text}}
        response = await http.post(f"/v2/topics/{TOPIC}/records", json=body, headers=admin)
        assert response.status_code == 200, response.text

    seen: list[ServerSentEvent] = []
    async with aconnect_sse(
        http, "GET", f"/admin/v1/topics/{TOPIC}/tail", headers=watcher
    ) as source:
        assert source.response.status_code == 200
        events = source.aiter_sse()
        async with asyncio.timeout(10):
            assert (await anext(events)).event == "start"
            await produce("allowed")
            first = await anext(events)
            assert [r["value"]["text"] for r in json.loads(first.data)["records"]] == ["allowed"]
            await change(gateway)
            await produce("secret")
            seen = [sse async for sse in events]  # until the server ends the stream
    assert [sse.event for sse in seen] == ["error"]
    assert json.loads(seen[0].data)["status"] == status
