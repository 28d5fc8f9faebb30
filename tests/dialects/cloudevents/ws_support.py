"""What the WebSocket consumer's tests share: the gateway served by uvicorn on a real
socket (with its housekeeping, as ``sluicegate serve`` runs it), producing, and a raw
client for what the ``websockets`` library will not do (stop reading, never answer a
ping)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import msgspec

from sluicegate.app import build_app
from sluicegate.core.gateway import Gateway
from sluicegate.dialects.cloudevents.websocket import SUBPROTOCOL
from sluicegate.http.servers.uvicorn import _Server, uvicorn_config
from tests.dialects.cloudevents.test_consumers import event

__all__ = [
    "GatewayServer",
    "RawWebSocket",
    "event",
    "produce",
    "serve_gateway",
]


class GatewayServer:
    """A gateway served on 127.0.0.1: its URLs, and the uvicorn server for what a test
    inspects (its connections) or does (shut it down)."""

    def __init__(self, server: _Server, port: int, gateway: Gateway) -> None:
        self.server = server
        self.port = port
        self.gateway = gateway
        self.http = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}/ce/ws"

    def write_buffers(self) -> list[int]:
        """Bytes queued in each open connection's transport, not yet taken by the kernel."""
        return [
            connection.transport.get_write_buffer_size()
            for connection in self.server.server_state.connections
        ]

    async def shutdown(self) -> None:
        """SIGTERM's path: uvicorn leaves its main loop and runs its shutdown."""
        self.server.should_exit = True


@asynccontextmanager
async def serve_gateway(gateway: Gateway) -> AsyncIterator[GatewayServer]:
    """``gateway`` served as ``sluicegate serve`` serves it (its uvicorn settings, its
    shutdown), housekeeping included, until the block ends."""
    config = uvicorn_config(build_app(gateway), gateway.settings)
    config.host, config.port = "127.0.0.1", 0
    graceful = gateway.settings.server.graceful_shutdown
    server = _Server(config, graceful, partial(gateway.stop_serving, graceful))
    async with asyncio.TaskGroup() as tg:
        housekeeping = tg.create_task(gateway.run())
        serving = tg.create_task(server.serve())
        try:
            async with asyncio.timeout(10):
                while not server.started:
                    if serving.done():
                        serving.result()
                    await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            yield GatewayServer(server, port, gateway)
        finally:
            server.should_exit = True
            await serving
            housekeeping.cancel()


async def ended(served: GatewayServer) -> None:
    """Wait until the server has ended every stream: its instance has left the group,
    what it confirmed is committed."""
    async with asyncio.timeout(30):
        while len(served.gateway.streams) or len(served.gateway.consumers):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def produce(url: str, auth: dict[str, str], events: list[dict[str, Any]]) -> None:
    """Store ``events`` as one batch through the producer API."""
    headers = {"content-type": "application/cloudevents-batch+json", **auth}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.post(
            "/ce/produce/events", content=msgspec.json.encode(events), headers=headers
        )
    assert response.status_code == 202, response.text


class RawWebSocket:
    """A WebSocket client that does only what it is told: it never reads unless asked,
    and never answers a ping."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, auth: dict[str, str], path: str = "/ce/ws") -> RawWebSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # The smallest receive buffer the kernel allows: a client that stops reading
        # pushes back on the server after a few kilobytes, not megabytes.
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            f"Sec-WebSocket-Protocol: {SUBPROTOCOL}",
            *(f"{name}: {value}" for name, value in auth.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def abort(self) -> None:
        """Cut the connection: no close frame, a TCP reset."""
        self.writer.transport.abort()
