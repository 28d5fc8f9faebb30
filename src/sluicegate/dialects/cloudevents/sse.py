"""The Server-Sent Events consumer: ``GET /ce/sse`` with ``Accept: text/event-stream``.

A browser's ``EventSource`` or ``curl -N`` consumes it with no client library. Each stream
is one consumer instance of the client's group (``core.consumers.stream``, as a WebSocket
connection is), with the query options of ``POST /ce/consumers`` (``events``, ``test``,
``dead``, ``group``) and ``timeout``: seconds without an event after which the server ends
the stream (``0``: send what is there and end; absent: never).

What the stream carries::

    retry: 3000
    event: instance
    id: 0@<instance>
    data: {"instance": "<instance URL>", "last_event_id": null, "confirmed": false}

    id: 1@<instance>
    data: {"specversion": "1.0", ..., "offset": "1"}

    : keep-alive

* ``retry:`` once (``cloudevents.sse_retry_ms``), then the ``instance`` event: the
  instance's URL, also in the ``Location`` header. ``POST <URL>/confirm?offset=N``,
  ``POST <URL>/dead`` and ``DELETE <URL>`` work on it as on a long-polling instance
  (``DELETE`` ends the stream); polling it does not (400): its events go to the stream.
* each event: ``id: <offset>@<instance>`` and ``data:`` the complete structured event with
  its ``offset`` (the WebSocket's rendering; data the producer wrote over several lines
  is sent as several ``data:`` lines, which a client joins back);
* a comment (``: keep-alive``) after ``cloudevents.websocket_ping_interval`` seconds
  without an event; a client that takes nothing for that interval plus
  ``websocket_ping_timeout`` is dropped, as a WebSocket peer is.

**Reconnecting.** An ``offset`` counts per instance, so an event's ``id`` names its
instance too. When a stream ends, its instance waits ``cloudevents.sse_reconnect_grace``
seconds before it expires. A reconnection whose ``Last-Event-ID`` is ``N@<instance>``
confirms that instance's events up to ``N`` (durably: the group's committed positions
move to its first unconfirmed event per partition), ends its old connection if the
server still holds it, and deletes it: its events after ``N`` go to the group, and the
new stream — a new instance, counting from 1 — receives them first. A ``Last-Event-ID``
whose instance has expired confirms nothing: its events were handed to the group again
(``"confirmed": false`` in the ``instance`` event).

**Flow control** is the WebSocket's: at most ``cloudevents.websocket_window`` events sent
and unconfirmed, at most one batch read ahead of what was sent, and each write waits for
the transport to drain, so a client that stops reading stops the reading of the log.

**Credentials** are proven again before each read and each delivery: a client whose
key is revoked or expires, that is deleted, or that is no longer a consumer gets an
``error`` event (401, the dialect's status for every authorization failure) and the end
of the stream, as its next request would be refused; a change of the types it may
consume takes effect at once.

Refusals, before the stream starts, in the dialect's error format: ``401`` for every
authorization failure, ``406`` for an ``Accept`` that excludes ``text/event-stream``,
``400`` for a bad query option or ``Last-Event-ID``, ``429``/``503`` beyond the caps
(``limits.max_websockets[_per_client]``, counted apart from WebSockets; and the
instance caps), ``503`` while the gateway shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import uuid
from contextlib import AsyncExitStack
from functools import partial
from itertools import repeat
from urllib.parse import quote

import msgspec

from sluicegate.core.auth.authenticator import Credentials
from sluicegate.core.cloudevents.binding import structured_events
from sluicegate.core.cloudevents.consumers import storage_group
from sluicegate.core.consumers.stream import ConsumerStream
from sluicegate.core.gateway import Gateway
from sluicegate.core.limits.concurrency import ConcurrencyLimiter
from sluicegate.dialects.cloudevents.consumers import (
    max_deliveries_of,
    still_allowed,
    stream_credentials,
    subscription_of,
)
from sluicegate.dialects.cloudevents.errors import error_body, render_error
from sluicegate.dialects.cloudevents.produce import consumer_of
from sluicegate.dialects.cloudevents.websocket import bursts, stream_group
from sluicegate.errors import (
    BadRequest,
    NotAcceptable,
    SluicegateError,
    Unavailable,
    UnknownConsumerInstance,
)
from sluicegate.http.base_url import BaseUrl
from sluicegate.http.request import Request
from sluicegate.http.responses import ABORT, Response, StreamingResponse
from sluicegate.http.router import Route
from sluicegate.http.stream_forwarding import StreamForwarder
from sluicegate.http.types import Message, Send

__all__ = ["EVENT_STREAM", "SSE_PATH", "accepts_event_stream", "routes"]

logger = logging.getLogger("sluicegate.cloudevents.sse")

SSE_PATH = "/ce/sse"
EVENT_STREAM = b"text/event-stream"
#: A comment line alone, with no blank line after it: a blank line would end an event
#: with no data, which the standard drops but some clients hand on as an empty event.
HEARTBEAT = b": keep-alive\n"
#: The longest ``timeout`` a stream may ask for (a day).
_MAX_TIMEOUT = 86_400.0
#: Seconds the end of a stream may wait for a client that reads nothing.
_END_WAIT = 1.0
_MAX_OFFSET_DIGITS = 18
#: An instance id (``secrets.token_urlsafe``), bounded.
_INSTANCE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_encode = msgspec.json.Encoder().encode


class _Instance(msgspec.Struct, frozen=True):
    """The data of the first event: where the instance is, and what a reconnection did."""

    instance: str
    last_event_id: str | None
    confirmed: bool


async def _abort(request: Request, send: Send) -> None:
    """Drop a connection whose client is gone or stopped reading, where the server can
    (``ABORT``): rather than wait for a full buffer to drain and log the response left
    unfinished as an error."""
    if ABORT in request.scope.get("extensions", ()):
        await send({"type": ABORT})


def accepts_event_stream(accept: str | None) -> bool:
    """Whether an ``Accept`` header allows ``text/event-stream`` (RFC 9110 12.5.1: the
    most specific range that matches decides, ``q=0`` excludes; none allows all)."""
    if accept is None or not accept.strip():
        return True
    specificity, quality = -1, 0.0
    for item in accept.split(","):
        media, *parameters = item.split(";")
        media = media.strip().lower()
        rank = {"text/event-stream": 2, "text/*": 1, "*/*": 0}.get(media)
        if rank is None or rank < specificity:
            continue
        q = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        specificity, quality = rank, q
    return specificity >= 0 and quality > 0


def _timeout(request: Request) -> float | None:
    value = request.query_param("timeout")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= _MAX_TIMEOUT:
        raise BadRequest(
            f"query parameter timeout must be seconds from 0 to {_MAX_TIMEOUT:g} without an "
            f"event before the stream ends, got {value[:40]!r}",
            field="timeout",
        )
    return seconds


def _last_event_id(request: Request) -> tuple[str, int] | None:
    """The (instance, offset) a reconnection's ``Last-Event-ID`` names, if any."""
    value = request.header("last-event-id")
    if not value:
        return None  # none, or an id reset by an empty one
    offset, at, instance = value.strip().partition("@")
    if not (
        at
        and offset.isascii()
        and offset.isdigit()
        and len(offset) <= _MAX_OFFSET_DIGITS
        and _INSTANCE_ID.fullmatch(instance)
    ):
        raise BadRequest(
            "Last-Event-ID must be the id of an event this endpoint sent, "
            f"<offset>@<instance>; got {value[:80]!r}",
            field="Last-Event-ID",
        )
    return instance, int(offset)


def _data_lines(data: bytes) -> bytes:
    """``data`` as the value of ``data:`` lines: JSON written over several lines (line
    breaks are only whitespace in JSON) becomes one ``data:`` line each."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\ndata: ")


def _events(texts: list[bytes], start: int, end: int, first: int, suffix: bytes) -> bytes:
    """``texts[start:end]`` as events, the first of them numbered ``first + start``."""
    numbered = zip(range(first + start, first + end), repeat(suffix), texts[start:end])
    return b"".join([b"id: %d%s%s\n\n" % event for event in numbered])


class _Session:
    """An open stream, as a reconnection naming its instance finds it."""

    __slots__ = ("ended", "stop")

    def __init__(self) -> None:
        self.stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ended = asyncio.Event()


def _body(chunk: bytes) -> Message:
    return {"type": "http.response.body", "body": chunk, "more_body": True}


class ServerSentEvents:
    """The ``/ce/sse`` endpoint over the gateway's streams."""

    def __init__(self, gateway: Gateway) -> None:
        settings = gateway.settings
        ce = settings.cloudevents
        self._gateway = gateway
        self._instances = gateway.consumers
        self._streams = gateway.streams
        # The WebSocket caps, counted apart: a client's streams of each kind.
        self._connections = ConcurrencyLimiter(
            "Server-Sent Events streams",
            settings.limits.max_websockets,
            settings.limits.max_websockets_per_client,
        )
        self._bridge_in_url = quote(settings.server.node_id, safe="")
        self._base_url = BaseUrl(ce.public_base_url, settings.server.trusted_proxies)
        self._window = ce.websocket_window
        self._batch_size = ce.batch_size
        self._heartbeat = ce.websocket_ping_interval
        #: Seconds a write may wait for a client that takes nothing before it is dropped.
        self._stall = ce.websocket_ping_interval + ce.websocket_ping_timeout
        # Never past the idle timeout: lowering that one alone lowers both.
        self._grace = min(ce.sse_reconnect_grace, ce.consumer_idle_timeout)
        self._retry = ce.sse_retry_ms
        #: Open streams by instance id.
        self._sessions: dict[str, _Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    # -- the request -------------------------------------------------------------------

    async def open(self, request: Request) -> Response:
        """Check the request, resume what ``Last-Event-ID`` names, and start a stream."""
        principal = consumer_of(request)
        if not accepts_event_stream(request.header("accept")):
            raise NotAcceptable(
                "this endpoint answers with text/event-stream only: send "
                "Accept: text/event-stream, or no Accept header"
            )
        group, subscription = subscription_of(request, principal, self._gateway)
        max_deliveries = max_deliveries_of(request, principal)
        timeout = _timeout(request)
        last = _last_event_id(request)
        base = self._base_url.of(request)
        client = principal.name
        storage = storage_group(client, group)
        self._connections.acquire(client)
        stack = AsyncExitStack()
        try:
            stack.callback(self._connections.release, client)
            confirmed = await self._resume(client, storage, last) if last else False
            stream = await stack.enter_async_context(
                self._streams.open(
                    client,
                    storage,
                    subscription,
                    window=self._window,
                    batch_size=self._batch_size,
                    linger=self._grace,
                    max_deliveries=max_deliveries,
                    kind="sse",
                )
            )
        except BaseException:
            await stack.aclose()
            raise
        instance_id = stream.instance.id
        # Nothing sent yet: nothing may be confirmed on the instance's URL.
        stream.instance.confirmable = 0
        url = f"{base}/{self._bridge_in_url}/ce/consumers/{group}/instances/{instance_id}"
        last_id = None if last is None else f"{last[1]}@{last[0]}"
        first = _encode(_Instance(url, last_id, confirmed))
        head = b"retry: %d\nevent: instance\nid: 0@%s\ndata: %s\n\n" % (
            self._retry,
            instance_id.encode(),
            first,
        )
        headers = [
            (b"cache-control", b"no-cache"),
            # Proxies that buffer responses (nginx) pass this one on as it comes.
            (b"x-accel-buffering", b"no"),
            (b"location", url.encode()),
        ]
        credentials = stream_credentials(request, self._gateway)
        write = partial(self._serve, stack, stream, request, credentials, head, timeout)
        return StreamingResponse(write, content_type=EVENT_STREAM, headers=headers)

    async def _resume(self, owner: str, group: str, last: tuple[str, int]) -> bool:
        """Confirm the events up to ``Last-Event-ID`` on the instance it names, end that
        instance, and say whether it was still there."""
        instance_id, offset = last
        try:
            instance = self._instances.get(owner, group, instance_id)
        except UnknownConsumerInstance:
            return False  # expired (its events went to the group) or never this client's
        session = self._sessions.get(instance_id)
        if session is not None:
            # Its connection is still open here (half-open, say): the client has moved on.
            if not session.stop.done():
                session.stop.set_result(None)
            try:
                async with asyncio.timeout(self._stall + _END_WAIT):
                    await session.ended.wait()
            except TimeoutError:
                raise Unavailable(
                    "the stream of the instance Last-Event-ID names is still ending; "
                    "reconnect shortly",
                    retry_after=1,
                ) from None
        try:
            if offset:
                await instance.confirm(offset)
        except UnknownConsumerInstance:
            return False  # deleted meanwhile: its events went to the group
        await self._instances.discard(instance)
        return True

    # -- the stream --------------------------------------------------------------------

    async def _serve(
        self,
        stack: AsyncExitStack,
        stream: ConsumerStream,
        request: Request,
        credentials: Credentials,
        head: bytes,
        timeout: float | None,
        send: Send,
        start: Message,
    ) -> None:
        """Stream until the client leaves, the timeout passes, a reconnection takes the
        instance over, or the gateway shuts down; then free the connection's slot and
        leave the instance to wait for a reconnection."""
        instance_id = stream.instance.id
        session = self._sessions[instance_id] = _Session()
        try:
            async with stack:
                await send(start)
                await send(_body(head))
                end = await self._run(stream, request, credentials, send, session, timeout)
                if end is None:
                    await _abort(request, send)
                else:
                    try:
                        async with asyncio.timeout(_END_WAIT):
                            await send({"type": "http.response.body", "body": end})
                    except TimeoutError:
                        await _abort(request, send)  # its buffer is full: it stopped reading
                    except OSError:
                        pass
        except Exception:
            incident = uuid.uuid4().hex[:16]
            logger.exception(
                "ending a Server-Sent Events stream failed", extra={"incident": incident}
            )
        finally:
            if self._sessions.get(instance_id) is session:
                del self._sessions[instance_id]
            session.ended.set()

    async def _run(
        self,
        stream: ConsumerStream,
        request: Request,
        credentials: Credentials,
        send: Send,
        session: _Session,
        timeout: float | None,
    ) -> bytes | None:
        """Deliver until either side ends; the body's last bytes (``None``: the client
        is gone or stalled, nothing can reach it)."""
        # b"": shutting down, or a reconnection took the instance over.
        return await request.streamed(
            self._deliver(stream, credentials, send, timeout),
            self._streams.stopping(),
            session.stop,
        )

    async def _deliver(
        self, stream: ConsumerStream, credentials: Credentials, send: Send, timeout: float | None
    ) -> bytes | None:
        """Send events as the log has them, a heartbeat when there is none; each write
        waits for the transport to drain, so a slow reader slows this down instead of
        filling memory. ``b""`` once ``timeout`` passed without an event, ``None`` for a
        client that took nothing for ``stall`` seconds, an ``error`` event when the
        instance is gone, the gateway fails, or the client may no longer consume (its
        credentials are proven again before each read and each delivery)."""
        loop = asyncio.get_running_loop()
        instance = stream.instance
        suffix = b"@" + instance.id.encode() + b"\ndata: "
        heartbeat, stall = self._heartbeat, self._stall
        idle_since = loop.time()
        try:
            async with asyncio.timeout(None) as deadline:
                while True:
                    wait = heartbeat
                    if timeout is not None:
                        wait = min(wait, max(0.0, idle_since + timeout - loop.time()))
                    still_allowed(credentials, instance)
                    batch = await stream.next_batch(wait)
                    deadline.reschedule(loop.time() + stall)
                    still_allowed(credentials, instance)
                    if not batch:
                        if timeout is not None and loop.time() - idle_since >= timeout:
                            return b""
                        await send(_body(HEARTBEAT))
                        deadline.reschedule(None)
                        continue
                    first = batch.first
                    texts = structured_events(batch.records, first)
                    joined = b"".join(texts)
                    if joined.find(b"\n") >= 0 or joined.find(b"\r") >= 0:
                        texts = [_data_lines(text) for text in texts]
                    del joined
                    for start, end in bursts(texts):
                        deadline.reschedule(loop.time() + stall)
                        await send(_body(_events(texts, start, end, first, suffix)))
                        instance.confirmable = stream.sent = first + end - 1
                    deadline.reschedule(None)
                    idle_since = loop.time()
        except TimeoutError:
            return None
        except OSError:
            return None  # the peer is gone
        except SluicegateError as exc:
            # Deleted on its URL, storage failed, or the client may no longer consume:
            # said in an event, then the end (a client reconnects after ``retry``).
            return b"event: error\ndata: %s\n\n" % _encode(error_body(exc))
        except Exception:
            incident = uuid.uuid4().hex[:16]
            logger.exception(
                "unhandled error in a Server-Sent Events stream", extra={"incident": incident}
            )
            message = f"internal server error; incident id {incident}"
            body = {"status": 500, "error": "internal_error", "message": message}
            return b"event: error\ndata: %s\n\n" % _encode({**body, "incident_id": incident})


def routes(gateway: Gateway, streams: StreamForwarder | None = None) -> list[Route]:
    """The Server-Sent Events consumer's route; with ``streams``, a stream whose group
    another node serves is proxied there (``http.stream_forwarding``)."""
    open_stream = ServerSentEvents(gateway).open
    endpoint = streams.sse(open_stream, stream_group) if streams else open_stream
    return [Route(SSE_PATH, endpoint, render_error=render_error, dialect="cloudevents", head=False)]
