"""``Request``: header lookup, media type, query and the limited body reader, and the
headers forgotten once a WebSocket is accepted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest

import sluicegate.http.request as request_module
from sluicegate.core.limits.json_limits import JsonLimits
from sluicegate.errors import BadRequest, PayloadTooLarge, SluicegateError, UnsupportedMediaType
from sluicegate.http.request import ClientDisconnected, Request
from sluicegate.http.response_cycle import direct_cycle
from sluicegate.http.responses import WHOLE
from sluicegate.http.types import Receive, Scope, Send
from tests.http.test_response_cycle import _protocol


def scope(headers: Iterable[tuple[bytes, bytes]] = (), query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "query_string": query,
        "headers": headers if not isinstance(headers, tuple) else list(headers),
    }


def receiving(*messages: dict[str, Any]) -> Any:
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        return pending.pop(0)

    return receive


def request(
    headers: Iterable[tuple[bytes, bytes]] = (),
    *chunks: bytes,
    query: bytes = b"",
    limit: int = 100,
    json_limits: JsonLimits | None = None,
) -> Request:
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    return Request(
        scope(headers, query), receiving(*messages), {}, body_limit=limit, json_limits=json_limits
    )


def test_headers_are_looked_up_by_lower_case_name() -> None:
    r = request([(b"content-type", b"application/json"), (b"x-trace", b"abc")])
    assert r.header("x-trace") == "abc"
    assert r.header("authorization") is None
    assert r.raw_headers[b"content-type"] == b"application/json"


def test_repeated_headers_are_joined_in_order() -> None:
    r = request([(b"accept", b"a"), (b"x", b"1"), (b"accept", b"b"), (b"accept", b"c")])
    assert r.header("accept") == "a, b, c"
    assert r.header("x") == "1"


def test_headers_may_come_as_any_iterable() -> None:
    r = Request(scope(iter([(b"x", b"1"), (b"x", b"2")])), receiving(), {})
    assert r.header("x") == "1, 2"


def test_forgotten_headers_are_gone_and_the_query_is_read_again() -> None:
    r = request([(b"x-trace", b"abc")], query=b"group=g&test=false")
    assert r.header("x-trace") == "abc"
    assert r.query_param("group") == "g"
    r.forget_headers()
    assert r.header("x-trace") is None
    assert list(r.scope["headers"]) == []
    assert r._query is None
    assert r.query_param("group") == "g"


def test_header_values_are_latin_1() -> None:
    assert request([(b"x", "caf\u00e9".encode("latin-1"))]).header("x") == "caf\u00e9"


@pytest.mark.parametrize(
    ("value", "media_type"),
    [
        (b"application/json", "application/json"),
        (b"Application/JSON; charset=utf-8", "application/json"),
        (b" text/plain ;q=1", "text/plain"),
        # Long values are parsed as short ones are, only never remembered.
        (b"Application/JSON; profile=" + b"x" * 300, "application/json"),
    ],
)
def test_media_type_drops_parameters_and_case(value: bytes, media_type: str) -> None:
    assert request([(b"content-type", value)]).media_type == media_type


def test_no_content_type_is_an_empty_media_type() -> None:
    assert request().media_type == ""


def test_media_types_are_remembered_boundedly() -> None:
    for n in range(200):
        assert request([(b"content-type", b"application/x-%d" % n)]).media_type == (
            f"application/x-{n}"
        )
    cache = request_module._remembered_media_type.cache_info()
    assert cache.currsize <= cache.maxsize == 64


def test_query_parameters_last_value_wins() -> None:
    r = request(query=b"serializer=confluent&a=1&a=2&empty=")
    assert r.query_param("serializer") == "confluent"
    assert r.query_param("a") == "2"
    assert r.query_param("empty") == ""
    assert r.query_param("missing") is None
    assert request().query_param("serializer") is None


async def test_body_in_one_or_many_messages() -> None:
    assert await request((), b"hello").body() == b"hello"
    assert await request((), b"he", b"ll", b"o").body() == b"hello"


@pytest.mark.parametrize("coding", [b"gzip", b"br", b"GZIP", b"gzip, identity"])
async def test_a_coded_body_is_refused_as_unsupported(coding: bytes) -> None:
    coded = request([(b"content-encoding", coding)], b"\x1f\x8b")
    with pytest.raises(UnsupportedMediaType, match="unsupported Content-Encoding"):
        await coded.body()


@pytest.mark.parametrize("coding", [b"identity", b"Identity ", b""])
async def test_an_identity_coded_body_is_read(coding: bytes) -> None:
    assert await request([(b"content-encoding", coding)], b"hello").body() == b"hello"


async def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    r = Request(scope([(b"content-length", b"101")]), receiving(), {}, body_limit=100)
    with pytest.raises(PayloadTooLarge, match="101 bytes exceeds the limit of 100"):
        await r.body()  # receive() would fail: nothing queued


async def test_streamed_body_is_cut_off_at_the_limit() -> None:
    with pytest.raises(PayloadTooLarge):
        await request((), b"x" * 60, b"x" * 60, limit=100).body()


async def test_invalid_content_length_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="invalid Content-Length 'ten'"):
        await request([(b"content-length", b"ten")], b"").body()


async def test_disconnect_while_reading() -> None:
    r = Request(scope(), receiving({"type": "http.disconnect"}), {})
    with pytest.raises(ClientDisconnected):
        await r.body()


async def test_json_limits_apply_only_when_asked() -> None:
    limits = JsonLimits(max_depth=2, max_keys=10, max_string_bytes=100)
    deep = b"[[[1]]]"
    assert await request((), deep, json_limits=limits).body() == deep
    with pytest.raises(BadRequest, match="nests deeper than the limit of 2"):
        await request((), deep, json_limits=limits).body(json=True)


def test_parsed_queries_are_remembered_within_a_bound() -> None:
    from sluicegate.http import request as module

    for i in range(3 * module._QUERY_CACHE_SIZE):
        assert request(query=b"n=%d" % i).query_param("n") == str(i)
    assert len(module._QUERIES) <= module._QUERY_CACHE_SIZE
    again = request(query=b"serializer=confluent")
    assert again.query_param("serializer") == "confluent"
    assert request(query=b"serializer=confluent").query is again.query


def test_long_queries_are_not_remembered() -> None:
    from sluicegate.http import request as module

    long = b"q=" + b"x" * module._QUERY_CACHE_BYTES
    assert request(query=long).query_param("q") == "x" * module._QUERY_CACHE_BYTES
    assert long not in module._QUERIES


@pytest.mark.parametrize(
    ("raw", "query"),
    [
        (b"a=1&a=2&b", {"a": ["1", "2"], "b": [""]}),
        (b"x=a+b%20c&&y=%C3%A9", {"x": ["a b c"], "y": ["\u00e9"]}),
        (b"n%00=%00", {"n\x00": ["\x00"]}),
        (b"a=1;b=2", {"a": ["1;b=2"]}),
    ],
)
def test_query_parameters_are_percent_decoded_as_utf8(
    raw: bytes, query: dict[str, list[str]]
) -> None:
    assert request(query=raw).query == query


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"offset=%FF", "query parameter 'offset' is not valid UTF-8 once percent-decoded"),
        (b"%C3=1", "a query parameter's name is not valid UTF-8 once percent-decoded"),
        (b"a=\xe9", "the query string is not valid UTF-8 (byte 2)"),
    ],
)
def test_query_that_is_not_utf8_is_refused(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        _ = request(query=raw).query


async def test_a_json_body_must_be_utf8() -> None:
    with pytest.raises(BadRequest, match=r"`value` is not valid UTF-8 \(byte 11\)"):
        await request([], b'{"value": "\xff"}').body(json=True)
    assert await request([], b'{"value": "\xff"}').body() == b'{"value": "\xff"}'


async def _read_served(
    raw: bytes, read: Callable[[Request], Awaitable[bytes | None]], *, direct: bool
) -> bytes | tuple[type[SluicegateError], str] | None:
    """What ``read`` makes of the request ``raw`` as uvicorn's protocol hands it to an
    app: the body, ``None``, or the error's type and message. ``direct``: the request
    takes its body from the cycle, as the gateway's requests do."""
    outcome: list[bytes | tuple[type[SluicegateError], str] | None] = []
    limits = JsonLimits(max_depth=2, max_keys=10, max_string_bytes=100)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        cycle = direct_cycle(receive, send) if direct else None
        request = Request(scope, receive, {}, body_limit=20, json_limits=limits, cycle=cycle)
        try:
            outcome.append(await read(request))
        except SluicegateError as exc:
            outcome.append((type(exc), exc.message))
        await send({"type": WHOLE, "status": 200, "headers": [], "body": b""})

    protocol, _ = _protocol(app)
    protocol.data_received(raw)
    for _ in range(10):
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    [found] = outcome
    return found


def _post(body: bytes, length: int | None = None) -> bytes:
    declared = len(body) if length is None else length
    return b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: %d\r\n\r\n%s" % (declared, body)


def _chunked(body: bytes) -> bytes:
    head = b"POST /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n"
    return head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


async def _ready(request: Request, json: bool) -> bytes | None:
    return request.ready_body(json=json)


@pytest.mark.parametrize(
    ("raw", "json"),
    [
        (_post(b'{"a": 1}'), True),
        (_post(b"[[[1]]]"), False),
        (_post(b"[[[1]]]"), True),
        (_post(b'{"a": "\xff"}'), True),
        (_post(b"x" * 21), False),
        (_post(b"x" * 20), False),
        (_chunked(b"x" * 21), False),
        (_chunked(b"x" * 20), False),
    ],
    ids=[
        "json",
        "deep, not json",
        "deep json",
        "not UTF-8",
        "declared over the limit",
        "at it",
        "chunked, over the limit",
        "chunked, at it",
    ],
)
async def test_a_ready_body_is_what_body_gives_through_receive(raw: bytes, json: bool) -> None:
    expected = await _read_served(raw, lambda r: r.body(json=json), direct=False)
    assert await _read_served(raw, lambda r: _ready(r, json), direct=True) == expected
    assert await _read_served(raw, lambda r: r.body(json=json), direct=True) == expected


async def test_a_body_still_arriving_is_not_ready() -> None:
    raw = _post(b"hello", length=10)
    assert await _read_served(raw, lambda r: _ready(r, False), direct=True) is None


async def test_without_a_cycle_no_body_is_ready() -> None:
    assert request((), b"hello").ready_body() is None
