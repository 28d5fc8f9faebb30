"""The node's idempotent producer: single-record appends, ``acks=all``, served on the loop.

One producer for every request of the node; librdkafka batches records of concurrent
requests into one produce request per partition (``linger.ms``).

Its delivery reports are served on the event loop, by ``poll(0)``: after every ``send``
(a fraction of a microsecond when nothing is ready), and on a timer, every millisecond
while records are in flight, every 50 ms otherwise (librdkafka's error events wait for a
poll too). A thread of its own could wait for them instead, but confluent-kafka takes the
GIL for each record's callback and gives it back after it: under load the thread and the
loop handed the GIL to each other once per record, and that, not the loop's work, held
back the single-record rate on Kafka (``docs/design-notes.md``). A report reaches its
request at most a millisecond after librdkafka has it; under load, when sends poll all the
time, much sooner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from sluicegate.core.records import NewRecord

__all__ = ["IdempotentProducer", "OnDelivery"]

logger = logging.getLogger(__name__)

#: librdkafka's delivery callback: (error or None, the delivered message).
OnDelivery = Callable[[KafkaError | None, Message], None]

#: Seconds between polls while records are in flight: uvloop's timers count whole
#: milliseconds, and a shorter delay is no delay at all (the loop would spin).
_BUSY_POLL = 0.001
#: Seconds between polls while nothing is in flight, for librdkafka's error events.
_IDLE_POLL = 0.05


class IdempotentProducer:
    """Sends records; each one's ``on_delivery`` runs on the loop with its outcome.

    Resource handling: ``start`` starts polling, ``close`` waits for what is in flight (each
    record then has its report) and stops.
    """

    def __init__(
        self,
        config: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        on_error: Callable[[KafkaError], None],
    ) -> None:
        self._loop = loop
        self._producer = Producer({**config, "error_cb": on_error})
        self._timer: asyncio.TimerHandle | None = None
        self._busy = False

    def start(self) -> None:
        self._timer = self._loop.call_later(_IDLE_POLL, self._tick)

    def send(self, topic: str, record: NewRecord, on_delivery: OnDelivery) -> None:
        """Queue ``record`` for ``topic`` (the Kafka name); raises if it cannot be queued.

        ``on_delivery`` may run before this returns: the reports ready are served here.
        """
        # Every argument positional (the last three: no second callback, 0 for "now", the
        # headers): a keyword costs confluent-kafka a look-up of each parameter by name,
        # about 0.4 µs a call.
        self._producer.produce(
            topic,
            record.value,
            record.key,
            record.partition,
            on_delivery,
            None,
            0,
            list(record.headers) if record.headers else None,
        )
        self._serve()
        if not self._busy and self._timer is not None:
            self._busy = True
            self._timer.cancel()
            self._timer = self._loop.call_later(_BUSY_POLL, self._tick)

    def queued(self) -> int:
        return len(self._producer)

    def _serve(self) -> None:
        """Run the callbacks of the reports (and errors) librdkafka has ready."""
        try:
            self._producer.poll(0)
        except Exception:
            # A callback raised (confluent-kafka re-raises it here): a bug, but the reports
            # after it must still be served, by the next poll, and this caller's record was
            # queued, so its own outcome must not be this exception.
            logger.exception("a Kafka delivery callback failed")

    def _tick(self) -> None:
        self._serve()
        self._busy = len(self._producer) > 0
        self._timer = self._loop.call_later(_BUSY_POLL if self._busy else _IDLE_POLL, self._tick)

    async def close(self, timeout: float) -> None:
        """Stop polling on the timer; wait up to ``timeout`` for records in flight."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = time.monotonic() + timeout
        while len(self._producer) and time.monotonic() < deadline:
            self._serve()
            await asyncio.sleep(_BUSY_POLL)
        # Whatever is left gets a report too (purged: outcome unknown), so no future hangs.
        self._producer.purge()
        self._serve()
