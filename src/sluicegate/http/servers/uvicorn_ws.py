"""uvicorn's WebSocket protocol with less held per open connection.

uvicorn (0.54) picks ``WebSocketsSansIOProtocol`` when ``websockets`` is installed. Per
connection it keeps, for the connection's whole life, an ``asyncio.Queue`` (three
``deque``\\ s of 64 slots each, ~2.3 KB) for messages of which it holds one at most (it
pauses reading after each until the app took it), an ``asyncio.Event`` (a ``deque``,
~0.8 KB) for the transport's write flow control, and the handshake's parsed request and
response (``websockets`` ``Headers``, ~3 KB) that nothing reads once the upgrade is
answered. 10,000 idle WebSocket consumers hold ~60 MB of that. This subclass swaps the
queue and the event for objects that allocate only while somebody waits, and drops the
handshake once it is answered; everything else is uvicorn's, unchanged.

Two more things outlive the handshake. uvicorn sets 37 attributes on its protocol, more
than the 30 an instance dictionary shares its keys for, so each connection had a
dictionary of its own (1.6 KB); here they are slots (8 bytes each) and the dictionary
stays empty. And ``websockets``' parser keeps the handshake's ``Request`` for the
connection's life (a local of its generator, which goes on parsing frames), headers
and all (~2 KB): they are cleared once the ``101`` is written.

It relies on what uvicorn does with these attributes: ``queue`` (``put_nowait``, ``get``,
``empty``), ``writable`` (``set``, ``clear``, ``wait``), and ``request``/``response``
read only before ``start_keepalive`` (called once, right after the ``101`` is written).
An attribute a later uvicorn adds still works, in the dictionary
(``tests/dialects/cloudevents/test_websocket_idle.py`` says so if one appears).
``tests/http/test_uvicorn_ws.py`` checks the queue and the flag.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["LeanWebSocketsProtocol"]


class _Inbox:
    """``asyncio.Queue``'s ``put_nowait``/``get``/``empty``, unbounded, with a list that
    holds the (at most few) messages and futures only while ``get`` waits."""

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getters: list[asyncio.Future[None]] | None = None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._wake_one()

    def _wake_one(self) -> None:
        getters = self._getters
        if getters:
            for getter in getters:
                if not getter.done():
                    getter.set_result(None)
                    break

    async def get(self) -> Any:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            getters = self._getters
            if getters is None:
                getters = self._getters = []
            getters.append(getter)
            try:
                await getter
            except asyncio.CancelledError:
                if getter.done() and not getter.cancelled() and self._items:
                    self._wake_one()  # woken for an item, then cancelled: hand it on
                raise
            finally:
                getters.remove(getter)
                if not getters:
                    self._getters = None
        return self._items.pop(0)


class _Flag:
    """``asyncio.Event``'s ``set``/``clear``/``is_set``/``wait``, with waiters' futures
    only while somebody waits (a paused transport: rare)."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        self._value = True
        waiters = self._waiters
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = []
        waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            waiters.remove(waiter)
            if not waiters:
                self._waiters = None


class LeanWebSocketsProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``WebSocketsSansIOProtocol`` holding less per connection (see above)."""

    # Every attribute uvicorn 0.54's protocol sets (the base class's __dict__ remains,
    # empty, for anything else).
    __slots__ = (
        "app",
        "app_state",
        "asgi_version",
        "client",
        "close_sent",
        "close_timeout",
        "close_timer",
        "config",
        "conn",
        "connections",
        "curr_msg_data_type",
        "default_headers",
        "disconnected",
        "frames",
        "handshake_complete",
        "handshake_initiated",
        "initial_response",
        "last_ping_rtt",
        "logger",
        "loop",
        "pending_ping_payload",
        "ping_interval",
        "ping_sent_at",
        "ping_timeout",
        "ping_timer",
        "pong_timer",
        "queue",
        "read_paused",
        "request",
        "response",
        "root_path",
        "scheme",
        "scope",
        "server",
        "tasks",
        "transport",
        "writable",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]

    # -- a peer that does not read ---------------------------------------------------
    #
    # uvicorn goes on reading while the transport's write buffer is over its high-water
    # mark, and answers every ping it reads with a pong written to that buffer: a client
    # that sends pings and reads nothing made the server hold hundreds of megabytes of
    # pongs per connection until the keepalive dropped it. And the keepalive "dropped" it
    # with ``transport.close()``, which waits for the buffer to drain: from a peer that
    # does not read, never, so the socket and its buffers stayed. Reading stops while
    # writing is paused (the app's own pause, until it took a message, is uvicorn's
    # ``read_paused``: reading resumes only when neither holds it), and a peer that
    # missed its pong is cut at once, what it did not read thrown away.

    def pause_writing(self) -> None:
        super().pause_writing()
        if not self.read_paused:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if not self.read_paused and not self.transport.is_closing():
            self.transport.resume_reading()

    async def receive(self) -> Any:
        # uvicorn's, but reading resumes only if writing is not paused as well.
        message = await self.queue.get()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            if self.writable.is_set() and not self.transport.is_closing():
                self.transport.resume_reading()
        return message

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        if self.transport.get_write_buffer_size():
            self.transport.abort()

    def start_keepalive(self) -> None:
        # Called once, right after the handshake's answer is written: its request and
        # response are never read again. The request's headers are emptied too, since
        # the parser's generator still holds the request itself.
        request = getattr(self, "request", None)
        if request is not None:
            request.headers.clear()
            del self.request
        if getattr(self, "response", None) is not None:
            del self.response
        super().start_keepalive()

    def send_receive_event_to_app(self) -> None:
        # A text message that is no UTF-8 is the client's fault, which uvicorn closes with
        # 1007 and logs as an error with a traceback: any client could fill the server's
        # error log (and its alerts) at will. Closed the same way here, with a reason.
        if self.curr_msg_data_type == "text" and not self.close_sent:
            frames = self.frames
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            if not data.isascii():
                try:
                    data.decode()
                except UnicodeDecodeError:
                    self.frames = []
                    self.conn.send_close(1007, "a text message must be UTF-8")
                    self.handle_parser_exception()
                    return
        super().send_receive_event_to_app()
