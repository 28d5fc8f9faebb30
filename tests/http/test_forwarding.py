"""The forwarder's decisions in-process: the node-to-node header, what is forwarded and
what is left to the endpoint, the metrics' bound, a consumer created on the node serving
its group. The wire itself is tested with real processes in
``tests/e2e/test_cluster_server.py``."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from sluicegate.config import Settings
from sluicegate.core.group_shards import GroupShards, ShardClaim
from sluicegate.core.membership import Heartbeat, Membership
from sluicegate.core.state_topic import StateTopic
from sluicegate.errors import Unauthenticated, Unavailable
from sluicegate.http.forwarding import MAX_NODE_SERIES, SECRET_HEADER, Forwarder
from sluicegate.http.request import ClientDisconnected, Request
from sluicegate.http.responses import Response
from sluicegate.http.stream_forwarding import StreamForwarder
from sluicegate.http.types import Message, Send
from sluicegate.storage.base import running
from sluicegate.storage.sqlite import SqliteLog
from tests.conftest import make_settings

SECRET = "s" * 40
PATH = "/{bridge}/ce/consumers/g/instances/i/events"


def _settings(tmp_path: Path, secret: str = SECRET) -> Settings:
    return make_settings(tmp_path, cluster={"node_id": "here", "secret": secret})


def _request(bridge: str, headers: list[tuple[bytes, bytes]]) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": f"/{bridge}/ce/consumers/g/instances/i/events",
        "raw_path": f"/{bridge}/ce/consumers/g/instances/i/events".encode(),
        "query_string": b"timeout=0",
        "headers": headers,
    }

    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, object]:
        # The body, then nothing until the client leaves: as a server's receive behaves.
        if messages:
            return messages.pop()
        await asyncio.Future()
        raise AssertionError("unreachable")

    return Request(scope, receive, {"bridge": bridge})


def _forwarder(tmp_path: Path, handler: httpx.MockTransport, secret: str = SECRET) -> Forwarder:
    settings = _settings(tmp_path, secret)
    membership = Membership(SqliteLog(tmp_path), settings.cluster, shared=True)
    membership._heard("there", Heartbeat(url="http://there:1", started_at=0, sent_at=9e12))
    return Forwarder(membership, settings, transport=handler)


async def _local(request: Request) -> Response:
    return Response(b"local", 200, content_type=None)


async def test_another_live_node_s_instance_is_forwarded_with_the_secret(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def owner(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, content=b"[]", headers={"content-type": "application/json", "date": "x"}
        )

    forwarder = _forwarder(tmp_path, httpx.MockTransport(owner))
    endpoint = forwarder.wrap(_local)
    auth = (b"authorization", b"Bearer sg_key")
    answer = await endpoint(_request("there", [auth, (b"host", b"lb:80")]))
    assert (answer.status, answer.body) == (200, b"[]")
    assert (b"content-type", b"application/json") in answer.headers
    assert all(name != b"date" for name, _ in answer.headers)  # this node's server sets it
    (sent,) = seen
    assert str(sent.url) == "http://there:1/there/ce/consumers/g/instances/i/events?timeout=0"
    assert sent.headers["authorization"] == "Bearer sg_key"  # the client's, unchanged
    assert sent.headers[SECRET_HEADER] == SECRET
    assert sent.headers["host"] == "there:1"
    assert forwarder.series["there"].statuses == {200: 1}
    await forwarder.aclose()


async def test_this_node_unknown_nodes_and_forwarded_requests_stay_here(tmp_path: Path) -> None:
    def owner(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing is forwarded here")

    endpoint = _forwarder(tmp_path, httpx.MockTransport(owner)).wrap(_local)
    auth = (b"authorization", b"Bearer sg_key")
    for bridge in ("here", "nobody"):
        assert (await endpoint(_request(bridge, [auth]))).body == b"local"
    hop = (SECRET_HEADER.encode(), SECRET.encode())
    assert (await endpoint(_request("there", [auth, hop]))).body == b"local"


@pytest.mark.parametrize("secret", [SECRET, ""])
async def test_a_wrong_secret_header_is_refused(tmp_path: Path, secret: str) -> None:
    forwarder = _forwarder(tmp_path, httpx.MockTransport(lambda r: httpx.Response(500)), secret)
    forged = (SECRET_HEADER.encode(), b"t" * 40)
    with pytest.raises(Unauthenticated, match=SECRET_HEADER):
        await forwarder.wrap(_local)(_request("here", [forged]))


async def test_without_a_secret_nothing_is_forwarded(tmp_path: Path) -> None:
    forwarder = _forwarder(tmp_path, httpx.MockTransport(lambda r: httpx.Response(500)), "")
    assert not forwarder.enabled
    auth = (b"authorization", b"Bearer sg_key")
    assert (await forwarder.wrap(_local)(_request("there", [auth]))).body == b"local"


async def test_an_unreachable_live_node_is_a_503(tmp_path: Path) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    forwarder = _forwarder(tmp_path, httpx.MockTransport(refused))
    auth = (b"authorization", b"Bearer sg_key")
    with pytest.raises(Unavailable, match="'there'") as caught:
        await forwarder.wrap(_local)(_request("there", [auth]))
    assert caught.value.status == 503
    assert caught.value.retry_after == 1.0
    assert forwarder.series["there"].statuses == {503: 1}


async def _shards_with_there_serving(
    log: SqliteLog, membership: Membership, settings: Settings, group: str
) -> GroupShards:
    """The group shards, with the shard of ``group`` claimed by the node ``there``."""
    shards = GroupShards(log, membership, settings.cluster)
    shard = shards.shard(group)
    claims = StateTopic(log, "group_shards", ShardClaim)
    await claims.load()
    await claims.put(f"{shard}/1/there", ShardClaim(shard, 1, "there", shards.count, 0.0))
    await shards.load()
    return shards


def _closed_port() -> int:
    """A local port nothing listens on (taken from the system, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_streams_to_a_live_node_that_does_not_answer_are_a_503(tmp_path: Path) -> None:
    # A real connection refused: the WebSocket and the SSE proxy, each with its own client
    # library, answer as an instance request does.
    settings = _settings(tmp_path)
    owner_url = f"http://127.0.0.1:{_closed_port()}"
    async with running(SqliteLog(tmp_path / "log")) as log:
        membership = Membership(log, settings.cluster, shared=True)
        membership._heard("there", Heartbeat(url=owner_url, started_at=0, sent_at=9e12))
        forwarder = Forwarder(membership, settings)
        shards = await _shards_with_there_serving(log, membership, settings, "ce/shop/g")
        streams = StreamForwarder(forwarder, shards)

        async def never_here(request: Request, send: Send) -> None:
            raise AssertionError("the group is served by another node")

        auth = (b"authorization", b"Bearer sg_key")
        websocket = streams.websocket(never_here, lambda request: "ce/shop/g")
        sse = streams.sse(_local, lambda request: "ce/shop/g")
        opens: list[Callable[[], Awaitable[object]]] = [
            lambda: websocket(_request("-", [auth]), _no_send),
            lambda: sse(_request("-", [auth])),
        ]
        for proxied in opens:
            with pytest.raises(Unavailable) as caught:
                await proxied()
            assert caught.value.status == 503
            assert caught.value.retry_after == 1.0
            assert caught.value.message.startswith(
                f"the node serving this consumer group ({owner_url}) did not answer: "
            )
        # Counted as forwarded requests to that node, as an instance request would be.
        assert forwarder.series["there"].statuses == {503: 2}
        await forwarder.aclose()


async def _no_send(message: Message) -> None:
    raise AssertionError(f"nothing is sent to the client before the owner answers: {message}")


def test_metrics_series_are_bounded(tmp_path: Path) -> None:
    forwarder = _forwarder(tmp_path, httpx.MockTransport(lambda r: httpx.Response(200)))
    for n in range(MAX_NODE_SERIES * 2):
        forwarder._series(f"node-{n}")
    assert len(forwarder.series) == MAX_NODE_SERIES + 1
    assert "other" in forwarder.series


def _polling_owner(
    started: asyncio.Event, cancelled: asyncio.Event
) -> Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]:
    """An owner whose long poll lasts a minute: ``started`` once it polls, ``cancelled``
    when the connection to it is let go."""

    async def owner(request: httpx.Request) -> httpx.Response:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return httpx.Response(204)

    return owner


async def test_a_client_that_leaves_ends_the_forwarded_poll(tmp_path: Path) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()
    forwarder = _forwarder(tmp_path, httpx.MockTransport(_polling_owner(started, cancelled)))
    request = _request("there", [(b"authorization", b"Bearer sg_key")])
    left = asyncio.Event()

    async def receive() -> dict[str, object]:
        # No body (a GET); then the client goes away once the owner is polling.
        await left.wait()
        return {"type": "http.disconnect"}

    request.receive = receive
    poll = asyncio.ensure_future(forwarder.wrap(_local)(request))
    await started.wait()
    left.set()
    with pytest.raises(ClientDisconnected):
        await poll
    await asyncio.wait_for(cancelled.wait(), 5)
    assert forwarder.series["there"].statuses == {499: 1}


def _silent_soon(forwarder: Forwarder, seconds: float) -> None:
    """Make the node ``there``'s last heartbeat one that times out ``seconds`` from now."""
    timeout = forwarder.membership._timeout
    sent_at = time.time() - timeout + seconds
    forwarder.membership._heard(
        "there", Heartbeat(url="http://there:1", started_at=0, sent_at=sent_at)
    )


async def test_an_owner_that_goes_silent_does_not_hold_a_forwarded_poll(tmp_path: Path) -> None:
    # Stopped (SIGSTOP, a partition): the connection stays open and nothing comes. The
    # request answers when the node's heartbeats have stopped for the timeout, not when
    # (if ever) the node wakes up.
    cancelled = asyncio.Event()
    stopped = _polling_owner(asyncio.Event(), cancelled)
    forwarder = _forwarder(tmp_path, httpx.MockTransport(stopped))
    _silent_soon(forwarder, 0.3)
    started = time.monotonic()
    with pytest.raises(Unavailable, match="'there' stopped answering") as caught:
        await forwarder.wrap(_local)(_request("there", [(b"authorization", b"Bearer sg_key")]))
    assert 0.2 < time.monotonic() - started < 5
    assert caught.value.status == 503
    await asyncio.wait_for(cancelled.wait(), 5)  # the connection to it is let go
    assert forwarder.series["there"].statuses == {503: 1}
    await forwarder.aclose()


async def test_an_sse_stream_from_an_owner_that_goes_silent_ends(tmp_path: Path) -> None:
    # Its client reconnects and is served by the node that takes the group over.
    settings = _settings(tmp_path)

    async def events() -> AsyncIterator[bytes]:
        yield b"event: instance\ndata: {}\n\n"
        await asyncio.sleep(60)  # then the node stops

    def owner(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=events())

    async with running(SqliteLog(tmp_path / "log")) as log:
        membership = Membership(log, settings.cluster, shared=True)
        forwarder = Forwarder(membership, settings, transport=httpx.MockTransport(owner))
        _silent_soon(forwarder, 0.5)
        shards = await _shards_with_there_serving(log, membership, settings, "ce/shop/g")
        sse = StreamForwarder(forwarder, shards).sse(_local, lambda request: "ce/shop/g")
        response = await sse(_request("-", [(b"authorization", b"Bearer sg_key")]))
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        await asyncio.wait_for(response(send), timeout=5)
        assert sent[0]["status"] == 200
        assert sent[1]["body"].startswith(b"event: instance")
        assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
        await forwarder.aclose()


async def test_a_consumer_is_created_on_the_node_serving_its_group(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def owner(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        location = "http://there:1/there/ce/consumers/g/instances/i1"
        return httpx.Response(201, headers={"location": location})

    settings = _settings(tmp_path)
    async with running(SqliteLog(tmp_path / "log")) as log:
        membership = Membership(log, settings.cluster, shared=True)
        membership._heard("there", Heartbeat(url="http://there:1", started_at=0, sent_at=9e12))
        forwarder = Forwarder(membership, settings, transport=httpx.MockTransport(owner))
        served_there = "ce/shop/g"
        shards = await _shards_with_there_serving(log, membership, settings, served_there)
        shard = shards.shard(served_there)
        free = next(f"ce/shop/h{n}" for n in range(100) if shards.shard(f"ce/shop/h{n}") != shard)

        def rebase(request: Request, location: bytes) -> bytes:
            return b"http://lb:80" + urlsplit(location).path

        asked: list[str] = []
        endpoint = forwarder.place(_local, shards, lambda request: asked[-1], rebase)
        auth = (b"authorization", b"Bearer sg_key")
        asked.append(served_there)
        answer = await endpoint(_request("-", [auth]))
        assert answer.status == 201
        assert (
            dict(answer.headers)[b"location"] == b"http://lb:80/there/ce/consumers/g/instances/i1"
        )
        (sent,) = seen
        assert sent.headers[SECRET_HEADER] == SECRET
        # A group whose shard nobody holds is claimed by the node asked, and served there.
        asked.append(free)
        assert (await endpoint(_request("-", [auth]))).body == b"local"
        assert shards.owner(free) == "here"
        assert len(seen) == 1
        await forwarder.aclose()
