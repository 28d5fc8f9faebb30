"""A small HTTP/1.1 client over a plain socket, for requests no well-behaved client sends.

httpx (and any client library) normalises what the fuzz suite needs to get wrong: it
encodes header values, sets Content-Length from the body, refuses non-ASCII in a path.
Here a request is the bytes written to the socket, and a response is parsed just enough
to check it: status, headers, a body framed by Content-Length, chunks, or the close (an
event stream's body is what came with its head: it need not end).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

__all__ = ["RawResponse", "exchange", "read_response", "request_bytes"]

#: Seconds a test waits for the server's answer before calling it missing.
DEFAULT_TIMEOUT = 15.0


@dataclass(frozen=True)
class RawResponse:
    status: int
    #: (lower-case name, value) as received, repeated headers kept.
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower case), or ``None``."""
        return next((value for key, value in self.headers if key == name), None)


def request_bytes(
    method: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes | None = None,
    *,
    content_length: bool = True,
) -> bytes:
    """One request on the wire; ``Content-Length`` added for a body unless told not to."""
    lines = [method.encode("ascii") + b" " + target + b" HTTP/1.1", b"host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers]
    if body is not None and content_length:
        lines.append(b"content-length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def exchange(
    address: tuple[str, int],
    data: bytes,
    *,
    head: bool = False,
    half_close: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> RawResponse | None:
    """Send ``data`` on a new connection and read one response; ``None`` if none came.

    ``half_close`` shuts the sending side after ``data``: the server sees the client
    stop in the middle of whatever it sent. A server may answer and close before all of
    ``data`` is written (a request it cannot parse): the answer is still read.
    """
    with socket.create_connection(address, timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(sock, head=head)


def _read_more(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def read_response(sock: socket.socket, *, head: bool = False) -> RawResponse | None:
    """One response from ``sock``; ``None`` if the connection closed before one began.

    Raises ``TimeoutError`` if the server keeps the connection open without answering,
    and ``ValueError`` if what it sends is not an HTTP/1.1 response.
    """
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = _read_more(sock)
        if not chunk:
            if not buffer:
                return None
            raise ValueError(f"connection closed inside the response head: {buffer!r}")
        buffer += chunk
    head_bytes, _, rest = buffer.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    version, status, *_ = status_line.split(" ", 2)
    if version != "HTTP/1.1":
        raise ValueError(f"not an HTTP/1.1 response: {status_line!r}")
    headers = []
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    response = RawResponse(int(status), headers, b"")
    if head or response.status in (204, 304):
        return response
    if response.status == 200 and (response.header("content-type") or "").startswith(
        "text/event-stream"
    ):
        # A stream (Server-Sent Events) need not end: what came with its head is its body.
        return RawResponse(response.status, headers, rest)
    length = response.header("content-length")
    if length is not None:
        while len(rest) < int(length):
            chunk = _read_more(sock)
            if not chunk:
                raise ValueError("connection closed inside the response body")
            rest += chunk
        return RawResponse(response.status, headers, rest[: int(length)])
    if response.header("transfer-encoding") == "chunked":
        return RawResponse(response.status, headers, _dechunk(sock, rest))
    while chunk := _read_more(sock):
        rest += chunk
    return RawResponse(response.status, headers, rest)


def _dechunk(sock: socket.socket, data: bytes) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in data:
            data += _read_more(sock) or _closed()
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(data) < size + 2:
            data += _read_more(sock) or _closed()
        if size == 0:
            return body
        body, data = body + data[:size], data[size + 2 :]


def _closed() -> bytes:
    raise ValueError("connection closed inside a chunked response body")
