"""uvicorn's httptools protocol with the bounds it lacks for slow and broken clients.

uvicorn (0.54) closes a keep-alive connection that stays idle after a response
(``timeout_keep_alive``), and nothing else: a connection that never sends a byte, a
request whose headers never end, and a body that trickles in one byte a second each
hold a connection, a protocol object and their buffers for as long as the client
likes; and httptools keeps appending to the URL and headers of a request that never
ends them. ``guarded_protocol`` derives a protocol class that adds, per connection:

* ``header_timeout``: from the connection's start, or from a request's first byte,
  until its headers are complete. A connection that sent nothing is closed; one in the
  middle of its headers is answered 408 and closed.
* ``body_timeout``: from a request's headers until the end of its body. If the app has
  not answered yet it is answered 408, the app sees the client disconnect, and the
  connection is closed; a body still arriving after the app answered (a 413 is answered
  before the rest is read) is cut off the same way.
* ``max_header_bytes``: the request line and headers, 414 or 431 beyond it.
* pipelining: uvicorn queues the requests that arrive before the one being answered
  ends, without a bound (reading resumes whenever a queued request is started or a
  response ends, so a read's worth of requests joins the queue each time): a client
  sending requests back to back faster than they were answered grew it for as long as
  it liked (one connection's 18.8 MB of ``GET``s took the process to 1.2 GB). At most
  ``_MAX_PIPELINED`` requests wait now: past them the parser stops, the connection
  answers what it took, in order, and closes, as HTTP lets a server do.

The usual request pays a few attribute checks after the parser: one that arrives whole
in one read (nearly all of them) arms no timer. Timers are armed only while a request is
incomplete at the end of a read, once per phase, never moved by later bytes: a client
cannot keep a deadline away by trickling. uvicorn's keep-alive timeout is kept, but as
the time the last response ended, checked by one timer per connection that looks again
when it fires, instead of a timer armed after every response and cancelled by the next
request's first read. Each response is written in one write, head
and body together (``http/response_cycle.py``).

The 408s, 414 and 431 from here are in the error format of the dialect the request's
path belongs to, as the app renders a 404 for a path no route matches: the app renders
them (``http/server_answers.py``), for the path once its request line is parsed, or for
as much of the target as has arrived (a 414's never arrives whole). A head that ends
before any of its target is known gets the plain ``{"error", "message"}`` body of routes
outside any dialect, and so does uvicorn's own 400 for bytes that are not HTTP (what
follows them is no request, and the target parsed before them may be an earlier one's).
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

import httptools
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sluicegate.config import ServerSettings
from sluicegate.errors import (
    BadRequest,
    ClientError,
    HeadersTooLarge,
    RequestTimeout,
    UriTooLong,
)
from sluicegate.http.response_cycle import OneWriteCycle
from sluicegate.http.responses import ABORT, WHOLE
from sluicegate.http.server_answers import (
    ErrorAnswerer,
    answer_bytes,
    plain_answer,
    target_path,
)

__all__ = ["guarded_protocol"]

#: What the connection waits for; each has its own deadline.
_IDLE, _HEADERS, _BODY = 0, 1, 2
#: Requests a connection may have waiting behind the one being answered. Clients that
#: pipeline send a few; each waiting request holds its scope, headers and cycle.
_MAX_PIPELINED = 100


class _PipelineFull(Exception):
    """Raised in the parser's callback to stop parsing a connection's pipelined requests
    past ``_MAX_PIPELINED`` (httptools stops at a callback's exception)."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """See the module's docstring; the limits are class attributes set by ``guarded_protocol``."""

    header_timeout = 10.0
    body_timeout = 30.0
    max_header_bytes = 64 * 1024
    #: Renders the answers from here (a static method: see ``guarded_protocol``).
    error_answer: ErrorAnswerer = staticmethod(plain_answer)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for = _IDLE
        self._header_bytes = 0
        #: The size of the read being parsed, and whether the head it completed was too
        #: large (``on_headers_complete``).
        self._read_bytes = 0
        self._head_refused = False
        self._pipeline_full = False
        self._upgraded = False
        #: When the last response ended with nothing after it: the start of the idle time
        #: that ``timeout_keep_alive`` bounds. None while a request is under way.
        self._idle_since: float | None = None
        self._idle_check: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that never sends its first request is cut off like slow headers.
        self._expect(_HEADERS)

    def connection_lost(self, exc: Exception | None) -> None:
        self._expect(_IDLE)
        self._stop_idle_check()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._upgraded = True
        self._expect(_IDLE)  # the WebSocket protocol takes over, with its own timeouts
        self._stop_idle_check()
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        if self._pipeline_full:
            return  # closing once the requests taken are answered: nothing more is read
        # Any byte ends the idle time, as it cancels uvicorn's keep-alive timer.
        self._idle_since = None
        self._read_bytes = len(data)
        # The class named, not super(): this runs for every read of every connection.
        HttpToolsProtocol.data_received(self, data)
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:
            if not cycle.more_body:
                # The request is whole: nothing to wait for while it is answered, and
                # uvicorn's keep-alive timer runs once it is. The usual end of a read.
                if cycle.response_complete:
                    # Answered already, so these bytes (blank lines) began no request
                    # and cancelled uvicorn's keep-alive timer: wait as for a new one.
                    self._expect(_HEADERS)
                elif self._waiting_for:
                    self._expect(_IDLE)
                return
            # The body is still arriving (or, after an early answer, its end is not
            # reported: uvicorn then ignores it; the body deadline closes the connection).
            self._header_bytes = 0
            self._expect(_BODY)
        elif self.scope is not None and not self._upgraded:
            # A request began in this read or an earlier one; its headers are not complete.
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse_large_head()
            else:
                self._expect(_HEADERS)

    def on_headers_complete(self) -> None:
        # uvicorn's (0.55), but the cycle is a OneWriteCycle, so that each response is one
        # write. uvicorn names its class inside the method, so the method is repeated here;
        # changing a made cycle's class instead would turn its attributes into a dict's
        # (CPython materializes it), slowing every access to them.
        if self._header_bytes + self._read_bytes > self.max_header_bytes and self._head_too_large():
            # A head that came whole in this read (``data_received`` counts only the reads
            # that leave one unfinished): the parser stops on this error and uvicorn
            # answers it through ``send_400_response``, which says 414 or 431 instead.
            self._head_refused = True
            raise UriTooLong("the request's head is over its limit")
        existing = self.cycle
        if (
            existing is not None
            and not existing.response_complete
            and len(self.pipeline) >= _MAX_PIPELINED
        ):
            self._pipeline_full = True
            raise _PipelineFull
        parser = self.parser
        http_version = parser.get_http_version()
        self.scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            self.scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        url = httptools.parse_url(self.url)
        raw_path = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        self.scope["path"] = self.root_path + path
        self.scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        self.scope["query_string"] = url.query or b""
        # A dict of its own: the TLS wrapper adds to it.
        self.scope["extensions"] = {ABORT: {}, WHOLE: {}}
        app: ASGI3Application = self.app
        if self.limit_concurrency is not None and (
            len(self.connections) >= self.limit_concurrency
            or len(self.tasks) >= self.limit_concurrency
        ):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        self.cycle = OneWriteCycle(
            scope=self.scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        if existing is None or existing.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:
            # Pipelined requests wait for the one before them.
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    def on_response_complete(self) -> None:
        # uvicorn's (0.55), but the keep-alive deadline is a time (``_idle_since``) that
        # one timer per connection checks, not a timer armed here and cancelled by the
        # next read: that pair cost 5,800 instructions a request (callgrind), 3.6% of a
        # topics v1 publish. uvicorn's own timer is never armed, so its cancel is skipped.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self._idle_check is None:
            self._idle_check = self.loop.call_later(self.timeout_keep_alive, self._idle_late)

    def _idle_late(self) -> None:
        """The idle check's timer: close a connection idle for ``timeout_keep_alive``,
        else look again when it would be."""
        self._idle_check = None
        since = self._idle_since
        if since is None or self.transport.is_closing():
            return  # a request is under way: its response arms the check again
        left = since + self.timeout_keep_alive - self.loop.time()
        # uvloop's clock and timers count whole milliseconds: within one, it is time.
        if left >= 0.001:
            self._idle_check = self.loop.call_later(left, self._idle_late)
        else:
            self.transport.close()

    def _stop_idle_check(self) -> None:
        if self._idle_check is not None:
            self._idle_check.cancel()
            self._idle_check = None

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to bytes that are not HTTP, with a JSON body like every other.
        if self._pipeline_full:
            # Not a bad request: too many ahead of it. What was taken is answered, in
            # order, and the connection closes after the last of it; nothing more is read.
            self.pipeline[0][0].keep_alive = False
            self.flow.pause_reading()
            return
        if self._head_refused:
            self._head_refused = False
            self._refuse_large_head()
            return
        exc = BadRequest("the request is not valid HTTP/1.1; the connection closes")
        self.transport.write(answer_bytes(plain_answer(None, exc)))
        self.transport.close()

    def _expect(self, phase: int) -> None:
        """Arm ``phase``'s deadline, unless it is armed already (a deadline never moves).

        ``_IDLE`` disarms; cancelling a handle that has just fired is harmless.
        """
        if phase == self._waiting_for:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._waiting_for = phase
        if phase == _HEADERS:
            self._deadline = self.loop.call_later(self.header_timeout, self._headers_late)
        elif phase == _BODY:
            self._deadline = self.loop.call_later(self.body_timeout, self._body_late)

    def _busy(self) -> bool:
        """Whether a response is being made for an earlier request on this connection."""
        cycle = self.cycle
        return cycle is not None and cycle.scope is not self.scope and not cycle.response_complete

    def _close_with(self, exc: ClientError, path: str | None) -> None:
        """Answer ``exc`` for a request to ``path`` (None: unknown) and close."""
        self._expect(_IDLE)
        if not self.transport.is_closing():
            self.transport.write(answer_bytes(self.error_answer(path, exc)))
            self.transport.close()

    def _head_path(self) -> str | None:
        """The path of the request whose head is arriving, as far as it has arrived."""
        return target_path(self.url)

    def _head_too_large(self) -> bool:
        """Whether the request line and headers parsed so far exceed ``max_header_bytes``,
        counted as they came: each header's name, value, ``: `` and line end, and the
        request line's target (its method and version are a few bytes more)."""
        size = len(self.url)
        for name, value in self.headers:
            size += len(name) + len(value) + 4
        return size > self.max_header_bytes

    def _refuse_large_head(self) -> None:
        if len(self.url) > self.max_header_bytes:
            exc: ClientError = UriTooLong(
                f"the request target exceeds the limit of {self.max_header_bytes} bytes"
            )
        else:
            exc = HeadersTooLarge(
                f"the request line and headers exceed the limit of {self.max_header_bytes} bytes"
            )
        if self._busy():
            self.cycle.keep_alive = False  # answer what is in flight, then close
            self.flow.pause_reading()
        else:
            self._close_with(exc, self._head_path())

    def _headers_late(self) -> None:
        cycle = self.cycle
        whole = cycle is not None and cycle.scope is self.scope and not cycle.more_body
        if self.scope is None or whole:
            # Nothing of a request arrived: close quietly, as an idle keep-alive.
            self._expect(_IDLE)
            self.transport.close()
        elif self._busy():
            self._expect(_IDLE)
            self.cycle.keep_alive = False
        else:
            self._close_with(
                RequestTimeout(
                    f"the request's headers did not arrive within {self.header_timeout:g} s"
                ),
                self._head_path(),
            )

    def _body_late(self) -> None:
        cycle = self.cycle
        if cycle.response_started:
            # Answered already (a 413 before the body was read): stop reading the rest.
            self._expect(_IDLE)
            cycle.keep_alive = False
            if cycle.response_complete:
                self.transport.close()
            return
        # The app waits in receive(): it sees the client go, and answers nobody.
        cycle.disconnected = True
        cycle.message_event.set()
        self._close_with(
            RequestTimeout(f"the request's body did not arrive within {self.body_timeout:g} s"),
            cycle.scope["path"],
        )


def guarded_protocol(
    server: ServerSettings, error_answer: ErrorAnswerer = plain_answer
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with ``server``'s timeouts and header limit, its own answers
    rendered by ``error_answer`` (``server_answers.error_answerer``)."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout": server.header_timeout,
            "body_timeout": server.body_timeout,
            "max_header_bytes": server.max_header_bytes,
            # Static: a function (or bound method) as a class attribute would be bound to
            # the connection when it is looked up.
            "error_answer": staticmethod(error_answer),
        },
    )
