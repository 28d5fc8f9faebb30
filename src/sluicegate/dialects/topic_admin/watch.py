"""Watching a topic: ``/tail`` (Server-Sent Events), ``/browse`` and ``/rates``.

What the console's topic page reads, and any script may: records of every partition,
decoded as well as the bytes allow (``core.record_view``), live or from a position, and
how many records a minute the topic took. Each needs the ``consume`` permission on the
topic, as reading its records does.

A browser cannot put an ``Authorization`` header on an ``EventSource``, so ``/tail`` is
read with ``fetch()`` and a stream reader; it is plain ``text/event-stream`` for
``curl -N`` too::

    retry: 3000
    event: start
    data: {"topic": "orders", "topic_id": 7, "positions": {"0": 41, "1": 17}}

    event: records
    data: {"records": [{"partition": 0, "offset": 41, ...}], "positions": {"0": 42, "1": 17}}

    : keep-alive

With ``?timeout=N`` the stream ends after N seconds without a record (``0``: once what
is there was sent); without it, it lasts until the client leaves. ``positions`` is where
the tail will read next: a client that reconnects with ``?positions=0:41,1:17`` resumes
each partition exactly (a partition it does not name from ``from``, default its oldest
record: one the topic grew to meanwhile), and ``topic_id`` tells it whether the topic is
still the one it read (a topic deleted and made again has a new id). A tail of every
partition also reads the partitions the topic grows to while it is open. ``/browse``
takes ``positions`` too: a page's ``positions`` give the next page, whatever the
records' timestamps.

The client's credentials are proven again before each batch and each heartbeat: once
its key is revoked or expired, it is deleted or it may no longer consume the topic, the
stream ends with an ``error`` event (401 or 403), as its next request would be refused.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import uuid
from functools import partial

import msgspec

from sluicegate.core.auth.authenticator import Credentials
from sluicegate.core.gateway import Gateway
from sluicegate.core.limits.concurrency import ConcurrencyLimiter
from sluicegate.core.record_view import RecordView, view_record
from sluicegate.core.records import Record, TopicPartition, format_timestamp, parse_timestamp
from sluicegate.core.tail import MAX_RATE, Start, TopicTail, positions_at
from sluicegate.core.topics import Topic
from sluicegate.dialects.cloudevents.consumers import stream_credentials
from sluicegate.dialects.cloudevents.sse import EVENT_STREAM, HEARTBEAT, accepts_event_stream
from sluicegate.dialects.topic_admin.params import int_param, topic_to_read
from sluicegate.errors import BadRequest, NotAcceptable, SluicegateError
from sluicegate.http.request import Request
from sluicegate.http.responses import ABORT, Response, StreamingResponse, json_response
from sluicegate.http.router import Route
from sluicegate.http.types import Message, Send

__all__ = [
    "BROWSE_LIMIT",
    "HEARTBEAT_SECONDS",
    "MAX_RATE_MINUTES",
    "MAX_TAIL_TIMEOUT",
    "RatePoint",
    "RatesOut",
    "RecordsPage",
    "routes",
]

logger = logging.getLogger("sluicegate.topic_admin.watch")

#: The most records one ``/browse`` page holds.
BROWSE_LIMIT = 500
#: How far back ``/rates`` looks at most, in minutes.
MAX_RATE_MINUTES = 60
#: Seconds without a record after which a tail sends a comment (proxies close idle
#: connections; a browser learns the server is still there).
HEARTBEAT_SECONDS = 15.0
#: The longest ``timeout`` a tail may ask for (a day).
MAX_TAIL_TIMEOUT = 86_400
#: Seconds a write may wait for a client that reads nothing before it is dropped.
_STALL_SECONDS = 60.0
_encode = msgspec.json.Encoder().encode


class RecordsPage(msgspec.Struct, frozen=True):
    """Records in time order (then partition, offset) and where the next page starts."""

    records: list[RecordView]
    #: Partition → the offset to read next (``?from=`` with ``?partition=`` resumes it).
    positions: dict[int, int]


class RatePoint(msgspec.Struct, frozen=True):
    #: Start of the interval, RFC 3339.
    start: str
    records: int
    per_second: float


class RatesOut(msgspec.Struct, frozen=True):
    step_seconds: int
    points: list[RatePoint]
    #: The seconds the points cover: whole minutes and the current one so far.
    seconds: float


def _start(request: Request, default: Start) -> Start:
    """``?from=``: an offset (digits) or an RFC 3339 time; absent, ``default``. Present but
    empty is neither, and a 400 like any other value that is neither."""
    raw = request.query_param("from")
    if raw is None:
        return default
    if raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return Start(offset=int(raw))
    try:
        return Start(time_us=parse_timestamp(raw))
    except ValueError:
        raise BadRequest(
            f"query parameter from must be an offset or an RFC 3339 time, got {raw[:60]!r}",
            field="from",
        ) from None


def _given(request: Request) -> dict[int, int] | None:
    """``?positions=0:41,1:17``: the offset to go on from in each partition it names (a
    page's or a tail's ``positions``); ``None`` when absent. Partitions the topic does not
    have are left out where they are used."""
    raw = request.query_param("positions")
    if raw is None:
        return None
    given: dict[int, int] = {}
    for pair in filter(None, raw.split(",")):
        partition, _, offset = pair.partition(":")
        if not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in (partition, offset)):
            raise BadRequest(
                "query parameter positions must be partition:offset pairs separated by "
                f"commas, got {raw[:60]!r}",
                field="positions",
            )
        given[int(partition)] = int(offset)
    return given


def _partitions(request: Request, topic: Topic) -> list[int]:
    if request.query_param("partition") is None:
        return list(range(topic.partitions))
    return [int_param(request, "partition", 0, 0, topic.partitions - 1)]


def _body(chunk: bytes) -> Message:
    return {"type": "http.response.body", "body": chunk, "more_body": True}


def _event(kind: bytes, data: bytes) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (kind, data)


class TopicWatch:
    """The endpoints, over the gateway's topics, log and schema registry."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._log = gateway.log
        self._registry = gateway.schemas
        limits = gateway.settings.limits
        # Counted apart from WebSockets and CloudEvents streams, under the same caps.
        self._tails = ConcurrencyLimiter(
            "topic tails", limits.max_websockets, limits.max_websockets_per_client
        )

    # -- browse ------------------------------------------------------------------------

    async def browse(self, request: Request) -> Response:
        """Up to ``limit`` records from ``from`` (default: the oldest kept), decoded."""
        topic = await topic_to_read(self._gateway, request)
        partitions = _partitions(request, topic)
        limit = int_param(request, "limit", 50, 1, BROWSE_LIMIT)
        start = _start(request, Start(offset=0))
        positions = await positions_at(self._log, topic.name, partitions, start, _given(request))
        batches: list[list[Record]] = []
        for partition, offset in positions.items():
            tp = TopicPartition(topic.name, partition)
            batches.append(
                await self._log.read(tp, offset, max_records=limit, max_bytes=4 * 1024 * 1024)
            )
        merged = heapq.merge(*batches, key=lambda r: (r.timestamp, r.partition, r.offset))
        chosen = [record for _, record in zip(range(limit), merged, strict=False)]
        for record in chosen:
            positions[record.partition] = record.offset + 1
        page = RecordsPage([view_record(r, self._registry) for r in chosen], positions)
        return json_response(page)

    # -- rates -------------------------------------------------------------------------

    async def rates(self, request: Request) -> Response:
        """Records a minute over the last ``minutes`` minutes, oldest first."""
        topic = await topic_to_read(self._gateway, request)
        minutes = int_param(request, "minutes", 15, 1, MAX_RATE_MINUTES)
        step_us = 60_000_000
        now_us = time.time_ns() // 1000
        # Whole minutes, so that two looks a few seconds apart show the same intervals.
        last = now_us - now_us % step_us
        bounds = [last - step_us * i for i in range(minutes - 1, -1, -1)]
        counts = [0] * minutes
        for partition in range(topic.partitions):
            tp = TopicPartition(topic.name, partition)
            high = (await self._log.watermarks(tp)).high
            offsets = [await self._log.offset_for_time(tp, bound) for bound in bounds]
            offsets.append(high)
            for i in range(minutes):
                counts[i] += max(0, offsets[i + 1] - offsets[i])
        points = []
        for i, bound in enumerate(bounds):
            seconds = (min(now_us, bound + step_us) - bound) / 1_000_000 or 1.0
            points.append(RatePoint(format_timestamp(bound), counts[i], counts[i] / seconds))
        covered = max(1.0, (now_us - bounds[0]) / 1_000_000)
        return json_response(RatesOut(step_us // 1_000_000, points, covered))

    # -- tail --------------------------------------------------------------------------

    async def _count(self, name: str) -> int:
        """The topic's partition count now (a tail of every partition follows it)."""
        return (await self._gateway.topics.get(name)).partitions

    async def tail(self, request: Request) -> Response:
        """Start a stream of the topic's new records (or from ``from``)."""
        topic = await topic_to_read(self._gateway, request)
        if not accepts_event_stream(request.header("accept")):
            raise NotAcceptable(
                "this endpoint answers with text/event-stream only: send "
                "Accept: text/event-stream, or no Accept header"
            )
        partitions = _partitions(request, topic)
        rate = int_param(request, "max_rate", MAX_RATE, 1, MAX_RATE)
        given = _given(request)
        # Resuming (positions given): a partition not named is new to the client.
        start = _start(request, Start() if given is None else Start(offset=0))
        timeout = None
        if request.query_param("timeout") is not None:
            timeout = float(int_param(request, "timeout", 0, 0, MAX_TAIL_TIMEOUT))
        positions = await positions_at(self._log, topic.name, partitions, start, given)
        # Every partition: the ones the topic grows to as well.
        count = None if request.query_param("partition") else partial(self._count, topic.name)
        tail = TopicTail(
            self._log, topic.name, positions, max_rate=rate, partitions=count, topic_id=topic.id
        )
        client = request.principal.name if request.principal else ""
        credentials = stream_credentials(request, self._gateway)
        self._tails.acquire(client)
        headers = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
        write = partial(self._serve, tail, request, client, credentials, timeout)
        return StreamingResponse(write, content_type=EVENT_STREAM, headers=headers)

    async def _serve(
        self,
        tail: TopicTail,
        request: Request,
        client: str,
        credentials: Credentials,
        timeout: float | None,
        send: Send,
        start: Message,
    ) -> None:
        try:
            await send(start)
            head = _encode(
                {"topic": tail.topic, "topic_id": tail.topic_id, "positions": tail.positions}
            )
            await send(_body(b"retry: 3000\n" + _event(b"start", head)))
            end = await self._run(tail, request, credentials, send, timeout)
            if end is None:
                if ABORT in request.scope.get("extensions", ()):
                    await send({"type": ABORT})
                return
            async with asyncio.timeout(1.0):
                await send({"type": "http.response.body", "body": end})
        except (OSError, TimeoutError):
            pass  # the client is gone: nobody to tell
        except Exception:
            incident = uuid.uuid4().hex[:16]
            logger.exception("a topic tail failed", extra={"incident": incident})
        finally:
            self._tails.release(client)

    async def _run(
        self,
        tail: TopicTail,
        request: Request,
        credentials: Credentials,
        send: Send,
        timeout: float | None,
    ) -> bytes | None:
        """Deliver until the client leaves (``None``), the gateway stops (``b""``) or
        reading fails or is no longer allowed (an ``error`` event)."""
        return await request.streamed(
            self._deliver(tail, credentials, send, timeout), self._gateway.streams.stopping()
        )

    async def _deliver(
        self, tail: TopicTail, credentials: Credentials, send: Send, timeout: float | None
    ) -> bytes | None:
        """Send records as the log has them, a heartbeat when there are none; ``b""``
        once ``timeout`` seconds passed without a record, ``None`` when the client is
        gone or stalled, an ``error`` event when reading fails or the client may no
        longer read the topic (asked before each batch: see ``Credentials``)."""
        registry = self._registry
        loop = asyncio.get_running_loop()
        idle_since = loop.time()
        try:
            while True:
                wait = HEARTBEAT_SECONDS
                if timeout is not None:
                    wait = min(wait, max(0.0, idle_since + timeout - loop.time()))
                batch = await tail.next_batch(wait)
                # Before records, and before a heartbeat: a revoked client's stream ends
                # even while the topic is quiet.
                credentials.principal().require("consume", tail.topic)
                if batch:
                    views = [view_record(record, registry) for record in batch]
                    data = _encode({"records": views, "positions": tail.positions})
                    chunk = _event(b"records", data)
                    idle_since = loop.time()
                elif timeout is not None and loop.time() - idle_since >= timeout:
                    return b""
                else:
                    chunk = HEARTBEAT
                async with asyncio.timeout(_STALL_SECONDS):
                    await send(_body(chunk))
        except (OSError, TimeoutError):
            return None
        except SluicegateError as exc:
            body = {"status": exc.status, "error": exc.code, "message": exc.message}
            return _event(b"error", _encode(body))


def routes(gateway: Gateway) -> list[Route]:
    """The routes that watch a topic."""
    watch = TopicWatch(gateway)
    return [
        Route("/admin/v1/topics/{name}/tail", watch.tail, dialect="topic_admin", head=False),
        Route("/admin/v1/topics/{name}/browse", watch.browse, dialect="topic_admin"),
        Route("/admin/v1/topics/{name}/rates", watch.rates, dialect="topic_admin"),
    ]
