"""Confluent's wire format: magic byte, 4-byte big-endian id, payload."""

from __future__ import annotations

import pytest

from sluicegate.core.schemas.wire import frame, header, unframe
from sluicegate.errors import InvalidRecord


def test_header_is_magic_byte_and_big_endian_id() -> None:
    assert header(1) == b"\x00\x00\x00\x00\x01"
    assert header(0x01020304) == b"\x00\x01\x02\x03\x04"


@pytest.mark.parametrize("schema_id", [0, 1, 255, 256, 70000, 2**32 - 1])
@pytest.mark.parametrize("payload", [b"", b"\x00", b"hello" * 100])
def test_round_trip(schema_id: int, payload: bytes) -> None:
    assert unframe(frame(schema_id, payload)) == (schema_id, payload)


@pytest.mark.parametrize("schema_id", [-1, 2**32])
def test_ids_that_do_not_fit_are_refused(schema_id: int) -> None:
    with pytest.raises(ValueError, match="does not fit in 4 bytes"):
        header(schema_id)


def test_short_data_is_not_framed() -> None:
    with pytest.raises(InvalidRecord) as caught:
        unframe(b"\x00\x00\x01")
    assert caught.value.message == (
        "data of 3 bytes is too short for the Confluent wire format (a 5-byte header)"
    )


def test_wrong_magic_byte_is_refused() -> None:
    with pytest.raises(InvalidRecord) as caught:
        unframe(b"\x01\x00\x00\x00\x01abc")
    assert caught.value.message == ("data does not start with the Confluent magic byte 0 (found 1)")
