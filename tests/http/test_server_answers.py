"""The answers the HTTP servers give by themselves (a body or head too late, a head too
large) are in the error format of the dialect the request's path belongs to, on uvicorn
and on Hypercorn alike, over real sockets; plain when the path belongs to no dialect or
is not known yet."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest

from sluicegate.app import GatewayApp
from sluicegate.config import Settings, load_settings
from sluicegate.http.server_answers import target_path
from tests.helpers import serving
from tests.raw_http import RawResponse, read_response

MAX_HEADER_BYTES = 4096
#: Seconds the servers wait here for a head or a body.
TIMEOUT = 0.3

Check = Callable[[dict[str, Any], int, str], None]


def records_v2(body: dict[str, Any], status: int, code: str) -> None:
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == status


def topics_v1(body: dict[str, Any], status: int, code: str) -> None:
    assert set(body) == {"message", "code"}
    assert body["code"] == code


def cloudevents(body: dict[str, Any], status: int, code: str) -> None:
    assert set(body) == {"status", "error", "message"}
    assert (body["status"], body["error"]) == (status, code)


def schema_registry(body: dict[str, Any], status: int, code: str) -> None:
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == status


def plain(body: dict[str, Any], status: int, code: str) -> None:
    assert set(body) == {"error", "message"}
    assert body["error"] == code


#: A path of each dialect family whose POST reads a body, and its error body's shape.
#: Topic admin's routes answer in the plain body of routes outside any dialect.
DIALECTS = [
    pytest.param("/v2/topics/t/records", records_v2, id="records_v2"),
    pytest.param("/api/event_streams/topics", topics_v1, id="topics_v1"),
    pytest.param("/ce/produce/event", cloudevents, id="cloudevents"),
    pytest.param("/subjects/s/versions", schema_registry, id="schema_registry"),
    pytest.param("/admin/v1/topics", plain, id="plain_route"),
]
#: The same, and a path that matches no dialect: a head too large never reaches a route.
PATHS = [*DIALECTS, pytest.param("/nowhere/at/all", plain, id="no_dialect")]
#: What each path's POST takes, when not JSON: the body must be waited for.
CONTENT_TYPES = {"/ce/produce/event": "application/cloudevents+json"}
SERVERS = pytest.mark.parametrize("http2", [False, True], ids=["uvicorn", "hypercorn"])


def server_settings(http2: bool) -> Settings:
    server = {
        "http2": http2,
        "max_header_bytes": MAX_HEADER_BYTES,
        "body_timeout": TIMEOUT,
        "header_timeout": TIMEOUT,
    }
    return load_settings(environ={}, overrides={"server": server})


async def answer_to(app: GatewayApp, http2: bool, data: bytes) -> RawResponse:
    """The answer to ``data`` on a new connection (which then stays silent), checked to
    close the connection."""
    async with serving(app, server_settings(http2)) as port:
        return await asyncio.to_thread(_exchange, port, data)


def _exchange(port: int, data: bytes) -> RawResponse:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        response = read_response(sock)
        assert response is not None
        assert sock.recv(1) == b""  # closed
    return response


def assert_answer(response: RawResponse, status: int, code: str, check: Check) -> None:
    assert response.status == status
    assert response.header("connection") == "close"
    assert response.header("content-length") == str(len(response.body))
    check(json.loads(response.body), status, code)


@SERVERS
@pytest.mark.parametrize(("path", "check"), DIALECTS)
async def test_a_body_too_late_is_408_in_its_dialect(
    app: GatewayApp, http2: bool, path: str, check: Check
) -> None:
    content_type = CONTENT_TYPES.get(path, "application/json")
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: {content_type}\r\n"
    data = head.encode() + b"content-length: 100\r\n\r\n{"
    response = await answer_to(app, http2, data)
    assert_answer(response, 408, "request_timeout", check)


@SERVERS
@pytest.mark.parametrize(("path", "check"), PATHS)
async def test_a_head_too_late_is_408_in_its_dialect(
    app: GatewayApp, http2: bool, path: str, check: Check
) -> None:
    response = await answer_to(app, http2, f"POST {path} HTTP/1.1\r\nhost: x\r\n".encode())
    assert_answer(response, 408, "request_timeout", check)


@SERVERS
@pytest.mark.parametrize(("path", "check"), PATHS)
async def test_a_request_target_too_long_is_414_in_its_dialect(
    app: GatewayApp, http2: bool, path: str, check: Check
) -> None:
    # Never ended: the path is known, the query not yet.
    data = f"GET {path}?q=".encode() + b"a" * MAX_HEADER_BYTES
    response = await answer_to(app, http2, data)
    assert_answer(response, 414, "uri_too_long", check)


@SERVERS
@pytest.mark.parametrize(("path", "check"), PATHS)
async def test_headers_too_large_are_431_in_their_dialect(
    app: GatewayApp, http2: bool, path: str, check: Check
) -> None:
    data = f"GET {path} HTTP/1.1\r\nhost: x\r\nx-big: ".encode() + b"a" * MAX_HEADER_BYTES
    response = await answer_to(app, http2, data)
    assert_answer(response, 431, "headers_too_large", check)


@pytest.mark.parametrize(("path", "check"), PATHS)
async def test_a_whole_head_too_large_is_answered_in_its_dialect_under_uvicorn(
    app: GatewayApp, path: str, check: Check
) -> None:
    # In one write, parsed whole: refused after the parser (h11 does not refuse it).
    data = f"GET {path} HTTP/1.1\r\nhost: x\r\nx-big: ".encode() + b"a" * MAX_HEADER_BYTES
    response = await answer_to(app, False, data + b"\r\n\r\n")
    assert_answer(response, 431, "headers_too_large", check)


@SERVERS
@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"POS", 408, "request_timeout"),
        (b"GET ", 408, "request_timeout"),
        (b"OPTIONS * HTTP/1.1\r\nhost: x\r\n", 408, "request_timeout"),
        (b"GET " + b"*" * (MAX_HEADER_BYTES + 1), 414, "uri_too_long"),
    ],
    ids=["method_only", "no_target_yet", "target_not_a_path", "long_target_not_a_path"],
)
async def test_without_a_path_the_answer_is_plain(
    app: GatewayApp, http2: bool, data: bytes, status: int, code: str
) -> None:
    response = await answer_to(app, http2, data)
    assert_answer(response, status, code, plain)


async def test_bytes_that_are_not_http_are_a_plain_400_under_uvicorn(app: GatewayApp) -> None:
    response = await answer_to(app, False, b"GET /v2/topics/t/records HTTP/1.1\r\n\x00\r\n\r\n")
    assert_answer(response, 400, "bad_request", plain)


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"/v2/topics/t/records?q=1", "/v2/topics/t/records"),
        (b"/v2/to", "/v2/to"),
        (b"/a%20b#frag", "/a b"),
        (b"http://host:8080/ce/produce/event?x", "/ce/produce/event"),
        (b"HTTPS://host/x", "/x"),
        (b"http://host", None),
        (b"*", None),
        (b"", None),
    ],
)
def test_target_path(target: bytes, path: str | None) -> None:
    assert target_path(target) == path
