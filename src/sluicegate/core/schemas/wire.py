"""Confluent's wire format: magic byte 0, the schema id as 4 bytes big-endian, the payload."""

from __future__ import annotations

import struct

from sluicegate.errors import InvalidRecord

__all__ = ["HEADER_SIZE", "MAGIC_BYTE", "frame", "header", "unframe"]

MAGIC_BYTE = 0
HEADER_SIZE = 5
_HEADER = struct.Struct(">bI")
_MAX_ID = 2**32 - 1


def header(schema_id: int) -> bytes:
    """The 5 bytes that precede a payload written with ``schema_id``."""
    if not 0 <= schema_id <= _MAX_ID:
        raise ValueError(f"schema id {schema_id} does not fit in 4 bytes")
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def frame(schema_id: int, payload: bytes) -> bytes:
    """``payload`` prefixed with the wire header of ``schema_id``."""
    return header(schema_id) + payload


def unframe(data: bytes) -> tuple[int, bytes]:
    """The schema id and payload of framed ``data``; ``InvalidRecord`` if it is not framed."""
    if len(data) < HEADER_SIZE:
        raise InvalidRecord(
            f"data of {len(data)} bytes is too short for the Confluent wire format "
            f"(a {HEADER_SIZE}-byte header)"
        )
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise InvalidRecord(
            f"data does not start with the Confluent magic byte 0 (found {data[0]})"
        )
    return schema_id, bytes(data[HEADER_SIZE:])
