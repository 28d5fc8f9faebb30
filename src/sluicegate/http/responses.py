"""Responses: a status, headers and a body, sent in two ASGI messages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from sluicegate.http.types import Message, Send

__all__ = ["ABORT", "JSON", "WHOLE", "Response", "StreamingResponse", "json_response"]

JSON = b"application/json"
#: The ASGI extension (in ``scope["extensions"]`` where the server offers it) and the
#: message type an app sends to drop a connection whose response it cannot finish: a
#: stream whose client stopped reading. uvicorn would otherwise log the response left
#: unfinished as the app's error and wait for the full buffer to drain before closing.
ABORT = "sluicegate.http.abort"
#: The ASGI extension and message type with which an app sends a whole response in one
#: message: ``status``, ``headers`` without Content-Length (the server adds the body's,
#: except on a 204, as ``Response.start_message`` does) and ``body``. The same bytes as
#: the start and body messages; one call of the server's ``send`` instead of two, and a
#: head laid out without looking for the headers that frame a response.
WHOLE = "sluicegate.http.whole"
_encode = msgspec.json.Encoder().encode


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(
        self,
        body: bytes = b"",
        status: int = 200,
        *,
        content_type: bytes | None = JSON,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.body = body
        self.status = status
        self.headers = headers if headers is not None else []
        if content_type is not None and status != 204:
            self.headers.append((b"content-type", content_type))

    def whole_message(self) -> Message:
        """The response as one ``WHOLE`` message, for a server that offers the extension."""
        return {"type": WHOLE, "status": self.status, "headers": self.headers, "body": self.body}

    def start_message(self) -> Message:
        """The ``http.response.start`` message; ``http.response.body`` carries ``body``."""
        headers = self.headers
        if self.status != 204:
            headers = [*headers, (b"content-length", str(len(self.body)).encode())]
        return {"type": "http.response.start", "status": self.status, "headers": headers}

    async def __call__(self, send: Send) -> None:
        await send(self.start_message())
        await send({"type": "http.response.body", "body": self.body})


class StreamingResponse(Response):
    """A response written over time by ``write(send, start)`` (no ``Content-Length``:
    chunked on HTTP/1.1).

    ``write`` sends ``start`` (the start message) and then ``http.response.body``
    messages with ``more_body``, and ends the body itself. It owns whatever the endpoint
    set up for it, and frees it even when the client is gone before the first message;
    it handles every error on its own, since a status can no longer be told.
    """

    __slots__ = ("_write",)

    def __init__(
        self,
        write: Callable[[Send, Message], Awaitable[None]],
        status: int = 200,
        *,
        content_type: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(b"", status, content_type=content_type, headers=headers)
        self._write = write

    def start_message(self) -> Message:
        return {"type": "http.response.start", "status": self.status, "headers": self.headers}

    async def __call__(self, send: Send) -> None:
        await self._write(send, self.start_message())


def json_response(
    content: Any,
    status: int = 200,
    *,
    content_type: bytes = JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Response:
    """Encode ``content`` (Structs, dicts, lists...) with msgspec."""
    return Response(_encode(content), status, content_type=content_type, headers=headers)
