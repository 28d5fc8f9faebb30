"""Delivery reports, turned into results on the event loop in batches.

librdkafka calls a delivery callback per record on the thread that polls the producer.
Each callback only appends to a list; once per poll the whole list crosses to the event
loop in one ``call_soon_threadsafe``, so a thousand records acknowledged together cost
one wake-up of the loop, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message

__all__ = ["Report", "ReportBatcher", "report_of"]

#: (error or None, offset, log-append timestamp in ms) of one delivered record.
Report = tuple[KafkaError | None, int, int]
_Handler = Callable[[Report], None]


def report_of(error: KafkaError | None, message: Message) -> Report:
    """The parts of a delivery report the log needs, read on the polling thread."""
    if error is not None:
        return (error, -1, -1)
    offset = message.offset()
    _, timestamp = message.timestamp()
    return (None, -1 if offset is None else offset, timestamp)


class ReportBatcher:
    """Collects (handler, report) pairs on a librdkafka thread; runs them on the loop.

    librdkafka calls the callbacks inside ``poll``, on the thread that polls, and that
    thread calls ``flush`` between polls: one thread touches the list, so no lock.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[tuple[_Handler, Report]] = []

    def callback(self, handler: _Handler) -> Callable[[KafkaError | None, Message], None]:
        """A librdkafka ``on_delivery`` callback that queues ``handler``'s report."""

        def delivered(error: KafkaError | None, message: Message) -> None:
            self._pending.append((handler, report_of(error, message)))

        return delivered

    def flush(self) -> None:
        """Hand what was collected to the loop in one call (on the polling thread)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        # A closed loop raises RuntimeError: then nobody is left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(_run_all, pending)


def _run_all(pending: list[tuple[_Handler, Any]]) -> None:
    for handler, report in pending:
        handler(report)
