"""A TCP proxy between Kafka clients and a broker that delays, stalls and cuts on command,
and can hide the brokers from the broker's metadata answers.

The broker advertises the proxy's port, so every connection a client makes (bootstrap,
then the broker it learns of) goes through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import struct
from collections.abc import Callable

__all__ = ["FaultProxy"]

_CHUNK = 65536
_METADATA = 3
#: The first Metadata version with flexible (compact, tagged) encoding.
_METADATA_FLEXIBLE = 9


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``.

    ``delay`` seconds are added before each chunk is passed on; ``stall()`` holds every
    chunk until ``flow()``; ``cut()`` closes every connection at once (clients reconnect).
    While ``hide_brokers`` is set, Metadata answers list no broker, as a broker starting
    up may answer; ``hidden`` counts the answers changed so.
    """

    def __init__(self, port: int, target: int) -> None:
        self.port = port
        self.target = target
        self.delay = 0.0
        self.hide_brokers = False
        self.hidden = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    def stall(self) -> None:
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        for writer in list(self._connections):
            writer.transport.abort()
        self._connections.clear()

    async def close(self) -> None:
        self.flow()
        if self._server is not None:
            self._server.close()
        self.cut()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target
            )
        except OSError:
            writer.transport.abort()
            return
        self._connections |= {writer, upstream_writer}
        #: The API key and version of each request in flight, by correlation id.
        asked: dict[int, tuple[int, int]] = {}
        pumps = (
            self._pump(reader, upstream_writer, functools.partial(_note_request, asked)),
            self._pump(upstream_reader, writer, functools.partial(self._answer, asked)),
        )
        for pump_coroutine in pumps:
            pump = asyncio.create_task(pump_coroutine)
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    def _answer(self, asked: dict[int, tuple[int, int]], frame: bytes) -> bytes:
        (correlation,) = struct.unpack_from(">i", frame)
        api_key, version = asked.pop(correlation, (-1, -1))
        if self.hide_brokers and api_key == _METADATA and version >= _METADATA_FLEXIBLE:
            self.hidden += 1
            return _without_brokers(frame)
        return frame

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        passed: Callable[[bytes], bytes],
    ) -> None:
        frames = _Frames()
        try:
            while chunk := await source.read(_CHUNK):
                if self.delay:
                    await asyncio.sleep(self.delay)
                await self._flowing.wait()
                sink.writelines(
                    [struct.pack(">i", len(out)) + out for out in map(passed, frames.feed(chunk))]
                )
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._connections.discard(sink)
            with contextlib.suppress(Exception):
                sink.transport.abort()


class _Frames:
    """Cuts a byte stream into Kafka's frames (each after its 4-byte size)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 4:
            end = 4 + int.from_bytes(self._buffer[:4], "big")
            if len(self._buffer) < end:
                break
            frames.append(bytes(self._buffer[4:end]))
            del self._buffer[:end]
        return frames


def _note_request(asked: dict[int, tuple[int, int]], frame: bytes) -> bytes:
    api_key, version, correlation = struct.unpack_from(">hhi", frame)
    asked[correlation] = (api_key, version)
    return frame


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _after_tags(data: bytes, pos: int) -> int:
    count, pos = _uvarint(data, pos)
    for _ in range(count):
        _, pos = _uvarint(data, pos)
        size, pos = _uvarint(data, pos)
        pos += size
    return pos


def _without_brokers(frame: bytes) -> bytes:
    """A flexible Metadata answer with its brokers array emptied."""
    # Header: correlation id, tagged fields. Body: throttle time, then the brokers as a
    # compact array (its length + 1), each: node id, host, port, rack (nullable), tags.
    start = _after_tags(frame, 4) + 4
    count, pos = _uvarint(frame, start)
    for _ in range(count - 1):
        host, pos = _uvarint(frame, pos + 4)
        rack, pos = _uvarint(frame, pos + host - 1 + 4)
        pos = _after_tags(frame, pos + max(rack - 1, 0))
    return frame[:start] + b"\x01" + frame[pos:]
