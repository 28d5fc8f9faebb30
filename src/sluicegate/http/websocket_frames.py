"""RFC 6455 frames as a client sees them, without a library's per-frame objects.

The stream proxy (``http/websocket_relay.py``) reads a node's WebSocket answer and hands
each text message to its own client as it came. ``websockets``' client makes a ``Frame``
object per frame, runs it through a generator-based reader and an assembler, and that is
most of what relaying costs; the owner's frames are plain (unmasked, no extension, one
frame per message but for a rare fragmented one), so a loop over the received bytes cuts
them with a few integer operations each:

* ``FrameReader.feed`` takes what one read returned, however it splits frames, and gives
  back the complete text messages in it in order; pings, pongs and the close it saw are
  left in its attributes for the caller to answer.
* ``client_frame`` makes the masked frame a client sends, masked by ``websockets``' C
  helper.

Anything RFC 6455 forbids a server to send here (a masked frame, reserved bits without an
extension, a fragmented or long control frame, a continuation out of place, a bad close
payload) is a ``FrameError`` carrying the close code to answer with; a message longer
than the reader's bound is one too (``1009``), checked on each frame's header before its
payload is buffered, so what the reader holds is bounded by one message.
"""

from __future__ import annotations

import os
import struct

try:  # websockets' C helper; a build without its extension has the same in Python
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

__all__ = [
    "INVALID_DATA",
    "NO_CODE",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "PROTOCOL_ERROR",
    "TOO_BIG",
    "UNSUPPORTED_DATA",
    "FrameError",
    "FrameReader",
    "client_frame",
    "close_payload",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

#: First byte of an unfragmented text frame with no reserved bit: the owner's every frame.
_WHOLE_TEXT = 0x80 | OP_TEXT
_FIN = 0x80
_RESERVED = 0x70
_MASKED = 0x80
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
_CLOSE_CODE = struct.Struct("!H")
#: RFC 6455 5.5: a control frame's payload.
_MAX_CONTROL = 125
#: A close frame's payload with no code: the peer's close had none.
NO_CODE = 1005
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
INVALID_DATA = 1007
TOO_BIG = 1009


class FrameError(Exception):
    """The peer sent what RFC 6455 does not allow here; ``code`` is the close to answer."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        #: The text messages the same read completed before the error: the peer sent
        #: them whole, so they are handed on before the connection is failed.
        self.texts: list[bytes] = []


class FrameReader:
    """Cuts a server's frames out of the bytes read from its connection.

    ``max_message_bytes`` bounds one message (a frame's payload, or a fragmented
    message's payloads together).
    """

    __slots__ = (
        "_fragment_bytes",
        "_fragment_opcode",
        "_fragments",
        "_max",
        "_needed",
        "_pending",
        "close",
        "pings",
        "pongs",
    )

    def __init__(self, max_message_bytes: int) -> None:
        self._max = max_message_bytes
        #: Bytes of a frame not yet whole (its header, maybe part of its payload).
        self._pending = bytearray()
        #: Bytes ``_pending`` must reach before it is worth parsing again.
        self._needed = 0
        self._fragments: list[bytes] | None = None
        self._fragment_opcode = OP_TEXT
        self._fragment_bytes = 0
        #: Payloads of the pings received, in order: each wants a pong.
        self.pings: list[bytes] = []
        #: Pongs received since the caller last reset it.
        self.pongs = 0
        #: The peer's close, once received: its code (``1005`` for none) and reason.
        #: Nothing after it is read.
        self.close: tuple[int, str] | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """The text messages completed by ``data``, in order (``FrameError`` on a frame
        the peer may not send, with the messages completed before it)."""
        texts: list[bytes] = []
        if self.close is None:
            try:
                self._cut(data, texts)
            except FrameError as exc:
                exc.texts = texts
                raise
        return texts

    def _cut(self, data: bytes, texts: list[bytes]) -> None:
        pending = self._pending
        if pending:
            pending += data
            if len(pending) < self._needed:
                return  # a large frame, still arriving: no parse per read
            data = bytes(pending)
            pending.clear()
        end = len(data)
        limit = self._max
        append = texts.append
        position = 0
        # Each turn: the header's first two bytes, the extended length, then the payload.
        while end - position >= 2:
            first = data[position]
            second = data[position + 1]
            if second & _MASKED:
                raise FrameError(PROTOCOL_ERROR, "a server's frame is never masked")
            size = second & 0x7F
            if size < 126:
                start = position + 2
            elif size == 126:
                start = position + 4
                if start > end:
                    self._needed = 4
                    break
                size = _U16.unpack_from(data, position + 2)[0]
            else:
                start = position + 10
                if start > end:
                    self._needed = 10
                    break
                size = _U64.unpack_from(data, position + 2)[0]
            if size > limit:
                raise FrameError(TOO_BIG, f"a message over {limit} bytes")
            stop = start + size
            if stop > end:
                self._needed = stop - position
                break
            if first == _WHOLE_TEXT and self._fragments is None:
                append(data[start:stop])
            else:
                self._frame(first, data[start:stop], texts)
                if self.close is not None:
                    return
            position = stop
        else:
            self._needed = 2
        if position < end:
            pending += memoryview(data)[position:]

    def _frame(self, first: int, payload: bytes, texts: list[bytes]) -> None:
        """Any frame but a whole text message: fragments, control frames, the close."""
        if first & _RESERVED:
            raise FrameError(PROTOCOL_ERROR, "reserved bits set without an extension")
        opcode = first & 0x0F
        fin = first & _FIN
        if opcode >= OP_CLOSE:
            if not fin or len(payload) > _MAX_CONTROL:
                raise FrameError(PROTOCOL_ERROR, "a control frame fragmented or too long")
            if opcode == OP_PING:
                self.pings.append(payload)
            elif opcode == OP_PONG:
                self.pongs += 1
            elif opcode == OP_CLOSE:
                self.close = _close_of(payload)
            else:
                raise FrameError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
            return
        if opcode == OP_CONTINUATION:
            fragments = self._fragments
            if fragments is None:
                raise FrameError(PROTOCOL_ERROR, "a continuation frame with no message")
            self._fragment_bytes += len(payload)
            if self._fragment_bytes > self._max:
                raise FrameError(TOO_BIG, f"a message over {self._max} bytes")
            fragments.append(payload)
            if fin:
                self._fragments = None
                self._message(self._fragment_opcode, b"".join(fragments), texts)
            return
        if opcode not in (OP_TEXT, OP_BINARY):
            raise FrameError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if self._fragments is not None:
            raise FrameError(PROTOCOL_ERROR, "a new message before the last one ended")
        if fin:
            self._message(opcode, payload, texts)
            return
        self._fragments = [payload]
        self._fragment_opcode = opcode
        self._fragment_bytes = len(payload)

    @staticmethod
    def _message(opcode: int, payload: bytes, texts: list[bytes]) -> None:
        if opcode != OP_TEXT:
            # The consumers' protocol is text only (events as JSON): a binary message is
            # no event, and handing it on as text would be wrong.
            raise FrameError(UNSUPPORTED_DATA, "a binary message")
        texts.append(payload)


def _close_of(payload: bytes) -> tuple[int, str]:
    if not payload:
        return NO_CODE, ""
    if len(payload) == 1:
        raise FrameError(PROTOCOL_ERROR, "a close frame with one byte")
    code = _CLOSE_CODE.unpack_from(payload)[0]
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise FrameError(INVALID_DATA, "a close reason that is not UTF-8") from None
    return code, reason


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One unfragmented frame from a client: FIN, ``opcode``, a fresh mask."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", _FIN | opcode, _MASKED | size)
    elif size < 65536:
        header = struct.pack("!BBH", _FIN | opcode, _MASKED | 126, size)
    else:
        header = struct.pack("!BBQ", _FIN | opcode, _MASKED | 127, size)
    return header + mask + apply_mask(payload, mask)


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload: ``code`` and ``reason`` (empty for ``1005``: no code)."""
    if code == NO_CODE:
        return b""
    return _CLOSE_CODE.pack(code) + reason.encode()
