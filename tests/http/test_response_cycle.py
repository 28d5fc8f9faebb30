"""Each response in one write: the protocol sluicegate serves with, fed in memory.

The head must be the one uvicorn's own cycle writes, byte for byte; only the number of
writes changes. A stream that waits before its first chunk still gets its head at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from sluicegate.config import load_settings
from sluicegate.http.response_cycle import OneWriteCycle, direct_cycle
from sluicegate.http.responses import ABORT, WHOLE
from sluicegate.http.servers.uvicorn import uvicorn_config
from sluicegate.http.types import Receive, Scope, Send

App = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Transport(asyncio.Transport):
    """Records every write call; what a socket would send, call by call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        #: ``writelines`` calls: one system call each (uvloop gathers them in one writev).
        self.gathered: list[list[bytes]] = []
        #: Every byte written, in order.
        self.sent: list[bytes] = []
        self.closed = False
        self.aborted = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        self.sent.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.gathered.append(list(list_of_data))
        self.sent.extend(self.gathered[-1])

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def _protocol(app: App, *, ours: bool = True) -> tuple[asyncio.Protocol, _Transport]:
    config = uvicorn_config(app, load_settings(environ={}))
    config.load()
    cls = config.http_protocol_class if ours else HttpToolsProtocol
    protocol = cls(config=config, server_state=ServerState(), app_state={})  # type: ignore[call-arg]
    transport = _Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def _served(app: App, request: bytes, *, ours: bool = True) -> _Transport:
    protocol, transport = _protocol(app, ours=ours)
    protocol.data_received(request)
    for _ in range(20):
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return transport


def _answer(status: int, headers: list[tuple[bytes, bytes]], *chunks: bytes) -> App:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for index, chunk in enumerate(chunks):
            more = index < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    return app


JSON_2 = [(b"content-type", b"application/json"), (b"content-length", b"2")]
GET = b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n"
HEAD = b"HEAD /x HTTP/1.1\r\nhost: a\r\n\r\n"
CLOSE = b"GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n"
HTTP10 = b"GET /x HTTP/1.0\r\nhost: a\r\n\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "app"),
    [
        (GET, _answer(200, JSON_2, b"{}")),
        (GET, _answer(404, [(b"Content-Length", b"5"), (b"X-Thing", b"a b")], b"nope!")),
        (GET, _answer(204, [], b"")),
        (GET, _answer(200, [(b"content-type", b"text/plain")], b"chunked ", b"body")),
        (GET, _answer(200, [(b"transfer-encoding", b"chunked")], b"a", b"")),
        (GET, _answer(200, [*JSON_2, (b"connection", b"Keep-Alive, close")], b"ok")),
        (HEAD, _answer(200, [(b"content-length", b"10")], b"")),
        (CLOSE, _answer(200, [(b"content-length", b"2")], b"ok")),
        (HTTP10, _answer(200, [(b"content-length", b"2")], b"ok")),
        (GET, _answer(200, [(b"content-length", str(100_000).encode())], b"x" * 100_000)),
    ],
)
async def test_the_bytes_are_uvicorns(request_bytes: bytes, app: App) -> None:
    ours = await _served(app, request_bytes)
    theirs = await _served(app, request_bytes, ours=False)
    # Dates agree unless a second turned between the two: compare without them.
    assert _dateless(b"".join(ours.sent)) == _dateless(b"".join(theirs.sent))
    assert ours.closed == theirs.closed


def _dateless(data: bytes) -> bytes:
    start = data.find(b"date: ")
    return data if start < 0 else data[:start] + data[data.index(b"\r\n", start) + 2 :]


async def test_a_response_is_one_write() -> None:
    app = _answer(200, [(b"content-length", b"7")], b'{"a":1}')
    transport = await _served(app, GET + GET)  # pipelined: each response on its own
    assert len(transport.writes) == 2
    for write in transport.writes:
        assert write.startswith(b"HTTP/1.1 200 OK\r\n")
        assert write.endswith(b'\r\n\r\n{"a":1}')


async def test_a_large_body_follows_its_head_in_the_same_call() -> None:
    body = b"x" * 200_000
    transport = await _served(_answer(200, [(b"content-length", b"200000")], body), GET)
    assert transport.writes == []
    [[head, written]] = transport.gathered
    assert head.endswith(b"content-length: 200000\r\n\r\n")
    assert written is body


async def test_a_stream_gets_its_head_before_its_first_chunk() -> None:
    first_chunk = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await first_chunk.wait()
        await send({"type": "http.response.body", "body": b"event", "more_body": False})

    protocol, transport = _protocol(app)
    protocol.data_received(GET)
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"transfer-encoding: chunked\r\n\r\n")
    first_chunk.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert transport.writes[1:] == [b"5\r\nevent\r\n0\r\n\r\n"]
    protocol.connection_lost(None)


async def test_the_date_header_is_uvicorns_current_one() -> None:
    app = _answer(200, [(b"content-length", b"2")], b"ok")
    protocol, transport = _protocol(app)
    state: ServerState = protocol.server_state  # type: ignore[attr-defined]
    for date in (b"Mon, 01 Jan 2024 00:00:00 GMT", b"Mon, 01 Jan 2024 00:00:01 GMT"):
        # uvicorn's server renews the list every second; each response takes the current one.
        state.default_headers = [(b"date", date)]
        protocol.data_received(GET)
        for _ in range(10):
            await asyncio.sleep(0)
        assert b"\r\ndate: " + date + b"\r\n" in transport.writes[-1]
    protocol.connection_lost(None)


@pytest.mark.parametrize(
    "app",
    [
        _answer(200, [(b"bad name", b"v")], b""),
        _answer(200, [(b"x", b"split\r\ninjected: 1")], b""),
        _answer(200, [(b"content-length", b"3")], b"a"),
    ],
    ids=["header name", "header value", "body shorter than its length"],
)
async def test_broken_responses_go_as_with_uvicorn(app: App) -> None:
    # uvicorn refuses the header (nothing written), or writes the short body; then it
    # logs the app's error and closes the connection.
    ours = await _served(app, GET)
    theirs = await _served(app, GET, ours=False)
    assert _dateless(b"".join(ours.sent)) == _dateless(b"".join(theirs.sent))
    assert ours.closed
    assert theirs.closed


@pytest.mark.parametrize(
    "headers",
    [
        [(b"Content-Type", b"application/json"), (b"content-length", b"2")],
        [[b"content-type", b"application/json"], [b"content-length", b"2"]],
        [(b"content-type", bytearray(b"application/json")), (b"content-length", b"2")],
        [(b"location", b"/x/" + b"y" * 200), (b"content-length", b"2")],
        [(b"content-length", b"2"), (b"connection", b"close")],
    ],
    ids=["tuples", "lists", "a bytearray", "a long value", "connection close"],
)
async def test_a_head_sent_again_is_the_same_head(headers: list[Any]) -> None:
    # The second response takes its header lines as the first laid them out (or lays
    # them out again where they cannot be remembered): the same bytes as uvicorn's.
    app = _answer(200, headers, b"{}")
    theirs = await _served(app, GET, ours=False)
    for _ in range(2):
        ours = await _served(app, GET)
        assert _dateless(b"".join(ours.sent)) == _dateless(b"".join(theirs.sent))
        assert ours.closed == theirs.closed


async def test_a_refused_header_is_refused_every_time() -> None:
    # A header that fails uvicorn's checks is never remembered as a laid-out line.
    app = _answer(200, [(b"x", b"split\r\ninjected: 1")], b"")
    for _ in range(2):
        ours = await _served(app, GET)
        assert ours.sent == []
        assert ours.closed


def _whole(status: int, headers: list[Any], body: bytes) -> App:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        assert WHOLE in scope["extensions"]
        await send({"type": WHOLE, "status": status, "headers": headers, "body": body})

    return app


def _two(status: int, headers: list[Any], body: bytes) -> App:
    """What ``_whole`` stands for: Content-Length added, except on a 204."""
    length = [] if status == 204 else [(b"content-length", str(len(body)).encode())]
    return _answer(status, [*headers, *length], body)


JSON = (b"content-type", b"application/json")


#: Whole responses, each with the request it answers: plain, framed by the app, refused.
WHOLE_CASES = [
    (GET, 200, [JSON], b'{"message_id":"BAI"}'),
    (GET, 200, [JSON, (b"x-same", b"again")], b"{}"),
    (GET, 201, [JSON, (b"Location", b"/x/1")], b"{}"),
    (GET, 429, [JSON, (b"retry-after", b"1")], b"{}"),
    (GET, 200, [], b""),
    (GET, 204, [], b""),
    (GET, 304, [JSON], b""),
    (HEAD, 200, [JSON], b'{"a":1}'),
    (CLOSE, 200, [JSON], b"ok"),
    (HTTP10, 200, [JSON], b"ok"),
    (GET, 200, [JSON, (b"connection", b"close")], b"ok"),
    (GET, 200, [[b"content-type", b"text/plain"]], b"ok"),
    (GET, 200, [(b"content-type", bytearray(b"text/plain"))], b"ok"),
    (GET, 200, [(b"connection", b"close")], b"ok"),
    (GET, 200, [JSON], b"x" * 255),
    (GET, 200, [JSON], b"x" * 256),
    (GET, 200, [JSON], b"x" * 100_000),
    (GET, 200, [(b"x", b"split\r\ninjected: 1")], b""),
    (GET, 200, [(b"bad name", b"v")], b"{}"),
]


@pytest.mark.parametrize(("request_bytes", "status", "headers", "body"), WHOLE_CASES)
async def test_a_whole_response_is_the_start_and_body_messages(
    request_bytes: bytes, status: int, headers: list[Any], body: bytes
) -> None:
    # Byte for byte what uvicorn writes for the two messages, the connection left as it
    # leaves it; a refused header refused as the start message's would be.
    two = await _served(_two(status, headers, body), request_bytes)
    theirs = await _served(_two(status, headers, body), request_bytes, ours=False)
    for _ in range(2):  # the second time from the lines remembered the first
        whole = await _served(_whole(status, headers, body), request_bytes)
        assert _dateless(b"".join(whole.sent)) == _dateless(b"".join(theirs.sent))
        assert whole.closed == theirs.closed
        assert (len(whole.writes), len(whole.gathered)) == (len(two.writes), len(two.gathered))


async def test_a_whole_response_is_one_write() -> None:
    transport = await _served(_whole(200, [JSON], b"{}"), GET)
    assert len(transport.writes) == 1
    assert transport.writes[0].endswith(b"content-length: 2\r\n\r\n{}")


async def test_a_whole_response_after_a_start_is_a_second_start() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [JSON]})
        await send({"type": WHOLE, "status": 200, "headers": [JSON], "body": b"{}"})

    async def twice(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [JSON]})
        await send({"type": "http.response.start", "status": 200, "headers": [JSON]})

    ours = await _served(app, GET)
    two = await _served(twice, GET)
    assert _dateless(b"".join(ours.sent)) == _dateless(b"".join(two.sent))
    assert ours.closed
    assert two.closed


async def test_a_body_longer_than_its_length_is_not_written() -> None:
    # uvicorn wrote the head before it found the body too long; here the head waits for
    # the body, so nothing goes out. The connection closes either way.
    app = _answer(200, [(b"content-length", b"3")], b"toolong")
    ours = await _served(app, GET)
    theirs = await _served(app, GET, ours=False)
    assert ours.writes == []
    assert ours.closed
    assert len(theirs.writes) == 1
    assert theirs.writes[0].endswith(b"\r\n\r\n")
    assert theirs.closed


async def test_a_response_with_a_length_waits_for_its_body() -> None:
    body_ready = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await body_ready.wait()
        await send({"type": "http.response.body", "body": b"ok"})

    protocol, transport = _protocol(app)
    protocol.data_received(GET)
    for _ in range(10):
        await asyncio.sleep(0)
    assert transport.writes == []
    body_ready.set()
    for _ in range(10):
        await asyncio.sleep(0)
    [write] = transport.writes
    assert write.startswith(b"HTTP/1.1 200 OK\r\n")
    assert write.endswith(b"content-length: 2\r\n\r\nok")
    protocol.connection_lost(None)


async def test_abort_drops_the_connection_and_nothing_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        assert ABORT in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"event", "more_body": True})
        await send({"type": ABORT})
        await send({"type": "http.response.body", "body": b"more", "more_body": True})

    transport = await _served(app, GET)
    assert transport.aborted
    assert b"".join(transport.sent).endswith(b"5\r\nevent\r\n")  # nothing after the abort
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def _direct(status: int, headers: list[Any], body: bytes) -> App:
    """``_whole``, written to the cycle itself, as the gateway does; the two messages
    where ``write_whole`` declines."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        cycle = direct_cycle(receive, send)
        assert cycle is not None
        if not cycle.write_whole(status, headers, body):
            await _two(status, headers, body)(scope, _nothing_more, send)

    return app


async def _nothing_more() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


@pytest.mark.parametrize(("request_bytes", "status", "headers", "body"), WHOLE_CASES)
async def test_a_response_written_to_the_cycle_is_the_start_and_body_messages(
    request_bytes: bytes, status: int, headers: list[Any], body: bytes
) -> None:
    theirs = await _served(_two(status, headers, body), request_bytes, ours=False)
    for _ in range(2):
        direct = await _served(_direct(status, headers, body), request_bytes)
        assert _dateless(b"".join(direct.sent)) == _dateless(b"".join(theirs.sent))
        assert direct.closed == theirs.closed


async def test_a_response_started_already_is_not_written_whole() -> None:
    declined = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        cycle = direct_cycle(receive, send)
        assert cycle is not None
        await send({"type": "http.response.start", "status": 200, "headers": [JSON]})
        declined.append(not cycle.write_whole(200, [JSON], b"{}"))
        await send({"type": "http.response.body", "body": b""})

    transport = await _served(app, GET)
    assert declined == [True]
    assert b"".join(transport.sent).endswith(b"transfer-encoding: chunked\r\n\r\n0\r\n\r\n")


POST = b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello"


def _taking(taken: list[bytes | None], times: int = 2) -> App:
    """Takes the body from the cycle ``times`` times, then answers."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        cycle = direct_cycle(receive, send)
        assert cycle is not None
        taken.extend(cycle.take_body() for _ in range(times))
        await send({"type": WHOLE, "status": 200, "headers": [], "body": b""})

    return app


async def test_a_whole_body_is_taken_once() -> None:
    taken: list[bytes | None] = []
    transport = await _served(_taking(taken), POST + POST)  # pipelined: one body each
    assert taken == [b"hello", None, b"hello", None]
    assert len(transport.writes) == 2


async def test_after_the_body_is_taken_receive_waits_for_the_disconnect() -> None:
    messages = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        cycle = direct_cycle(receive, send)
        assert cycle is not None
        assert cycle.take_body() == b"hello"
        messages.append(await receive())

    protocol, _ = _protocol(app)
    protocol.data_received(POST)
    for _ in range(10):
        await asyncio.sleep(0)
    assert messages == []
    protocol.connection_lost(None)
    for _ in range(10):
        await asyncio.sleep(0)
    assert messages == [{"type": "http.disconnect"}]


async def _body_by_receive(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message["body"]
        if not message["more_body"]:
            return body


@pytest.mark.parametrize(
    ("head", "parts", "body", "first_write"),
    [
        (b"content-length: 10", [b"hello", b"world"], b"helloworld", None),
        (b"transfer-encoding: chunked", [b"5\r\nhello\r\n", b"0\r\n\r\n"], b"hello", None),
        (
            b"content-length: 5\r\nexpect: 100-continue",
            [b"hello"],
            b"hello",
            b"HTTP/1.1 100 Continue",
        ),
    ],
    ids=["still arriving", "chunked, still arriving", "100 Continue to send"],
)
async def test_a_body_receive_must_wait_for_is_not_taken(
    head: bytes, parts: list[bytes], body: bytes, first_write: bytes | None
) -> None:
    seen: list[bytes | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        cycle = direct_cycle(receive, send)
        assert cycle is not None
        seen.append(cycle.take_body())
        seen.append(await _body_by_receive(receive))
        await send({"type": WHOLE, "status": 200, "headers": [], "body": b""})

    protocol, transport = _protocol(app)
    protocol.data_received(b"POST /x HTTP/1.1\r\nhost: a\r\n" + head + b"\r\n\r\n" + parts[0])
    for part in parts[1:]:
        for _ in range(10):
            await asyncio.sleep(0)
        protocol.data_received(part)
    for _ in range(10):
        await asyncio.sleep(0)
    assert seen == [None, body]
    if first_write is not None:
        assert transport.writes[0].startswith(first_write)
    protocol.connection_lost(None)


async def test_only_a_cycles_own_methods_give_it() -> None:
    found: list[OneWriteCycle | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped_send(message: Any) -> None:
            await send(message)

        async def wrapped_receive() -> Any:
            return await receive()

        found.append(direct_cycle(receive, send))
        found.append(direct_cycle(receive, wrapped_send))
        found.append(direct_cycle(wrapped_receive, send))
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await _served(app, GET)
    await _served(app, GET, ours=False)  # uvicorn's own cycle
    assert isinstance(found[0], OneWriteCycle)
    assert found[1:] == [None, None, None, None, None]


def _gated(gates: list[asyncio.Event]) -> App:
    """Answers ``ok`` to each request once its gate (the next in ``gates``) is set."""
    taken = iter(gates)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        gate = next(taken)
        await receive()
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": JSON_2[1:]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def _turns(count: int = 20) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_pipelined_requests_within_the_limit_are_all_answered() -> None:
    gates = [asyncio.Event() for _ in range(100)]
    protocol, transport = _protocol(_gated(gates))
    protocol.data_received(GET * 100)
    await _turns()
    for gate in gates:
        gate.set()
    await _turns(2000)
    assert b"".join(transport.sent).count(b"HTTP/1.1 200 OK") == 100
    assert not transport.closed


async def test_pipelined_requests_past_the_limit_close_the_connection_after_those_taken() -> None:
    gates = [asyncio.Event() for _ in range(500)]
    protocol, transport = _protocol(_gated(gates))
    protocol.data_received(GET * 500)
    await _turns()
    assert len(protocol.pipeline) == 100  # type: ignore[attr-defined]
    gates[0].set()
    await _turns()
    protocol.data_received(GET * 10)  # what the client sent meanwhile is not read
    for gate in gates:
        gate.set()
    await _turns(2000)
    # uvicorn queued all 500 (and whatever came next, for as long as the client sent):
    # the one in flight and the hundred behind it are answered, then the connection closes.
    assert b"".join(transport.sent).count(b"HTTP/1.1 200 OK") == 101
    assert transport.closed
