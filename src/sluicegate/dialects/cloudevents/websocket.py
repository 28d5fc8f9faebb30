"""The WebSocket consumer: ``/ce/ws`` (and ``/ce/``, ``/ce``), subprotocol ``cloudevents.json``.

MConnect's .NET library is configured with the base address ``wss://host:port/ce/``, so
the upgrade is accepted there too. The query options are those of ``POST /ce/consumers``
(``events``, ``test``, ``dead``, ``group``); each connection is one consumer instance of
the client's group (``core.consumers.stream``), counting ``offset`` from 1.

Handshake, refused over HTTP before any upgrade, in the dialect's error format:

* credentials as on every route (Bearer, Basic, TLS client certificate): ``401``, also
  for a client that consumes nothing;
* ``400`` without the subprotocol ``cloudevents.json`` or with a bad query option;
* ``403`` for an ``Origin`` that is not allowed (``cloudevents.websocket_allowed_origins``;
  a page of the gateway's own origin always is; clients that are no browser send none);
* ``429`` beyond the client's WebSocket or instance cap, ``503`` beyond the node's or
  while it shuts down, both with ``Retry-After``.

Protocol: the server sends each event as one text message, its complete structured
JSON form plus ``offset`` (the long polls' renderer); the client sends ``confirm:<offset>``
(every event up to it: the window has room at once, and the group commits it while
the connection goes on, one commit carrying what was confirmed while the one before it
was written) and ``dead:<event json>`` (stored in the client's dead stream). The
connection is closed with

* ``1001`` when the gateway shuts down;
* ``1008`` for anything else the client sends — a binary message, another prefix, an
  offset that is no number or was not sent, a dead event that is not valid — with a
  reason saying what was wrong; and when the client may no longer consume (its key
  revoked or expired, the client deleted or no longer a consumer: its credentials are
  proven again before each delivery);
* ``1009`` for a message over ``cloudevents.websocket_max_message_bytes`` (the server
  refuses it while reading) or a dead event over ``cloudevents.max_event_bytes``;
* ``1011`` when the gateway fails (a failed commit at the next confirmation, say) or the
  peer misses a heartbeat;
* ``1013`` (try again later) when the gateway cannot serve the stream for now: its
  storage is unreachable, or the node no longer serves the group (it lost touch with the
  log, or the group moved to another node); connecting again is the cure;
* a client's own close (normally ``1000``) is answered with the same code.

Whatever ends a connection, the events it sent and were not confirmed go to the group
again; confirmed ones never do (their commit lands before the instance leaves).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from typing import NamedTuple
from urllib.parse import urlsplit

import msgspec

from sluicegate.core.auth.authenticator import Credentials
from sluicegate.core.cloudevents.binding import from_structured, structured_events
from sluicegate.core.cloudevents.consumers import DEFAULT_GROUP, check_group_name, storage_group
from sluicegate.core.cloudevents.streams import dead_topic
from sluicegate.core.consumers.stream import ConsumerStream
from sluicegate.core.gateway import Gateway
from sluicegate.dialects.cloudevents.consumers import (
    max_deliveries_of,
    still_allowed,
    stream_credentials,
    subscription_of,
)
from sluicegate.dialects.cloudevents.errors import render_error
from sluicegate.dialects.cloudevents.produce import consumer_of
from sluicegate.errors import (
    BadRequest,
    ClientError,
    Forbidden,
    OriginNotAllowed,
    PayloadTooLarge,
    SluicegateError,
    Unauthenticated,
    Unavailable,
)
from sluicegate.http.request import Request
from sluicegate.http.router import WebSocketRoute
from sluicegate.http.stream_forwarding import StreamForwarder
from sluicegate.http.types import Message, Receive, Scope, Send
from sluicegate.http.websocket import send_texts
from sluicegate.tasks import let_go_of_cancellation

__all__ = [
    "BURST_BYTES",
    "PATHS",
    "SUBPROTOCOL",
    "WEBSOCKET_PATH",
    "Close",
    "bursts",
    "routes",
    "stream_group",
]

logger = logging.getLogger("sluicegate.cloudevents.websocket")

WEBSOCKET_PATH = "/ce/ws"
#: ``/ce/`` and ``/ce``: where MConnect's .NET library connects.
PATHS = (WEBSOCKET_PATH, "/ce/", "/ce")
SUBPROTOCOL = "cloudevents.json"

GOING_AWAY = 1001
POLICY = 1008
TOO_BIG = 1009
INTERNAL = 1011
TRY_AGAIN_LATER = 1013
#: RFC 6455 5.5: a close frame's payload is 125 bytes, 2 of them the code.
_MAX_REASON_BYTES = 123
_MAX_OFFSET_DIGITS = 18
#: Bytes of events sent at once (one write under uvicorn): about a hundred events of 300
#: bytes, few enough that a connection never queues much past the transport's mark.
BURST_BYTES = 32 * 1024
_CONFIRM = "confirm:"
_DEAD = "dead:"


class Close(NamedTuple):
    """How the server closes a connection: a close code and a reason for the client."""

    code: int
    reason: str


def _reason(text: str) -> str:
    """``text`` cut to what a close frame holds, on a character boundary."""
    raw = text.encode()
    if len(raw) <= _MAX_REASON_BYTES:
        return text
    return raw[: _MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


def _offset(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_OFFSET_DIGITS):
        raise BadRequest(f"confirm: expects an event's offset, got {text[:24]!r}")
    return int(text)


def bursts(texts: list[bytes]) -> Iterator[tuple[int, int]]:
    """``texts`` cut into runs of about ``BURST_BYTES``, as ``(start, end)`` slices: each
    run ends with the text that brings it to ``BURST_BYTES`` or more (or the last)."""
    # Found by bisection in the running total of the texts' sizes (made by C loops),
    # not by adding sizes one text at a time in Python.
    totals = list(accumulate(map(len, texts)))
    start, count, before = 0, len(texts), 0
    while start < count:
        end = min(bisect_left(totals, before + BURST_BYTES, start) + 1, count)
        yield start, end
        before = totals[end - 1]
        start = end


def _failure(exc: BaseException, during: str) -> Close:
    """The close of a connection whose server side failed; logged with an incident id."""
    if isinstance(exc, Unavailable):
        return Close(TRY_AGAIN_LATER, _reason(exc.message))
    if isinstance(exc, SluicegateError):
        return Close(INTERNAL, _reason(exc.message))
    incident = uuid.uuid4().hex[:16]
    logger.error(
        "unhandled error in a WebSocket consumer while %s",
        during,
        exc_info=exc,
        extra={"incident": incident},
    )
    return Close(INTERNAL, f"internal server error; incident id {incident}")


class WebSocketConsumers:
    """The ``/ce/ws`` endpoint over the gateway's streams."""

    def __init__(self, gateway: Gateway) -> None:
        ce = gateway.settings.cloudevents
        self._gateway = gateway
        self._streams = gateway.streams
        self._connections = gateway.limits.websockets
        self._json_limits = gateway.limits.json
        self._producer = gateway.event_producer
        self._window = ce.websocket_window
        self._batch_size = ce.batch_size
        #: Seconds a send may wait for a client that takes nothing (see ``_deliver``).
        self._stall = ce.websocket_ping_interval + ce.websocket_ping_timeout
        origins = {origin.lower() for origin in ce.websocket_allowed_origins}
        self._any_origin = "*" in origins
        self._origins = frozenset(origins)

    # -- the handshake ---------------------------------------------------------------

    def _check_origin(self, request: Request) -> None:
        origin = request.header("origin")
        if origin is None or self._any_origin:
            return
        origin = origin.lower()
        if origin in self._origins:
            return
        host = (request.header("host") or "").lower()
        if host and urlsplit(origin).netloc == host:
            return  # a page of the gateway's own origin
        raise OriginNotAllowed(
            f"WebSocket connections from web pages of {origin[:100]!r} are not allowed "
            "(cloudevents.websocket_allowed_origins)"
        )

    async def connect(self, request: Request, send: Send) -> None:
        """Check the handshake, accept it, and stream until the connection ends."""
        principal = consumer_of(request)
        if SUBPROTOCOL not in request.scope.get("subprotocols", ()):
            raise BadRequest(
                f"this endpoint speaks the WebSocket subprotocol {SUBPROTOCOL}: send "
                f"Sec-WebSocket-Protocol: {SUBPROTOCOL}"
            )
        self._check_origin(request)
        group, subscription = subscription_of(request, principal, self._gateway)
        max_deliveries = max_deliveries_of(request, principal)
        client = principal.name
        self._connections.acquire(client)
        accepted = False
        try:
            async with self._streams.open(
                client,
                storage_group(client, group),
                subscription,
                window=self._window,
                batch_size=self._batch_size,
                max_deliveries=max_deliveries,
            ) as stream:
                await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
                accepted = True
                credentials = stream_credentials(request, self._gateway)
                # Read for the handshake only; an idle connection would hold them (the
                # scope's list and the parsed dict, ~1.3 KB) for as long as it is open.
                request.forget_headers()
                close = await self._session(
                    stream, credentials, request.scope, request.receive, send
                )
                if close is not None:
                    await self._close(send, close)
        except Exception:
            if not accepted:
                raise  # answered over HTTP by the app
            # Closed already; freeing the instance failed (its group membership ends
            # with its session, at the latest).
            logger.exception("ending a WebSocket consumer's connection failed")
        finally:
            self._connections.release(client)

    # -- the connection --------------------------------------------------------------

    async def _session(
        self,
        stream: ConsumerStream,
        credentials: Credentials,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> Close | None:
        """Deliver and listen until either side ends; how to close (``None``: the peer
        is gone or closed first).

        Delivery is a task of its own, ended and waited for before this returns, as a
        task group would do it, without the group's object, its set and a callback that
        an idle connection would hold for as long as it is open.
        """
        stopping = self._streams.stopping()
        delivering = asyncio.get_running_loop().create_task(
            self._deliver(stream, credentials, scope, send), name="ws.deliver"
        )
        try:
            return await self._listen(stream, receive, stopping, delivering)
        finally:
            delivering.cancel()
            # A cancellation of this task meanwhile goes on up; delivery, cancelled
            # already, then ends on its own.
            await asyncio.wait((delivering,))
            let_go_of_cancellation(delivering)
            if not delivering.cancelled():
                delivering.result()  # raises only what _deliver does not catch

    async def _deliver(
        self, stream: ConsumerStream, credentials: Credentials, scope: Scope, send: Send
    ) -> Close | None:
        """Send events as the log has them, in bursts of ``BURST_BYTES`` or so (one write
        each under uvicorn, see ``http/websocket_bursts.py``); each burst waits for the
        transport to drain below its mark, so a client that reads slowly slows this down
        instead of filling memory: what is queued stays under the mark plus a burst.

        A client that takes nothing for ``stall`` seconds is dropped (``None``: no close
        frame could pass its full buffer anyway). Its heartbeat would fail too — the ping
        waits behind the data — but a server's keepalive closes the transport gracefully,
        which waits for that buffer to drain, so the app would never hear of it.

        The client's credentials are proven again before each read and each delivery:
        a key revoked or expired, a client deleted or no longer a consumer closes the
        connection with 1008.
        """
        loop = asyncio.get_running_loop()
        stall = self._stall
        wake_to_write = self._streams.wake_to_write
        instance = stream.instance
        try:
            async with asyncio.timeout(None) as deadline:
                while True:
                    still_allowed(credentials, instance)
                    batch = await stream.next_batch()
                    still_allowed(credentials, instance)
                    texts = structured_events(batch.records, batch.first)
                    offset = batch.first - 1
                    for start, end in bursts(texts):
                        deadline.reschedule(loop.time() + stall)
                        await send_texts(scope, send, texts[start:end])
                        if start == 0 and batch.woken_at:
                            wake_to_write.observe(time.perf_counter() - batch.woken_at)
                        offset += end - start
                        stream.sent = offset
                    deadline.reschedule(None)
                    # An idle connection would otherwise hold its last events for as
                    # long as it waits for the next (a batch is never empty).
                    del batch, texts
        except TimeoutError:
            return None
        except OSError:
            return None  # the peer is gone: the listener sees it too
        except (Unauthenticated, Forbidden) as exc:
            return Close(POLICY, _reason(exc.message))
        except Exception as exc:  # noqa: BLE001 - logged by _failure, told to the client
            return _failure(exc, "delivering")

    async def _listen(
        self,
        stream: ConsumerStream,
        receive: Receive,
        stopping: asyncio.Future[None],
        delivering: asyncio.Task[Close | None],
    ) -> Close | None:
        """Handle the client's messages until it leaves, breaks the protocol, delivery
        fails, or the gateway shuts down — never in the middle of a confirmation.

        ``receive`` is awaited in this task, not in one of its own raced against the
        others: an idle connection would hold that task (and its coroutine, context and
        callbacks) for as long as it is open. The end of delivery or the start of a
        shutdown interrupts a ``receive`` in progress by cancelling this task, and only
        that: never a confirmation being applied.
        """
        task = asyncio.current_task()
        assert task is not None
        receiving = False
        interrupted = False

        def interrupt(_: object) -> None:
            nonlocal interrupted
            # Runs from the loop: ``receiving`` is what this task does now, not when the
            # future completed.
            if receiving and not interrupted:
                interrupted = True
                task.cancel()

        stopping.add_done_callback(interrupt)
        delivering.add_done_callback(interrupt)
        try:
            while True:
                if stopping.done():
                    return Close(GOING_AWAY, "the gateway is shutting down; connect again")
                if delivering.done():
                    return delivering.result()
                receiving = True
                try:
                    message = await receive()
                except asyncio.CancelledError:
                    # Ours (the count is back to 0), or the server's: then it goes on. A
                    # message the receive had taken stays in the server's queue.
                    if interrupted and task.uncancel() == 0:
                        continue
                    raise
                finally:
                    receiving = False
                close = await self._handle(stream, message)
                if close is not None or message["type"] == "websocket.disconnect":
                    return close
        finally:
            stopping.remove_done_callback(interrupt)
            delivering.remove_done_callback(interrupt)

    async def _handle(self, stream: ConsumerStream, message: Message) -> Close | None:
        if message["type"] != "websocket.receive":
            return None  # websocket.disconnect: the peer closed or is gone
        text: str | None = message.get("text")
        if text is None:
            return Close(POLICY, "binary messages are not part of cloudevents.json: send text")
        try:
            if text.startswith(_CONFIRM):
                await stream.confirm(_offset(text[len(_CONFIRM) :]))
            elif text.startswith(_DEAD):
                await self._dead(stream, text[len(_DEAD) :].encode())
            else:
                return Close(
                    POLICY,
                    _reason(
                        f"unknown message {text[:24]!r}: expected confirm:<offset> "
                        "or dead:<event json>"
                    ),
                )
        except PayloadTooLarge as exc:
            return Close(TOO_BIG, _reason(exc.message))
        except ClientError as exc:
            return Close(POLICY, _reason(exc.message))
        except Exception as exc:  # noqa: BLE001 - logged by _failure, told to the client
            return _failure(exc, "handling a client's message")
        return None

    async def _dead(self, stream: ConsumerStream, body: bytes) -> None:
        """Store a dead event, as the client sent it, in the client's dead stream."""
        self._json_limits.check(body)
        event = from_structured(body)
        if "offset" in event.extensions:
            # The event as it was sent, offset included: that was this connection's
            # delivery number, nothing of the event's own.
            extensions = {k: v for k, v in event.extensions.items() if k != "offset"}
            event = msgspec.structs.replace(event, extensions=extensions)
        await self._producer.produce_to_stream(
            dead_topic(stream.instance.owner), [event], check_data=False
        )

    async def _close(self, send: Send, close: Close) -> None:
        with contextlib.suppress(OSError):  # the peer left first
            await send({"type": "websocket.close", "code": close.code, "reason": close.reason})


def stream_group(request: Request) -> str:
    """The storage group a streaming consumer's request joins (where it is served)."""
    group = check_group_name(request.query_param("group") or DEFAULT_GROUP)
    return storage_group(consumer_of(request).name, group)


def routes(gateway: Gateway, streams: StreamForwarder | None = None) -> list[WebSocketRoute]:
    """The WebSocket consumer's routes; with ``streams``, a connection whose group another
    node serves is proxied there (``http.stream_forwarding``)."""
    connect = WebSocketConsumers(gateway).connect
    endpoint = streams.websocket(connect, stream_group) if streams else connect
    return [
        WebSocketRoute(path, endpoint, render_error=render_error, dialect="cloudevents")
        for path in PATHS
    ]
