"""The WebSocket consumer on both backends, over real sockets with the ``websockets``
client: streaming complete events, confirm, dead events, redelivery, flow control, every
close code, and every refused handshake."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from sluicegate.app import GatewayApp
from sluicegate.config import Settings
from sluicegate.core.cloudevents.streams import dead_topic
from sluicegate.core.consumers.stream import ConsumerStream
from sluicegate.core.gateway import Gateway
from sluicegate.dialects.cloudevents.websocket import PATHS, SUBPROTOCOL
from sluicegate.errors import GroupElsewhere
from sluicegate.observability.metrics import Metrics
from sluicegate.openapi import load_document
from tests.conftest import make_settings
from tests.dialects.cloudevents.conftest import PRODUCER, key_for, stored
from tests.dialects.cloudevents.ws_support import (
    GatewayServer,
    ended,
    event,
    produce,
    serve_gateway,
)
from tests.helpers import alive, cyclic_collector_off, eventually


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        cloudevents={
            "max_event_bytes": 4096,
            "websocket_window": 5,
            "websocket_max_message_bytes": 8192,
        },
    )


@pytest.fixture
async def producer(gateway: Gateway) -> dict[str, str]:
    return await key_for(gateway, "shop", PRODUCER)


def consume(
    served: GatewayServer, auth: dict[str, str], query: str = "", path: str = "/ce/ws"
) -> Any:
    url = f"ws://127.0.0.1:{served.port}{path}{query}"
    return connect(url, subprotocols=[SUBPROTOCOL], additional_headers=auth)


async def received(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next ``count`` events."""
    async with asyncio.timeout(10):
        return [json.loads(await ws.recv()) for _ in range(count)]


async def nothing_more(ws: ClientConnection, seconds: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(seconds):
            await ws.recv()


async def closed_with(ws: ClientConnection) -> tuple[int, str]:
    async with asyncio.timeout(10):
        await ws.wait_closed()
    assert ws.close_code is not None
    assert ws.close_reason is not None
    return ws.close_code, ws.close_reason


# -- streaming -------------------------------------------------------------------------


async def test_a_closed_streams_state_goes_without_the_cyclic_collector(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    # Its delivery task, cancelled, kept the error it ended with, whose traceback held
    # frames that referred back to the task: a cycle only a full collection freed, with
    # the stream, its instance and its transport; the server collects rarely, so closed
    # streams piled up by the thousand before one ran.
    await produce(served.http, producer, [event("e1")])
    with cyclic_collector_off():
        for group in ("g1", "g2", "g3"):  # each gets the event (no hand-over to wait for)
            async with consume(served, consumer, f"?group={group}") as ws:
                await received(ws, 1)
        await eventually(lambda: not len(served.gateway.streams), "every stream ended")
        await eventually(lambda: alive(ConsumerStream) == 0, "no stream's state left")


async def test_events_stream_complete_with_offsets_from_1(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    binary = event("e2", datacontenttype="application/octet-stream", data_base64="AAEC")
    del binary["data"]
    await produce(served.http, producer, [event("e1", subject="o-1", tenant="acme"), binary])
    async with consume(served, consumer) as ws:
        assert ws.subprotocol == SUBPROTOCOL
        first, second = await received(ws, 2)
    assert first == {**event("e1", subject="o-1", tenant="acme"), "offset": "1"} | {
        "datacontenttype": "application/json"
    }
    assert second["data_base64"] == "AAEC"
    assert "data" not in second
    assert second["offset"] == "2"


@pytest.mark.parametrize("path", ["/ce/ws", "/ce/", "/ce"])
async def test_every_path_of_the_endpoint_streams(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str], path: str
) -> None:
    await produce(served.http, producer, [event("e1")])
    async with consume(served, consumer, path=path) as ws:
        (got,) = await received(ws, 1)
    assert got["id"] == "e1"


@pytest.mark.parametrize("path", ["/ce/ws", "/ce/", "/ce"])
async def test_a_plain_http_request_to_the_endpoint_is_426(
    served: GatewayServer, consumer: dict[str, str], path: str
) -> None:
    # Over a real socket, as a client that forgot the handshake (curl) sends it.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.port}") as client:
        response = await client.get(path, headers=consumer)
    assert response.status_code == 426
    assert response.headers["upgrade"] == "websocket"
    assert response.json()["error"] == "upgrade_required"
    assert "WebSocket handshake" in response.json()["message"]


async def test_events_produced_while_connected_arrive(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    await produce(served.http, producer, [event("before")])
    async with consume(served, consumer) as ws:
        await received(ws, 1)
        await produce(served.http, producer, [event("after")])
        (got,) = await received(ws, 1)
    assert (got["id"], got["offset"]) == ("after", "2")


async def test_a_woken_streams_write_is_timed_for_metrics(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    delays = served.gateway.streams.wake_to_write
    async with consume(served, consumer) as ws:
        await produce(served.http, producer, [event("woke-it")])
        await received(ws, 1)
    # Woken by the commit, written once: one figure, in a bucket below the last.
    assert delays.count == 1
    assert sum(delays.buckets) == 1
    assert 0 < delays.total < 10
    metrics = Metrics()
    metrics.watch_wake_to_write("cloudevents", delays)
    text = metrics.render().decode()
    name = "sluicegate_consumer_stream_wake_to_write_seconds"
    assert f'{name}_count{{dialect="cloudevents"}} 1.0' in text
    assert f'{name}_bucket{{dialect="cloudevents",le="+Inf"}} 1.0' in text


async def test_confirmed_events_are_never_delivered_again_the_rest_are(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    await produce(served.http, producer, [event(f"e{i}") for i in range(4)])
    async with consume(served, consumer) as ws:
        first = await received(ws, 4)
        await ws.send("confirm:2")
    # The close handshake is answered by the server's WebSocket layer at once; the
    # confirmation before it is committed when the app reaches it, and only then does the
    # instance leave (a member joining earlier may still be handed those events).
    await ended(served)
    ids = [e["id"] for e in first]
    async with consume(served, consumer) as ws:
        again = await received(ws, 2)
        await nothing_more(ws)
    # Each connection counts from 1; the two unconfirmed events come back.
    assert sorted(e["id"] for e in again) == sorted(ids[2:])
    assert [e["offset"] for e in again] == ["1", "2"]


async def test_a_cut_connection_gives_its_unconfirmed_events_to_the_group(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    await produce(served.http, producer, [event(f"e{i}") for i in range(3)])
    async with consume(served, consumer, "?group=g") as ws:
        await received(ws, 3)
        ws.transport.abort()  # no close frame: a cut
    async with consume(served, consumer, "?group=g") as ws:
        again = await received(ws, 3)
    assert {e["id"] for e in again} == {"e0", "e1", "e2"}


async def test_groups_each_get_every_event(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    await produce(served.http, producer, [event("e1")])
    async with (
        consume(served, consumer, "?group=a") as a,
        consume(served, consumer, "?group=b") as b,
    ):
        assert [e["id"] for e in await received(a, 1)] == ["e1"]
        assert [e["id"] for e in await received(b, 1)] == ["e1"]


async def test_a_test_event_reaches_every_connection_of_a_group(
    served: GatewayServer, consumer: dict[str, str]
) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "t-1",
        "ce-source": "urn:me",
        "ce-type": "Order.Created",
        "content-type": "application/json",
        **consumer,
    }
    async with (
        consume(served, consumer, "?group=g") as one,
        consume(served, consumer, "?group=g") as two,
    ):
        async with httpx.AsyncClient(base_url=served.http, timeout=30) as http:
            sent = await http.post("/ce/tools/consumer/test", content=b"{}", headers=headers)
        assert sent.status_code == 202, sent.text
        for ws in (one, two):
            (got,) = await received(ws, 1)
            assert (got["id"], got["offset"]) == ("t-1", "1")


async def test_dead_events_are_stored_in_the_clients_dead_stream(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str], gateway: Gateway
) -> None:
    await produce(served.http, producer, [event("e1")])
    async with consume(served, consumer, "?dead=true&group=d") as ws:
        (got,) = await received(ws, 1)
        await ws.send("dead:" + json.dumps({**got, "reason": "no such order"}))
        (dead,) = await received(ws, 1)
        await ws.send("confirm:2")
    assert dead["id"] == "e1"
    assert dead["reason"] == "no such order"
    assert dead["offset"] == "2"  # this connection's number, not the one sent back
    (record,) = await stored(gateway, dead_topic("billing"))
    assert ("ce_offset", b"1") not in record.headers


async def test_a_dead_event_is_stored_whatever_its_data_and_the_types_schema(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str], gateway: Gateway
) -> None:
    # Valid when produced; the schema then changes, and the consumer reports the event
    # dead with data edited: neither may keep it out of the dead stream.
    await produce(served.http, producer, [event("e1")])
    schema = {"type": "object", "required": ["total"]}
    await gateway.event_schemas.set("Order.Created", json.dumps(schema))
    async with consume(served, consumer, "?dead=true&group=d") as ws:
        (got,) = await received(ws, 1)
        await ws.send("dead:" + json.dumps({**got, "data": {"edited": True}}))
        (dead,) = await received(ws, 1)
        await ws.send("confirm:2")
    assert (dead["id"], dead["data"]) == ("e1", {"edited": True})
    # A new event is still held to the schema.
    async with httpx.AsyncClient(base_url=served.http) as http:
        refused = await http.post(
            "/ce/produce/event",
            content=json.dumps(event("e2")),
            headers={**producer, "content-type": "application/cloudevents+json"},
        )
    assert refused.status_code == 422, refused.text


# -- flow control ----------------------------------------------------------------------


async def test_a_full_window_stops_delivery_until_a_confirm(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    await produce(served.http, producer, [event(f"e{i}") for i in range(8)])
    async with consume(served, consumer) as ws:
        assert len(await received(ws, 5)) == 5  # websocket_window
        await nothing_more(ws)
        await ws.send("confirm:2")
        more = await received(ws, 2)
        await nothing_more(ws)
        await ws.send("confirm:7")
        last = await received(ws, 1)
    assert [e["offset"] for e in [*more, *last]] == ["6", "7", "8"]


# -- closes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "code", "reason"),
    [
        (b"confirm:1", 1008, "binary messages are not part of cloudevents.json: send text"),
        ("ack:1", 1008, "unknown message 'ack:1': expected confirm:<offset> or dead:<event json>"),
        ("confirm:x", 1008, "confirm: expects an event's offset, got 'x'"),
        ("confirm:0", 1008, "offset 0 was never sent: this connection has sent offsets 1 to 1"),
        ("confirm:9", 1008, "offset 9 was never sent: this connection has sent offsets 1 to 1"),
        ("dead:{", 1008, None),
        ("dead:" + json.dumps(event("big", data="x" * 5000)), 1009, None),
        ("dead:" + "x" * 9000, 1009, None),  # over websocket_max_message_bytes
        (b"confirm:\xff", 1007, "a text message must be UTF-8"),  # sent as text, below
    ],
)
async def test_protocol_violations_close_with_a_code_and_a_reason(
    served: GatewayServer,
    producer: dict[str, str],
    consumer: dict[str, str],
    message: str | bytes,
    code: int,
    reason: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await produce(served.http, producer, [event("e1")])
    with caplog.at_level(logging.INFO):
        async with consume(served, consumer) as ws:
            await received(ws, 1)
            await ws.send(message, text=code == 1007 or None)
            got_code, got_reason = await closed_with(ws)
    assert got_code == code
    if reason is not None:
        assert got_reason == reason
    else:
        assert got_reason  # says what was wrong
    await ended(served)
    # A client's mistake: nothing the operator must look at.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_internal_failure_closes_with_1011_and_an_incident(
    served: GatewayServer,
    producer: dict[str, str],
    consumer: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sluicegate.core.consumers.instance import ConsumerInstance

    async def broken(self: ConsumerInstance, upto: int | None = None) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(ConsumerInstance, "confirm", broken)
    await produce(served.http, producer, [event("e1")])
    async with consume(served, consumer) as ws:
        await received(ws, 1)
        await ws.send("confirm:1")
        code, reason = await closed_with(ws)
    assert code == 1011
    assert reason.startswith("internal server error; incident id ")


async def test_a_group_the_node_no_longer_serves_closes_with_1013(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    # As ``ConsumerInstances.close_lost`` closes the instances of a group shard the node
    # lost (its heartbeats did not reach the log): the client is to connect again.
    await produce(served.http, producer, [event("e1")])
    async with consume(served, consumer) as ws:
        await received(ws, 1)
        [instance] = served.gateway.consumers.live()
        lost = GroupElsewhere("this node no longer serves the consumer group: connect again")
        await served.gateway.consumers.discard(instance, lost)
        code, reason = await closed_with(ws)
    assert (code, reason) == (1013, lost.message)
    await ended(served)


async def test_a_clients_close_ends_its_instance(
    served: GatewayServer, consumer: dict[str, str]
) -> None:
    async with consume(served, consumer) as ws:
        await ws.close(1000, "done")
        assert ws.close_code == 1000
    await ended(served)


async def test_shutdown_closes_with_1001_and_keeps_what_was_confirmed(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str], gateway: Gateway
) -> None:
    await produce(served.http, producer, [event(f"e{i}") for i in range(3)])
    async with consume(served, consumer) as ws:
        await received(ws, 3)
        await ws.send("confirm:2")
        await asyncio.sleep(0.2)  # the confirmation is committed before the shutdown
        await served.shutdown()
        code, reason = await closed_with(ws)
    assert (code, reason) == (1001, "the gateway is shutting down; connect again")
    committed = await gateway.log.committed_offsets("ce/billing/~default", "ce.Order.Created")
    assert sum(committed.values()) == 2  # two events confirmed, each at position 1 of its partition


# -- refused handshakes ----------------------------------------------------------------


async def refused(
    served: GatewayServer, headers: dict[str, str], query: str = "", **kw: Any
) -> Any:
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(
            f"ws://127.0.0.1:{served.port}/ce/ws{query}", additional_headers=headers, **kw
        ):
            pass
    return refusal.value.response


async def test_a_handshake_while_the_gateway_starts_gets_503(
    served: GatewayServer, consumer: dict[str, str]
) -> None:
    app = served.server.config.app
    assert isinstance(app, GatewayApp)
    app.starting = "its storage is not ready yet"
    try:
        response = await refused(served, consumer, subprotocols=[SUBPROTOCOL])
    finally:
        app.starting = None
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert b"the gateway is starting" in response.body
    async with consume(served, consumer):
        pass  # served once started


async def test_handshakes_without_credentials_or_as_no_consumer_get_401(
    served: GatewayServer, producer: dict[str, str]
) -> None:
    for headers in ({}, {"authorization": "Bearer nope"}, producer):
        response = await refused(served, headers, subprotocols=[SUBPROTOCOL])
        assert response.status_code == 401
        body = json.loads(response.body)
        assert body["status"] == 401
        assert body["message"]
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_handshake_without_the_subprotocol_gets_400(
    served: GatewayServer, consumer: dict[str, str]
) -> None:
    response = await refused(served, consumer)
    assert response.status_code == 400
    assert "Sec-WebSocket-Protocol: cloudevents.json" in json.loads(response.body)["message"]


async def test_a_bad_query_option_gets_400(served: GatewayServer, consumer: dict[str, str]) -> None:
    response = await refused(served, consumer, "?dead=maybe", subprotocols=[SUBPROTOCOL])
    assert response.status_code == 400
    assert (
        json.loads(response.body)["message"]
        == "query parameter dead must be true or false, got 'maybe'"
    )


async def test_origins_other_than_the_gateways_own_get_403(
    served: GatewayServer, consumer: dict[str, str]
) -> None:
    response = await refused(
        served,
        consumer,
        subprotocols=[SUBPROTOCOL],
        origin="https://evil.example",
    )
    assert response.status_code == 403
    assert json.loads(response.body)["error"] == "origin_not_allowed"
    own = f"http://127.0.0.1:{served.port}"
    async with connect(
        served.ws,
        subprotocols=[SUBPROTOCOL],
        additional_headers=consumer,
        origin=own,
    ) as ws:
        assert ws.subprotocol == SUBPROTOCOL


async def test_beyond_the_clients_websocket_cap_gets_429(
    gateway: Gateway, consumer: dict[str, str]
) -> None:
    gateway.limits.websockets.per_client = 1
    async with serve_gateway(gateway) as served, consume(served, consumer):
        response = await refused(served, consumer, subprotocols=[SUBPROTOCOL])
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        assert "WebSocket connections" in json.loads(response.body)["message"]


async def test_an_unknown_websocket_path_gets_404(
    served: GatewayServer, consumer: dict[str, str]
) -> None:
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(f"ws://127.0.0.1:{served.port}/ce/nope", additional_headers=consumer):
            pass
    assert refusal.value.response.status_code == 404


def test_the_openapi_document_describes_the_protocol() -> None:
    described = load_document("cloudevents")["paths"]["/ce/ws"]["x-websocket"]
    assert described["subprotocol"] == SUBPROTOCOL
    assert described["paths"] == list(PATHS)
    assert set(described["closeCodes"]) == {"1000", "1001", "1008", "1009", "1011", "1013"}
    names = [p["name"] for p in described["parameters"]]
    assert names == ["events", "test", "dead", "max_deliveries", "group"]


# -- credentials, proven again -----------------------------------------------------------


async def test_a_revoked_key_closes_with_1008_before_another_event(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    clients = served.gateway.clients
    await produce(served.http, producer, [event("before")])
    async with consume(served, consumer) as ws:
        (got,) = await received(ws, 1)
        assert got["id"] == "before"
        [key] = clients.keys("billing")
        await clients.revoke_key("billing", key.id)
        await produce(served.http, producer, [event("after")])
        code, reason = await closed_with(ws)
    assert code == 1008
    assert "revoked" in reason
    await ended(served)


async def test_a_deleted_client_closes_with_1008(
    served: GatewayServer, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    async with consume(served, consumer) as ws:
        await served.gateway.clients.delete_client("billing")
        await produce(served.http, producer, [event("after")])
        code, reason = await closed_with(ws)
    assert code == 1008
    assert "API key" in reason
    await ended(served)
