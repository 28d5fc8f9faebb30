"""Whether stored bytes are JSON a reader can be handed as they are.

What the gateway stored it checked, but on Kafka any producer may write to a topic (and
a records v2 client may write anything, on either backend). A value that a dialect puts
into its JSON answers verbatim must be JSON that answer can hold: well formed, UTF-8
(msgspec's ``Raw`` check does not look inside strings), no lone surrogate escape (which
strict parsers refuse), and no deeper than the decoder follows. One such value would
otherwise make every answer holding it unreadable, and a consumer that cannot read an
answer cannot move past it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import msgspec

__all__ = ["is_utf8", "json_texts", "text_of_checked_json"]

_check_json = msgspec.json.Decoder(msgspec.Raw).decode
_decode_any = msgspec.json.Decoder().decode

#: Between the values checked together: ASCII, so a value's unfinished UTF-8 sequence
#: is not completed by the next value's first bytes.
SEPARATOR = b" "


def json_texts(values: Sequence[bytes]) -> bool:
    """Whether each of ``values`` is JSON the gateway's produce paths accept: well formed,
    UTF-8, no lone surrogate escape."""
    joined = SEPARATOR.join(values)
    check = _decode_any if _escaped(joined) else _check_json
    try:
        deque(map(check, values), maxlen=0)  # each checked alone, by a C loop
    except (msgspec.DecodeError, RecursionError):
        return False
    return is_utf8(joined)


def text_of_checked_json(document: bytes) -> bool:
    """The rest of ``json_texts`` for one document msgspec's ``Raw`` decoder already took:
    UTF-8, and no lone surrogate (a full decode only where a ``\\u`` escape is)."""
    if _escaped(document):
        try:
            _decode_any(document)
        except (msgspec.DecodeError, RecursionError):
            return False
    return is_utf8(document)


def _escaped(data: bytes) -> bool:
    """Whether ``data`` has a ``\\u`` escape, which may be a lone surrogate that only a
    full decode refuses. A backslash is looked for first: one byte is found by memchr,
    two bytes at a tenth the speed."""
    return data.find(b"\\") >= 0 and data.find(b"\\u") >= 0


def is_utf8(joined: bytes) -> bool:
    """Whether ``joined`` is UTF-8 (ASCII answered without decoding)."""
    if joined.isascii():
        return True
    try:
        joined.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
