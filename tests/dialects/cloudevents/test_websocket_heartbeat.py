"""WebSocket heartbeats on both backends, over real sockets, with pings 0.2 s apart: a
peer that does not answer is dropped (whether or not its buffers are full) and its
events go to the group's next connection; a peer that answers stays."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from sluicegate.config import Settings
from sluicegate.core.gateway import Gateway
from sluicegate.dialects.cloudevents.websocket import SUBPROTOCOL
from tests.conftest import make_settings
from tests.dialects.cloudevents.conftest import CONSUMER, PRODUCER, key_for
from tests.dialects.cloudevents.ws_support import (
    GatewayServer,
    RawWebSocket,
    event,
    produce,
    serve_gateway,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        cloudevents={"websocket_ping_interval": 0.2, "websocket_ping_timeout": 0.3},
    )


@pytest.fixture
async def served(gateway: Gateway) -> AsyncIterator[GatewayServer]:
    async with serve_gateway(gateway) as served:
        yield served


@pytest.fixture
async def consumer(gateway: Gateway) -> dict[str, str]:
    return await key_for(gateway, "billing", CONSUMER)


async def backlog(served: GatewayServer, count: int, data: str) -> set[str]:
    producer = await key_for(served.gateway, "shop", PRODUCER)
    ids = [f"e{i}" for i in range(count)]
    for start in range(0, count, 200):
        await produce(
            served.http, producer, [event(i, data=data) for i in ids[start : start + 200]]
        )
    return set(ids)


async def dropped(served: GatewayServer) -> None:
    """Wait for the one stream to open, then to be dropped with its instance."""
    streams, instances = served.gateway.streams, served.gateway.consumers
    async with asyncio.timeout(20):
        while not len(streams):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        while len(streams) or len(instances):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def everything(served: GatewayServer, auth: dict[str, str], count: int) -> set[str]:
    async with connect(served.ws, subprotocols=[SUBPROTOCOL], additional_headers=auth) as ws:
        async with asyncio.timeout(30):
            return {json.loads(await ws.recv())["id"] for _ in range(count)}


@pytest.mark.parametrize(
    ("count", "data"),
    [(3, "small"), (1500, "x" * 3000)],
    ids=["idle", "buffers-full"],
)
async def test_a_peer_that_does_not_answer_is_dropped_and_its_events_redelivered(
    served: GatewayServer, consumer: dict[str, str], count: int, data: str
) -> None:
    ids = await backlog(served, count, data)
    raw = await RawWebSocket.connect(served.port, consumer)  # never reads, never answers
    # Dropped after the ping interval and timeout, not after the idle timeout (300 s).
    await dropped(served)
    raw.abort()
    assert await everything(served, consumer, count) == ids


async def test_a_peer_that_answers_stays(served: GatewayServer, consumer: dict[str, str]) -> None:
    async with connect(
        served.ws, subprotocols=[SUBPROTOCOL], additional_headers=consumer, ping_interval=None
    ) as ws:
        await asyncio.sleep(1.5)  # several pings, each answered by the client library
        await ws.ping()
        assert ws.close_code is None
        assert len(served.gateway.streams) == 1
