"""The WebSocket relay on real sockets: a ``websockets`` client connects to a front server
whose app relays it to an owner (uvicorn with an ASGI app, or a bare TCP server that
misbehaves on purpose), as the stream proxy relays a consumer to its group's node."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from sluicegate.http.responses import Response
from sluicegate.http.websocket import refuse_handshake, send_texts
from sluicegate.http.websocket_bursts import BurstWebSocketProtocol
from sluicegate.http.websocket_relay import Refusal, open_owner_socket
from tests.helpers import serving_in_loop

SUBPROTOCOL = "cloudevents.json"
BURST = [f'{{"n":{n}}}'.encode() for n in range(1000)]


class Owner:
    """An ASGI app standing for the group's node: a burst, then an echo of each message;
    ``close-me`` closes with 4001; ``/refuse`` is refused with a 403 and a body."""

    def __init__(self) -> None:
        self.disconnects: asyncio.Queue[int] = asyncio.Queue()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        if scope["path"] == "/refuse":
            refusal = Response(b'{"error":"no"}', 403, headers=[(b"x-why", b"testing")])
            await refuse_handshake(scope, send, refusal)
            return
        await send({"type": "websocket.accept", "subprotocol": scope["subprotocols"][0]})
        await send_texts(scope, send, BURST)
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                await self.disconnects.put(message["code"])
                return
            if message.get("text") == "close-me":
                await send({"type": "websocket.close", "code": 4001, "reason": "as asked"})
                return
            await send({"type": "websocket.send", "text": "echo:" + (message.get("text") or "")})


def _config(app: Any, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        ws=BurstWebSocketProtocol,
        lifespan="off",
        log_config=None,
        **options,
    )


def _front(owner_url: str, ping_interval: float = 20.0, ping_timeout: float = 20.0) -> Any:
    """The relaying node's app: every WebSocket relayed to ``owner_url``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        owner = await open_owner_socket(
            owner_url,
            scope["path"],
            [(b"x-relayed", b"yes")],
            list(scope["subprotocols"]),
            max_message_bytes=1 << 20,
        )
        if isinstance(owner, Refusal):
            # This server sets these again (the stream proxy leaves out a few more).
            own = {b"content-length", b"date", b"server"}
            headers = [(name, value) for name, value in owner.headers if name not in own]
            answer = Response(owner.body, owner.status, content_type=None, headers=headers)
            await refuse_handshake(scope, send, answer)
            return
        await owner.relay(
            scope, receive, send, ping_interval=ping_interval, ping_timeout=ping_timeout
        )

    return app


@asynccontextmanager
async def relayed(owner: Any, **front: float) -> AsyncIterator[str]:
    """A front server relaying to ``owner`` served by uvicorn; yields the front's ws URL."""
    async with (
        serving_in_loop(_config(owner, ws_ping_interval=0.1, ws_ping_timeout=1.0)) as port,
        serving_in_loop(_config(_front(f"http://127.0.0.1:{port}", **front))) as front_port,
    ):
        yield f"ws://127.0.0.1:{front_port}"


async def test_the_owner_s_bursts_messages_both_ways_and_its_close() -> None:
    async with relayed(Owner()) as url, connect(url + "/", subprotocols=[SUBPROTOCOL]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == SUBPROTOCOL
        async with asyncio.timeout(30):
            assert [await ws.recv(decode=False) for _ in BURST] == BURST
            await ws.send("confirm:1000")
            assert await ws.recv() == "echo:confirm:1000"
            # The owner pings every 0.1 s and drops a peer that does not answer within
            # a second: still open after several pings, the relay answered them.
            await asyncio.sleep(1.5)
            await ws.send("é" * 70_000)  # a 64-bit length, masked
            assert await ws.recv() == "echo:" + "é" * 70_000
            await ws.send("close-me")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
    assert (ws.close_code, ws.close_reason) == (4001, "as asked")


async def test_the_client_s_close_reaches_the_owner_with_its_code() -> None:
    owner = Owner()
    async with relayed(owner) as url:
        # The client does not wait long for the server's side of the closing handshake,
        # which uvicorn's sans-I/O protocol does not finish here (directly connected too).
        async with connect(url + "/", subprotocols=[SUBPROTOCOL], close_timeout=0.5) as ws:  # type: ignore[list-item]
            await ws.recv()
            await ws.close(code=4002, reason="leaving")
        async with asyncio.timeout(30):
            assert await owner.disconnects.get() == 4002


async def test_the_owner_s_refusal_is_the_client_s_answer() -> None:
    async with relayed(Owner()) as url:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url + "/refuse", subprotocols=[SUBPROTOCOL]):  # type: ignore[list-item]
                pass
    answer = refused.value.response
    assert (answer.status_code, answer.body) == (403, b'{"error":"no"}')
    assert answer.headers["x-why"] == "testing"


Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def bare_owner(behaviour: Behaviour) -> AsyncIterator[str]:
    """An owner that answers the handshake by hand, sends one text message, then does
    ``behaviour``; yields its base URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        [key] = [
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        ]
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept
            + b"\r\n\r\n"
            # In the same write as the 101: the relay must not lose it.
            + Frame(Opcode.TEXT, b"first").serialize(mask=False)
        )
        try:
            await behaviour(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def _drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)  # the client's first message
    writer.transport.abort()  # no close frame: 1006


async def _ignore_everything(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(65536):
        pass  # pings included: never a pong


@asynccontextmanager
async def relayed_from(behaviour: Behaviour, **front: float) -> AsyncIterator[Any]:
    """A client's WebSocket to a front whose owner is a bare server doing ``behaviour``."""
    async with (
        bare_owner(behaviour) as owner_url,
        serving_in_loop(_config(_front(owner_url, **front))) as port,
        connect(f"ws://127.0.0.1:{port}/") as ws,
    ):
        yield ws


@pytest.mark.parametrize(
    ("behaviour", "front", "reason"),
    [
        (_drop, {}, ""),
        (_ignore_everything, {"ping_interval": 0.2, "ping_timeout": 0.3}, "did not answer a ping"),
    ],
    ids=["dropped", "no-pong"],
)
async def test_an_owner_gone_without_a_close_is_a_1011(
    behaviour: Behaviour, front: dict[str, float], reason: str
) -> None:
    async with relayed_from(behaviour, **front) as ws:
        async with asyncio.timeout(30):
            assert await ws.recv() == "first"
            await ws.send("hello")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
    assert ws.close_code == 1011
    assert reason in (ws.close_reason or "")


async def _next_frame(reader: asyncio.StreamReader) -> Frame:
    """The next frame the relay sent the owner (masked, as a client's are), parsed by
    ``websockets`` as the bytes come."""
    buffered = StreamReader()
    parser = Frame.parse(buffered.read_exact, mask=True)
    while True:
        try:
            next(parser)  # wants more bytes
        except StopIteration as done:
            frame: Frame = done.value
            return frame
        buffered.feed_data(await reader.read(1))


async def _fragments_a_ping_and_a_close(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(
        Frame(Opcode.TEXT, b'{"part":', fin=False).serialize(mask=False)
        + Frame(Opcode.PING, b"are you there").serialize(mask=False)
        + Frame(Opcode.CONT, b'"two"}').serialize(mask=False)
    )
    pong = await _next_frame(reader)
    assert (pong.opcode, pong.data) == (Opcode.PONG, b"are you there")
    writer.write(Frame(Opcode.CLOSE, struct.pack("!H", 4003) + b"done").serialize(mask=False))
    echo = await _next_frame(reader)
    assert (echo.opcode, echo.data[:2]) == (Opcode.CLOSE, struct.pack("!H", 4003))


async def test_fragments_pings_and_the_close_of_a_bare_owner() -> None:
    async with relayed_from(_fragments_a_ping_and_a_close) as ws:
        async with asyncio.timeout(30):
            assert await ws.recv() == "first"
            assert await ws.recv() == '{"part":"two"}'
            with pytest.raises(ConnectionClosed):
                await ws.recv()
    assert (ws.close_code, ws.close_reason) == (4003, "done")


async def _oversize(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(Frame(Opcode.TEXT, b"x" * ((1 << 20) + 1)).serialize(mask=False))
    close = await _next_frame(reader)
    assert (close.opcode, close.data[:2]) == (Opcode.CLOSE, struct.pack("!H", 1009))


async def test_an_owner_message_over_the_bound_closes_both_sides() -> None:
    async with relayed_from(_oversize) as ws:
        async with asyncio.timeout(30):
            assert await ws.recv() == "first"
            with pytest.raises(ConnectionClosed):
                await ws.recv()
    assert ws.close_code == 1011
    assert "over" in (ws.close_reason or "")
