"""The answers an HTTP server gives by itself, below any route: a 408 for a head or body
that comes too late, a 414 or 431 for a head over ``server.max_header_bytes``, a 400 for
bytes that are not HTTP.

Such a request never reaches the app, but when its path is known its client still
speaks a dialect and reads errors in that dialect's body. So the servers ask the app
(``AnswersErrors``, which ``GatewayApp`` is) for the answer, given the path or as much of
it as has arrived; an app that offers none, or a request whose path is unknown, gets the
plain ``{"error", "message"}`` body of routes outside any dialect. The servers add the
framing: Content-Length, and ``Connection: close`` since each of these answers ends the
connection.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from typing import Protocol, runtime_checkable

import msgspec

from sluicegate.errors import ClientError

__all__ = [
    "AnswersErrors",
    "ErrorAnswer",
    "ErrorAnswerer",
    "answer_bytes",
    "closing_headers",
    "error_answerer",
    "plain_answer",
    "target_path",
]

#: An error answer: its status, headers (without Content-Length) and body.
ErrorAnswer = tuple[int, list[tuple[bytes, bytes]], bytes]
#: Gives the answer to an error, for the request's path when it is known.
ErrorAnswerer = Callable[[str | None, ClientError], ErrorAnswer]

_encode = msgspec.json.Encoder().encode


@runtime_checkable
class AnswersErrors(Protocol):
    """An app that renders the servers' own error answers (``GatewayApp``)."""

    def error_answer(self, path: str | None, exc: ClientError) -> ErrorAnswer:
        """The answer to ``exc`` for a request to ``path`` (None: unknown); never raises."""
        ...


def plain_answer(path: str | None, exc: ClientError) -> ErrorAnswer:
    """The plain ``{"error", "message"}`` body, whatever the path."""
    body = _encode({"error": exc.code, "message": exc.message})
    return exc.status, [(b"content-type", b"application/json")], body


def error_answerer(app: object) -> ErrorAnswerer:
    """``app``'s own error answers when it offers them, else the plain body."""
    return app.error_answer if isinstance(app, AnswersErrors) else plain_answer


def closing_headers(answer: ErrorAnswer) -> list[tuple[bytes, bytes]]:
    """``answer``'s headers with its Content-Length, closing the connection."""
    _, headers, body = answer
    return [*headers, (b"content-length", b"%d" % len(body)), (b"connection", b"close")]


def answer_bytes(answer: ErrorAnswer) -> bytes:
    """``answer`` as a whole HTTP/1.1 response, closing the connection."""
    status = answer[0]
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())]
    lines += [name + b": " + value + b"\r\n" for name, value in closing_headers(answer)]
    return b"".join([*lines, b"\r\n", answer[2]])


def target_path(target: bytes) -> str | None:
    """The percent-decoded path of a request target, or of as much of one as has arrived
    (a 414's target never arrives whole); None when no path is known yet.

    Origin-form (``/path?query``) is cut at its query, absolute-form
    (``http://host/path``) is taken past its authority.
    """
    if target[:8].lower().startswith((b"http://", b"https://")):
        slash = target.find(b"/", target.index(b"//") + 2)
        target = target[slash:] if slash >= 0 else b""
    if not target.startswith(b"/"):
        return None
    path = target.split(b"?", 1)[0].split(b"#", 1)[0]
    # Bytes, not text yet: latin-1 keeps each one, unquote then decodes as uvicorn does.
    return urllib.parse.unquote(path.decode("latin-1"))
