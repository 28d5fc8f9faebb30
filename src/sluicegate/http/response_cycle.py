"""uvicorn's request-response cycle, writing a response's head and body in one write.

uvicorn (0.55) writes the status line and headers when the app sends
``http.response.start``, then the body when it sends ``http.response.body``: two socket
writes per response, two system calls, and on a keep-alive connection two wake-ups of a
client waiting for its answer. A request-response round trip (a cursor walk, one client)
pays both in full, and a loaded server pays the system call per response.

``OneWriteCycle`` keeps the head until the body comes and writes them together. Apps
nearly always send the body in the same step of their task as the start (the gateway
and the bare-ASGI baseline both do): then the response is one write. A response with a
Content-Length waits for its body, whenever it comes: its client can do nothing with the
head alone. A stream (chunked, no Content-Length: Server-Sent Events) may wait long for
its first chunk, so its head is written when the app's step ends, through a callback
queued with the start, and its client waits no longer for headers than before. Only
streams pay for the callback: queued for every response, it cost a turn of the event
loop (a poll of the sockets) per request, as much as the write it saved.

Everything else is uvicorn's: the same head, byte for byte (status line, its date
header, the headers in order, ``connection: close`` when the connection will close,
chunked encoding when there is no Content-Length), the same checks of header names and
values, flow control, HEAD responses, and the same ``RuntimeError`` for a response that
does not match its Content-Length. Only building the head costs less: the date header is
laid out once per second, not per response, and a header line the app sent before is
taken as it was checked and laid out then.

Two additions: the ``sluicegate.http.abort`` extension (``http/responses.py::ABORT``), with
which a stream drops a client that stopped reading instead of leaving its response
unfinished; and ``sluicegate.http.whole`` (``WHOLE``), with which the gateway sends a
response with its body in one message: one call of ``send`` instead of two, the head laid
out from remembered lines (with Content-Length from the body) without going through the
headers for the ones that frame a response. Its bytes are the two messages' bytes, and
anything unusual (such a header, a 204, a response already started) goes the two
messages' way.

And two methods an app may call on the cycle itself, when it was handed the cycle's own
``receive`` and ``send`` (``direct_cycle``; the gateway, served by uvicorn): ``take_body``,
what ``receive`` answers at once, as bytes, and ``write_whole``, what a ``WHOLE`` message
writes. Neither is a coroutine: ``receive`` costs two coroutines and an Event's wait per
request, ``send`` two coroutines and a message. Each declines (``None``, ``False``) where
the coroutine has to wait or decide, and the app then awaits it as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from sluicegate.http.responses import ABORT, WHOLE

__all__ = ["OneWriteCycle", "direct_cycle"]

#: Bodies up to this size are copied behind their head; larger ones are written after it
#: in the same call (``writelines``) rather than copied.
_COPY_BYTES = 64 * 1024

#: uvicorn's server-wide headers (its date header, renewed every second as a new list),
#: laid out as bytes: ``(list, bytes)``, the list kept so that its id is not reused.
_defaults: tuple[list[tuple[bytes, bytes]], bytes] | None = None

#: Header names whose values change how the response is framed or the connection ends.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})

#: Header lines checked and laid out, by the app's ``(name, value)`` pair: responses
#: repeat the same few (their Content-Type, the lengths of bodies of a size), and two
#: regular expression searches and a format per header were most of building a head.
#: Beyond ``_LINES_KEPT`` entries the memory starts over; longer values (a Location with
#: an id in it) are laid out every time, so that unique values cost no memory.
_LINES: dict[tuple[bytes, bytes], bytes] = {}
_LINES_KEPT = 512
#: The lines of ``_LINES`` whose headers do not frame the response (``_plain_lines``).
_PLAIN_LINES: dict[tuple[bytes, bytes], bytes] = {}
_LINE_VALUE_BYTES = 64
#: The Content-Length lines of short bodies (most answers: an id, an offset, nothing),
#: laid out once; 16 KB. Longer bodies' lines are formatted each time.
_LENGTH_LINES = tuple(b"content-length: %d\r\n" % length for length in range(256))


def _checked_line(name: bytes, value: bytes) -> bytes:
    if HEADER_RE.search(name):
        raise RuntimeError("Invalid HTTP header name.")
    if HEADER_VALUE_RE.search(value):
        raise RuntimeError("Invalid HTTP header value.")
    return b"%s: %s\r\n" % (name.lower(), value)


def _rememberable(header: tuple[bytes, bytes]) -> bool:
    """Whether ``header`` can key the line caches: a short tuple of bytes (a list, or a
    bytearray in the pair, is not hashable; long values are seldom sent twice)."""
    if type(header) is not tuple:
        return False
    name, value = header
    return type(name) is bytes and type(value) is bytes and len(value) <= _LINE_VALUE_BYTES


def _remember(
    lines: dict[tuple[bytes, bytes], bytes], header: tuple[bytes, bytes], line: bytes
) -> None:
    """Keep ``line`` in ``lines`` if ``header`` can key it (bounded: full, it starts over)."""
    if _rememberable(header):
        if len(lines) >= _LINES_KEPT:
            lines.clear()
        lines[header] = line


def _line(header: tuple[bytes, bytes]) -> bytes:
    """``_checked_line`` for a header the app sends, remembered in ``_LINES`` if it can be."""
    line = _checked_line(*header)
    _remember(_LINES, header, line)
    return line


def _plain_lines(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """``headers`` as lines, or ``None`` if one of them frames the response."""
    found = []
    for header in headers:
        try:
            line = _PLAIN_LINES.get(header)
        except TypeError:  # a list, or a bytearray in the pair: never remembered
            line = None
        if line is None:
            try:
                line = _line(header)
            except RuntimeError:
                return None  # refused where uvicorn refuses it, once the response started
            if line[: len(header[0])] in _FRAMING:
                return None
            _remember(_PLAIN_LINES, header, line)
        found.append(line)
    return b"".join(found)


def _default_lines(defaults: list[tuple[bytes, bytes]]) -> bytes | None:
    """``defaults`` as header lines, remembered for as long as uvicorn keeps the list;
    ``None`` if one of them frames the response (then every header takes the long way)."""
    global _defaults
    known = _defaults
    if known is not None and known[0] is defaults:
        return known[1]
    if any(name.lower() in _FRAMING for name, _ in defaults):
        return None
    lines = b"".join([_checked_line(name, value) for name, value in defaults])
    _defaults = (defaults, lines)
    return lines


class OneWriteCycle(RequestResponseCycle):
    """See the module's docstring."""

    #: The status line and headers, not written yet.
    _head: bytes | None = None

    async def send(self, message: ASGISendEvent) -> None:
        kind = message["type"]
        if kind == WHOLE:
            await self._send_whole(message)
            return
        if kind == ABORT:
            # Before the drain below: the buffer that would have to drain is the reason.
            if not self.disconnected:
                self.disconnected = True  # nothing more is sent, and nothing is logged
                self.transport.abort()
            return
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{message['type']}'."
                )
            self.response_started = True
            self.waiting_for_100_continue = False
            status: int = message["status"]
            if self.access_log:
                self._log_access(status)
            self._head = self._head_bytes(status, message.get("headers", ()))
            if self.chunked_encoding is not False:
                # A stream (no Content-Length): its head goes with the first chunk if that
                # comes in this step of the app's task, else alone when the step ends.
                asyncio.get_running_loop().call_soon(self._write_head)
        elif not self.response_complete:
            if message["type"] != "http.response.body":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.body', but got '{message['type']}'."
                )
            body: bytes = message.get("body", b"")
            more_body: bool = message.get("more_body", False)
            if self.scope["method"] == "HEAD":
                self.expected_content_length = 0
                body = b""
            elif self.chunked_encoding:
                framed = [b"%x\r\n" % len(body), body, b"\r\n"] if body else []
                if not more_body:
                    framed.append(b"0\r\n\r\n")
                body = b"".join(framed)
            else:
                if len(body) > self.expected_content_length:
                    raise RuntimeError("Response content longer than Content-Length")
                self.expected_content_length -= len(body)
            self._write(body)
            if not more_body:
                if self.expected_content_length != 0:
                    raise RuntimeError("Response content shorter than Content-Length")
                self.response_complete = True
                self.message_event.set()
                if not self.keep_alive:
                    self.transport.close()
                self.on_response()
        else:
            raise RuntimeError(
                f"Unexpected ASGI message '{message['type']}' sent, "
                "after response already completed."
            )

    def _log_access(self, status: int) -> None:
        self.access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            get_client_addr(self.scope),
            self.scope["method"],
            get_path_with_query_string(self.scope),
            self.scope["http_version"],
            status,
        )

    async def _send_whole(self, message: Mapping[str, Any]) -> None:
        """A ``WHOLE`` message: the start and body messages' bytes, in one write."""
        status: int = message["status"]
        headers: list[tuple[bytes, bytes]] = message["headers"]
        body: bytes = message["body"]
        if self.write_whole(status, headers, body):
            return
        if status != 204:
            headers = [*headers, (b"content-length", b"%d" % len(body))]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    def write_whole(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
        """Write a ``WHOLE`` message's response now, if nothing in it needs ``send``'s path:
        False (nothing written) for a header that frames the response, a 204 or 304, a
        response started already, a client gone or a paused connection; the caller then
        sends the start and body messages, whose bytes these are.

        Its head is laid out straight from remembered lines, with no look for framing
        headers. Not a coroutine: the gateway calls it directly (``direct_cycle``).
        """
        # _default_lines' first test, inlined: the lines are nearly always remembered.
        known = _defaults
        if known is not None and known[0] is self.default_headers:
            defaults: bytes | None = known[1]
        else:
            defaults = _default_lines(self.default_headers)
        # A lone header (a JSON answer's Content-Type, most of them) from _PLAIN_LINES
        # without _plain_lines' call, list and join.
        try:
            lines = _PLAIN_LINES.get(headers[0]) if len(headers) == 1 else None
        except TypeError:  # a list, or a bytearray in the pair: never remembered
            lines = None
        if lines is None:
            lines = _plain_lines(headers)
        if (
            defaults is None
            or lines is None
            or status == 204
            or status == 304
            or self.response_started
            or self.disconnected
            or self.flow.write_paused
        ):
            return False
        self.response_started = True
        self.waiting_for_100_continue = False
        if self.access_log:
            self._log_access(status)
        self.chunked_encoding = False
        self.expected_content_length = 0
        size = len(body)
        head = b"".join(
            (
                STATUS_LINE[status],
                defaults,
                lines,
                _LENGTH_LINES[size] if size < 256 else b"content-length: %d\r\n" % size,
                b"" if self.keep_alive else b"connection: close\r\n",
                b"\r\n",
            )
        )
        # _write's, with nothing kept: the head and the body in one call.
        if self.scope["method"] == "HEAD":
            self.transport.write(head)
        elif size <= _COPY_BYTES:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()
        return True

    def take_body(self) -> bytes | None:
        """What ``receive`` would answer at once, as bytes rather than a message: the
        request's whole body, if all of it has arrived and nothing has received it yet.

        ``None`` where ``receive`` must be awaited: more body to come, a 100 Continue to
        send first, the body received already (the next message is the disconnect), the
        client gone or the response complete. Not a coroutine: the gateway calls it
        directly (``direct_cycle``), where ``receive`` is two coroutines and an Event's.
        """
        if (
            self.more_body
            or self.disconnected
            or self.response_complete
            or self.waiting_for_100_continue
            or not self.message_event.is_set()
        ):
            return None
        # What receive does before it takes the body: reading resumes (a large body
        # paused it), and the event is cleared for the message that comes next.
        if self.flow.read_paused:
            self.flow.resume_reading()
        self.message_event.clear()
        body = bytes(self.body)
        self.body = bytearray()
        return body

    def _head_bytes(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """The status line and headers, as uvicorn writes them; sets the framing state."""
        defaults = _default_lines(self.default_headers)
        content = [STATUS_LINE[status]]
        if defaults is None:
            headers = [*self.default_headers, *headers]
        else:
            content.append(defaults)
        has_connection_close = False
        lines = _LINES
        for header in headers:
            name, value = header
            # The dict's own lookup here, _line only when it misses: this runs per header.
            try:
                line = lines.get(header)
            except TypeError:  # a list, or a bytearray in the pair: never remembered
                line = None
            if line is None:
                line = _line(header)
            content.append(line)
            lower = line[: len(name)]
            if lower not in _FRAMING:
                continue
            if lower == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif lower == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif lower == b"connection":
                tokens = [token.lower().strip() for token in value.split(b",")]
                if b"close" in tokens:
                    self.keep_alive = False
                    has_connection_close = True
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status not in (204, 304)
        ):
            # Neither content-length nor transfer-encoding specified
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)

    def _write(self, data: bytes) -> None:
        """Write ``data``, behind the head if that is still kept."""
        head = self._head
        if head is None:
            if data:
                self.transport.write(data)
        elif len(data) <= _COPY_BYTES:
            self._head = None
            self.transport.write(head + data)
        else:
            self._head = None
            self.transport.writelines((head, data))

    def _write_head(self) -> None:
        """The head on its own: the app's step ended without a body."""
        head = self._head
        if head is not None:
            self._head = None
            if not self.disconnected and not self.transport.is_closing():
                self.transport.write(head)


def direct_cycle(receive: object, send: object) -> OneWriteCycle | None:
    """The ``OneWriteCycle`` whose own ``receive`` and ``send`` these are, else ``None``.

    An app handed a cycle's own methods (nothing wraps them) may call the cycle's
    ``take_body`` and ``write_whole`` instead: what ``receive`` and a ``WHOLE`` message
    do, without their coroutines and messages.
    """
    cycle = getattr(send, "__self__", None)
    if type(cycle) is OneWriteCycle and getattr(receive, "__self__", None) is cycle:
        return cycle
    return None
