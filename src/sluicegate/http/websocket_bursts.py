"""uvicorn's WebSocket protocol with one addition: many text messages in one write.

An ASGI app sends a WebSocket message with one ``websocket.send``; uvicorn frames it
through the ``websockets`` state machine (a ``Frame`` object, its serialization, a list
of output chunks) and makes one ``transport.write`` of it. That is the ceiling of any
app that streams small messages: the bench's bare app, sending one pre-rendered event
per ``send``, reaches about 110,000 messages/s on a quiet machine, and rendering,
reading the log and confirming come on top. A consumer reading a backlog has a
thousand events ready at once, so this protocol offers the extension
``sluicegate.websocket.send_texts`` in every accepted connection's scope: the app sends

    {"type": "sluicegate.websocket.send_texts", "texts": [b"...", b"..."]}

and each element of ``texts`` (UTF-8 bytes) goes out as one text message, all of them
framed here and written with one ``transport.write``. The frames are what RFC 6455
says a server sends for an unfragmented text message: FIN and opcode 1, no mask, the
7-, 16- or 64-bit length, the payload. Each payload is checked to be UTF-8 (a text
message must be). Everything else is uvicorn's: the handshake, pings and their timeout,
the closing handshake, and back-pressure — like a ``websocket.send``, the burst waits
while the transport's buffer is above its high-water mark before it is written, so
what a connection queues is bounded by the mark and one burst, and the app bounds its
bursts. When permessage-deflate was negotiated, each message goes through the
``websockets`` state machine (which compresses it), still in one write.

``http/servers/uvicorn.py`` runs it as uvicorn's ``ws`` protocol class; apps that do
not use the extension get uvicorn's own behaviour. Hypercorn offers no such thing, so
``http/websocket.py::send_texts`` falls back to one ``websocket.send`` per message.
"""

from __future__ import annotations

import struct
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from websockets.protocol import State

from sluicegate.http.servers.uvicorn_ws import LeanWebSocketsProtocol
from sluicegate.http.websocket import SEND_TEXTS

__all__ = ["BurstWebSocketProtocol", "text_frames"]

_TEXT_FIN = 0x81
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def text_frames(texts: list[bytes]) -> bytes:
    """The unmasked server frames of ``texts``, each one whole text message.

    ``ValueError`` if a text is not UTF-8.
    """
    parts: list[bytes] = []
    append = parts.append
    for text in texts:
        if not text.isascii():
            text.decode("utf-8")  # UnicodeDecodeError is a ValueError
        size = len(text)
        if size < 126:
            append(_SHORT.pack(_TEXT_FIN, size))
        elif size < 65536:
            append(_MEDIUM.pack(_TEXT_FIN, 126, size))
        else:
            append(_LONG.pack(_TEXT_FIN, 127, size))
        append(text)
    return b"".join(parts)


class BurstWebSocketProtocol(LeanWebSocketsProtocol):
    """uvicorn's sans-I/O ``websockets`` protocol, lean (``http/servers/uvicorn_ws.py``),
    with ``sluicegate.websocket.send_texts``."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # The app's task is created above but starts later: the scope it gets has this.
        if self.response.status_code == 101 and not self.close_sent:
            self.scope["extensions"][SEND_TEXTS] = {}

    async def send(self, message: Any) -> None:
        if message["type"] != SEND_TEXTS:
            await super().send(message)
            return
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if not self.handshake_complete or self.initial_response is not None:
            raise RuntimeError(f"{SEND_TEXTS} before the connection was accepted")
        if self.close_sent:
            raise RuntimeError(f"Unexpected ASGI message {SEND_TEXTS!r}, after 'websocket.close'.")
        conn = self.conn
        if conn.state is not State.OPEN:
            raise ClientDisconnected()  # the peer's close frame came first
        texts: list[bytes] = message["texts"]
        if conn.extensions:
            for text in texts:
                text.decode("utf-8")
                conn.send_text(text)  # compressed by the negotiated extension
            self.transport.write(b"".join(conn.data_to_send()))
            return
        self.transport.write(text_frames(texts))
