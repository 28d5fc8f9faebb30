"""The HTTP servers sluicegate runs under, behind one small interface.

``uvicorn`` (the default) serves HTTP/1.1 and WebSocket upgrades with httptools and the
deadlines of ``http/protocol.py``; ``hypercorn`` (``[server] http2 = true``) serves
HTTP/2 as well on the same listener: h2 through ALPN with TLS, h2c with prior knowledge
without, and WebSockets over HTTP/2 streams (RFC 8441 extended CONNECT). The CLI runs
either the same way: bind the socket, ``serve`` it in the TaskGroup beside storage, and
``request_exit`` from a signal handler for a graceful stop.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

from sluicegate.config import Settings
from sluicegate.errors import ConfigError
from sluicegate.http.types import ASGIApp

__all__ = [
    "ANSWER_SECONDS",
    "BACKLOG",
    "STOPPED",
    "BeforeShutdown",
    "HttpServer",
    "bind",
    "http_server",
]

#: Connections accepted by the kernel before the server takes them.
BACKLOG = 2048

#: The message with which a server cancels the requests still running when its graceful
#: shutdown runs out, so that the app can tell that cancellation from any other and
#: answer them in their dialect's format (``GatewayApp``): the server's own answer would
#: be a bare 500 (uvicorn) or a connection cut off (Hypercorn).
STOPPED = "sluicegate: the graceful shutdown ran out before the request finished"
#: Seconds those answers get to go out before the server closes what is left.
ANSWER_SECONDS = 1.0


class HttpServer(Protocol):
    """What the CLI needs of a server: serve a bound socket, and stop when asked."""

    async def serve(self, sock: socket.socket) -> None:
        """Serve ``sock`` until ``request_exit``, then let in-flight requests finish
        within ``server.graceful_shutdown``; those still running then are cancelled with
        ``STOPPED`` and get ``ANSWER_SECONDS`` to answer. Cancelled, it drops every
        connection at once."""

    def request_exit(self) -> None:
        """Begin a graceful stop (safe to call from a signal handler, and more than once)."""


#: Awaited once a graceful stop begins, before connections are closed.
BeforeShutdown = Callable[[], Awaitable[object]]


def http_server(
    app: ASGIApp, settings: Settings, *, before_shutdown: BeforeShutdown | None = None
) -> HttpServer:
    """The server ``settings.server.http2`` chooses, configured from ``settings``.

    ``before_shutdown`` runs when a graceful stop begins, once the listener is closed and
    before the server closes connections (uvicorn closes WebSockets with 1012 then).
    """
    if settings.server.http2:
        from sluicegate.http.servers.hypercorn import HypercornServer

        return HypercornServer(app, settings, before_shutdown)
    from sluicegate.http.servers.uvicorn import UvicornServer

    return UvicornServer(app, settings, before_shutdown)


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (port 0: a free one), or ``ConfigError``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        # A name that does not resolve, or an address not this machine's, is the host's
        # fault; a port taken or not allowed, the port's.
        host_fault = isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL
        key = "server.host" if host_fault else "server.port"
        raise ConfigError(key, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    # Listening now, not when the server starts: the log announces the port before that,
    # and connections made in between wait in the backlog instead of being refused.
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock
