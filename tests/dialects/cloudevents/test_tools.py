"""The tool API on both backends: the caller's settings, and test events into its stream."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sluicegate.config import Settings
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.cloudevents import streams
from sluicegate.core.gateway import Gateway
from tests.conftest import make_settings
from tests.dialects.cloudevents.conftest import CONSUMER, PRODUCER, key_for, stored

RAW = {
    "ce-specversion": "1.0",
    "ce-id": "t-1",
    "ce-source": "urn:test",
    "ce-type": "Order.Created",
    "content-type": "application/json",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    routes = [
        {"types": ["Order.*"], "topic": "orders"},
        {"types": ["Audit.*"], "topic": "audit"},
    ]
    return make_settings(tmp_path, cloudevents={"routes": routes})


async def test_my_settings_shows_what_the_client_may_do_and_no_secret(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    both = Permissions(
        ce_sources=["urn:shop"], ce_produce_types=["Order.Created"], ce_consume_types=["Order.*"]
    )
    auth = await key_for(gateway, "shop", both)
    await gateway.type_registry.register([("Order.Paid", "orders"), ("User.Created", "ce.U")])
    response = await client.get("/ce/tools/my-settings", headers=auth)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "client": "shop",
        "bridge": "node-1",
        "producer": {"sources": ["urn:shop"], "types": ["Order.Created"]},
        "consumer": {
            "types": ["Order.*"],
            "types_produced": ["Order.Paid"],
            "websocket": "/ce/ws",
            "sse": "/ce/sse",
            "poll_timeout_seconds": 20.0,
            "max_poll_timeout_seconds": 60.0,
            "batch_size": 1000,
            "websocket_window": 10000,
            "idle_timeout_seconds": 300.0,
            "max_deliveries": 0,
        },
        "routes": [{"types": ["Order.*"], "topic": "orders"}],
        "limits": {
            "max_request_bytes": 1048576,
            "max_event_bytes": 65536,
            "clock_skew_seconds": 5.0,
            "partitions": 12,
            "retention_hours": 120.0,
        },
    }
    assert auth["authorization"].split()[1] not in response.text
    producer_only = await key_for(gateway, "writer", PRODUCER)
    shown = (await client.get("/ce/tools/my-settings", headers=producer_only)).json()
    assert shown["consumer"] is None
    assert (await client.get("/ce/tools/my-settings")).status_code == 401
    # Neither a producer nor a consumer: the dialect's 401, saying what it lacks.
    neither = await key_for(gateway, "bystander", Permissions(consume=["orders"]))
    refused = await client.get("/ce/tools/my-settings", headers=neither)
    assert refused.status_code == 401
    assert "neither as a CloudEvents producer" in refused.json()["message"]


async def test_a_test_event_goes_to_the_callers_own_stream(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    auth = await key_for(gateway, "reader", CONSUMER)
    response = await client.post(
        "/ce/tools/consumer/test", content=b'{"n": 1}', headers={**RAW, **auth}
    )
    assert response.status_code == 202, response.text
    [record] = await stored(gateway, streams.test_topic("reader"))
    assert dict(record.headers)["ce_id"] == b"t-1"
    assert record.value == b'{"n": 1}'
    # The same test event again is stored once; nothing went to the type's topic.
    await client.post("/ce/tools/consumer/test", content=b'{"n": 1}', headers={**RAW, **auth})
    assert len(await stored(gateway, streams.test_topic("reader"))) == 1
    assert await stored(gateway, "orders") == []


async def test_only_a_consumer_may_send_test_events(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    auth = await key_for(gateway, "writer", PRODUCER)
    response = await client.post("/ce/tools/consumer/test", content=b"{}", headers={**RAW, **auth})
    assert response.status_code == 401
    assert "not registered as a CloudEvents consumer" in response.json()["message"]
    bad = {**RAW, "ce-specversion": "2.0", **await key_for(gateway, "reader", CONSUMER)}
    response = await client.post("/ce/tools/consumer/test", content=b"{}", headers=bad)
    assert (response.status_code, response.json()["attribute"]) == (400, "specversion")
    # A body of no raw event's type: 415, without the producer's other endpoints.
    untyped = {k: v for k, v in bad.items() if k != "content-type"}
    response = await client.post("/ce/tools/consumer/test", content=b"{}", headers=untyped)
    assert response.status_code == 415
    message = response.json()["message"]
    assert message.startswith("no Content-Type: a raw event's body is application/json")
    assert "/ce/produce" not in message
