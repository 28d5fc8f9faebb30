"""A WebSocket client over one HTTP/2 stream (RFC 8441 extended CONNECT).

No WebSocket library speaks extended CONNECT, so this one is built from the two pieces
Hypercorn itself uses: ``h2`` frames the connection and the stream, ``wsproto`` the
WebSocket messages inside the stream's DATA frames.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from types import TracebackType

import h2.config
import h2.connection
import h2.events
import h2.settings
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Event, Message, Ping, TextMessage

__all__ = ["H2WebSocket", "RefusedHandshake", "open_h2_connection"]


class RefusedHandshake(Exception):
    """The server answered the CONNECT with something other than 200."""

    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        super().__init__(f"extended CONNECT answered {status}: {body!r}")
        self.status = status
        self.headers = headers
        self.body = body


class _H2Connection:
    """An HTTP/2 client connection over asyncio streams; frames are read when asked."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )

    async def flush(self) -> None:
        self.writer.write(self.h2.data_to_send())
        await self.writer.drain()

    async def events(self) -> list[h2.events.Event]:
        """The events of the next bytes the server sends ([] once it has closed)."""
        data = await self.reader.read(65536)
        if not data:
            return []
        events = self.h2.receive_data(data)
        await self.flush()  # settings and ping acknowledgements
        return events

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def open_h2_connection(
    port: int, context: ssl.SSLContext | None = None
) -> tuple[_H2Connection, h2.settings.Settings]:
    """A connection to 127.0.0.1:``port``, h2c with prior knowledge or h2 through ALPN,
    once the server's SETTINGS are in; returns it and those settings."""
    if context is not None:
        context.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    if context is not None:
        selected = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        assert selected == "h2", f"ALPN chose {selected!r}"
    connection = _H2Connection(reader, writer)
    connection.h2.initiate_connection()
    await connection.flush()
    while True:
        events = await connection.events()
        if not events:
            raise ConnectionError("the server closed before its SETTINGS")
        if any(isinstance(event, h2.events.RemoteSettingsChanged) for event in events):
            return connection, connection.h2.remote_settings


class H2WebSocket:
    """One WebSocket on one stream of an HTTP/2 connection."""

    def __init__(self, connection: _H2Connection, stream_id: int, subprotocol: str | None) -> None:
        self._connection = connection
        self._stream_id = stream_id
        self._ws = Connection(ConnectionType.CLIENT)
        self._pending: list[Event] = []
        #: The subprotocol the server chose, if any.
        self.subprotocol = subprotocol
        #: The close frame the server sent, once it has.
        self.closed: CloseConnection | None = None

    @classmethod
    async def connect(
        cls,
        port: int,
        path: str,
        *,
        context: ssl.SSLContext | None = None,
        subprotocols: Sequence[str] = (),
        headers: Sequence[tuple[str, str]] = (),
    ) -> H2WebSocket:
        """Open a connection and a WebSocket on its first stream; ``RefusedHandshake`` if
        the server answers the CONNECT with anything but 200."""
        connection, settings = await open_h2_connection(port, context)
        if settings.enable_connect_protocol != 1:
            raise ConnectionError("the server does not offer SETTINGS_ENABLE_CONNECT_PROTOCOL")
        stream_id = connection.h2.get_next_available_stream_id()
        request = [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", b"https" if context else b"http"),
            (b":path", path.encode()),
            (b":authority", f"127.0.0.1:{port}".encode()),
            (b"sec-websocket-version", b"13"),
        ]
        if subprotocols:
            request.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode()))
        request += [(name.encode(), value.encode()) for name, value in headers]
        connection.h2.send_headers(stream_id, request)
        await connection.flush()
        status, answer = 0, {}
        body = b""
        while True:
            events = await connection.events()
            if not events:
                raise RefusedHandshake(status, answer, body)
            for event in events:
                if getattr(event, "stream_id", None) != stream_id:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    answer = dict(event.headers)
                    status = int(answer[b":status"])
                    if status == 200:
                        chosen = answer.get(b"sec-websocket-protocol")
                        return cls(connection, stream_id, chosen.decode() if chosen else None)
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    connection.h2.acknowledge_received_data(event.flow_controlled_length, stream_id)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    await connection.close()
                    raise RefusedHandshake(status, answer, body)

    async def __aenter__(self) -> H2WebSocket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._connection.close()

    async def send(self, text: str) -> None:
        """One text message."""
        await self._send(TextMessage(data=text))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (the server answers with its own)."""
        await self._send(CloseConnection(code=code, reason=reason))

    async def receive(self) -> str:
        """The next text message; ``ConnectionError`` once the server has closed."""
        text = ""
        while True:
            while self._pending:
                event = self._pending.pop(0)
                if isinstance(event, TextMessage):
                    text += event.data
                    if event.message_finished:
                        return text
                elif isinstance(event, Ping):
                    await self._send(event.response())
                elif isinstance(event, CloseConnection):
                    self.closed = event
                    raise ConnectionError(f"closed by the server: {event.code} {event.reason}")
                elif isinstance(event, Message):
                    raise AssertionError(f"unexpected message {event!r}")
            await self._read()

    async def _read(self) -> None:
        events = await self._connection.events()
        if not events:
            raise ConnectionError("the connection closed")
        for event in events:
            if getattr(event, "stream_id", None) != self._stream_id:
                continue
            if isinstance(event, h2.events.DataReceived):
                self._ws.receive_data(event.data)
                self._connection.h2.acknowledge_received_data(
                    event.flow_controlled_length, self._stream_id
                )
            elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                self._ws.receive_data(None)
        self._pending.extend(self._ws.events())

    async def _send(self, event: Event) -> None:
        data = self._ws.send(event)
        size = self._connection.h2.max_outbound_frame_size
        for start in range(0, len(data), size):
            self._connection.h2.send_data(self._stream_id, data[start : start + size])
        await self._connection.flush()
