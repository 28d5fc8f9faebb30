"""What an idle WebSocket consumer costs and leaves behind, on both backends, over real
sockets: its waits heartbeat its group membership (a stream idle for several sessions is
still a member), uvicorn's protocol drops the handshake once it is answered and keeps
its attributes in slots, and a
connection that goes away leaves no stream, instance, waiter or protocol object behind."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.http11 import Request as HandshakeRequest

from sluicegate.config import Settings
from sluicegate.core.consumers.instance import ConsumerInstance
from sluicegate.core.consumers.stream import ConsumerStream
from sluicegate.dialects.cloudevents.websocket import SUBPROTOCOL
from sluicegate.http.servers.uvicorn_ws import LeanWebSocketsProtocol
from tests.conftest import make_settings
from tests.dialects.cloudevents.conftest import PRODUCER, key_for
from tests.dialects.cloudevents.ws_support import GatewayServer, event, produce

#: A group session of 3 s (twice the idle timeout): an idle stream's waits (a random
#: share of a quarter of it) must heartbeat it several times in the tests below.
IDLE_TIMEOUT = 1.5


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        cloudevents={
            "consumer_idle_timeout": IDLE_TIMEOUT,
            "poll_timeout": 0.1,
            "max_poll_timeout": 1.0,
        },
    )


async def test_an_idle_stream_stays_a_member_for_many_sessions(
    served: GatewayServer, consumer: dict[str, str]
) -> None:
    producer = await key_for(served.gateway, "shop", PRODUCER)
    await produce(served.http, producer, [event("first")])
    async with connect(served.ws, subprotocols=[SUBPROTOCOL], additional_headers=consumer) as ws:
        assert json.loads(await ws.recv())["id"] == "first"
        await asyncio.sleep(IDLE_TIMEOUT * 2 * 2)  # two group sessions, idle
        assert ws.close_code is None
        await produce(served.http, producer, [event("later")])
        async with asyncio.timeout(10):
            assert json.loads(await ws.recv())["id"] == "later"
        (instance,) = served.gateway.consumers._instances.values()
        assert (await served.gateway.log.heartbeat(instance.group.name, instance.id)).partitions


async def test_the_protocol_keeps_no_handshake_once_upgraded(
    served: GatewayServer, consumer: dict[str, str]
) -> None:
    async with connect(
        served.ws, subprotocols=[SUBPROTOCOL], additional_headers=consumer
    ) as client:
        async with asyncio.timeout(10):
            while not len(served.gateway.streams):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        (protocol,) = served.server.server_state.connections
        assert isinstance(protocol, LeanWebSocketsProtocol)
        assert not hasattr(protocol, "request")
        assert not hasattr(protocol, "response")
        # Every attribute uvicorn set is a slot: no dictionary of its own.
        assert vars(protocol) == {}
        # The endpoint forgot the headers once it accepted.
        assert not protocol.scope["headers"]
        # The parser still holds the handshake's request, without its headers.
        gc.collect()  # an earlier test's connections
        requests = [o for o in gc.get_objects() if isinstance(o, HandshakeRequest)]
        served_side = [request for request in requests if request is not client.request]
        assert served_side
        assert not any(request.headers for request in served_side)


async def test_a_connection_that_goes_away_leaves_nothing_behind(
    served: GatewayServer, consumer: dict[str, str]
) -> None:
    gateway = served.gateway
    producer = await key_for(gateway, "shop", PRODUCER)
    await produce(served.http, producer, [event("only")])
    before = gateway.log.stats()["waiters"]  # the gateway's own (its state topics')
    async with connect(served.ws, subprotocols=[SUBPROTOCOL], additional_headers=consumer) as ws:
        assert json.loads(await ws.recv())["id"] == "only"
        async with asyncio.timeout(10):
            while gateway.log.stats()["waiters"] < before + 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert len(gateway.streams) == 1
        (protocol,) = served.server.server_state.connections
        gone = weakref.ref(protocol)
        del protocol
    async with asyncio.timeout(10):
        while len(gateway.streams) or len(gateway.consumers) or served.server.server_state.tasks:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    gc.collect()
    assert gone() is None
    # Slotted, without weak references: looked for among everything the collector tracks.
    left = [o for o in gc.get_objects() if isinstance(o, ConsumerStream | ConsumerInstance)]
    assert left == []
    assert gateway.log.stats()["waiters"] == before
    assert not served.server.server_state.connections
