"""uvicorn's WebSocket protocol as sluicegate serves it, facing a peer that does not read:
its pings do not pile up pongs in the server's memory, and once it misses its own pong it
is cut, socket and buffers freed. Over real sockets, with a raw client."""

from __future__ import annotations

import asyncio
import base64
import os
import socket

from sluicegate.config import Settings, load_settings
from sluicegate.http.types import Receive, Scope, Send
from tests.helpers import serving

#: A ping frame from a client: FIN, opcode 9, masked, 125 bytes of payload.
_MASK = b"\x01\x02\x03\x04"
_PING = (
    bytes([0x89, 0x80 | 125]) + _MASK + bytes(b ^ _MASK[i % 4] for i, b in enumerate(b"p" * 125))
)
#: What the flooding client sends at most: far more than any socket buffers hold.
_FLOOD_BYTES = 64 * 1024 * 1024


class _Echo:
    """An app that accepts a WebSocket and waits for its end, which it records."""

    def __init__(self) -> None:
        self.disconnected = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        self.disconnected.set()


def _settings(ping_interval: float, ping_timeout: float) -> Settings:
    cloudevents = {"websocket_ping_interval": ping_interval, "websocket_ping_timeout": ping_timeout}
    return load_settings(environ={}, overrides={"cloudevents": cloudevents})


def _connect(port: int) -> socket.socket:
    """A raw WebSocket client after its handshake, with the smallest receive buffer
    (blocking: called through ``asyncio.to_thread``, the server runs in this loop)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(head.encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def _flood(sock: socket.socket, seconds: float) -> int:
    """Send pings and read nothing until a send blocks for ``seconds``; the bytes sent."""
    sock.settimeout(seconds)
    burst = _PING * 512
    sent = 0
    try:
        while sent < _FLOOD_BYTES:
            sock.sendall(burst)
            sent += len(burst)
    except TimeoutError:
        pass  # the server reads no more
    except (ConnectionResetError, BrokenPipeError):
        pass  # the server cut the connection
    return sent


async def test_a_peer_that_sends_pings_and_reads_nothing_is_not_read_from() -> None:
    # Each ping read is a pong written to a buffer the peer never empties: the server
    # stops reading once that buffer is full, so the peer's sends block.
    app = _Echo()
    async with serving(app, _settings(60.0, 60.0)) as port:
        with await asyncio.to_thread(_connect, port) as sock:
            sent = await asyncio.to_thread(_flood, sock, 2.0)
    assert sent < 16 * 1024 * 1024, f"the server read {sent} bytes of pings"


async def test_a_peer_that_misses_its_pong_with_unread_data_is_cut() -> None:
    # Closed gracefully, the socket would wait for its buffer to drain: forever.
    app = _Echo()
    async with serving(app, _settings(0.3, 0.3)) as port:
        with await asyncio.to_thread(_connect, port) as sock:
            await asyncio.to_thread(_flood, sock, 0.5)
            await asyncio.wait_for(app.disconnected.wait(), 5)
