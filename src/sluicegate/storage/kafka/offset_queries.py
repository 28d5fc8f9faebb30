"""Offset queries asked in one turn of the event loop, sent to Kafka as one request.

Every read, watermark and long poll asks where partitions begin or end, and many ask at
once: 10,000 long polls starting together ask the same hundred partitions' ends tens of
thousands of times. Each admin request costs the loop a fraction of a millisecond of
Python in confluent-kafka, so queries made in the same turn of the loop are merged: one
request per round of distinct partitions, and one answer shared by every caller that
asked the same thing. A query joins only queries not sent yet, so an answer is never
older than the call that receives it (a caller still reads its own acknowledged write).

A request names each partition once. If a merged request fails for a partition, the
failure may be another partition's (a topic just deleted): that partition is asked again
on its own before anybody hears of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from concurrent.futures import Future
from typing import Any

from confluent_kafka import IsolationLevel
from confluent_kafka import TopicPartition as KafkaPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

__all__ = ["OffsetQueries"]

_Key = tuple[str, int]
#: (Kafka topic, partition, kind of spec, its timestamp): the same question.
_Question = tuple[str, int, str, int]
#: A question's spec and the futures of everyone who asked it.
_Askers = tuple[OffsetSpec, list[asyncio.Future[Any]]]


class OffsetQueries:
    """``list_offsets`` (``read_committed``) of one admin client, merged per loop turn."""

    def __init__(self, client: AdminClient, timeout: float) -> None:
        self._client = client
        self._timeout = timeout
        self._queued: dict[_Question, _Askers] = {}

    def ask(self, key: _Key, spec: OffsetSpec) -> asyncio.Future[Any]:
        """A future of librdkafka's answer (``ListOffsetsResultInfo``) for one partition."""
        loop = asyncio.get_running_loop()
        question = (key[0], key[1], type(spec).__name__, getattr(spec, "timestamp", 0))
        askers = self._queued.get(question)
        if askers is None:
            if not self._queued:
                loop.call_soon(self._send_queued)
            askers = self._queued[question] = (spec, [])
        future: asyncio.Future[Any] = loop.create_future()
        askers[1].append(future)
        return future

    def _send_queued(self) -> None:
        queued, self._queued = self._queued, {}
        requests: list[dict[_Key, _Askers]] = []
        for (topic, partition, _, _), askers in queued.items():
            key = (topic, partition)
            request = next((r for r in requests if key not in r), None)
            if request is None:
                request = {}
                requests.append(request)
            request[key] = askers
        for request in requests:
            self._send(request)

    def _send(self, request: dict[_Key, _Askers]) -> None:
        loop = asyncio.get_running_loop()
        try:
            answers = self._client.list_offsets(
                {KafkaPartition(t, p): spec for (t, p), (spec, _) in request.items()},
                isolation_level=IsolationLevel.READ_COMMITTED,
                request_timeout=self._timeout,
            )
        except Exception as exc:  # noqa: BLE001 - a bad request: every asker hears why
            for _, waiting in request.values():
                _settle(waiting, None, exc)
            return
        alone = len(request) == 1
        for tp, answer in answers.items():
            key = (tp.topic, tp.partition)
            answer.add_done_callback(
                functools.partial(self._answered, loop, key, request[key], alone)
            )

    def _answered(
        self,
        loop: asyncio.AbstractEventLoop,
        key: _Key,
        askers: _Askers,
        alone: bool,
        answer: Future[Any],
    ) -> None:
        # On librdkafka's thread; a closed loop raises RuntimeError: nobody is left to tell.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._settle, key, askers, alone, answer)

    def _settle(self, key: _Key, askers: _Askers, alone: bool, answer: Future[Any]) -> None:
        failure = answer.exception()
        if failure is not None and not alone:
            self._send({key: askers})  # perhaps another partition's failure: ask alone
            return
        _settle(askers[1], None if failure is not None else answer.result(), failure)


def _settle(waiting: list[asyncio.Future[Any]], result: Any, failure: BaseException | None) -> None:
    for future in waiting:
        if future.done():
            continue  # the asker gave up (its timeout)
        if failure is not None:
            future.set_exception(failure)
        else:
            future.set_result(result)
