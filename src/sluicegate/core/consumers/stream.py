"""Consumer instances served as streams over one connection each (WebSocket, Server-Sent
Events): the instance lives as long as its connection (a Server-Sent Events instance a
little longer, see ``Streams.open``'s ``linger``).

A stream is a consumer instance like a long poll's, with the same group, delivery
sequence, confirmations, contiguous commits and redelivery; what differs is who drives
it. The server pushes events as they come instead of waiting for a poll, so:

* **Flow control.** At most ``window`` events are unconfirmed at any time: with the
  window full, ``next_batch`` reads nothing from the log and waits (woken by a
  confirmation, never by a polling loop). Each read is bounded by ``batch_size`` events
  and the instances' ``max_batch_bytes``, so a connection holds at most one batch that
  is read but not yet sent, whatever its client does.
* **Sent versus delivered.** The core counts an event delivered when it leaves the log;
  the client can confirm only what it was actually sent (``sent``), so a confirmation
  beyond it is refused even when the events were already read.
* **Waits.** An idle stream waits on the log like a long poll, but not as one: it holds
  its connection's slot of ``Limits.websockets`` already, so its waits are not counted
  against ``Limits.long_polls`` too (10,000 idle WebSocket consumers would otherwise
  take every long-poll slot).
* **End.** When the connection ends — closed by either side, dropped after a missed
  heartbeat, or cut — the instance is discarded at once: its unconfirmed events go to
  the group's other or next instances. The reaper never takes a stream's instance (it
  is busy for the connection's whole life): a silent peer is the heartbeat's business.
* **Shutdown.** ``Streams.close_all`` refuses new streams and tells every open one to
  stop (``stopping``), then waits for them to end: the dialect closes each connection
  with its own code (WebSocket: 1001), and the commit of what it confirmed lands before
  its instance leaves the group.
* **Confirmations** open the window at once; the group commits them in the background,
  one round at a time carrying whatever was confirmed while the one before it was
  written (``ConsumerInstance.confirm``, ``LocalGroup.commit_soon``).

Resource handling: ``Streams.open`` owns the instance; nothing outlives its ``async
with`` block. Error handling: ``ShuttingDown`` from ``open`` once ``close_all`` began;
the instance registry's caps (``RateLimited``, ``Overloaded``); ``BadRequest`` for a
confirmation beyond what was sent; whatever the instance raises otherwise.
"""

from __future__ import annotations

import asyncio
import random
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from functools import partial

from sluicegate.core.consumers.batch import Batch
from sluicegate.core.consumers.instance import ConsumerInstance
from sluicegate.core.consumers.registry import ConsumerInstances
from sluicegate.core.consumers.subscription import Subscription
from sluicegate.core.longpoll import LongPolls
from sluicegate.errors import BadRequest, ShuttingDown

__all__ = ["ConsumerStream", "OpenStream", "Streams", "WakeToWrite"]

#: An idle stream's wait lasts a random share, between these, of a quarter of its group
#: session before it looks again: a heartbeat of the membership, nothing the client
#: sees. Everything else that should end a wait does so at once (the log, a rebalance, a
#: grown subscription, a confirmation), so the wait need not be short. Random, so that
#: streams that connected together (a fleet after a restart) do not wake together: at
#: 30 s each, 10,000 idle streams cost 333 wake-ups a second, every one of them
#: leaving a new wait behind for the collector to walk.
_WAIT_SHARE = (0.5, 1.0)


class WakeToWrite:
    """How long after a waiting stream is woken (by a commit that moved the log, mostly)
    its first events are written to the connection: the server's share of the produce to
    consume latency, past the commit. A histogram of fixed bounds, counted in memory by
    the dialect after each such write and read by /metrics at scrape time."""

    #: Upper bounds in seconds: 0.25 ms to 100 ms, then everything above.
    BOUNDS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, float("inf"))

    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * len(self.BOUNDS)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        """Count one write ``seconds`` after its stream was woken."""
        self.buckets[bisect_left(self.BOUNDS, seconds)] += 1
        self.count += 1
        self.total += seconds


class ConsumerStream:
    """One consumer instance streaming to one connection; built by ``Streams.open``."""

    __slots__ = ("_batch_size", "_polls", "_wait_step", "_window", "instance", "sent")

    def __init__(
        self,
        instance: ConsumerInstance,
        polls: LongPolls,
        *,
        window: int,
        batch_size: int,
        session_timeout: float,
    ) -> None:
        self.instance = instance
        #: The offset of the last event the connection has sent (0 before the first).
        self.sent = 0
        self._polls = polls
        self._window = window
        self._batch_size = batch_size
        self._wait_step = session_timeout / 4

    async def next_batch(self, wait: float | None = None) -> Batch:
        """The next events (``batch_size`` at most), waiting as long as it takes, while
        the window is full too; never empty. With ``wait``, empty once that many seconds
        pass without one (a Server-Sent Events stream's turn to send a heartbeat)."""
        instance = self.instance
        if wait is not None:
            return await instance.next_batch(
                self._batch_size, wait, None, window=self._window, polls=self._polls
            )
        step = self._wait_step
        while True:
            # The wait ends by cancellation when the connection ends: no ``gone``.
            batch = await instance.next_batch(
                self._batch_size,
                step * random.uniform(*_WAIT_SHARE),
                None,
                window=self._window,
                polls=self._polls,
            )
            if batch:
                return batch

    async def confirm(self, upto: int) -> None:
        """Confirm every event sent with offset <= ``upto``: the window has room at
        once; the group commits it in the background (``ConsumerInstance.confirm``), and
        before the instance leaves the group.

        ``BadRequest`` for an offset that was not sent (0, or beyond ``sent``); the
        error a background commit failed with, once.
        """
        if not 1 <= upto <= self.sent:
            told = f"offsets 1 to {self.sent}" if self.sent else "no events yet"
            raise BadRequest(f"offset {upto} was never sent: this connection has sent {told}")
        await self.instance.confirm(upto, durable=False)


class OpenStream:
    """``Streams.open``'s ``async with``: the stream made on entry, ended on exit.

    An object of its own rather than an ``asynccontextmanager``, whose suspended
    generator (its frame and the manager, ~560 bytes) an idle connection would hold for
    as long as it is open.
    """

    __slots__ = ("_linger", "_start", "_stream", "_streams")

    def __init__(
        self, streams: Streams, start: Callable[[], Awaitable[ConsumerStream]], linger: float
    ) -> None:
        self._streams = streams
        self._start: Callable[[], Awaitable[ConsumerStream]] | None = start
        self._linger = linger
        self._stream: ConsumerStream | None = None

    async def __aenter__(self) -> ConsumerStream:
        start, self._start = self._start, None
        if start is None:
            raise RuntimeError("a stream is opened once")
        self._stream = await start()
        return self._stream

    async def __aexit__(self, *exc_info: object) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await self._streams._end(stream, self._linger)


class Streams:
    """The open streams of this node; shut down before the server closes connections."""

    def __init__(self, instances: ConsumerInstances) -> None:
        self._instances = instances
        self._polls = LongPolls(instances.log, None)
        self._open: set[ConsumerStream] = set()
        #: Open streams by kind (``websocket``, ``sse``), for /metrics.
        self.open_by_kind: dict[str, int] = {}
        #: Wake-up to write of the streams' events (see ``WakeToWrite``), for /metrics.
        self.wake_to_write = WakeToWrite()
        self._stopping: asyncio.Future[None] | None = None
        self._ended: asyncio.Event | None = None
        self.closing = False

    def __len__(self) -> int:
        """Streams open, or ending: their instance not yet gone from the group (what
        it confirmed is committed by then)."""
        return len(self._open)

    def open(
        self,
        owner: str,
        group: str,
        subscription: Subscription,
        *,
        window: int,
        batch_size: int,
        linger: float = 0.0,
        max_deliveries: int = 0,
        kind: str = "websocket",
    ) -> OpenStream:
        """A new instance of ``owner`` in storage group ``group``, streaming until the
        ``async with`` block ends; then it is discarded and its unconfirmed events go to
        the group. ``kind`` names the connection's protocol in /metrics (``websocket``,
        ``sse``).

        With ``linger`` (seconds), the instance outlives the block by that long instead
        (unless the gateway shuts down): a client that reconnects in time can still
        confirm on it (Server-Sent Events' ``Last-Event-ID``); then it expires like an
        idle instance."""
        start = partial(
            self._start, owner, group, subscription, window, batch_size, max_deliveries, kind
        )
        return OpenStream(self, start, linger)

    async def _start(
        self,
        owner: str,
        group: str,
        subscription: Subscription,
        window: int,
        batch_size: int,
        max_deliveries: int,
        kind: str,
    ) -> ConsumerStream:
        if self.closing:
            raise ShuttingDown("the gateway is shutting down; connect again shortly", retry_after=1)
        instances = self._instances
        instance = await instances.create(owner, group, subscription, max_deliveries=max_deliveries)
        instance.kind = kind
        stream = ConsumerStream(
            instance,
            self._polls,
            window=window,
            batch_size=batch_size,
            session_timeout=instances.settings.session_timeout,
        )
        self._open.add(stream)
        by_kind = self.open_by_kind
        by_kind[kind] = by_kind.get(kind, 0) + 1
        # Busy for the connection's whole life: the idle reaper never takes it.
        instance.busy += 1
        return stream

    async def _end(self, stream: ConsumerStream, linger: float) -> None:
        instance = stream.instance
        instance.busy -= 1
        self.open_by_kind[instance.kind] -= 1
        try:
            if linger > 0 and not self.closing and not instance.closed:
                self._instances.expire_in(instance, linger)
            else:
                await self._instances.discard(instance)
        finally:
            self._open.discard(stream)
            if self._ended is not None and not self._open:
                self._ended.set()

    def stopping(self) -> asyncio.Future[None]:
        """Completes when ``close_all`` begins: every stream should end now."""
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_future()
        return self._stopping

    async def close_all(self, timeout: float) -> int:
        """Refuse new streams, stop the open ones and wait up to ``timeout`` seconds for
        them to end; how many were still open when it began."""
        self.closing = True
        stopping = self.stopping()
        if not stopping.done():
            stopping.set_result(None)
        count = len(self._open)
        if count:
            self._ended = asyncio.Event()
            try:
                async with asyncio.timeout(timeout):
                    await self._ended.wait()
            except TimeoutError:
                pass  # the server's own shutdown closes what is left
        return count
