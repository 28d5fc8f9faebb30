"""HTTP/2 under ``[server] http2 = true`` (Hypercorn), over real sockets: h2c with prior
knowledge, h2 through ALPN with client certificates, WebSockets over extended CONNECT
(RFC 8441), and the deadlines and shutdown that must match uvicorn's."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h2.events
import httpx
import pytest
import trustme
from websockets.asyncio.client import connect as websockets_connect

from sluicegate.config import Settings, load_settings
from sluicegate.http.servers import bind, http_server
from sluicegate.http.servers.hypercorn import HypercornServer
from sluicegate.http.tls import peer_certificate
from sluicegate.http.types import Message, Receive, Scope, Send
from tests.h2_websocket import H2WebSocket, RefusedHandshake, open_h2_connection
from tests.helpers import serving
from tests.http.conftest import client_context


def server_settings(**server: Any) -> Settings:
    return load_settings(environ={}, overrides={"server": {"http2": True, **server}})


async def describe(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers an HTTP request with what the server put in its scope."""
    while (await receive()).get("more_body"):
        pass
    cert = peer_certificate(scope)
    body = json.dumps(
        {
            "http_version": scope["http_version"],
            "scheme": scope["scheme"],
            "client_cert": None if cert is None else cert.common_name,
        }
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def echo_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts ``cloudevents.json`` WebSockets and echoes each text message; a handshake
    without that subprotocol is refused (a 403 before the upgrade)."""
    if scope["type"] != "websocket":
        await describe(scope, receive, send)
        return
    assert (await receive())["type"] == "websocket.connect"
    if "cloudevents.json" not in scope["subprotocols"]:
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept", "subprotocol": "cloudevents.json"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        reply = f"{scope['http_version']}:{scope['path']}:{message['text']}"
        await send({"type": "websocket.send", "text": reply})


@pytest.fixture
def tls(tls_files: dict[str, str]) -> dict[str, str]:
    """``server.tls`` settings: the server's certificate, client certificates optional."""
    return {
        "certfile": tls_files["certfile"],
        "keyfile": tls_files["certfile"],
        "client_ca": tls_files["client_ca"],
        "client_cert": "optional",
    }


async def test_h2c_with_prior_knowledge_and_http11_on_one_port() -> None:
    async with serving(describe, server_settings()) as port:
        url = f"http://127.0.0.1:{port}/"
        async with httpx.AsyncClient(http1=False, http2=True) as h2c:
            responses = await asyncio.gather(*(h2c.post(url, content=b"x" * 100) for _ in range(5)))
        for response in responses:
            assert response.http_version == "HTTP/2"
            assert response.json() == {"http_version": "2", "scheme": "http", "client_cert": None}
        async with httpx.AsyncClient() as http11:
            response = await http11.get(url)
        assert response.http_version == "HTTP/1.1"
        assert response.json()["http_version"] == "1.1"


async def test_h2_through_alpn_carries_the_client_certificate(
    ca: trustme.CA, tls: dict[str, str]
) -> None:
    alice = ca.issue_cert("alice.example.com", common_name="alice")
    async with serving(describe, server_settings(tls=tls)) as port:
        url = f"https://127.0.0.1:{port}/"
        async with httpx.AsyncClient(http2=True, verify=client_context(ca, alice)) as client:
            response = await client.get(url)
        assert response.http_version == "HTTP/2"
        assert response.json() == {"http_version": "2", "scheme": "https", "client_cert": "alice"}
        # A client that offers only HTTP/1.1 gets it, with its certificate in the scope too.
        async with httpx.AsyncClient(verify=client_context(ca, alice)) as client:
            response = await client.get(url)
        assert response.http_version == "HTTP/1.1"
        assert response.json()["client_cert"] == "alice"
        async with httpx.AsyncClient(http2=True, verify=client_context(ca)) as client:
            assert (await client.get(url)).json()["client_cert"] is None


@pytest.mark.parametrize("over", ["h2c", "h2"])
async def test_websocket_over_extended_connect(
    over: str, ca: trustme.CA, tls: dict[str, str]
) -> None:
    settings = server_settings(tls=tls) if over == "h2" else server_settings()
    context = client_context(ca) if over == "h2" else None
    async with (
        serving(echo_websocket, settings) as port,
        await H2WebSocket.connect(
            port, "/ce/ws?group=g", context=context, subprotocols=["cloudevents.json"]
        ) as ws,
    ):
        assert ws.subprotocol == "cloudevents.json"
        for text in ["confirm:1", "dead:{}", "x" * 20_000]:
            await ws.send(text)
            assert await ws.receive() == f"2:/ce/ws:{text}"
        await ws.close(1000)
        with pytest.raises(ConnectionError):
            await ws.receive()
        assert ws.closed is not None
        assert ws.closed.code == 1000


async def test_a_websocket_refused_before_the_upgrade_is_an_http_answer() -> None:
    async with serving(echo_websocket, server_settings()) as port:
        with pytest.raises(RefusedHandshake) as refused:
            await H2WebSocket.connect(port, "/ce/ws", subprotocols=["chat"])
    assert refused.value.status == 403


async def test_the_server_offers_extended_connect_and_the_header_limit() -> None:
    async with serving(describe, server_settings(max_header_bytes=4096)) as port:
        connection, settings = await open_h2_connection(port)
        await connection.close()
    assert settings.enable_connect_protocol == 1
    assert settings.max_header_list_size == 4096


async def test_a_body_that_stalls_is_answered_408_over_http11() -> None:
    seen: list[Message] = []

    async def reader(scope: Scope, receive: Receive, send: Send) -> None:
        while (message := await receive())["type"] == "http.request":
            seen.append(message)
            if not message.get("more_body"):
                break
        seen.append(message)

    async with serving(reader, server_settings(body_timeout=0.5)) as port:
        stream_reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n12")
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await stream_reader.read()  # to the end: the connection is closed
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body)["error"] == "request_timeout"
    assert seen[-1] == {"type": "http.disconnect"}


async def test_a_body_that_stalls_is_answered_408_over_http2() -> None:
    async with serving(describe, server_settings(body_timeout=0.5)) as port:
        connection, _ = await open_h2_connection(port)
        stream = connection.h2.get_next_available_stream_id()
        connection.h2.send_headers(
            stream,
            [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"x")],
        )
        connection.h2.send_data(stream, b"12")
        await connection.flush()
        status, body = 0, b""
        async with asyncio.timeout(10):
            while not body.endswith(b"}"):
                for event in await connection.events():
                    if isinstance(event, h2.events.ResponseReceived):
                        status = int(dict(event.headers)[b":status"])
                    elif isinstance(event, h2.events.DataReceived):
                        body += event.data
        await connection.close()
    assert status == 408
    assert json.loads(body)["error"] == "request_timeout"


async def test_an_early_answer_over_http2_leaves_the_connection_usable() -> None:
    """A 413 is answered before the body is read; the client goes on sending it."""

    async def too_large(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/ok":
            await describe(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b"too large"})

    async with (
        serving(too_large, server_settings()) as port,
        httpx.AsyncClient(http1=False, http2=True) as client,
    ):
        url = f"http://127.0.0.1:{port}"
        refused = await client.post(f"{url}/big", content=b"x" * 1_000_000)
        assert (refused.status_code, refused.text) == (413, "too large")
        assert (await client.get(f"{url}/ok")).http_version == "HTTP/2"


@pytest.mark.parametrize("http2", [False, True], ids=["uvicorn", "hypercorn"])
async def test_shutdown_lets_a_request_in_flight_finish(http2: bool) -> None:
    started = asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await asyncio.sleep(0.5)
        await describe(scope, receive, send)

    settings = server_settings(http2=http2, graceful_shutdown=5.0)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = http_server(slow, settings)
    serving_task = asyncio.create_task(server.serve(sock))
    async with httpx.AsyncClient() as client:
        request = asyncio.create_task(client.get(f"http://127.0.0.1:{port}/"))
        await started.wait()
        server.request_exit()
        response = await request
        await serving_task
    sock.close()
    assert response.status_code == 200
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/")


async def test_cancelled_it_drops_its_connections_at_once() -> None:
    """How the CLI's TaskGroup stops HTTP when storage dies."""
    started = asyncio.Event()

    async def never(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await asyncio.Event().wait()

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    serving_task = asyncio.create_task(
        http_server(never, server_settings(graceful_shutdown=60.0)).serve(sock)
    )
    async with httpx.AsyncClient() as client:
        request = asyncio.create_task(client.get(f"http://127.0.0.1:{port}/"))
        await started.wait()
        serving_task.cancel()
        async with asyncio.timeout(5):
            with pytest.raises(asyncio.CancelledError):
                await serving_task
            with pytest.raises(httpx.RemoteProtocolError):
                await request
    sock.close()


async def test_a_client_gone_in_the_middle_of_a_download_lets_its_sender_go() -> None:
    # Hypercorn leaves an HTTP/2 stream's send buffer open when its connection closes: a
    # response larger than the client's window waited in it for good, and with it the
    # request's task, the connection's task, their memory and the socket.
    sent = asyncio.Event()

    async def large(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 2_000_000})
        sent.set()

    async with serving(large, server_settings()) as port:
        connection, _ = await open_h2_connection(port)
        stream = connection.h2.get_next_available_stream_id()
        connection.h2.send_headers(
            stream,
            [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"x")],
            end_stream=True,
        )
        await connection.flush()
        async with asyncio.timeout(10):
            while not any(
                isinstance(event, h2.events.DataReceived) for event in await connection.events()
            ):
                pass
        await connection.close()  # the default window (64 kB) taken, nothing acknowledged
        async with asyncio.timeout(10):
            await sent.wait()


@pytest.mark.parametrize("http2", [False, True], ids=["uvicorn", "hypercorn"])
async def test_a_request_with_both_framings_is_refused_and_nothing_after_it_is_read(
    http2: bool,
) -> None:
    # With Content-Length and Transfer-Encoding, h11 took the chunked framing and read
    # what the length would have counted as body as the next request: a proxy that
    # counts by the length forwards a request it never saw. RFC 9112 6.1.
    paths: list[str] = []

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        paths.append(scope["path"])
        await describe(scope, receive, send)

    smuggled = (
        b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        b"GET /hidden HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    async with serving(recording, server_settings(http2=http2)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(smuggled)
        async with asyncio.timeout(10):
            answered = await reader.read()  # to the end: the server closes
        writer.close()
    assert answered.startswith(b"HTTP/1.1 400 ")
    assert answered.count(b"HTTP/1.1 ") == 1
    assert "/hidden" not in paths


async def test_connection_failures_are_logged_in_one_short_line_now_and_then(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = HypercornServer(describe, server_settings())
    with caplog.at_level(logging.WARNING, logger="sluicegate.http"):
        for _ in range(3):
            cause = ValueError("frame bytes " + "x" * 5_000)
            server._connection_failed(ExceptionGroup("unhandled errors in a TaskGroup", [cause]))
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("an HTTP connection failed: ValueError: frame bytes xxx")
    assert len(line) < 400
    assert line.endswith("(1 connection(s) failed in the last 10 s)")
    assert all(r.exc_info is None for r in caplog.records)


HEARTBEAT = {"websocket_ping_interval": 0.2, "websocket_ping_timeout": 0.3}


def heartbeat_settings() -> Settings:
    return load_settings(
        environ={}, overrides={"server": {"http2": True}, "cloudevents": HEARTBEAT}
    )


def held_websocket(gone: asyncio.Event) -> Any:
    """Accepts a WebSocket and holds it, sending nothing, until the peer is gone."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await describe(scope, receive, send)
            return
        await receive()
        await send({"type": "websocket.accept", "subprotocol": "cloudevents.json"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        gone.set()

    return app


@pytest.mark.parametrize("over", ["http/1.1", "h2c"])
async def test_a_websocket_peer_that_does_not_answer_pings_is_dropped(over: str) -> None:
    # Hypercorn pinged and never looked for the answer: a frozen peer kept its stream,
    # and a consumer its group's partitions, for as long as its kernel took the pings.
    gone = asyncio.Event()
    async with serving(held_websocket(gone), heartbeat_settings()) as port:
        if over == "h2c":
            ws = await H2WebSocket.connect(port, "/ce/ws", subprotocols=["cloudevents.json"])
            peer: Any = ws._connection.writer
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET /ce/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: cloudevents.json\r\n\r\n"
            )
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
            peer = writer
        # Never read again, so never answers: dropped after the interval and the timeout.
        async with asyncio.timeout(5):
            await gone.wait()
        peer.close()


async def test_a_websocket_peer_that_answers_pings_stays() -> None:
    gone = asyncio.Event()
    async with (
        serving(held_websocket(gone), heartbeat_settings()) as port,
        websockets_connect(
            f"ws://127.0.0.1:{port}/ce/ws", subprotocols=["cloudevents.json"], ping_interval=None
        ) as ws,
    ):
        await asyncio.sleep(1.5)  # several pings, each answered by the client library
        await ws.ping()
        assert not gone.is_set()
