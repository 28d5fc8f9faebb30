"""Base URLs for Location headers: configuration first, then Host, and X-Forwarded-* only
from a trusted proxy."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.errors import BadRequest
from sluicegate.http.base_url import BaseUrl
from sluicegate.http.request import Request

FORWARDED = {
    "host": "gw.internal:8080",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "events.example.com, gw.internal",
}


async def _never() -> dict[str, Any]:
    raise AssertionError("a base URL needs no body")


def request(headers: dict[str, str], client: str = "10.1.2.3") -> Request:
    scope = {
        "type": "http",
        "scheme": "http",
        "client": (client, 5000),
        "server": ("127.0.0.1", 8080),
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, _never, {})


def test_the_configured_url_wins() -> None:
    assert BaseUrl("https://ev.example.com/", []).of(request(FORWARDED)) == (
        "https://ev.example.com"
    )


def test_forwarded_headers_count_only_from_a_trusted_proxy() -> None:
    assert BaseUrl("", []).of(request(FORWARDED)) == "http://gw.internal:8080"
    trusting = BaseUrl("", ["10.0.0.0/8", "192.0.2.7"])
    assert trusting.of(request(FORWARDED)) == "https://events.example.com"
    assert trusting.of(request(FORWARDED, client="192.0.2.7")) == "https://events.example.com"
    assert trusting.of(request(FORWARDED, client="192.0.2.1")) == "http://gw.internal:8080"
    assert trusting.of(request(FORWARDED, client="not an address")) == "http://gw.internal:8080"
    odd_proto = {**FORWARDED, "x-forwarded-proto": "gopher"}
    assert trusting.of(request(odd_proto)) == "http://events.example.com"


def test_without_a_host_header_the_listening_address() -> None:
    assert BaseUrl("", []).of(request({})) == "http://127.0.0.1:8080"
    assert BaseUrl("", []).of(request({"host": "[::1]:9000"})) == "http://[::1]:9000"


@pytest.mark.parametrize("host", ["evil.example.com\r\nx: y", "a b", "@host", "host:port", "-x"])
def test_a_host_that_is_no_host_is_refused(host: str) -> None:
    with pytest.raises(BadRequest, match="Host header"):
        BaseUrl("", []).of(request({"host": host}))
