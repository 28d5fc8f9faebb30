"""A WebSocket consumer relayed to the node that serves its group, frames cut by hand.

``http/stream_forwarding.py`` decides that a ``/ce/ws`` connection belongs to another
node; this module opens the same WebSocket there and pipes the two together. The client's
side is an ASGI WebSocket (``websocket.send``, or a burst through ``send_texts``); the
owner's side is a plain TCP (or TLS) stream:

* the opening handshake is written and its answer read with ``h11``, which hands back
  the bytes after a ``101`` untouched; an answer that is no ``101`` is a ``Refusal``
  (status, headers, body) for the client, read whole within the message bound;
* then every read of the owner's stream goes through ``FrameReader``
  (``http/websocket_frames.py``) and the text messages it completes go to the client as
  one burst, which is how the owner sent them; the next read waits until the burst is
  written, so a slow client slows the owner's connection (TCP's flow control), not this
  node's memory;
* the client's messages go to the owner as masked frames, the client's leaving as a
  close frame with its code; pings from the owner are answered, and this side pings the
  owner every ``ping_interval`` seconds, ending the relay with ``1011`` when no pong
  comes within ``ping_timeout`` (as ``websockets``' own client did).

A ``websockets`` client per connection did the same with a ``Frame`` object, a generator
step and an assembler hand-over per message: more than the whole relay loop costs on
the relaying node (see "Streaming consumers to the group's node" in the design notes).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import os
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from sluicegate.http.types import Receive, Scope, Send
from sluicegate.http.websocket import send_texts
from sluicegate.http.websocket_frames import (
    INVALID_DATA,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    FrameReader,
    client_frame,
    close_payload,
)
from sluicegate.tasks import let_go_of_cancellation

__all__ = ["HandshakeError", "OwnerSocket", "Refusal", "open_owner_socket"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Bytes asked of the owner's stream per read: two of its bursts (32 KiB each), about two
#: hundred events relayed in one write. Also the stream reader's limit: it stops reading
#: from the owner beyond twice this, so a relayed connection holds at most that, a burst
#: being written and one message being cut.
_READ_BYTES = 64 * 1024
#: Seconds the owner has to answer this side's close, once the client has left.
_CLOSE_TIMEOUT = 5.0
#: Close codes a close frame may carry (RFC 6455 7.4): the rest become ``1011``.
_SENDABLE_CODES = frozenset(range(1000, 1015)) - {1004, 1005, 1006}
_INTERNAL = 1011
_NORMAL = 1000
#: RFC 6455 5.5: a close frame's payload is 125 bytes, 2 of them the code.
_MAX_REASON_BYTES = 123


class HandshakeError(Exception):
    """The owner's answer to the handshake is no WebSocket upgrade nor an HTTP answer."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """The owner's HTTP answer instead of an upgrade: for the client, as it came."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@functools.cache
def _tls() -> ssl.SSLContext:
    # Made once: loading the system's certificates costs milliseconds.
    return ssl.create_default_context()


def _accept_of(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


async def open_owner_socket(
    base_url: str,
    target: str,
    headers: list[tuple[bytes, bytes]],
    subprotocols: list[str],
    *,
    max_message_bytes: int,
) -> OwnerSocket | Refusal:
    """Open a WebSocket to ``target`` (path and query) on the node at ``base_url``, with
    ``headers`` besides the handshake's own; the owner's answer when it refuses.

    ``OSError`` when the node cannot be reached, ``HandshakeError`` (or ``h11``'s
    ``ProtocolError``) when its answer is not HTTP or not a valid upgrade. The caller
    bounds the time it takes.
    """
    url = urlsplit(base_url)
    secure = url.scheme == "https"
    host = url.hostname or ""
    port = url.port or (443 if secure else 80)
    reader, writer = await asyncio.open_connection(
        host, port, ssl=_tls() if secure else None, limit=_READ_BYTES
    )
    try:
        key = base64.b64encode(os.urandom(16))
        handshake = [
            (b"host", url.netloc.encode()),
            (b"connection", b"Upgrade"),
            (b"upgrade", b"websocket"),
            (b"sec-websocket-key", key),
            (b"sec-websocket-version", b"13"),
        ]
        if subprotocols:
            handshake.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode()))
        http = h11.Connection(h11.CLIENT)
        writer.write(
            http.send(h11.Request(method="GET", target=target, headers=[*handshake, *headers]))
        )
        writer.write(http.send(h11.EndOfMessage()))
        while True:
            event = await _next_event(http, reader)
            if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                subprotocol = _checked_upgrade(event, key, subprotocols)
                first, _ = http.trailing_data
                return OwnerSocket(reader, writer, subprotocol, first, max_message_bytes)
            if isinstance(event, h11.Response):
                answer = Refusal(
                    event.status_code,
                    list(event.headers),
                    await _body(http, reader, max_message_bytes),
                )
                writer.close()
                return answer
            if not isinstance(event, h11.InformationalResponse):  # a 1xx is skipped
                raise HandshakeError(f"unexpected {type(event).__name__} in the answer")
    except BaseException:
        writer.close()
        raise


async def _next_event(http: h11.Connection, reader: asyncio.StreamReader) -> object:
    while True:
        event = http.next_event()
        if event is not h11.NEED_DATA:
            return event
        http.receive_data(await reader.read(_READ_BYTES))


async def _body(http: h11.Connection, reader: asyncio.StreamReader, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        event = await _next_event(http, reader)
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > limit:
                raise HandshakeError(f"a refusal's body over {limit} bytes")
            parts.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return b"".join(parts)
        else:
            raise HandshakeError(f"unexpected {type(event).__name__} in the answer's body")


def _checked_upgrade(
    answer: h11.InformationalResponse, key: bytes, subprotocols: list[str]
) -> str | None:
    """The subprotocol the owner chose, once its ``101`` is checked as RFC 6455 says."""
    fields: dict[bytes, bytes] = {}
    for name, value in answer.headers:
        fields[name] = value
    if fields.get(b"upgrade", b"").lower() != b"websocket":
        raise HandshakeError("the 101 names no websocket upgrade")
    if fields.get(b"sec-websocket-accept") != _accept_of(key):
        raise HandshakeError("the 101's Sec-WebSocket-Accept is wrong")
    if b"sec-websocket-extensions" in fields:
        raise HandshakeError("an extension that was not offered")
    chosen = fields.get(b"sec-websocket-protocol")
    if chosen is None:
        return None
    subprotocol = chosen.decode("latin-1")
    if subprotocol not in subprotocols:
        raise HandshakeError(f"a subprotocol that was not offered: {subprotocol!r}")
    return subprotocol


def _client_close(code: int, reason: str) -> tuple[int, str]:
    """What the client is told of the owner's close: a code a close frame can carry."""
    if code not in _SENDABLE_CODES and not 3000 <= code <= 4999:
        return _INTERNAL, reason
    return code, reason


def _cut(reason: str) -> str:
    raw = reason.encode()
    if len(raw) <= _MAX_REASON_BYTES:
        return reason
    return raw[:_MAX_REASON_BYTES].decode(errors="ignore")


class OwnerSocket:
    """An open WebSocket to the group's node, relayed to one ASGI client by ``relay``."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        subprotocol: str | None,
        first: bytes,
        max_message_bytes: int,
    ) -> None:
        self.subprotocol = subprotocol
        self._reader = reader
        self._writer = writer
        #: What came after the ``101`` in the same read.
        self._first = first
        self._frames = FrameReader(max_message_bytes)
        self._pong: asyncio.Future[None] | None = None
        self._close_sent = False
        self._client_closed = False
        self._client_left = False
        self._send: Send | None = None

    def abort(self) -> None:
        """Close the connection to the owner without a closing handshake."""
        self._writer.transport.abort()

    async def relay(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        ping_interval: float,
        ping_timeout: float,
    ) -> None:
        """Accept the client with the owner's subprotocol, then pipe both ways until one
        side ends; the connection to the owner is closed when this returns."""
        self._send = send
        tasks: tuple[asyncio.Future[None], ...] = ()
        try:
            await send({"type": "websocket.accept", "subprotocol": self.subprotocol})
            down = asyncio.ensure_future(self._owner_to_client(scope, send))
            up = asyncio.ensure_future(self._client_to_owner(receive))
            beat = asyncio.ensure_future(self._heartbeat(ping_interval, ping_timeout))
            tasks = (down, up, beat)
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if up in done and down not in done:
                # The client left (the owner is sent its close) or the owner's side failed
                # while writing: the owner's close, or its end, is what ends the relay.
                await asyncio.wait((down,), timeout=_CLOSE_TIMEOUT)
                await self._close_client(_INTERNAL, "the group's node did not close")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in tasks:
                let_go_of_cancellation(task)
            self._writer.close()

    async def _close_client(self, code: int, reason: str) -> None:
        """Tell the client the relay ended, once, unless it left first."""
        if self._client_closed or self._client_left or self._send is None:
            return
        self._client_closed = True
        with contextlib.suppress(OSError):
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    def _close_owner(self, code: int, reason: str = "") -> None:
        if self._close_sent or self._writer.is_closing():
            return
        self._close_sent = True
        self._writer.write(client_frame(OP_CLOSE, close_payload(code, _cut(reason))))

    async def _owner_to_client(self, scope: Scope, send: Send) -> None:
        """The owner's messages to the client, a read's worth per burst; then its close."""
        frames = self._frames
        reader = self._reader
        write = self._writer.write
        data = self._first
        self._first = b""
        try:
            while True:
                if data:
                    texts = frames.feed(data)
                    if frames.pings:
                        for payload in frames.pings:
                            write(client_frame(OP_PONG, payload))
                        frames.pings.clear()
                    if frames.pongs:
                        frames.pongs = 0
                        if self._pong is not None and not self._pong.done():
                            self._pong.set_result(None)
                    if texts:
                        try:
                            await send_texts(scope, send, texts)
                        except UnicodeDecodeError:
                            raise FrameError(INVALID_DATA, "a text message not UTF-8") from None
                    if frames.close is not None:
                        break
                try:
                    data = await reader.read(_READ_BYTES)
                except OSError:
                    data = b""
                if not data:
                    break  # the owner's connection ended with no close: 1006
        except FrameError as exc:
            self._close_owner(exc.code, exc.reason)
            if exc.texts:
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    await send_texts(scope, send, exc.texts)
            await self._close_client(_INTERNAL, f"the group's node: {exc.reason}")
            return
        except OSError:
            return  # the client is gone: the other direction sees it too
        if frames.close is None:
            await self._close_client(_INTERNAL, "")
            return
        code, reason = frames.close
        self._close_owner(code)  # the closing handshake: its code echoed
        await self._close_client(*_client_close(code, reason))

    async def _client_to_owner(self, receive: Receive) -> None:
        """The client's messages to the owner; its leaving closes the owner's side."""
        writer = self._writer
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    text = message.get("text")
                    if text is not None:
                        writer.write(client_frame(OP_TEXT, text.encode()))
                    else:
                        writer.write(client_frame(OP_BINARY, message.get("bytes") or b""))
                    await writer.drain()
                elif kind == "websocket.disconnect":
                    self._client_left = True
                    code = int(message.get("code", _NORMAL))
                    if code not in _SENDABLE_CODES and not 3000 <= code <= 4999:
                        code = _NORMAL
                    self._close_owner(code, message.get("reason") or "")
                    return
        except OSError:
            return  # the owner's side failed: its reader sees the end

    async def _heartbeat(self, interval: float, timeout: float) -> None:
        """Ping the owner every ``interval``; no pong within ``timeout`` ends the relay."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            self._pong = loop.create_future()
            self._writer.write(client_frame(OP_PING, os.urandom(4)))
            try:
                await asyncio.wait_for(self._pong, timeout)
            except TimeoutError:
                self.abort()
                await self._close_client(_INTERNAL, "the group's node did not answer a ping")
                return
