"""The ceiling: a bare ASGI app answering a JSON POST, on sluicegate's server stack.

It reads the body, decodes it as JSON and answers a small JSON object: the least any
JSON-over-HTTP gateway must do per request, with no routing, auth or storage.

``python -m bench.baseline_app PORT [--http2]`` serves it exactly as ``sluicegate serve``
serves the gateway: the same server (uvicorn, or Hypercorn with ``--http2``) and its
configuration, event loop and GC tuning.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import msgspec

from sluicegate.cli.event_loop import run_async
from sluicegate.cli.serve import tune_gc
from sluicegate.config import load_settings
from sluicegate.http.servers import bind, http_server

_decode = msgspec.json.decode
_encode = msgspec.json.encode


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    _decode(body)
    payload = _encode({"partition_id": 0, "topic_name": "bench", "offset": 0})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _serve(port: int, http2: bool) -> None:
    settings = load_settings(environ={}, overrides={"server": {"http2": http2}})
    server = http_server(app, settings)
    sock = bind("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, server.request_exit)
    tune_gc()
    await server.serve(sock)


if __name__ == "__main__":
    run_async(_serve(int(sys.argv[1]), "--http2" in sys.argv[2:]))
