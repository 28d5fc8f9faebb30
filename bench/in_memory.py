"""HTTP/1.1 connections fed in memory: a server's protocol with no socket under it.

The in-process benchmarks (``bench.instructions``, ``bench.cloudevents_produce profile``)
hand uvicorn's protocol the bytes of each request and take its response from
``MemoryTransport.write``: the server's whole path from bytes in to bytes out, without the
kernel's socket work or a client's CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["MemoryConnection", "MemoryTransport"]


class MemoryTransport(asyncio.Transport):
    """What uvicorn's protocol writes to: it counts responses instead of sending them."""

    def __init__(self, connection: MemoryConnection) -> None:
        super().__init__()
        self._connection = connection
        self._closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._connection.written(bytes(data))

    def is_closing(self) -> bool:
        return self._closing

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._connection.protocol

    def close(self) -> None:
        self._closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


class MemoryConnection:
    """One keep-alive client: the next request (``make()``) goes in once the whole response
    is out, and must have been answered with ``status``."""

    def __init__(
        self,
        protocol: asyncio.Protocol,
        make: Callable[[], bytes],
        count: int,
        status: bytes = b"200",
    ) -> None:
        self.protocol = protocol
        self._make = make
        self._status = b"HTTP/1.1 " + status + b" "
        self._remaining = count
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        protocol.connection_made(MemoryTransport(self))

    def start(self) -> None:
        self.protocol.data_received(self._make())

    def written(self, data: bytes) -> None:
        # A response is one write, head and body together (http/response_cycle.py, Content-
        # Length, no chunking), so no parsing is needed: the harness's own cost stays small.
        if self.done.done():
            return
        if not data.startswith(self._status):
            self.done.set_exception(RuntimeError(f"not a {self._status!r}: {data[:200]!r}"))
            return
        self._remaining -= 1
        if self._remaining:
            asyncio.get_running_loop().call_soon(self.protocol.data_received, self._make())
        else:
            self.done.set_result(None)
