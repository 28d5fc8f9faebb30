"""The CloudEvents WebSocket consumer over HTTP/2 (RFC 8441 extended CONNECT), as the seed
asks ("the standard HTTP 2 CONNECT method"), under ``[server] http2 = true``: streaming,
confirms, redelivery to the group, and handshakes refused before the upgrade."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest

from sluicegate.app import build_app
from sluicegate.config import Settings
from sluicegate.core.gateway import Gateway
from sluicegate.dialects.cloudevents.websocket import SUBPROTOCOL
from tests.conftest import make_settings
from tests.dialects.cloudevents.conftest import CONSUMER, PRODUCER, key_for
from tests.dialects.cloudevents.ws_support import event, produce
from tests.h2_websocket import H2WebSocket, RefusedHandshake
from tests.helpers import serving


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, server={"http2": True})


@pytest.fixture
async def port(gateway: Gateway) -> AsyncIterator[int]:
    """The gateway under Hypercorn, with the housekeeping ``sluicegate serve`` runs."""
    housekeeping = asyncio.create_task(gateway.run())
    try:
        async with serving(build_app(gateway), gateway.settings) as port:
            yield port
    finally:
        housekeeping.cancel()
        await asyncio.gather(housekeeping, return_exceptions=True)


async def consume(port: int, auth: dict[str, str], path: str = "/ce/ws") -> H2WebSocket:
    return await H2WebSocket.connect(
        port, path, subprotocols=[SUBPROTOCOL], headers=list(auth.items())
    )


async def received(ws: H2WebSocket, count: int) -> list[dict[str, str]]:
    async with asyncio.timeout(10):
        return [json.loads(await ws.receive()) for _ in range(count)]


async def test_events_confirms_and_redelivery_over_an_http2_stream(
    gateway: Gateway, port: int
) -> None:
    producer = await key_for(gateway, "shop", PRODUCER)
    consumer = await key_for(gateway, "billing", CONSUMER)
    await produce(f"http://127.0.0.1:{port}", producer, [event(f"e{n}") for n in range(1, 4)])
    async with await consume(port, consumer, "/ce/ws?group=g") as ws:
        assert ws.subprotocol == SUBPROTOCOL
        events = await received(ws, 3)
        assert [e["id"] for e in events] == ["e1", "e2", "e3"]
        assert [e["offset"] for e in events] == ["1", "2", "3"]
        await ws.send("confirm:2")
        await ws.close(1000)
        with pytest.raises(ConnectionError):
            await ws.receive()
    # The group gets again what was sent and not confirmed, and only that.
    async with asyncio.timeout(10):
        while len(gateway.streams):  # noqa: ASYNC110 (the server's bookkeeping)
            await asyncio.sleep(0.01)
    async with await consume(port, consumer, "/ce/ws?group=g") as ws:
        (again,) = await received(ws, 1)
    assert again["id"] == "e3"


async def test_a_bad_message_closes_with_1008(gateway: Gateway, port: int) -> None:
    consumer = await key_for(gateway, "billing", CONSUMER)
    async with await consume(port, consumer) as ws:
        await ws.send("hello")
        with pytest.raises(ConnectionError):
            await ws.receive()
    assert ws.closed is not None
    assert ws.closed.code == 1008


async def test_handshakes_refused_before_the_upgrade(gateway: Gateway, port: int) -> None:
    with pytest.raises(RefusedHandshake) as anonymous:
        await consume(port, {})
    assert anonymous.value.status == 401
    consumer = await key_for(gateway, "billing", CONSUMER)
    with pytest.raises(RefusedHandshake) as no_subprotocol:
        await H2WebSocket.connect(port, "/ce/ws", headers=list(consumer.items()))
    assert 400 <= no_subprotocol.value.status < 500
    assert msgspec.json.decode(no_subprotocol.value.body)


async def test_a_plain_request_to_the_endpoint_is_426_without_an_upgrade_header(
    gateway: Gateway, port: int
) -> None:
    # HTTP/2 forbids Upgrade (a connection header): the stream must still answer cleanly.
    async with httpx.AsyncClient(http1=False, http2=True) as client:
        consumer = await key_for(gateway, "billing", CONSUMER)
        response = await client.get(f"http://127.0.0.1:{port}/ce/ws", headers=consumer)
        assert response.status_code == 426
        assert "upgrade" not in response.headers
        assert "extended CONNECT" in response.json()["message"]
        # The connection is still good for the next request.
        assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
