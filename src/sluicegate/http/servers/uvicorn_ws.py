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

It relies on what uvicorn does with these attributes: ``queue`` (``put_nowait``, ``get``,
``empty``), ``writable`` (``set``, ``clear``, ``wait``), and ``request``/``response``
read only before ``start_keepalive`` (called once, right after the ``101`` is written).
``tests/http/test_uvicorn_ws.py`` checks the protocol end to end on a real socket.
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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]

    def start_keepalive(self) -> None:
        # Called once, right after the handshake's answer is written: its request and
        # response are never read again.
        self.__dict__.pop("request", None)
        self.__dict__.pop("response", None)
        super().start_keepalive()
