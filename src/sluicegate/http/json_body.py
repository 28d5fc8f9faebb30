"""JSON request bodies: one way to check and decode them, so every dialect refuses bad
input alike, with a 400 that names the field.

JSON text is UTF-8 and its strings are Unicode text (RFC 8259, I-JSON RFC 7493), so a
body with bytes that are not UTF-8, or a string holding a lone UTF-16 surrogate
(``"\\ud800"``), is the client's error. msgspec refuses both when it decodes a string,
but not inside a value kept as ``msgspec.Raw`` (records v2 keeps ``data`` raw), and its
message gives at most a byte offset. So ``check_utf8`` runs on every JSON body before it
is decoded (one C-level ``isascii`` for the usual ASCII body), and the field is located
only on the error path, by parsing the body again with a parser that accepts what
msgspec refuses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from sluicegate.errors import BadRequest

__all__ = ["check_utf8", "decode_json", "lone_surrogate_at"]

T = TypeVar("T")


class _Object(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, told apart from an array."""


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False  # a surrogate: a lone \\ud800-\\udfff escape, or a byte that is not UTF-8
    return True


def _shown(path: str) -> str:
    return f"`{path}`" if path else "the body"


def _first_bad_string(node: Any, path: str) -> str | None:
    """Where the first string that is not text is: `value.data`, a key of `headers[0]`."""
    if isinstance(node, str):
        return None if _is_text(node) else _shown(path)
    if isinstance(node, _Object):
        for key, value in node:
            if not _is_text(key):
                return f"a key of {_shown(path)}"
            found = _first_bad_string(value, f"{path}.{key}" if path else key)
            if found is not None:
                return found
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found = _first_bad_string(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _bad_string_path(body: bytes) -> str | None:
    """Where ``body``'s first string that is not Unicode text is, if the body parses."""
    # surrogateescape turns each byte that is not UTF-8 into a lone surrogate, and
    # Python's json keeps lone surrogate escapes as they are: both end up in the string
    # they were sent in, which the walk then finds.
    text = body.decode("utf-8", "surrogateescape")
    try:
        document = json.loads(text, object_pairs_hook=_Object)
    except (ValueError, RecursionError):
        return None
    return _first_bad_string(document, "")


def lone_surrogate_at(body: bytes) -> str | None:
    """Where JSON ``body`` holds a string with a lone UTF-16 surrogate escape, if it does:
    to say so when msgspec refuses it (its message for one is "Input data was
    truncated")."""
    return _bad_string_path(body) if b"\\u" in body else None


def check_utf8(body: bytes) -> None:
    """Raise ``BadRequest`` naming the field if ``body`` is not UTF-8."""
    if body.isascii():
        return
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = _bad_string_path(body) or "the body"
        raise BadRequest(
            f"invalid request body: {where} is not valid UTF-8 (byte {exc.start})"
        ) from None


def _validation_message(exc: msgspec.ValidationError) -> str:
    """msgspec's message with the body's field names: "... - at `key.type`"."""
    return str(exc).replace("`$.", "`").replace("`$`", "the body")


def decode_json(body: bytes, decode: Callable[[bytes], T]) -> T:
    """``decode(body)``, its errors as ``BadRequest``s that name the field where they can."""
    try:
        return decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request body: {_validation_message(exc)}") from None
    except msgspec.DecodeError as exc:
        where = lone_surrogate_at(body)
        if where is not None:
            raise BadRequest(
                f"invalid request body: {where} holds a lone UTF-16 surrogate "
                "escape (\\ud800-\\udfff), which is not Unicode text"
            ) from None
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None
