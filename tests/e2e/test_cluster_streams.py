"""Streaming consumers through a node that does not serve their group: two ``sluicegate
serve`` processes on one Kafka cluster; a WebSocket (``/ce/ws``) or Server-Sent Events
(``/ce/sse``) consumer whose group node A serves, connected through node B, is proxied to
A: the owner's refusals, events, closes and stream come back as A gave them, and a client
reconnecting through either node gets its group's unconfirmed events again."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.e2e.test_cluster_server import (
    ADMIN,
    HEARTBEAT_TIMEOUT,
    POLL_INTERVAL,
    _consumer_key,
    _env,
    _live,
    _produce,
    _set_is,
)
from tests.helpers import eventually

NODES = ("node-a", "node-b")
SUBPROTOCOL = "cloudevents.json"


@pytest.fixture
def nodes(kafka_bootstrap: str, tmp_path: Path) -> Iterator[dict[str, ServerProcess]]:
    prefix = f"s{int(time.time() * 1000) % 10**9}."
    with ExitStack() as stack:
        yield {
            node_id: stack.enter_context(
                serve_in_subprocess(
                    tmp_path / node_id, args=(), env=_env(kafka_bootstrap, prefix, node_id)
                )
            )
            for node_id in NODES
        }


@pytest.fixture
async def http(nodes: dict[str, ServerProcess]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    clients = {
        node_id: httpx.AsyncClient(base_url=server.url, timeout=30)
        for node_id, server in nodes.items()
    }
    try:
        for client in clients.values():
            await eventually(
                lambda client=client: _set_is(_live(client), set(NODES)),
                "both nodes live",
                interval=POLL_INTERVAL,
            )
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()


def _ws(server: ServerProcess, key: dict[str, str], group: str, **options: str) -> Any:
    query = "&".join(f"{k}={v}" for k, v in {"group": group, **options}.items())
    url = server.url.replace("http://", "ws://") + f"/ce/ws?{query}"
    return connect(url, additional_headers=key, subprotocols=[SUBPROTOCOL], open_timeout=30)  # type: ignore[list-item]


async def _receive(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    events = []
    async with asyncio.timeout(30):
        while len(events) < count:
            events.append(json.loads(await ws.recv()))
    return events


async def _streams_on(client: httpx.AsyncClient, node_id: str) -> int:
    listed = await client.get("/admin/v1/nodes", headers=ADMIN)
    assert listed.status_code == 200, listed.text
    [node] = [node for node in listed.json() if node["node_id"] == node_id]
    return int(node["streams"])


async def test_a_websocket_through_another_node_is_served_by_the_group_s_node(
    nodes: dict[str, ServerProcess], http: dict[str, httpx.AsyncClient]
) -> None:
    key = await _consumer_key(http)
    a, b = nodes["node-a"], nodes["node-b"]
    await _produce(http["node-b"], key, *(f"order-{n}" for n in range(6)))

    # The group's first consumer connects through A: A claims the group and serves it.
    async with _ws(a, key, "billing") as first:
        got = await _receive(first, 6)
        assert sorted(e["id"] for e in got) == [f"order-{n}" for n in range(6)]
        await first.send(f"confirm:{got[1]['offset']}")
        await asyncio.sleep(0.5)  # the confirmation is durable before the next message
    # Closed with four unconfirmed events: they go to the group again, on A.

    async with _ws(b, key, "billing") as through_b:
        assert through_b.subprotocol == SUBPROTOCOL
        again = await _receive(through_b, 4)
        assert sorted(e["id"] for e in again) == sorted(e["id"] for e in got[2:])
        # The instance is A's: the stream is counted there, not on B.
        await eventually(
            lambda: _is(_streams_on(http["node-b"], "node-a"), 1),
            "A's heartbeat counts it",
            interval=POLL_INTERVAL,
        )
        assert await _streams_on(http["node-b"], "node-b") == 0
        await through_b.send(f"confirm:{again[1]['offset']}")
        await _produce(http["node-a"], key, "order-late")
        [late] = await _receive(through_b, 1)
        assert late["id"] == "order-late"
        await asyncio.sleep(0.5)
    # Left with two of the four and the late one unconfirmed; back through B, then A.
    async with _ws(b, key, "billing") as back:
        rest = await _receive(back, 3)
        assert sorted(e["id"] for e in rest) == sorted(
            [e["id"] for e in again[2:]] + ["order-late"]
        )
        await back.send(f"confirm:{max(int(e['offset']) for e in rest)}")
        await asyncio.sleep(0.5)
    async with _ws(a, key, "billing") as direct:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):
                await direct.recv()  # every event confirmed: nothing comes again
    # B counted both streams it proxied as requests forwarded to A, accepted there (101).
    scraped = (await http["node-b"].get("/metrics")).text
    assert 'sluicegate_cluster_forwarded_requests_total{node="node-a",status="101"} 2.0' in scraped
    assert 'sluicegate_cluster_forward_duration_seconds_count{node="node-a"}' in scraped


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_the_owner_s_refusals_and_closes_reach_the_client_through_the_proxy(
    nodes: dict[str, ServerProcess], http: dict[str, httpx.AsyncClient]
) -> None:
    key = await _consumer_key(http)
    a, b = nodes["node-a"], nodes["node-b"]
    async with _ws(a, key, "audit"):
        pass  # the group is A's from now on

    # Refused by A (a bad query option): the same HTTP answer, through B.
    with pytest.raises(InvalidStatus) as refused:
        async with _ws(b, key, "audit", events="not a type!"):
            pass
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body or b"{}")

    # A message the owner does not take: A closes with 1008 and its reason, through B.
    async with _ws(b, key, "audit") as ws:
        await ws.send("hello")
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(30):
                await ws.recv()
    assert ws.close_code == 1008
    assert ws.close_reason is not None
    assert "unknown message" in ws.close_reason

    # The client's own close ends the instance on A.
    async with _ws(b, key, "audit"):
        await eventually(
            lambda: _is(_streams_on(http["node-a"], "node-a"), 1),
            "open on A",
            interval=POLL_INTERVAL,
        )
    await eventually(
        lambda: _is(_streams_on(http["node-a"], "node-a"), 0),
        "closed on A",
        interval=POLL_INTERVAL,
    )


async def test_a_server_sent_events_stream_through_another_node(
    nodes: dict[str, ServerProcess], http: dict[str, httpx.AsyncClient]
) -> None:
    key = await _consumer_key(http)
    a = nodes["node-a"]
    await _produce(http["node-a"], key, "order-1", "order-2")
    async with _ws(a, key, "mail"):
        pass  # the group is A's

    headers = {**key, "accept": "text/event-stream"}
    async with http["node-b"].stream(
        "GET", "/ce/sse", params={"group": "mail", "timeout": "2"}, headers=headers
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        instance = urlsplit(stream.headers["location"])
        # The owner's instance, at the address the client used (any node forwards it).
        assert instance.netloc == urlsplit(nodes["node-b"].url).netloc
        assert instance.path.startswith("/node-a/ce/consumers/mail/instances/")
        body = b"".join([chunk async for chunk in stream.aiter_raw()])
    data = [
        json.loads(line[len(b"data: ") :])
        for line in body.split(b"\n")
        if line.startswith(b'data: {"specversion')
    ]
    assert sorted(event["id"] for event in data) == ["order-1", "order-2"]

    refused = await http["node-b"].get(
        "/ce/sse", params={"group": "mail", "timeout": "-1"}, headers=headers
    )
    assert refused.status_code == 400, refused.text


async def test_a_group_whose_node_died_is_served_through_the_node_reached(
    nodes: dict[str, ServerProcess], http: dict[str, httpx.AsyncClient]
) -> None:
    key = await _consumer_key(http)
    a, b = nodes["node-a"], nodes["node-b"]
    await _produce(http["node-b"], key, "order-1", "order-2")
    async with _ws(a, key, "ship") as first:
        await _receive(first, 2)
        a.kill()  # nothing confirmed
    await eventually(
        lambda: _set_is(_live(http["node-b"]), {"node-b"}),
        "B sees A gone",
        timeout=HEARTBEAT_TIMEOUT + 20,
        interval=POLL_INTERVAL,
    )
    async with _ws(b, key, "ship") as ws:
        again = await _receive(ws, 2)
    assert sorted(e["id"] for e in again) == ["order-1", "order-2"]
