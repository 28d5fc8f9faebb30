"""``HEAD`` is the ``GET`` answer without its body (RFC 9110 §9.3.2) on both servers, over
real sockets; refused (405, ``Allow: GET``) where a ``GET`` delivers events or streams,
so that a monitor's ``HEAD`` never consumes."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sluicegate.app import GatewayApp
from sluicegate.config import load_settings
from sluicegate.http.router import Route, Router
from tests.helpers import serving
from tests.raw_http import RawResponse, read_response

SERVERS = pytest.mark.parametrize("http2", [False, True], ids=["uvicorn", "hypercorn"])


async def _exchange(app: GatewayApp, http2: bool, *requests: bytes) -> list[RawResponse]:
    """The answers to ``requests``, sent one after another on one connection."""
    settings = load_settings(environ={}, overrides={"server": {"http2": http2}})
    async with serving(app, settings) as port:
        return await asyncio.to_thread(_send_all, port, requests)


def _send_all(port: int, requests: tuple[bytes, ...]) -> list[RawResponse]:
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for request in requests:
            sock.sendall(request)
            response = read_response(sock, head=request.startswith(b"HEAD "))
            assert response is not None
            answers.append(response)
        # A body sent after a HEAD's answer would be read here as this one's head.
        sock.sendall(_request("GET", "/healthz"))
        last = read_response(sock)
        assert last is not None
        assert last.status == 200
    return answers


def _request(method: str, path: str) -> bytes:
    return f"{method} {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode()


@SERVERS
@pytest.mark.parametrize("path", ["/healthz", "/admin/v1/topics", "/openapi/cloudevents.json"])
async def test_head_is_get_without_the_body(app: GatewayApp, http2: bool, path: str) -> None:
    # Then a GET on the same connection: the HEAD's answer left nothing behind to misread.
    head, get = await _exchange(app, http2, _request("HEAD", path), _request("GET", path))
    assert get.status == 200
    assert head.status == 200
    assert head.body == b""
    assert head.header("content-length") == str(len(get.body))
    assert head.header("content-type") == get.header("content-type")


@SERVERS
async def test_head_of_a_route_that_is_not_there_is_its_404_without_a_body(
    app: GatewayApp, http2: bool
) -> None:
    [head] = await _exchange(app, http2, _request("HEAD", "/v2/nowhere"))
    assert head.status == 404
    assert head.body == b""
    assert int(head.header("content-length") or 0) > 0


@SERVERS
@pytest.mark.parametrize(
    "path",
    [
        "/node-1/ce/consumers/g/instances/i/events",
        "/node-1/ce/consumers/g/instances/i/event",
        "/node-1/ce/consumers/g/instances/i/raw",
        "/ce/sse",
        "/admin/v1/topics/t/tail",
    ],
)
async def test_head_never_polls_or_streams(app: GatewayApp, http2: bool, path: str) -> None:
    [head] = await _exchange(app, http2, _request("HEAD", path))
    assert head.status == 405
    assert head.header("allow") == "GET"
    assert head.body == b""


async def _endpoint(request: object) -> object:
    raise AssertionError("not called")


def test_a_get_route_allows_head_unless_told_not_to() -> None:
    plain = Route("/a", _endpoint)  # type: ignore[arg-type]
    delivering = Route("/b", _endpoint, head=False)  # type: ignore[arg-type]
    posting = Route("/c", _endpoint, frozenset({"POST"}))  # type: ignore[arg-type]
    assert plain.allows == {"GET", "HEAD"}
    assert delivering.allows == {"GET"}
    assert posting.allows == {"POST"}
    router = Router([plain, delivering, posting])
    assert router.match("HEAD", "/a")[0] is plain
    for path in ("/b", "/c"):
        with pytest.raises(Exception, match="method HEAD is not allowed"):
            router.match("HEAD", path)
