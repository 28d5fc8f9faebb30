"""The node's idempotent producer: single-record appends, ``acks=all``.

One producer for every request of the node; librdkafka batches records of concurrent
requests into one produce request per partition (``linger.ms``).

**Who serves the delivery reports.** librdkafka hands each record's report to a callback
inside ``poll``, and confluent-kafka takes the GIL for each callback and gives it back
after it. One side polls at a time:

- **A thread of its own** (``kafka-delivery``), unless the loop is busy producing: it
  waits in a blocking ``poll``, so a report is served the moment librdkafka has it, and
  what it served crosses to the loop in one ``call_soon_threadsafe`` per poll.
- **The event loop itself**, from ``_LOOP_FROM`` records in flight until no record has
  been sent for ``_LOOP_QUIET``: ``poll(0)`` after every send (0.3 µs when nothing is
  ready) and every millisecond on a timer. A busy loop gives the GIL up only now and
  then, and the thread needs it once per record, so under load the two handed it to each
  other once per record, and that, not the loop's work, held back the single-record
  rate on Kafka. But a loop that is not busy would leave a report waiting for its next
  timer tick (uvloop counts whole milliseconds), where the thread serves it at once.
  Measured with wrk (``docs/design-notes.md``): with a linger of 1 ms, taking over
  from 8 records in flight lost requests with 32 connections and 40 gained with 64;
  without a linger, records are acknowledged sooner, fewer are in flight, and taking
  over from 16 gains with 32 and 64 connections and halves the tail of 40.

Hand-overs keep the order of reports: the loop stops polling before it wakes the thread,
and it polls again only after the thread has stopped and everything the thread served
has run. Every callback is wrapped (``_delivered``) so that whichever side serves it,
it runs on the loop: at once when the loop polls, queued to cross when the thread does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sluicegate.core.records import NewRecord
from sluicegate.storage.kafka.worker import Worker

__all__ = ["IdempotentProducer", "OnDelivery"]

logger = logging.getLogger(__name__)

#: librdkafka's delivery callback: (error or None, the delivered message).
OnDelivery = Callable[[KafkaError | None, Message], None]
_Report = tuple[OnDelivery, KafkaError | None, Message]

#: Records in flight from which the loop serves the reports itself: in closed loops of 32
#: and 64 connections, not of 8 (measured).
_LOOP_FROM = 16
#: Seconds without a send after which the loop hands polling back to the thread.
_LOOP_QUIET = 0.0003
#: Seconds between the loop's polls: uvloop's timers count whole milliseconds, and a
#: shorter delay is no delay at all (the loop would spin).
_LOOP_POLL = 0.001
#: The thread's blocking poll: how long the loop may wait for it to hand polling back.
_THREAD_POLL = 0.01


class IdempotentProducer:
    """Sends records; each one's ``on_delivery`` runs on the loop with its outcome.

    Resource handling: ``start`` starts the polling thread, ``close`` stops it, waits for
    what is in flight (each record then has its report) and purges the rest.
    """

    def __init__(
        self,
        config: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        on_error: Callable[[KafkaError], None],
    ) -> None:
        self._loop = loop
        self._on_error = on_error
        self._producer = Producer({**config, "error_cb": self._error})
        #: Records sent whose report has not run on the loop yet (loop only). Not
        #: ``len(producer)``, which counts librdkafka's queued events too: a report
        #: waiting to be served, an error, would count a record twice or one that is none.
        self._in_flight = 0
        #: The loop polls (else the thread does, or is about to stop doing so).
        self._loop_polls = False
        #: The loop asked the thread to stop polling and waits for it.
        self._taking_over = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_send = 0.0
        #: Set while the thread is to poll; cleared to hand polling to the loop.
        self._thread_turn = threading.Event()
        self._thread_turn.set()
        #: Turns handed to the thread (the first at the start), and the condition it waits
        #: on for the next. A count, not the event alone: a turn handed back and taken
        #: again before the thread waited leaves the event as it was, and the thread would
        #: wait for good while the loop waits for it to stop polling, nobody polling.
        self._turns_given = 1
        self._turn_given = threading.Condition()
        self._stop = threading.Event()
        #: Reports the thread served, waiting to cross to the loop (thread only).
        self._crossing: list[_Report] = []
        self.worker = Worker("kafka-delivery", self._poll_on_the_thread, loop)
        #: ``learn``'s questions in flight, by topic, and the lock that runs one at a time.
        self._learning: dict[str, asyncio.Future[None]] = {}
        self._asking = asyncio.Lock()

    def start(self) -> None:
        self.worker.start()

    def send(self, topic: str, record: NewRecord, on_delivery: OnDelivery) -> None:
        """Queue ``record`` for ``topic`` (the Kafka name); raises if it cannot be queued.

        ``on_delivery`` runs on the loop, possibly before this returns.
        """
        # Every argument positional (the last three: no second callback, 0 for "now", the
        # headers): a keyword costs confluent-kafka a look-up of each parameter by name,
        # about 0.4 µs a call.
        self._producer.produce(
            topic,
            record.value,
            record.key,
            record.partition,
            functools.partial(self._delivered, on_delivery),
            None,
            0,
            list(record.headers) if record.headers else None,
        )
        self._in_flight += 1
        if self._loop_polls:
            self._last_send = time.monotonic()
            self._serve()
        elif not self._taking_over and len(self._producer) >= _LOOP_FROM:
            self._taking_over = True
            self._thread_turn.clear()

    async def learn(self, topic: str, timeout: float) -> None:
        """Ask the cluster about ``topic`` now (the Kafka name), refreshing what librdkafka
        knows of it: a topic it remembers missing may have been made again since. A
        failure is left to the send that follows.

        One question at a time, shared by every caller meanwhile: ``list_topics`` for a
        topic on several threads at once makes and drops the same librdkafka topic object
        concurrently, which one CI run's segmentation fault is blamed on (design notes).
        """
        asking = self._learning.get(topic)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(topic, timeout))
            self._learning[topic] = asking
            asking.add_done_callback(lambda _: self._learning.pop(topic, None))
        await asyncio.shield(asking)

    async def _ask(self, topic: str, timeout: float) -> None:
        async with self._asking:
            with contextlib.suppress(KafkaException):
                await asyncio.to_thread(self._producer.list_topics, topic=topic, timeout=timeout)

    def queued(self) -> int:
        """Records sent and not reported yet: what the node's bound counts."""
        return self._in_flight

    # -- either side ---------------------------------------------------------------

    def _delivered(
        self, on_delivery: OnDelivery, error: KafkaError | None, message: Message
    ) -> None:
        """Every record's report: its callback runs on the loop, whichever side serves it."""
        if self._loop_polls:
            self._in_flight -= 1
            on_delivery(error, message)
        else:
            self._crossing.append((on_delivery, error, message))

    def _error(self, error: KafkaError) -> None:
        if self._loop_polls:
            self._on_error(error)
        else:
            self._call_on_loop(self._on_error, error)

    def _call_on_loop(self, callback: Callable[..., None], *args: Any) -> None:
        # A closed loop raises RuntimeError: then nobody is left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    # -- the loop's side -------------------------------------------------------------

    def _serve(self) -> None:
        """Run the callbacks of the reports (and errors) librdkafka has ready."""
        try:
            self._producer.poll(0)
        except Exception:
            # A callback raised (confluent-kafka re-raises it here): a bug, but the reports
            # after it must still be served, by the next poll, and the caller's record was
            # queued, so its own outcome must not be this exception.
            logger.exception("a Kafka delivery callback failed")

    def _tick(self) -> None:
        self._serve()
        if time.monotonic() - self._last_send >= _LOOP_QUIET and not self._stop.is_set():
            # No send for a while: the loop is not busy, and the thread's blocking poll
            # serves a report at once, where the loop would wait for its next tick.
            self._loop_polls = False
            self._timer = None
            with self._turn_given:
                self._turns_given += 1
                self._thread_turn.set()
                self._turn_given.notify()
            return
        self._timer = self._loop.call_later(_LOOP_POLL, self._tick)

    def _thread_stopped(self) -> None:
        """The thread has stopped polling and what it served has run: the loop polls."""
        self._taking_over = False
        if self._stop.is_set():
            return
        self._loop_polls = True
        self._last_send = time.monotonic()
        self._serve()
        self._timer = self._loop.call_later(_LOOP_POLL, self._tick)

    # -- the thread's side -------------------------------------------------------------

    def _poll_on_the_thread(self) -> None:
        turn, stop, given = self._thread_turn, self._stop, self._turn_given
        taken = 0
        while not stop.is_set():
            with given:
                while self._turns_given == taken and not stop.is_set():
                    given.wait()
                taken = self._turns_given
            # Its turn, though the loop may have taken it again already: then it only
            # says so, and the loop polls.
            while turn.is_set() and not stop.is_set():
                self._producer.poll(_THREAD_POLL)
                self._cross()
            if not stop.is_set():
                self._call_on_loop(self._thread_stopped)

    def _cross(self) -> None:
        """Hand what the thread served to the loop, in one call."""
        if self._crossing:
            served, self._crossing = self._crossing, []
            self._call_on_loop(self._run_crossed, served)

    def _run_crossed(self, served: list[_Report]) -> None:
        """Run, on the loop, the reports the thread served."""
        self._in_flight -= len(served)
        for on_delivery, error, message in served:
            try:
                on_delivery(error, message)
            except Exception:
                logger.exception("a Kafka delivery callback failed")

    # -- closing ---------------------------------------------------------------------

    async def close(self, timeout: float) -> None:
        """Stop both pollers; wait up to ``timeout`` for records in flight, on the loop."""
        self._stop.set()
        with self._turn_given:
            self._turn_given.notify()  # wakes a thread that waits for its turn
        await self.worker.join()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # What the thread served last has run: it was queued on the loop before the thread
        # ended, so before the join above could resolve.
        self._loop_polls = True
        deadline = time.monotonic() + timeout
        while len(self._producer) and time.monotonic() < deadline:
            self._serve()
            await asyncio.sleep(_LOOP_POLL)
        # Whatever is left gets a report too (purged: outcome unknown), so no future hangs.
        self._producer.purge()
        self._serve()
