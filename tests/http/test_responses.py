"""Responses: the two ASGI messages, with Content-Length and Content-Type."""

from __future__ import annotations

from typing import Any

from sluicegate.http.responses import Response, json_response


async def _sent(response: Response) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        messages.append(dict(message))

    await response(send)
    return messages


async def test_json_response_declares_type_and_length() -> None:
    start, body = await _sent(json_response({"a": 1}, 201))
    assert start == {
        "type": "http.response.start",
        "status": 201,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"7")],
    }
    assert body == {"type": "http.response.body", "body": b'{"a":1}'}


async def test_no_content_has_neither_type_nor_length() -> None:
    start, body = await _sent(Response(status=204, content_type=None))
    assert start["headers"] == []
    assert body["body"] == b""


async def test_start_message_leaves_the_response_as_it_was() -> None:
    # The app sends start_message() itself; a response can be sent again, e.g. a
    # shared constant, without piling up Content-Length headers.
    response = Response(b"hi", headers=[(b"x-a", b"1")])
    first = response.start_message()
    assert response.start_message() == first
    assert response.headers == [(b"x-a", b"1"), (b"content-type", b"application/json")]
    assert first["headers"][-1] == (b"content-length", b"2")
