"""``sluicegate serve``: storage, housekeeping and HTTP as siblings in one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import signal
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from sluicegate.app import build_app
from sluicegate.config import Settings
from sluicegate.core.auth.clients import ADMIN_KEY_VARIABLE, first_start_message
from sluicegate.core.consumers.stream import Streams
from sluicegate.core.gateway import Gateway
from sluicegate.errors import ConfigError
from sluicegate.http.protocol import guarded_protocol
from sluicegate.http.tls import uvicorn_tls_options
from sluicegate.http.types import ASGIApp
from sluicegate.observability.metrics import Metrics
from sluicegate.storage.factory import open_log

__all__ = ["serve", "tune_gc", "uvicorn_config"]

logger = logging.getLogger("sluicegate.serve")


class _Server(uvicorn.Server):
    """uvicorn without its signal handling, closing WebSocket streams first on shutdown.

    uvicorn re-raises a captured SIGTERM after ``serve()`` returns, which would end the
    process before storage drains; here the CLI owns the signals and drains storage
    after HTTP has stopped.

    uvicorn's own shutdown closes every WebSocket with 1012 at once, in the middle of
    whatever the app is doing; the streams are told to stop first, so that each ends
    after the confirmation it may be committing and closes with 1001 (going away).
    """

    def __init__(self, config: uvicorn.Config, streams: Streams) -> None:
        super().__init__(config)
        self._streams = streams

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self._streams.close_all(float(self.config.timeout_graceful_shutdown or 0))
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            "server.port", f"cannot listen on {host}:{port}: {exc.strerror}"
        ) from None
    # Listening now, not when uvicorn starts: the log announces the port before that,
    # and connections made in between wait in the backlog instead of being refused.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


#: Container allocations between young-generation collections (CPython's default: 700).
_GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the request path.

    Modules, settings, catalogs and schemas live as long as the process; without
    ``gc.freeze`` every full collection walks all of them while requests wait: at full
    produce load that made the p99 about 45 ms instead of 15 ms. With 64 requests in
    flight, CPython's default young threshold (700) collects every few requests and
    keeps walking their live state: a larger one cut the instructions per produce
    request by 6% (measured under callgrind). Memory held by cyclic garbage stays
    bounded by the threshold.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, middle, old)


def uvicorn_config(app: ASGIApp, settings: Settings) -> uvicorn.Config:
    """How sluicegate runs uvicorn; ``bench/`` serves its bare-ASGI baseline with it too."""
    # uvloop and httptools (dependencies here), with the timeouts and header limit
    # uvicorn lacks (http/protocol.py).
    http = guarded_protocol(settings.server)
    ce = settings.cloudevents
    options: dict[str, Any] = {
        "http": http,
        # WebSocket consumers (/ce/ws): uvicorn pings and drops a peer that does not
        # answer in time, and refuses a message over the size with 1009 while reading.
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
        timeout_graceful_shutdown=int(settings.server.graceful_shutdown),
        # A float works (it is given to loop.call_later) though uvicorn annotates an int.
        timeout_keep_alive=settings.server.keep_alive_timeout,  # type: ignore[arg-type]
        server_header=False,
        # Nothing reads the client address or scheme from the scope, so there is nothing
        # for X-Forwarded-* to rewrite; the middleware would cost a call per request.
        proxy_headers=False,
        **options,
    )


async def serve(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM, then drain: HTTP first, storage last.

    Raises (an ExceptionGroup) if storage or housekeeping fails: a dead writer stops the
    gateway instead of leaving it accepting writes that nobody commits.
    """
    if not settings.auth.enabled and not is_loopback(settings.server.host):
        raise ConfigError(
            "server.host",
            f"authentication is off (--no-auth); refusing to listen on {settings.server.host}, "
            "only on a loopback address such as 127.0.0.1",
        )
    metrics = Metrics()
    log = open_log(settings, observe_commit=metrics.observe_commit)
    gateway = Gateway(settings, log)
    app = build_app(gateway, metrics=metrics)
    sock = _bind(settings.server.host, settings.server.port)
    config = uvicorn_config(app, settings)
    server = _Server(config, gateway.streams)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.handle_exit, sig, None)
    try:
        async with asyncio.TaskGroup() as tg:
            ready: asyncio.Future[None] = loop.create_future()
            tg.create_task(log.run(ready), name="storage")
            await ready
            await gateway.start()
            housekeeping = tg.create_task(gateway.run(), name="housekeeping")
            loop_lag = tg.create_task(metrics.loop_lag.watch(), name="loop-lag")
            tune_gc()
            scheme = "https" if settings.server.tls.certfile else "http"
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            if settings.auth.enabled:
                bootstrap = await gateway.clients.bootstrap_admin(
                    os.environ.get(ADMIN_KEY_VARIABLE)
                )
                if bootstrap is not None:
                    # Printed to stdout, never logged: the key must not reach a log index.
                    print(first_start_message(bootstrap, f"{scheme}://{shown}:{port}"), flush=True)
            storage = settings.storage
            where = (
                f"Kafka at {settings.kafka.bootstrap_servers}"
                if storage.backend == "kafka"
                else storage.data_dir
            )
            logger.info(
                "sluicegate listening on %s://%s:%d (data in %s)",
                scheme,
                shown,
                port,
                where,
                extra={"url": f"{scheme}://{shown}:{port}", "port": port},
            )
            await server.serve(sockets=[sock])
            housekeeping.cancel()
            loop_lag.cancel()
            await asyncio.wait([housekeeping, loop_lag])
            logger.info("HTTP stopped; committing queued writes")
            await log.close()
    finally:
        sock.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    logger.info("sluicegate stopped")
