"""Many text messages in one write: the frames a real client reads, and the fallback."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from sluicegate.http.websocket import SEND_TEXTS, send_texts
from sluicegate.http.websocket_bursts import BurstWebSocketProtocol, text_frames
from tests.helpers import serving_in_loop


def _parse(data: bytes) -> list[Frame]:
    """The frames in ``data``, parsed by the ``websockets`` library as a client would."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
            raise AssertionError("incomplete frame")
        except StopIteration as done:
            frames.append(done.value)
    return frames


@settings(deadline=None)  # timed per example: a loaded machine is not a failure
@given(st.lists(st.text(max_size=70_000).map(str.encode), max_size=5))
def test_frames_are_whole_unmasked_text_messages(texts: list[bytes]) -> None:
    frames = _parse(text_frames(texts))
    assert [(f.opcode, f.fin, f.data) for f in frames] == [(Opcode.TEXT, True, t) for t in texts]


def test_a_text_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(UnicodeDecodeError, match="utf-8"):
        text_frames([b"ok", b"\xff\xfe"])


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "websocket"
    await receive()
    await send({"type": "websocket.accept"})
    offered = SEND_TEXTS in scope["extensions"]
    await send_texts(scope, send, [b"offered" if offered else b"not offered"])
    await send_texts(scope, send, [f"m{n}".encode() for n in range(1000)] + ["\u00e9".encode()])
    await receive()


@pytest.mark.parametrize("compression", [False, True])
async def test_a_websockets_client_reads_every_message_of_a_burst(compression: bool) -> None:
    config = uvicorn.Config(
        _app,
        host="127.0.0.1",
        port=0,
        ws=BurstWebSocketProtocol,
        ws_per_message_deflate=compression,
        lifespan="off",
        log_config=None,
    )
    async with (
        serving_in_loop(config) as port,
        connect(f"ws://127.0.0.1:{port}/", compression="deflate" if compression else None) as ws,
    ):
        assert await ws.recv() == "offered"
        received = [await ws.recv() for _ in range(1001)]
    assert received == [f"m{n}" for n in range(1000)] + ["\u00e9"]


async def test_without_the_extension_each_text_is_one_send() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await send_texts({"extensions": {}}, send, [b"a", "\u00e9".encode()])
    assert sent == [
        {"type": "websocket.send", "text": "a"},
        {"type": "websocket.send", "text": "\u00e9"},
    ]
