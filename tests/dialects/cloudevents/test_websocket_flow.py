"""The WebSocket consumer's back-pressure on both backends, over real sockets: a client
that stops reading holds the server to one batch and the transport's buffer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from sluicegate.config import Settings
from sluicegate.core.gateway import Gateway
from sluicegate.dialects.cloudevents.websocket import BURST_BYTES, SUBPROTOCOL
from tests.conftest import make_settings
from tests.dialects.cloudevents.conftest import PRODUCER, key_for
from tests.dialects.cloudevents.ws_support import GatewayServer, RawWebSocket, event, produce

EVENTS = 1500
DATA = "x" * 3000
#: What asyncio's and uvloop's transports buffer before they pause the writer, and one
#: burst of events more (a burst ends with the event that takes it past ``BURST_BYTES``):
#: the most a connection may queue in the server whatever its client does.
MAX_QUEUED = 64 * 1024 + BURST_BYTES + 4096
BATCH = 100


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        # Heartbeats far apart: a client that stops reading is not dropped during the test.
        cloudevents={"batch_size": BATCH, "websocket_ping_interval": 60.0},
    )


@pytest.fixture
async def backlog(served: GatewayServer, gateway: Gateway) -> list[str]:
    """``EVENTS`` events of 3 kB each: megabytes, more than socket buffers hold."""
    producer = await key_for(gateway, "shop", PRODUCER)
    ids = [f"e{i}" for i in range(EVENTS)]
    for start in range(0, EVENTS, 200):
        await produce(
            served.http, producer, [event(i, data=DATA) for i in ids[start : start + 200]]
        )
    return ids


async def everything(served: GatewayServer, auth: dict[str, str], count: int) -> set[str]:
    """What a well-behaved client of the default group receives: ``count`` events."""
    async with connect(served.ws, subprotocols=[SUBPROTOCOL], additional_headers=auth) as ws:
        async with asyncio.timeout(30):
            return {json.loads(await ws.recv())["id"] for _ in range(count)}


async def test_a_client_that_stops_reading_holds_the_server_to_a_bounded_queue(
    served: GatewayServer, consumer: dict[str, str], backlog: list[str]
) -> None:
    raw = await RawWebSocket.connect(served.port, consumer)
    (stream,) = served.gateway.streams._open
    # The server sends until TCP pushes back, then waits.
    async with asyncio.timeout(30):
        sent = -1
        while stream.sent != sent or not sent:
            sent = stream.sent
            await asyncio.sleep(0.5)
    delivered = stream.instance.delivered
    assert 0 < sent < EVENTS  # stopped by the client, not by the end of the backlog
    # Read from the log at most one batch ahead of what the transport took...
    assert delivered - sent <= BATCH
    # ...and the transport holds no more than its high-water mark and one burst.
    assert max(served.write_buffers()) <= MAX_QUEUED
    raw.abort()
    # Nothing was confirmed: all of it goes to the next connection of the group.
    assert await everything(served, consumer, EVENTS) == set(backlog)
