"""The stream proxy's frame reader and client frames, on bytes ``websockets`` makes and reads
(an independent implementation of RFC 6455)."""

from __future__ import annotations

import struct

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from sluicegate.http.websocket_frames import (
    NO_CODE,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    PROTOCOL_ERROR,
    TOO_BIG,
    UNSUPPORTED_DATA,
    FrameError,
    FrameReader,
    client_frame,
    close_payload,
)

LIMIT = 1 << 20


def server(opcode: Opcode, data: bytes, *, fin: bool = True) -> bytes:
    """A frame as a server sends it: unmasked."""
    return Frame(opcode, data, fin=fin).serialize(mask=False)


def read_all(chunks: list[bytes], reader: FrameReader | None = None) -> list[bytes]:
    reader = reader or FrameReader(LIMIT)
    texts: list[bytes] = []
    for chunk in chunks:
        texts.extend(reader.feed(chunk))
    return texts


# One of each length encoding: 7-bit, 16-bit and 64-bit.
SHORT = b'{"id":"e1"}'
MEDIUM = b"m" * 300
LONG = "é".encode() * 40_000


def test_several_frames_in_one_read_come_out_in_order() -> None:
    stream = b"".join(server(Opcode.TEXT, text) for text in (SHORT, MEDIUM, LONG, SHORT))
    assert read_all([stream]) == [SHORT, MEDIUM, LONG, SHORT]


def test_frames_split_at_every_byte_boundary() -> None:
    texts = [SHORT, MEDIUM, SHORT * 3]
    stream = b"".join(server(Opcode.TEXT, text) for text in texts)
    stream += server(Opcode.PING, b"beat") + server(Opcode.TEXT, b"")
    for cut in range(len(stream) + 1):
        reader = FrameReader(LIMIT)
        assert read_all([stream[:cut], stream[cut:]], reader) == [*texts, b""], cut
        assert reader.pings == [b"beat"]
    for second in range(1, len(stream)):
        parts = [stream[:1], stream[1:second], stream[second:]]
        assert read_all(parts) == [*texts, b""], second


def test_a_long_frame_arriving_a_byte_at_a_time() -> None:
    stream = server(Opcode.TEXT, LONG) + server(Opcode.TEXT, SHORT)
    reader = FrameReader(LIMIT)
    got: list[bytes] = []
    for index in range(len(stream)):
        got.extend(reader.feed(stream[index : index + 1]))
    assert got == [LONG, SHORT]


def test_a_fragmented_message_with_a_ping_in_between() -> None:
    stream = b"".join(
        [
            server(Opcode.TEXT, b"before"),
            server(Opcode.TEXT, b'{"part":', fin=False),
            server(Opcode.PING, b"p1"),
            server(Opcode.CONT, b'"one",', fin=False),
            server(Opcode.PONG, b""),
            server(Opcode.CONT, b'"two"}', fin=True),
            server(Opcode.TEXT, b"after"),
        ]
    )
    for cut in range(len(stream) + 1):
        reader = FrameReader(LIMIT)
        texts = read_all([stream[:cut], stream[cut:]], reader)
        assert texts == [b"before", b'{"part":"one","two"}', b"after"]
        assert reader.pings == [b"p1"]
        assert reader.pongs == 1


def test_a_close_with_its_code_and_reason_ends_the_reading() -> None:
    close = Frame(Opcode.CLOSE, struct.pack("!H", 1008) + "unknown message é".encode())
    stream = server(Opcode.TEXT, SHORT) + close.serialize(mask=False)
    stream += server(Opcode.TEXT, b"never read")
    reader = FrameReader(LIMIT)
    assert reader.feed(stream) == [SHORT]
    assert reader.close == (1008, "unknown message é")
    assert reader.feed(server(Opcode.TEXT, b"after")) == []


def test_a_close_without_a_code() -> None:
    reader = FrameReader(LIMIT)
    assert reader.feed(server(Opcode.CLOSE, b"")) == []
    assert reader.close == (NO_CODE, "")


def test_a_frame_over_the_bound_is_refused_from_its_header() -> None:
    frame = server(Opcode.TEXT, b"x" * 2000)
    with pytest.raises(FrameError) as refused:
        FrameReader(1000).feed(frame[:4])  # the header says it all
    assert refused.value.code == TOO_BIG
    assert FrameReader(2000).feed(frame) == [b"x" * 2000]


def test_the_messages_before_an_error_come_with_it() -> None:
    stream = server(Opcode.TEXT, SHORT) + server(Opcode.TEXT, MEDIUM)
    with pytest.raises(FrameError) as refused:
        FrameReader(1000).feed(stream + server(Opcode.TEXT, b"x" * 2000))
    assert refused.value.texts == [SHORT, MEDIUM]


def test_a_fragmented_message_over_the_bound_is_refused() -> None:
    reader = FrameReader(1000)
    reader.feed(server(Opcode.TEXT, b"x" * 600, fin=False))
    with pytest.raises(FrameError) as refused:
        reader.feed(server(Opcode.CONT, b"x" * 600))
    assert refused.value.code == TOO_BIG


@pytest.mark.parametrize(
    ("stream", "code"),
    [
        (Frame(Opcode.TEXT, b"masked").serialize(mask=True), PROTOCOL_ERROR),
        (server(Opcode.CONT, b"nothing to continue"), PROTOCOL_ERROR),
        (
            server(Opcode.TEXT, b"a", fin=False) + server(Opcode.TEXT, b"b"),
            PROTOCOL_ERROR,
        ),
        (bytes([0x80 | 0x40 | OP_TEXT, 1]) + b"x", PROTOCOL_ERROR),  # RSV1, no extension
        (bytes([OP_PING, 0]), PROTOCOL_ERROR),  # a fragmented control frame
        (bytes([0x80 | OP_CLOSE, 1]) + b"x", PROTOCOL_ERROR),
        (bytes([0x80 | 0x3, 0]), PROTOCOL_ERROR),  # a reserved opcode
        (server(Opcode.BINARY, b"\x00\x01"), UNSUPPORTED_DATA),
    ],
    ids=[
        "masked",
        "continuation",
        "interleaved",
        "reserved-bit",
        "fragmented-ping",
        "one-byte-close",
        "reserved-opcode",
        "binary",
    ],
)
def test_what_a_server_may_not_send_is_an_error_with_its_close_code(
    stream: bytes, code: int
) -> None:
    with pytest.raises(FrameError) as refused:
        FrameReader(LIMIT).feed(stream)
    assert refused.value.code == code


def _parsed_by_websockets(frame: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(frame)
    parser = Frame.parse(reader.read_exact, mask=True)
    try:
        next(parser)
    except StopIteration as done:
        parsed: Frame = done.value
        return parsed
    raise AssertionError("the frame was not whole")


@pytest.mark.parametrize("payload", [b"", b"confirm:42", MEDIUM, LONG], ids=len)
def test_client_frames_are_masked_and_read_back(payload: bytes) -> None:
    frame = client_frame(OP_TEXT, payload)
    assert frame[1] & 0x80  # the mask bit
    parsed = _parsed_by_websockets(frame)
    assert (parsed.opcode, parsed.fin, parsed.data) == (Opcode.TEXT, True, payload)
    binary = _parsed_by_websockets(client_frame(OP_BINARY, payload))
    assert (binary.opcode, binary.data) == (Opcode.BINARY, payload)


def test_a_client_close_carries_its_code_and_reason() -> None:
    parsed = _parsed_by_websockets(client_frame(OP_CLOSE, close_payload(4000, "bye")))
    assert parsed.opcode == Opcode.CLOSE
    assert parsed.data == struct.pack("!H", 4000) + b"bye"
    assert close_payload(NO_CODE) == b""
    ping = _parsed_by_websockets(client_frame(OP_PING, b"beat"))
    assert (ping.opcode, ping.data) == (Opcode.PING, b"beat")
