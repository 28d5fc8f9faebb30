"""A stored record as a topics v1 message: its value as a JSON payload, its time.

Records written by other dialects (records v2, the admin API, any Kafka client) show up
here too. Their value becomes the ``payload`` as follows:

* no value (a tombstone): ``null``;
* a JSON document: as it is, if it is UTF-8 with no lone surrogate escape and no deeper
  than JSON is read (``core.json_text``; else as the text or bytes it is, below);
* Confluent's wire format (magic byte 0 and a schema id this registry knows): decoded
  with that schema (Avro or JSON Schema) and written as JSON (Avro ``bytes`` and ``fixed``
  in Avro's JSON encoding, as publish takes them);
* other UTF-8 text: a JSON string holding it;
* anything else: ``{"data_base64": "<the bytes in base64>"}``, as CloudEvents writes
  binary data.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Sequence
from typing import cast

import msgspec

from sluicegate.core.json_text import json_texts, text_of_checked_json
from sluicegate.core.records import format_timestamp
from sluicegate.core.schemas.registry import SchemaRegistry
from sluicegate.core.schemas.wire import MAGIC_BYTE
from sluicegate.errors import SluicegateError

__all__ = ["PayloadReader", "message_time"]

_NULL = msgspec.Raw(b"null")
_MAGIC = bytes([MAGIC_BYTE])
_encode = msgspec.json.Encoder().encode
_check_json_array = msgspec.json.Decoder(list[msgspec.Raw]).decode


@functools.lru_cache(maxsize=1024)
def message_time(timestamp_us: int) -> str:
    """RFC 3339 with milliseconds and ``+00:00``, e.g. ``2023-04-14T15:07:14.437+00:00``."""
    # Cached: the messages of one commit share their timestamp. Milliseconds truncated.
    return format_timestamp(timestamp_us)[:-4] + "+00:00"


class PayloadReader:
    """Turns stored values into JSON payloads, decoding Confluent-framed ones."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry

    def payload(self, value: bytes | None) -> msgspec.Raw:
        """``value`` as the JSON ``payload`` of a message (see the module's rules)."""
        if value is None:
            return _NULL
        if value[:1] == _MAGIC:  # JSON never starts with a NUL byte
            decoded = self._confluent(value)
            if decoded is not None:
                return decoded
        elif json_texts((value,)):
            return msgspec.Raw(value)
        try:
            return msgspec.Raw(_encode(value.decode()))
        except UnicodeDecodeError:
            encoded = binascii.b2a_base64(value, newline=False)
            return msgspec.Raw(b'{"data_base64":"' + encoded + b'"}')

    def payloads(self, values: Sequence[bytes | None]) -> list[msgspec.Raw]:
        """``payload`` of each of ``values``, with the JSON ones checked in one decode."""
        # Values are laid end to end as the elements of one JSON array. Each is one JSON
        # document exactly when the array has an element per value, each as long as its
        # value: equal lengths leave no room for whitespace between elements, so every
        # element spans exactly its value's bytes. Anything else (a tombstone, framed,
        # text or binary values, whitespace around a document) takes the rules one by one.
        try:
            array = b"[" + b",".join(cast("Sequence[bytes]", values)) + b"]"
            elements = _check_json_array(array)
        except (TypeError, msgspec.DecodeError, RecursionError):  # TypeError: a tombstone
            return [self.payload(value) for value in values]
        if list(map(len, elements)) == list(map(len, cast("Sequence[bytes]", values))) and (
            text_of_checked_json(array)
        ):
            return elements
        return [self.payload(value) for value in values]

    def _confluent(self, value: bytes) -> msgspec.Raw | None:
        try:
            _, datum = self._registry.decode_confluent(value)
            return msgspec.Raw(_encode(datum))
        except (SluicegateError, ValueError, TypeError):
            # Not framed by a schema we know (or not framed at all): plain bytes then.
            return None
