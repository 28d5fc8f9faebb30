"""Hypercorn, for HTTP/2: h2 through ALPN with TLS, h2c with prior knowledge without,
HTTP/1.1 on the same listener, and WebSockets over both (RFC 8441 extended CONNECT:
Hypercorn announces ``SETTINGS_ENABLE_CONNECT_PROTOCOL``).

Hypercorn's own ``serve`` binds its sockets, installs signal handlers and builds its TLS
context, and its scopes carry no client certificate. So this module runs its connection
handler (``TCPServer``, one per accepted connection) on the socket the CLI bound, with the
listener's context (``http/tls.py``) plus ALPN, and adds what uvicorn's protocols add
(``with_tls_extension``, ``guarded_protocol``):

* the ASGI TLS extension in every scope, read from the connection's TLS object (mTLS);
* ``server.header_timeout`` from connecting (and for the TLS handshake), then
  ``keep_alive_timeout`` from each response, with a 408 for a head that has begun
  (``_Connection``);
* ``server.body_timeout``: a request whose body is not whole in time is answered 408
  and the app sees the client disconnect (``_BodyDeadline``);
* the rest of a body answered early (a 413) read and dropped within that deadline.

``max_header_bytes`` is h11's incomplete-event limit and HTTP/2's
``SETTINGS_MAX_HEADER_LIST_SIZE``. h11 holds it only on a head that has not ended, so
``_H11Protocol`` measures a head that arrived whole too; either is answered 414 for a
request target or line over it, else 431. See the design notes, "HTTP/2 through
Hypercorn, uvicorn the default", for what differs from uvicorn.

These 408s, 414 and 431 are in the error format of the dialect the request's path
belongs to, as under uvicorn (``http/server_answers.py``); plain when no path is known.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, cast

import h11
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import Closed, RawData
from hypercorn.logging import Logger
from hypercorn.protocol import h2 as _h2_module
from hypercorn.protocol import h11 as _h11_module
from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.ws_stream import WSStream
from hypercorn.typing import AppWrapper
from wsproto.events import CloseConnection, Ping, Pong

from sluicegate.config import Settings
from sluicegate.errors import BadRequest, ClientError, HeadersTooLarge, RequestTimeout, UriTooLong
from sluicegate.http.server_answers import (
    ErrorAnswerer,
    answer_bytes,
    closing_headers,
    error_answerer,
    target_path,
)
from sluicegate.http.servers import ANSWER_SECONDS, BACKLOG, STOPPED, BeforeShutdown
from sluicegate.http.tls import server_ssl_context, tls_extension
from sluicegate.http.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HypercornServer", "hypercorn_config"]

#: Protocols offered through ALPN, most preferred first.
ALPN_PROTOCOLS = ["h2", "http/1.1"]

logger = logging.getLogger("sluicegate.http")
#: Seconds between two lines saying connections failed (``_connection_failed``).
_FAILURES_LOGGED_EVERY = 10.0
#: Characters of a failure's message logged.
_FAILURE_TEXT = 200


class _AccessLog(Logger):
    """Hypercorn's logger, its access lines in uvicorn's words (one format either way),
    and without Hypercorn's atoms: they copy the whole environment into every line."""

    async def access(self, request: Any, response: Any, request_time: float) -> None:
        if self.access_logger is None:
            return
        client = request.get("client")
        where = f"{client[0]}:{client[1]}" if client else "-"
        query = request["query_string"].decode("latin-1")
        path = request["path"] + ("?" + query if query else "")
        status = "-" if response is None else response["status"]
        if request["type"] == "websocket":
            self.access_logger.info('%s - "WebSocket %s" %s', where, path, status)
        else:
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %s',
                where,
                request["method"],
                path,
                request["http_version"],
                status,
            )


def hypercorn_config(settings: Settings) -> Config:
    """Hypercorn's settings for ``settings.server`` (TLS is handled by ``HypercornServer``)."""
    server = settings.server
    config = Config()
    config.keep_alive_timeout = server.keep_alive_timeout
    config.ssl_handshake_timeout = server.header_timeout
    config.h11_max_incomplete_size = server.max_header_bytes
    config.h2_max_header_list_size = server.max_header_bytes
    config.include_server_header = False
    # WebSocket consumers (/ce/ws): pings at the interval, each answered within the
    # timeout or the peer is closed with 1011 (``_WebSocketStream``), and 1009 past the
    # message size. Hypercorn offers permessage-deflate to any client that asks, whatever
    # cloudevents.websocket_compression.
    ce = settings.cloudevents
    config.websocket_max_message_size = ce.websocket_max_message_bytes
    config.websocket_ping_interval = ce.websocket_ping_interval
    _WebSocketStream.ping_timeout = ce.websocket_ping_timeout
    # Hypercorn names its WebSocket stream class inside its protocols' modules: this
    # process's Hypercorn connections are the gateway's, so the names are rebound.
    _h11_module.WSStream = _WebSocketStream  # type: ignore[attr-defined]
    _h2_module.WSStream = _WebSocketStream  # type: ignore[attr-defined]
    config.logger_class = _AccessLog
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = logging.getLogger("hypercorn.access") if server.access_log else None
    return config


def _timeout_response(
    timeout: float, path: str, error_answer: ErrorAnswerer
) -> tuple[Message, Message]:
    exc = RequestTimeout(f"the request's body did not arrive within {timeout:g} s")
    answer = error_answer(path, exc)
    start: Message = {
        "type": "http.response.start",
        "status": answer[0],
        "headers": closing_headers(answer),
    }
    return start, {"type": "http.response.body", "body": answer[2]}


class _BodyDeadline:
    """One request's ``receive`` and ``send`` under ``server.body_timeout``.

    The deadline runs from the request's headers (when the app is called) to the end of
    its body, whatever arrives in between. Past it, the client gets a 408 unless an
    answer has begun; the app gets ``http.disconnect`` (it stores nothing and answers
    nobody) and what it sends afterwards is dropped.
    """

    __slots__ = (
        "_deadline",
        "_dropping",
        "_error_answer",
        "_path",
        "_reading",
        "_receive",
        "_send",
        "_started",
        "_timeout",
    )

    def __init__(
        self, receive: Receive, send: Send, timeout: float, path: str, error_answer: ErrorAnswerer
    ) -> None:
        self._receive = receive
        self._send = send
        self._timeout = timeout
        self._path = path
        self._error_answer = error_answer
        self._deadline = asyncio.get_running_loop().time() + timeout
        self._reading = True
        self._started = False
        self._dropping = False

    async def receive(self) -> Message:
        if not self._reading:
            return await self._receive()  # the body is whole: waiting for a disconnect
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            self._reading = False
            if not self._started:
                for answer in _timeout_response(self._timeout, self._path, self._error_answer):
                    await self._send(answer)
                self._dropping = True
            return {"type": "http.disconnect"}
        if message["type"] != "http.request" or not message.get("more_body"):
            self._reading = False
        return message

    async def send(self, message: Message) -> None:
        if self._dropping:
            return
        kind = message["type"]
        if kind == "http.response.start":
            self._started = True
        elif self._reading and kind == "http.response.body" and not message.get("more_body"):
            # Answered before the body is whole (a 413, or a route that reads none): the
            # rest is read and dropped before the answer ends, as uvicorn does. Ending it
            # first would close an HTTP/1.1 connection while the client sends, and TCP's
            # reset can destroy the answer; Hypercorn 0.18 drops an HTTP/2 connection
            # whose client sends DATA on a stream it has answered.
            await self._send({**message, "more_body": True})
            while self._reading:
                await self.receive()
            message = {"type": "http.response.body", "body": b""}
        await self._send(message)


class _WebSocketStream(WSStream):
    """Hypercorn's WebSocket stream with the heartbeat uvicorn's has.

    Hypercorn (0.18) sends a ping every ``websocket_ping_interval`` and never looks for
    the answer: a peer that stopped (a frozen process, a cable pulled) kept its stream,
    its consumer instance and its group's partitions for as long as its kernel took the
    pings — an idle one never went. Here a ping not answered within ``ping_timeout``
    closes the stream with 1011, as websockets does under uvicorn; any pong counts.
    """

    #: Seconds a ping waits for its answer (``cloudevents.websocket_ping_timeout``).
    ping_timeout = 20.0
    _answered_at = 0.0

    async def _accept(self, message: Any) -> None:
        await super()._accept(message)
        # Pongs pass through wsproto's events, which Hypercorn's loop over them ignores.
        events = self.connection.events

        def watched() -> Any:
            for event in events():
                if isinstance(event, Pong):
                    self._answered_at = time.monotonic()
                yield event

        self.connection.events = watched  # type: ignore[method-assign]

    async def _send_pings(self) -> None:
        interval = self.config.websocket_ping_interval
        assert interval is not None  # Hypercorn starts this only with an interval
        while not self.closed:
            sent_at = time.monotonic()
            await self._send_wsproto_event(Ping())
            await self.context.sleep(self.ping_timeout)
            if self.closed:
                return
            if self._answered_at < sent_at:
                await self._send_wsproto_event(
                    CloseConnection(code=1011, reason="keepalive ping timeout")
                )
                await self.send(StreamClosed(stream_id=self.stream_id))
                return
            await self.context.sleep(max(0.0, interval - self.ping_timeout))


class _ConnectionApp:
    """The app as Hypercorn calls it (its ``AppWrapper``), for one connection; each HTTP
    request's task is in ``requests`` while the app serves it."""

    __slots__ = ("_app", "_body_timeout", "_error_answer", "_requests", "_tls")

    def __init__(
        self,
        app: ASGIApp,
        body_timeout: float,
        error_answer: ErrorAnswerer,
        tls: dict[str, Any] | None,
        requests: set[asyncio.Task[Any]],
    ) -> None:
        self._app = app
        self._body_timeout = body_timeout
        self._error_answer = error_answer
        self._tls = tls
        self._requests = requests

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        sync_spawn: Callable[..., Awaitable[Any]],
        call_soon: Callable[..., Any],
    ) -> None:
        if self._tls is not None:
            scope["extensions"]["tls"] = self._tls
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        deadline = _BodyDeadline(
            receive, send, self._body_timeout, scope["path"], self._error_answer
        )
        task = asyncio.current_task()
        assert task is not None  # Hypercorn runs each request's app in a task
        self._requests.add(task)
        try:
            await self._app(scope, deadline.receive, deadline.send)
        finally:
            self._requests.discard(task)


class _H11Protocol(H11Protocol):
    """Hypercorn's HTTP/1.1 protocol, with the answer to a head over h11's limit (its
    ``Receive buffer too long``, an empty 431) a 414 or 431 rendered by ``error_answer``.

    ``_Connection`` makes each connection's ``H11Protocol`` one of these.
    """

    error_answer: ErrorAnswerer

    async def _send_error_response(self, status_code: int) -> None:
        connection = self.connection
        # h11 hints 431 only for its incomplete-event limit; other errors stay its own.
        if status_code != 431 or not isinstance(connection, h11.Connection):
            await super()._send_error_response(status_code)
            return
        head, _ = connection.trailing_data
        target = _request_target(head)
        exc = _head_too_large(head, target, self.config.h11_max_incomplete_size)
        answer = self.error_answer(target_path(target), exc)
        await self.send(RawData(data=answer_bytes(answer)))

    async def _create_stream(self, request: h11.Request) -> None:
        exc = _refusal(request, self.config.h11_max_incomplete_size)
        if exc is None:
            await super()._create_stream(request)
            return
        # Without a stream, the request's next event ends the connection
        # (``_handle_events``).
        answer = self.error_answer(target_path(request.target), exc)
        await self.send(RawData(data=answer_bytes(answer)))
        await self.send(Closed())


def _refusal(request: h11.Request, limit: int) -> ClientError | None:
    """Why ``request``, its head whole, is answered at once and its connection closed.

    * Both framings: h11 takes the chunked one and keeps the connection, so what the
      Content-Length would have counted as body is read as the next request (smuggling,
      when a proxy in front counts the other way). RFC 9112 6.1: a server may refuse it,
      and must close the connection after it; uvicorn's parser answers it 400.
    * A head over ``limit``: h11 holds its limit only on a head still arriving; one that
      came whole in a read is parsed whatever its size, so it is measured here.
    """
    size = len(request.method) + len(request.target) + 12  # "  HTTP/1.1\r\n", "\r\n"
    framing: set[bytes] = set()
    for name, value in request.headers:
        size += len(name) + len(value) + 4
        if name in _FRAMING:
            framing.add(name)
    if len(framing) > 1:
        return BadRequest("a request with both Content-Length and Transfer-Encoding is refused")
    if size <= limit:
        return None
    if len(request.target) > limit:
        return UriTooLong(f"the request target exceeds the limit of {limit} bytes")
    return HeadersTooLarge(f"the request line and headers exceed the limit of {limit} bytes")


#: The headers that say where a request's body ends (h11 gives names in lower case).
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


def _head_too_large(head: bytes, target: bytes, limit: int) -> ClientError:
    """414 when the request target is over ``limit`` (as uvicorn says), or the request
    line is (it has not ended); else 431."""
    if len(target) > limit or b"\n" not in head.lstrip():
        return UriTooLong(f"the request target exceeds the limit of {limit} bytes")
    return HeadersTooLarge(f"the request line and headers exceed the limit of {limit} bytes")


class _Connection(TCPServer):
    """Hypercorn's connection handler, with uvicorn's header deadline (``http/protocol.py``)
    and ``_H11Protocol``'s answers.

    Hypercorn closes a connection that stays idle (no request in progress) for
    ``keep_alive_timeout``, and a request is in progress only once its headers are
    whole: that idle timer is the header deadline. Here it is ``header_timeout`` from
    connecting, as under uvicorn, then ``keep_alive_timeout`` from each response; a
    request whose head has begun gets a 408 before the connection closes.
    """

    def __init__(self, header_timeout: float, error_answer: ErrorAnswerer, *args: Any) -> None:
        super().__init__(*args)
        self._idle_limit = header_timeout
        self._error_answer = error_answer

    async def _read_data(self) -> None:
        # Called once, just after ``run`` made the protocol. Hypercorn names its HTTP/1.1
        # class inside ``ProtocolWrapper``, so the made one is given the subclass here
        # (it adds only a method) instead of copying ``run`` and ``ProtocolWrapper``.
        protocol = self.protocol.protocol
        if type(protocol) is H11Protocol:
            protocol.__class__ = _H11Protocol
            cast(_H11Protocol, protocol).error_answer = self._error_answer
        await super()._read_data()
        # The connection is closed. Hypercorn (0.18) leaves each HTTP/2 stream's send
        # buffer open then: a response larger than the client's window waits in it for
        # good, and with it the request's task, the connection's task (which waits for
        # it), their memory and the socket — about 2 MB and a socket per client that
        # left in the middle of a download. Closed, the buffer lets the sender go.
        protocol = self.protocol.protocol
        if isinstance(protocol, H2Protocol):
            for buffer in list(protocol.stream_buffers.values()):
                await buffer.close()

    async def _idle_timeout(self) -> None:
        limit, self._idle_limit = self._idle_limit, self.config.keep_alive_timeout
        try:
            await asyncio.wait_for(self.context.terminated.wait(), limit)
        except TimeoutError:
            head = _partial_head(self.protocol.protocol)
            if head is not None:
                exc = RequestTimeout(f"the request's headers did not arrive within {limit:g} s")
                answer = self._error_answer(target_path(_request_target(head)), exc)
                self.writer.write(answer_bytes(answer))
        await asyncio.shield(self._initiate_server_close())


def _partial_head(protocol: object) -> bytes | None:
    """The part of a request's head an HTTP/1.1 connection holds (not blank lines), if any."""
    if not isinstance(protocol, H11Protocol) or not isinstance(protocol.connection, h11.Connection):
        return None
    received, _ = protocol.connection.trailing_data
    return received if protocol.connection.their_state is h11.IDLE and received.strip() else None


def _request_target(head: bytes) -> bytes:
    """The request target in ``head``'s request line, or as much of it as has arrived."""
    line = head.lstrip().split(b"\n", 1)[0]
    parts = line.split(b" ", 2)
    return parts[1].rstrip(b"\r") if len(parts) > 1 else b""


class HypercornServer:
    """``HttpServer`` on Hypercorn: HTTP/1.1, HTTP/2 and WebSockets over either."""

    def __init__(
        self, app: ASGIApp, settings: Settings, before_shutdown: BeforeShutdown | None = None
    ) -> None:
        self._app = app
        self._error_answer = error_answerer(app)
        self._before_shutdown = before_shutdown
        self._config = hypercorn_config(settings)
        self._body_timeout = settings.server.body_timeout
        self._header_timeout = settings.server.header_timeout
        self._graceful = settings.server.graceful_shutdown
        self._ssl: ssl.SSLContext | None = None
        if settings.server.tls.certfile is not None:
            self._ssl = server_ssl_context(settings.server.tls)
            self._ssl.set_alpn_protocols(ALPN_PROTOCOLS)
        self._exit = asyncio.Event()
        self._hurry = asyncio.Event()
        #: Each connection's task, and its transport to abort when it is cut off.
        self._connections: dict[asyncio.Task[None], asyncio.WriteTransport] = {}
        #: The tasks of the HTTP requests being served (``_ConnectionApp``).
        self._requests: set[asyncio.Task[Any]] = set()
        #: Connections failed since the last one logged, and when that was.
        self._failures = 0
        self._failure_logged_at = -_FAILURES_LOGGED_EVERY

    def request_exit(self) -> None:
        """See ``HttpServer.request_exit``; a second call stops without waiting."""
        if self._exit.is_set():
            self._hurry.set()
        self._exit.set()

    async def serve(self, sock: socket.socket) -> None:
        """See ``HttpServer.serve``."""
        context = WorkerContext(None)
        listener = await asyncio.start_server(
            partial(self._connection, context),
            sock=sock,
            # asyncio listens again, with a backlog of 100 unless told.
            backlog=BACKLOG,
            ssl=self._ssl,
            ssl_handshake_timeout=self._config.ssl_handshake_timeout if self._ssl else None,
        )
        try:
            await self._exit.wait()
            listener.close()
            loop = asyncio.get_running_loop()
            # One graceful period for the streams' ends and the requests' together.
            deadline = loop.time() + self._graceful
            if self._before_shutdown is not None:
                await self._before_shutdown()
            # Idle connections close at once, HTTP/1.1 ones after their response, and
            # HTTP/2 ones refuse new streams and close when their last one ends.
            await context.terminated.set()
            await self._drain(max(0.0, deadline - loop.time()))
        finally:
            listener.close()
            # Aborted first, so that a request cut off gets no answer (Hypercorn answers
            # 500 for an app cancelled before it answered), then cancelled.
            for task, transport in self._connections.items():
                transport.abort()
                task.cancel()
            if self._connections:
                await asyncio.wait(self._connections)

    async def _drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the connections to end; then cancel the
        requests still running with ``STOPPED`` and give their answers
        ``ANSWER_SECONDS`` to go out."""
        hurry = asyncio.create_task(self._hurry.wait())
        try:
            if not await self._connections_end(timeout, hurry):
                for task in self._requests:
                    task.cancel(msg=STOPPED)
                await self._connections_end(ANSWER_SECONDS, hurry)
        finally:
            hurry.cancel()

    async def _connections_end(self, timeout: float, hurry: asyncio.Task[Any]) -> bool:
        """Whether every connection ended within ``timeout`` (False if hurried too)."""
        try:
            async with asyncio.timeout(timeout):
                while self._connections and not self._hurry.is_set():
                    await asyncio.wait(
                        [*self._connections, hurry], return_when=asyncio.FIRST_COMPLETED
                    )
        except TimeoutError:
            return False
        return not self._connections

    def _connection_failed(self, exc: Exception) -> None:
        """Log a connection's failure: one line, its cause's type and the start of its
        message, at most once per ``_FAILURES_LOGGED_EVERY`` seconds with the count of
        those not logged since. A client can make connections fail at will (HTTP/2's
        rapid reset does), and the exceptions of the protocol libraries carry the bytes
        received: a line with a traceback each made 862 kB of log from 21 connections."""
        self._failures += 1
        now = time.monotonic()
        if now - self._failure_logged_at < _FAILURES_LOGGED_EVERY:
            return
        self._failure_logged_at = now
        failures, self._failures = self._failures, 0
        cause: BaseException = exc
        while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
            cause = cause.exceptions[0]  # Hypercorn's task groups wrap the cause
        text = str(cause)
        if len(text) > _FAILURE_TEXT:
            text = text[:_FAILURE_TEXT] + "..."
        logger.warning(
            "an HTTP connection failed: %s: %s (%d connection(s) failed in the last %g s)",
            type(cause).__name__,
            text,
            failures,
            _FAILURES_LOGGED_EVERY,
        )
        logger.debug("the connection's failure", exc_info=exc)

    async def _connection(
        self, context: WorkerContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is None:  # never: asyncio serves each connection in a task
            return
        self._connections[task] = writer.transport
        app = _ConnectionApp(
            self._app,
            self._body_timeout,
            self._error_answer,
            tls_extension(writer.transport),
            self._requests,
        )
        # Hypercorn types scopes and messages as TypedDicts; the app takes plain mappings.
        wrapped = cast(AppWrapper, app)
        try:
            await _Connection(
                self._header_timeout,
                self._error_answer,
                wrapped,
                asyncio.get_running_loop(),
                self._config,
                context,
                {},
                reader,
                writer,
            )
        except asyncio.CancelledError:
            # Only ``serve`` cancels a connection's task, and waits for it to end: the
            # cancellation has reached its owner. Raised on, it would reach asyncio's
            # stream server instead, which (3.11) logs it as an error.
            pass
        except Exception as exc:  # noqa: BLE001 (logged by _connection_failed)
            # One connection's failure is contained, as a request's is. Hypercorn 0.18
            # raises, for one, when an HTTP/2 client opens a stream on a connection it
            # has just closed at shutdown, or more than its priority tree holds.
            self._connection_failed(exc)
            writer.transport.abort()
        finally:
            del self._connections[task]
