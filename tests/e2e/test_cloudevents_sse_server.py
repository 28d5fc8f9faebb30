"""The Server-Sent Events consumer over real sockets, on both backends and under both HTTP
servers (HTTP/2 under Hypercorn), read by ``httpx-sse``: events produced while the
stream is open arrive, are confirmed on the instance URL and through ``Last-Event-ID``
on reconnecting, and what was not confirmed comes again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from sluicegate.app import build_app
from sluicegate.config import Settings
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.gateway import Gateway
from tests.conftest import make_settings
from tests.dialects.cloudevents.conftest import key_for
from tests.e2e.conftest import on_server
from tests.helpers import serving

PRODUCER = Permissions(ce_sources=["urn:shop"], ce_produce_types=["Order.*"])
CONSUMER = Permissions(ce_consume_types=["Order.*"])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path, cloudevents={"batch_size": 25, "sse_reconnect_grace": 1.0, "sse_retry_ms": 100}
    )


@pytest.fixture
def protocol(http_server: str) -> str:
    """HTTP/2 (h2c, prior knowledge) under Hypercorn, HTTP/1.1 under uvicorn, which has no
    HTTP/2. (Hypercorn's HTTP/1.1 streams in the schemathesis run.)"""
    return "h2c" if http_server == "hypercorn" else "http/1.1"


class World:
    def __init__(
        self,
        http: httpx.AsyncClient,
        producer: dict[str, str],
        consumer: dict[str, str],
        client: Any,
    ) -> None:
        self.http = http
        #: Another client with the same settings, on connections of its own.
        self.client = client
        self.producer = producer
        self.consumer = consumer

    async def produce(self, *ids: str) -> None:
        events = [
            {
                "specversion": "1.0",
                "id": event_id,
                "source": "urn:shop",
                "type": "Order.Created",
                "partitionkey": "one-key",
                "data": {"id": event_id},
            }
            for event_id in ids
        ]
        headers = {"content-type": "application/cloudevents-batch+json", **self.producer}
        response = await self.http.post("/ce/produce/events", json=events, headers=headers)
        assert response.status_code == 202, response.text


@pytest.fixture
async def world(
    gateway: Gateway, settings: Settings, http_server: str, protocol: str
) -> AsyncIterator[World]:
    producer = await key_for(gateway, "shop", PRODUCER)
    consumer = await key_for(gateway, "billing", CONSUMER)
    housekeeping = asyncio.ensure_future(gateway.run())
    try:
        async with serving(build_app(gateway), on_server(settings, http_server)) as port:
            h2 = protocol == "h2c"
            client = partial(
                httpx.AsyncClient,
                base_url=f"http://127.0.0.1:{port}",
                timeout=30,
                http1=not h2,
                http2=h2,
            )
            async with client() as http:
                yield World(http, producer, consumer, client)
    finally:
        housekeeping.cancel()
        await asyncio.gather(housekeeping, return_exceptions=True)


async def read(events: AsyncIterator[ServerSentEvent], count: int) -> list[ServerSentEvent]:
    async with asyncio.timeout(20):
        return [await anext(events) for _ in range(count)]


def ids(events: list[ServerSentEvent]) -> list[str]:
    return [json.loads(sse.data)["id"] for sse in events]


async def test_stream_confirm_reconnect_and_redelivery(world: World, protocol: str) -> None:
    await world.produce("a", "b")
    async with aconnect_sse(world.http, "GET", "/ce/sse", headers=world.consumer) as source:
        response = source.response
        assert response.status_code == 200
        assert response.http_version == ("HTTP/2" if protocol == "h2c" else "HTTP/1.1")
        events = source.aiter_sse()
        (first,) = await read(events, 1)
        instance: dict[str, Any] = json.loads(first.data)
        assert first.event == "instance"
        assert instance["instance"] == response.headers["location"]
        assert ids(await read(events, 2)) == ["a", "b"]
        # Produced while the stream is open: woken by the log.
        await world.produce("c", "d", "e")
        got = await read(events, 3)
        assert ids(got) == ["c", "d", "e"]
        assert [json.loads(sse.data)["offset"] for sse in got] == ["3", "4", "5"]
        path = urlsplit(instance["instance"]).path
        confirmed = await world.http.post(
            f"{path}/confirm", params={"offset": "2"}, headers=world.consumer
        )
        assert confirmed.status_code == 204, confirmed.text
        last = got[0].id  # the client handled "c" too, then lost its connection
    assert last is not None
    headers = {**world.consumer, "last-event-id": last}
    async with aconnect_sse(world.http, "GET", "/ce/sse", headers=headers) as source:
        events = source.aiter_sse()
        (first,) = await read(events, 1)
        assert json.loads(first.data)["confirmed"] is True
        # Not confirmed: "d" and "e", at once, to the new instance counting from 1.
        again = await read(events, 2)
        assert ids(again) == ["d", "e"]
        assert again[0].id is not None
        assert again[0].id.startswith("1@")


async def test_unconfirmed_events_go_to_the_group_after_the_grace(world: World) -> None:
    await world.produce("x", "y")
    # A client of its own, whose connection closes with it: an HTTP/2 client that leaves
    # a stream without resetting it (httpx) is seen to leave only when it stops reading.
    async with (
        world.client() as http,
        aconnect_sse(http, "GET", "/ce/sse", headers=world.consumer) as source,
    ):
        events = source.aiter_sse()
        await read(events, 3)  # the instance and both events, never confirmed
    # A new stream without Last-Event-ID: the old instance holds the partitions until its
    # grace (1 s) has passed, then they and its events come here.
    async with aconnect_sse(world.http, "GET", "/ce/sse", headers=world.consumer) as source:
        events = source.aiter_sse()
        await read(events, 1)
        assert sorted(ids(await read(events, 2))) == ["x", "y"]
