"""JSON bodies: UTF-8 and Unicode text checked once for every dialect, the field named."""

from __future__ import annotations

import msgspec
import pytest

from sluicegate.errors import BadRequest
from sluicegate.http.json_body import check_utf8, decode_json


class Payload(msgspec.Struct):
    type: str
    data: msgspec.Raw


class Body(msgspec.Struct):
    value: Payload | None = None
    headers: list[dict[str, str]] | None = None


decode = msgspec.json.Decoder(Body).decode


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # The reproduction: bytes that are not UTF-8 inside a raw value.
        (b'{"value": {"type": "text", "data": "\xff\xfe"}}', "`value.data`"),
        (b'{"value": {"type": "te\xc3xt", "data": "a"}}', "`value.type`"),
        (b'{"headers": [{"name": "\xed\xa0\x80", "value": ""}]}', "`headers[0].name`"),
        (b'{"headers": [{"n\xc0\xafme": "x"}]}', "a key of `headers[0]`"),
        (b'"\xf4\x90\x80\x80"', "the body"),
        # Not JSON at all: no field to name, the body is.
        (b'{"value": \xff}', "the body"),
    ],
)
def test_bytes_that_are_not_utf8_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        check_utf8(body)
    assert caught.value.message.startswith(f"invalid request body: {field} is not valid UTF-8")
    assert "(byte " in caught.value.message


def test_utf8_and_ascii_pass() -> None:
    body = '{"value": {"type": "text", "data": "T\u00ebst \u2713"}}'.encode()
    check_utf8(body)
    check_utf8(body.decode().encode("ascii", "backslashreplace"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (rb'{"value": {"type": "text", "data": "\ud800"}}', "`value.data`"),
        (rb'{"value": {"type": "text", "data": "a\udc00b"}}', "`value.data`"),
        (rb'{"headers": [{"name": "\udfff\ud800", "value": ""}]}', "`headers[0].name`"),
        (rb'{"value": {"type": "\uDBFFx", "data": 1}}', "`value.type`"),
    ],
)
def test_lone_surrogates_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_json(body, decode)
    assert caught.value.message == (
        f"invalid request body: {field} holds a lone UTF-16 surrogate escape "
        "(\\ud800-\\udfff), which is not Unicode text"
    )


def test_a_surrogate_pair_is_text() -> None:
    body = rb'{"headers": [{"name": "\ud83d\ude00", "value": ""}]}'
    assert decode_json(body, decode).headers == [{"name": "\U0001f600", "value": ""}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"value": 5}', "invalid request body: Expected `object | null`, got `int` - at `value`"),
        (b"[]", "invalid request body: Expected `object`, got `array`"),
        (b'{"value": ', "request body is not valid JSON: Input data was truncated"),
        (b'{"value": NaN}', "request body is not valid JSON: JSON is malformed"),
        (b'{"value": {"type": "\x00", "data": 1}}', "request body is not valid JSON"),
    ],
)
def test_other_errors_keep_msgspec_words(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_json(body, decode)
    assert caught.value.message.startswith(message), caught.value.message
