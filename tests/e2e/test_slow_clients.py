"""Slow and broken clients over real sockets: the server keeps serving everyone else,
cuts them off after the ``[server]`` timeouts, and its memory and descriptors stay bounded.

The timeouts are set to a second or two here; their defaults are in ``config.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.conftest import BACKENDS
from tests.helpers import backend_env
from tests.raw_http import exchange, read_response, request_bytes

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
KEEP_ALIVE = 1.0
MAX_HEADER_BYTES = 8192
#: Slack for a loaded machine: a deadline is met if the cut comes within this much.
SLACK = 2.5
PRODUCE = b'{"value": {"type": "text", "data": "v"}}'
JSON = [(b"content-type", b"application/json")]


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, http_server: str
) -> Iterator[ServerProcess]:
    # Taking ``http_server`` makes a server per HTTP server, not one shared by both.
    env = {
        **backend_env(request, request.param),
        "SLUICEGATE_SERVER__HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "SLUICEGATE_SERVER__BODY_TIMEOUT": str(BODY_TIMEOUT),
        "SLUICEGATE_SERVER__KEEP_ALIVE_TIMEOUT": str(KEEP_ALIVE),
        "SLUICEGATE_SERVER__MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
    }
    with serve_in_subprocess(tmp_path_factory.mktemp("slow"), env=env) as server:
        yield server


def address(server: ServerProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(address(server), timeout=HEADER_TIMEOUT + BODY_TIMEOUT + 10)


def assert_served(server: ServerProcess) -> None:
    """Another client is served at once, whatever the slow ones do."""
    started = time.monotonic()
    data = request_bytes("POST", b"/v2/topics/others/records", JSON, PRODUCE)
    response = exchange(address(server), data, timeout=5)
    assert response is not None
    assert response.status == 200, response
    assert time.monotonic() - started < 1.0


def assert_closed(sock: socket.socket) -> None:
    """The server has closed ``sock``: nothing more to read."""
    with contextlib.suppress(ConnectionResetError):
        assert sock.recv(1) == b""


def error(body: bytes) -> dict[str, str]:
    document: dict[str, str] = json.loads(body)
    assert set(document) == {"error", "message"}
    return document


def records_v2_error(body: bytes) -> dict[str, object]:
    """A records v2 error body: what the server's own answers on its paths are too."""
    document: dict[str, object] = json.loads(body)
    assert set(document) == {"error_code", "message"}
    return document


def test_headers_that_stall_are_answered_408_and_closed(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /v2/topics/t/records HTTP/1.1\r\nhost: x\r\ncontent-")
        started = time.monotonic()
        assert_served(server)
        response = read_response(sock)
        elapsed = time.monotonic() - started
        assert response is not None
        assert response.status == 408
        assert response.header("connection") == "close"
        assert records_v2_error(response.body)["error_code"] == 408
        assert HEADER_TIMEOUT * 0.9 <= elapsed < HEADER_TIMEOUT + SLACK
        assert_closed(sock)


def test_headers_sent_a_byte_at_a_time_do_not_move_the_deadline(server: ServerProcess) -> None:
    head = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: " + b"a" * 100
    with connect(server) as sock:
        started = time.monotonic()
        answered = None
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.05)
            if time.monotonic() - started > HEADER_TIMEOUT + SLACK:
                break
        answered = read_response(sock)
        assert answered is not None
        assert answered.status == 408
        assert time.monotonic() - started < HEADER_TIMEOUT + SLACK


def test_a_body_that_trickles_is_cut_off_after_the_body_timeout(server: ServerProcess) -> None:
    head = request_bytes("POST", b"/v2/topics/trickle/records", JSON)[:-2]
    with connect(server) as sock:
        sock.sendall(head + b"content-length: %d\r\n\r\n" % len(PRODUCE))
        started = time.monotonic()
        for byte in PRODUCE:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if time.monotonic() - started > BODY_TIMEOUT + 0.5:
                break
            time.sleep(1.0)  # one byte a second
        assert_served(server)
        response = read_response(sock)
        elapsed = time.monotonic() - started
        assert response is not None
        assert response.status == 408
        assert "body did not arrive within 2 s" in str(records_v2_error(response.body)["message"])
        assert BODY_TIMEOUT * 0.9 <= elapsed < BODY_TIMEOUT + SLACK
        assert_closed(sock)
    # Nothing of the cut request was stored.
    check = request_bytes("GET", b"/admin/v1/topics/trickle", [])
    answer = exchange(address(server), check)
    assert answer is not None
    assert answer.status == 404


def test_a_slow_body_within_the_timeout_is_served(server: ServerProcess) -> None:
    head = request_bytes("POST", b"/v2/topics/slow-ok/records", JSON)[:-2]
    with connect(server) as sock:
        sock.sendall(head + b"content-length: %d\r\n\r\n" % len(PRODUCE))
        for piece in (PRODUCE[:10], PRODUCE[10:20], PRODUCE[20:]):
            time.sleep(BODY_TIMEOUT / 4)
            sock.sendall(piece)
        response = read_response(sock)
        assert response is not None
        assert response.status == 200, response


def test_a_body_still_arriving_after_an_early_answer_is_cut_off(server: ServerProcess) -> None:
    head = request_bytes("POST", b"/v2/topics/early/records", [(b"content-type", b"text/plain")])
    with connect(server) as sock:
        sock.sendall(head[:-2] + b"content-length: 1000\r\n\r\n" + b"x")
        response = read_response(sock)
        assert response is not None
        assert response.status == 415  # answered before the body was read
        started = time.monotonic()
        sock.sendall(b"x")
        sock.settimeout(BODY_TIMEOUT + SLACK + 5)
        assert_closed(sock)
        assert time.monotonic() - started < BODY_TIMEOUT + SLACK


def test_a_connection_that_sends_nothing_is_closed_quietly(server: ServerProcess) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        assert read_response(sock) is None
        assert HEADER_TIMEOUT * 0.9 <= time.monotonic() - started < HEADER_TIMEOUT + SLACK


@pytest.mark.parametrize("answered_first", [False, True])
def test_blank_lines_do_not_keep_a_connection_open(
    server: ServerProcess, answered_first: bool, http_server: str
) -> None:
    with connect(server) as sock:
        if answered_first:
            sock.sendall(request_bytes("GET", b"/healthz", []))
            assert read_response(sock) is not None
        started = time.monotonic()
        while time.monotonic() - started < HEADER_TIMEOUT + SLACK:
            try:
                sock.sendall(b"\r\n")  # a request has not begun: it may never
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.2)
        sock.settimeout(SLACK)
        response = read_response(sock)
        if http_server == "hypercorn":
            # h11 takes a run of blank lines for a bad request line: 400, then closed.
            assert response is None or response.status == 400, response
        else:
            assert response is None
        assert time.monotonic() - started < HEADER_TIMEOUT + KEEP_ALIVE + SLACK


def test_an_idle_keep_alive_connection_is_closed(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(request_bytes("GET", b"/healthz", []))
        response = read_response(sock)
        assert response is not None
        assert response.status == 200
        started = time.monotonic()
        assert read_response(sock) is None
        assert time.monotonic() - started < KEEP_ALIVE + SLACK


def test_keep_alive_counts_from_the_last_response(server: ServerProcess) -> None:
    # Requests closer together than the keep-alive timeout keep the connection open past
    # it, however long that goes on; once they stop, it closes the timeout after the last.
    with connect(server) as sock:
        first = time.monotonic()
        while time.monotonic() - first < 2.5 * KEEP_ALIVE:
            sock.sendall(request_bytes("GET", b"/healthz", []))
            response = read_response(sock)
            assert response is not None
            assert response.status == 200
            time.sleep(KEEP_ALIVE * 0.4)
        sock.sendall(request_bytes("GET", b"/healthz", []))
        assert read_response(sock) is not None
        last = time.monotonic()
        assert read_response(sock) is None
        assert KEEP_ALIVE * 0.9 <= time.monotonic() - last < KEEP_ALIVE + SLACK


@pytest.mark.parametrize(
    ("head", "status", "code"),
    [
        (
            b"GET /healthz?" + b"a" * MAX_HEADER_BYTES + b" HTTP/1.1\r\nhost: x\r\n",
            414,
            "uri_too_long",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * MAX_HEADER_BYTES,
            431,
            "headers_too_large",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + b"x-many: a\r\n" * (MAX_HEADER_BYTES // 10),
            431,
            "headers_too_large",
        ),
    ],
)
@pytest.mark.parametrize("whole", [False, True], ids=["arriving", "whole"])
def test_a_head_past_the_limit_is_refused(
    server: ServerProcess, head: bytes, status: int, code: str, whole: bool, http_server: str
) -> None:
    # Never finished: the limit must hold while the head is still arriving. Whole, in one
    # write: it must hold too (it was counted only over reads that left a head unfinished).
    if whole:
        head += b"\r\n" if head.endswith(b"\r\n") else b"\r\n\r\n"
    with connect(server) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        response = read_response(sock)
        assert response is not None
        assert response.status == status
        assert response.header("connection") == "close"
        assert error(response.body)["error"] == code
    assert_served(server)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


IDLE_CONNECTIONS = 1000


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="reads /proc")
def test_a_thousand_idle_connections(server: ServerProcess) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = IDLE_CONNECTIONS + 256
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    assert_served(server)
    rss_before, fds_before = _rss_kib(server.pid), _descriptors(server.pid)
    sockets = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            sockets.append(connect(server))
        started = time.monotonic()
        # The server holds them all and still serves others.
        assert_served(server)
        held = _descriptors(server.pid) - fds_before
        grown = _rss_kib(server.pid) - rss_before
        print(f"{IDLE_CONNECTIONS} idle connections: {held} descriptors, RSS +{grown} KiB")
        assert held >= IDLE_CONNECTIONS * 0.9, held
        assert grown < 40 * 1024, f"{grown} KiB for {IDLE_CONNECTIONS} idle connections"
        # Then it closes every one of them after the header timeout.
        for sock in sockets:
            sock.settimeout(max(0.1, started + HEADER_TIMEOUT + SLACK - time.monotonic()))
            assert read_response(sock) is None
        assert time.monotonic() - started < HEADER_TIMEOUT + SLACK + 1
    finally:
        for sock in sockets:
            sock.close()
    deadline = time.monotonic() + 5
    while _descriptors(server.pid) > fds_before + 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _descriptors(server.pid) <= fds_before + 5
    assert_served(server)
