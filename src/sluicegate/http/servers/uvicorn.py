"""uvicorn, as sluicegate runs it: httptools with the deadlines of ``http/protocol.py``,
uvloop, TLS with client certificates in the scope, and the CLI's own signal handling."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from sluicegate.config import Settings
from sluicegate.http.protocol import guarded_protocol
from sluicegate.http.server_answers import error_answerer
from sluicegate.http.servers import ANSWER_SECONDS, STOPPED, BeforeShutdown
from sluicegate.http.tls import uvicorn_tls_options
from sluicegate.http.types import ASGIApp
from sluicegate.http.websocket_bursts import BurstWebSocketProtocol

__all__ = ["UvicornServer", "uvicorn_config"]


def uvicorn_config(app: ASGIApp, settings: Settings) -> uvicorn.Config:
    """How sluicegate runs uvicorn; ``bench/`` serves its bare-ASGI baseline with it too."""
    # uvloop and httptools (dependencies here), with the timeouts and header limit
    # uvicorn lacks (http/protocol.py), answered in the app's dialects where it can.
    http = guarded_protocol(settings.server, error_answerer(app))
    ce = settings.cloudevents
    options: dict[str, Any] = {
        "http": http,
        # WebSocket consumers (/ce/ws): uvicorn pings and drops a peer that does not
        # answer in time, and refuses a message over the size with 1009 while reading.
        # uvicorn's sans-I/O protocol holding less per open connection
        # (http/servers/uvicorn_ws.py), plus many messages in one write
        # (http/websocket_bursts.py).
        "ws": BurstWebSocketProtocol,
        "ws_max_size": ce.websocket_max_message_bytes,
        "ws_ping_interval": ce.websocket_ping_interval,
        "ws_ping_timeout": ce.websocket_ping_timeout,
        "ws_per_message_deflate": ce.websocket_compression,
        # TLS adds what hands client certificates to the app.
        **uvicorn_tls_options(settings.server.tls, http),
    }
    return uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=settings.server.access_log,
        # uvicorn cancels what still runs when this runs out, and answers a bare 500 for
        # a request: ``_Server`` cancels those itself ``ANSWER_SECONDS`` earlier.
        timeout_graceful_shutdown=settings.server.graceful_shutdown + ANSWER_SECONDS,  # type: ignore[arg-type]
        # A float works (it is given to loop.call_later) though uvicorn annotates an int.
        timeout_keep_alive=settings.server.keep_alive_timeout,  # type: ignore[arg-type]
        server_header=False,
        # Nothing reads the client address or scheme from the scope, so there is nothing
        # for X-Forwarded-* to rewrite; the middleware would cost a call per request.
        proxy_headers=False,
        **options,
    )


class _Server(uvicorn.Server):
    """uvicorn without its signal handling, with ``before_shutdown``, and with the
    requests still running when the graceful shutdown runs out cancelled with ``STOPPED``.

    uvicorn re-raises a captured SIGTERM after ``serve()`` returns, which would end the
    process before storage drains; here the CLI owns the signals and drains storage
    after HTTP has stopped.
    """

    def __init__(
        self, config: uvicorn.Config, graceful: float, before_shutdown: BeforeShutdown | None
    ) -> None:
        super().__init__(config)
        self._graceful = graceful
        self._before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        # One graceful period for the streams' ends and the requests' together.
        deadline = loop.time() + self._graceful
        if self._before_shutdown is not None:
            await self._before_shutdown()
        stopping = loop.call_at(deadline, self._stop_requests)
        try:
            await super().shutdown(sockets)
        finally:
            stopping.cancel()

    def _stop_requests(self) -> None:
        for task in self.server_state.tasks:
            task.cancel(msg=STOPPED)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class UvicornServer:
    """``HttpServer`` on uvicorn: HTTP/1.1 and WebSocket upgrades."""

    def __init__(
        self, app: ASGIApp, settings: Settings, before_shutdown: BeforeShutdown | None = None
    ) -> None:
        self._server = _Server(
            uvicorn_config(app, settings), settings.server.graceful_shutdown, before_shutdown
        )

    async def serve(self, sock: socket.socket) -> None:
        """See ``HttpServer.serve``."""
        await self._server.serve(sockets=[sock])

    def request_exit(self) -> None:
        """See ``HttpServer.request_exit``; a second call stops without waiting."""
        if self._server.should_exit:
            self._server.force_exit = True
        self._server.should_exit = True
