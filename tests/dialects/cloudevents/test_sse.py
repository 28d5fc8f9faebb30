"""The Server-Sent Events consumer on both backends, over real sockets with ``httpx-sse``:
streaming complete events, confirming on the instance URL, reconnecting with
``Last-Event-ID``, redelivery, the window, heartbeats, refusals, and a reader that stops."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent, aconnect_sse

from sluicegate.config import Settings
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.consumers.stream import ConsumerStream
from sluicegate.core.gateway import Gateway
from sluicegate.dialects.cloudevents.sse import accepts_event_stream
from tests.conftest import make_settings
from tests.dialects.cloudevents.conftest import PRODUCER, key_for
from tests.dialects.cloudevents.ws_support import GatewayServer, event, produce
from tests.helpers import alive, cyclic_collector_off, eventually

WINDOW = 5
BATCH = 50
GRACE = 0.5


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        cloudevents={
            "max_event_bytes": 8192,
            "batch_size": BATCH,
            "websocket_window": WINDOW,
            "websocket_ping_interval": 0.3,
            "websocket_ping_timeout": 60.0,
            "sse_reconnect_grace": GRACE,
            "sse_retry_ms": 500,
        },
    )


@pytest.fixture
async def producer(gateway: Gateway) -> dict[str, str]:
    return await key_for(gateway, "shop", PRODUCER)


@pytest.fixture
async def http(served: GatewayServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.http, timeout=30) as client:
        yield client


class Events:
    """A stream's events, read by a task of their own: waiting for one that does not
    come (a timeout) leaves the stream as it was."""

    def __init__(self, source: EventSource) -> None:
        self.queue: asyncio.Queue[ServerSentEvent | None] = asyncio.Queue()
        self.reading = asyncio.ensure_future(self._read(source))

    async def _read(self, source: EventSource) -> None:
        try:
            async for sse in source.aiter_sse():
                await self.queue.put(sse)
        finally:
            await self.queue.put(None)

    async def next(self) -> ServerSentEvent | None:
        async with asyncio.timeout(10):
            return await self.queue.get()

    async def take(self, count: int) -> list[ServerSentEvent]:
        got = [await self.next() for _ in range(count)]
        assert None not in got, got
        return [sse for sse in got if sse is not None]

    async def nothing_more(self, seconds: float = 0.5) -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.queue.get()

    async def rest(self) -> list[ServerSentEvent]:
        """Every event until the server ends the stream."""
        got: list[ServerSentEvent] = []
        while (sse := await self.next()) is not None:
            got.append(sse)
        return got


@asynccontextmanager
async def stream(
    http: httpx.AsyncClient, auth: dict[str, str], query: str = "", **headers: str
) -> AsyncIterator[tuple[EventSource, Events, dict[str, Any]]]:
    """A stream, its events, and its first (``instance``) event's data."""
    async with aconnect_sse(http, "GET", f"/ce/sse{query}", headers={**auth, **headers}) as source:
        assert source.response.status_code == 200, await source.response.aread()
        events = Events(source)
        try:
            first = await events.next()
            assert first is not None
            assert first.event == "instance"
            assert first.retry == 500
            yield source, events, json.loads(first.data)
        finally:
            events.reading.cancel()
            await asyncio.gather(events.reading, return_exceptions=True)


def ids(events: list[ServerSentEvent]) -> list[str]:
    return [json.loads(e.data)["id"] for e in events]


async def no_streams(served: GatewayServer) -> None:
    """Wait until every stream ended and every instance (after its grace) is gone."""
    async with asyncio.timeout(10):
        while len(served.gateway.streams) or len(served.gateway.consumers):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


# -- streaming ---------------------------------------------------------------------------


async def test_a_closed_streams_state_goes_without_the_cyclic_collector(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    # As for the WebSocket (its test says how): the delivery task's kept error held the
    # stream in a cycle until a full collection.
    await produce(served.http, producer, [event("a")])
    with cyclic_collector_off():
        for group in ("g1", "g2", "g3"):  # each gets the event (no hand-over to wait for)
            async with stream(http, consumer, f"?group={group}") as (_, events, _):
                await events.take(1)
        await no_streams(served)
        await eventually(lambda: alive(ConsumerStream) == 0, "no stream's state left")


async def test_events_stream_complete_with_ids_and_the_instance_first(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    await produce(
        served.http,
        producer,
        [event("a", partitionkey="k", color="red"), event("b", partitionkey="k")],
    )
    async with stream(http, consumer) as (source, events, first):
        instance = first["instance"]
        assert source.response.headers["location"] == instance
        assert source.response.headers["content-type"] == "text/event-stream"
        assert urlsplit(instance).path.startswith("/node-1/ce/consumers/~default/instances/")
        assert first["last_event_id"] is None
        assert first["confirmed"] is False
        instance_id = instance.rsplit("/", 1)[1]
        got = await events.take(2)
    assert [e.id for e in got] == [f"1@{instance_id}", f"2@{instance_id}"]
    assert [e.event for e in got] == ["message", "message"]
    one = json.loads(got[0].data)
    assert one["offset"] == "1"
    assert one["color"] == "red"
    assert one["partitionkey"] == "k"
    assert one["data"] == {"n": "a"}
    assert one["source"] == "urn:shop"


async def test_data_written_over_several_lines_arrives_whole(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    headers = {"content-type": "application/cloudevents+json", **producer}
    body = (
        b'{"specversion": "1.0", "id": "ml", "source": "urn:shop", "type": "Order.Created",'
        b'\n"data": {\r\n  "lines": [1,\n 2]\r}}'
    )
    response = await http.post("/ce/produce/event", content=body, headers=headers)
    assert response.status_code == 202, response.text
    async with stream(http, consumer) as (_, events, _first):
        (got,) = await events.take(1)
    assert json.loads(got.data)["data"] == {"lines": [1, 2]}


async def test_a_timeout_ends_the_stream_once_nothing_is_left(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    await produce(served.http, producer, [event("a"), event("b")])
    async with stream(http, consumer, "?timeout=0") as (_, events, _first):
        rest = await events.rest()
    assert ids(rest) == ["a", "b"]


# -- confirming, reconnecting, redelivery -----------------------------------------------


async def test_confirm_on_the_instance_url_and_redelivery_of_the_rest(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    await produce(served.http, producer, [event(str(n), partitionkey="k") for n in range(3)])
    async with stream(http, consumer) as (_, events, first):
        await events.take(3)
        instance = urlsplit(first["instance"]).path
        # Beyond what was sent: refused; the instance streams, so it is not polled either.
        response = await http.post(f"{instance}/confirm", params={"offset": "4"}, headers=consumer)
        assert response.status_code == 400, response.text
        assert (await http.get(f"{instance}/events", headers=consumer)).status_code == 400
        response = await http.post(f"{instance}/confirm", params={"offset": "2"}, headers=consumer)
        assert response.status_code == 204, response.text
    # Gone without reconnecting: after the grace, the unconfirmed one goes to the group.
    await no_streams(served)
    async with stream(http, consumer) as (_, events, _first):
        assert ids(await events.take(1)) == ["2"]
        await events.nothing_more()


async def test_last_event_id_confirms_up_to_it_and_the_rest_comes_at_once(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    await produce(served.http, producer, [event(str(n), partitionkey="k") for n in range(4)])
    async with stream(http, consumer) as (_, events, _first):
        got = await events.take(4)
    last = got[1].id  # the client handled two of them
    assert last is not None
    async with stream(http, consumer, **{"last-event-id": last}) as (_, events, first):
        assert first["last_event_id"] == last
        assert first["confirmed"] is True
        again = await events.take(2)
        assert ids(again) == ["2", "3"]
        assert [json.loads(e.data)["offset"] for e in again] == ["1", "2"]  # a new instance
        await events.nothing_more()
    # The old instance is gone, the new one waits for its grace, then nothing is left.
    await no_streams(served)


async def test_last_event_id_of_an_expired_instance_confirms_nothing(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    await produce(served.http, producer, [event("a"), event("b")])
    async with stream(http, consumer) as (_, events, _first):
        got = await events.take(2)
    await no_streams(served)
    assert got[1].id is not None
    async with stream(http, consumer, **{"last-event-id": got[1].id}) as (_, events, first):
        assert first["confirmed"] is False
        assert sorted(ids(await events.take(2))) == ["a", "b"]


async def test_a_reconnection_takes_over_an_instance_whose_connection_is_still_open(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    await produce(
        served.http, producer, [event("a", partitionkey="k"), event("b", partitionkey="k")]
    )
    async with stream(http, consumer) as (_, old_events, _first):
        got = await old_events.take(2)
        assert got[0].id is not None
        async with stream(http, consumer, **{"last-event-id": got[0].id}) as (_, events, first):
            assert first["confirmed"] is True
            assert ids(await events.take(1)) == ["b"]
            # The old stream was ended by the server.
            assert await old_events.rest() == []


async def test_a_last_event_id_beyond_what_was_sent_or_malformed_is_400(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    await produce(served.http, producer, [event("a")])
    async with stream(http, consumer) as (_, events, first):
        await events.take(1)
    instance_id = first["instance"].rsplit("/", 1)[1]
    for value in (f"9@{instance_id}", "17", "x@y", f"-1@{instance_id}"):
        response = await http.get("/ce/sse", headers={**consumer, "last-event-id": value})
        assert response.status_code == 400, (value, response.text)
        assert response.json()["status"] == 400


# -- flow control, heartbeats -----------------------------------------------------------


async def test_the_window_stops_the_stream_until_a_confirm(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    await produce(
        served.http, producer, [event(str(n), partitionkey="k") for n in range(WINDOW + 3)]
    )
    async with stream(http, consumer) as (_, events, first):
        assert ids(await events.take(WINDOW)) == [str(n) for n in range(WINDOW)]
        await events.nothing_more()  # heartbeats only: comments, no events
        instance = urlsplit(first["instance"]).path
        response = await http.post(f"{instance}/confirm", params={"offset": "2"}, headers=consumer)
        assert response.status_code == 204
        assert ids(await events.take(2)) == [str(WINDOW), str(WINDOW + 1)]


async def test_heartbeats_are_comments_while_nothing_arrives(
    served: GatewayServer, http: httpx.AsyncClient, consumer: dict[str, str]
) -> None:
    headers = {**consumer, "accept": "text/event-stream"}
    async with http.stream("GET", "/ce/sse", headers=headers) as response:
        lines = response.aiter_lines()
        async with asyncio.timeout(5):
            seen = [await anext(lines) for _ in range(8)]
    assert ": keep-alive" in seen


# -- refusals ---------------------------------------------------------------------------


async def test_refusals_are_the_dialects_errors(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    cases = [
        ({}, "", 401),
        ({"authorization": "Bearer nope"}, "", 401),
        (producer, "", 401),  # a client that consumes nothing
        ({**consumer, "accept": "application/json"}, "", 406),
        ({**consumer, "accept": "text/event-stream;q=0, */*"}, "", 406),
        (consumer, "?timeout=-1", 400),
        (consumer, "?group=no/slash", 400),
        (consumer, "?events=maybe", 400),
    ]
    for headers, query, status in cases:
        response = await http.get(f"/ce/sse{query}", headers=headers)
        assert response.status_code == status, (headers, query, response.text)
        body = response.json()
        assert body["status"] == status
        assert body["message"]
    assert len(served.gateway.consumers) == 0


def test_accept_negotiation() -> None:
    assert accepts_event_stream(None)
    assert accepts_event_stream("*/*")
    assert accepts_event_stream("text/*;q=0.5, application/json")
    assert accepts_event_stream("text/event-stream")
    assert not accepts_event_stream("application/json")
    assert not accepts_event_stream("text/event-stream;q=0, */*")
    assert not accepts_event_stream("*/*;q=0")
    assert accepts_event_stream("text/event-stream;q=0.1, */*;q=0")


async def test_the_stream_cap_is_429(
    served: GatewayServer, http: httpx.AsyncClient, consumer: dict[str, str], gateway: Gateway
) -> None:
    from sluicegate.dialects.cloudevents import sse

    route = next(r for r in served.server.config.app.router.routes if r.path == sse.SSE_PATH)
    limiter = route.endpoint.__self__._connections
    limiter.per_client = 1
    async with stream(http, consumer):
        response = await http.get("/ce/sse", headers=consumer)
        assert response.status_code == 429, response.text
        assert "retry-after" in response.headers


# -- a reader that stops ----------------------------------------------------------------


async def _stream_read_by_nobody(
    served: GatewayServer, consumer: dict[str, str], group: str, window: int
) -> tuple[asyncio.StreamWriter, ConsumerStream]:
    """A stream opened on a raw socket with a small receive buffer that never reads, its
    window opened to ``window`` events (so that its full buffer stops it, not the window)."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    head = "".join(f"{name}: {value}\r\n" for name, value in consumer.items())
    writer.write(f"GET /ce/sse?group={group} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(10):
        while not len(served.gateway.streams):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    (open_stream,) = served.gateway.streams._open
    open_stream._window = window
    return writer, open_stream


async def test_a_client_that_stops_reading_holds_the_server_to_a_bounded_queue(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    total = 1500
    data = "x" * 3000
    for start in range(0, total, 200):
        await produce(
            served.http, producer, [event(f"e{n}", data=data) for n in range(start, start + 200)]
        )
    writer, open_stream = await _stream_read_by_nobody(served, consumer, "slow", total)
    async with asyncio.timeout(30):
        sent = -1
        while open_stream.sent != sent or not sent:
            sent = open_stream.sent
            await asyncio.sleep(0.5)
    delivered = open_stream.instance.delivered
    assert 0 < sent < total  # stopped by the client, not by the end of the backlog
    assert delivered - sent <= BATCH  # at most one batch read ahead of what was sent
    # The transport holds its high-water mark and one chunk of events at most.
    assert max(served.write_buffers()) <= 64 * 1024 + 32 * 1024 + 8192
    writer.transport.abort()
    await no_streams(served)


async def test_a_stalled_client_is_dropped_without_an_error_logged(
    served: GatewayServer,
    producer: dict[str, str],
    consumer: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sluicegate.dialects.cloudevents import sse

    route = next(r for r in served.server.config.app.router.routes if r.path == sse.SSE_PATH)
    route.endpoint.__self__._stall = 1.0
    data = "x" * 3000
    for start in range(0, 4000, 200):
        await produce(
            served.http, producer, [event(f"e{n}", data=data) for n in range(start, start + 200)]
        )
    writer, _ = await _stream_read_by_nobody(served, consumer, "stalled", 4000)
    # It reads nothing: after the stall the server frees the instance and drops the
    # connection at once (an abort), where a close would keep it until its full buffer
    # drained (never, here) and uvicorn would log the unfinished response as an error.
    await no_streams(served)
    async with asyncio.timeout(10):
        while served.write_buffers():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    writer.transport.abort()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_shutdown_ends_streams_and_frees_their_instances(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    await produce(served.http, producer, [event("a")])
    async with stream(http, consumer) as (_, events, _first):
        assert ids(await events.take(1)) == ["a"]
        await served.shutdown()
        # The body ends (an EventSource would reconnect to another node); the instance
        # does not wait for a reconnection here: the gateway is going away.
        assert await events.rest() == []
        assert len(served.gateway.consumers) == 0


async def test_delete_on_the_instance_url_ends_the_stream_with_an_error_event(
    served: GatewayServer, http: httpx.AsyncClient, consumer: dict[str, str]
) -> None:
    async with stream(http, consumer) as (_, events, first):
        instance = urlsplit(first["instance"]).path
        assert (await http.delete(instance, headers=consumer)).status_code == 204
        (error,) = await events.rest()
    assert error.event == "error"
    body = json.loads(error.data)
    assert body["status"] == 404
    assert body["error"] == "unknown_consumer_instance"


# -- credentials, proven again -----------------------------------------------------------


async def test_a_revoked_key_ends_the_stream_before_another_event(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    clients = served.gateway.clients
    await produce(served.http, producer, [event("before")])
    async with stream(http, consumer) as (_, events, _first):
        (got,) = await events.take(1)
        assert json.loads(got.data)["id"] == "before"
        [key] = clients.keys("billing")
        await clients.revoke_key("billing", key.id)
        await produce(served.http, producer, [event("after")])
        (error,) = await events.rest()
    assert error.event == "error"
    body = json.loads(error.data)
    assert (body["status"], body["error"]) == (401, "unauthenticated")
    assert "revoked" in body["message"]


async def test_a_client_that_is_no_consumer_any_more_is_told_so_while_idle(
    served: GatewayServer, http: httpx.AsyncClient, consumer: dict[str, str]
) -> None:
    # Nothing to deliver: the heartbeat (every 0.3 s here) is when it is asked again.
    async with stream(http, consumer) as (_, events, _first):
        await served.gateway.clients.update_client("billing", Permissions())
        (error,) = await events.rest()
    body = json.loads(error.data)
    assert (body["status"], body["error"]) == (401, "unauthorized")
    assert "not a consumer" in body["message"]


async def test_types_taken_away_stop_their_events_and_the_stream_goes_on(
    served: GatewayServer,
    http: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    # As a long-polling instance takes its client's current types at each request.
    clients = served.gateway.clients
    async with stream(http, consumer) as (_, events, _first):
        await produce(served.http, producer, [event("order")])
        (got,) = await events.take(1)
        assert json.loads(got.data)["type"] == "Order.Created"
        await clients.update_client("billing", Permissions(ce_consume_types=["Order.Paid"]))
        await asyncio.sleep(0.5)  # a heartbeat or two: the stream takes the new types
        await produce(served.http, producer, [event("created"), event("paid", type="Order.Paid")])
        (got,) = await events.take(1)
        assert json.loads(got.data)["id"] == "paid"
        await events.nothing_more()
