"""Appends: single records through the idempotent producer, batches through transactions.

A single-record append goes to the idempotent producer: no transaction, no commit marker,
so offsets stay dense for one-record requests. A multi-record append must be all or
nothing across partitions: the transactional producer group-commits it.

Order: appends called one after another are stored in that order per partition, even
when one goes through the idempotent producer and the next through a transaction: an
append waits (off the loop's critical path, by callbacks) for the last append of each of
its partitions that went the other way.

Deadline: an append is answered within ``storage.append_timeout`` of the call, whatever
waits it meets on the way (the other producer's last append, the transactions queued
before it, the commit or abort of an earlier one). A single record sent at once has
librdkafka's own timeout, which starts with the call; any other append has a timer
(``_expire``): an append not handed to Kafka yet then never is (503: nothing of it is
stored), one Kafka has but has not confirmed is answered 408 (stored whole or not at all).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import operator
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka.admin import OffsetSpec

from sluicegate.core.records import Appended, NewRecord
from sluicegate.core.topic_batch import TopicBatch
from sluicegate.errors import (
    Overloaded,
    SluicegateError,
    StorageTimeout,
    StorageUnavailable,
    UnknownTopic,
)
from sluicegate.storage.base import CommitObserver
from sluicegate.storage.kafka.errors import STALE_METADATA, kafka_error, reported, translate
from sluicegate.storage.kafka.node import PROBE_INTERVAL, KafkaNode
from sluicegate.storage.kafka.partition_ends import PartitionEnds
from sluicegate.storage.kafka.registry import TopicRegistry
from sluicegate.storage.kafka.transactions import Batch, Entry, Outcome
from sluicegate.storage.topic_rules import compacted, invalid_partition, keyless_refused

__all__ = ["Appends"]

logger = logging.getLogger(__name__)

_Key = tuple[str, int]
_topic_of = operator.attrgetter("topic")
_partition_of = operator.attrgetter("partition")
_key_of = operator.attrgetter("key")


class _Pending:
    """The last append of a partition: which producer took it, and whether it went yet."""

    __slots__ = (
        "blocked_by",
        "deadline",
        "deferred",
        "ended",
        "entry",
        "expiry",
        "future",
        "offsets",
        "transactional",
    )

    def __init__(
        self, transactional: bool, future: asyncio.Future[list[Any]], offsets: bool
    ) -> None:
        self.transactional = transactional
        #: Resolves with the ``Appended`` of each record, or with only each one's
        #: (partition, offset) if ``offsets``.
        self.future = future
        self.offsets = offsets
        self.deferred = False
        #: While ``deferred``: the other producer's appends it waits for.
        self.blocked_by: asyncio.Future[Any] | None = None
        #: Its place in the transactions' queue, once submitted there.
        self.entry: Entry | None = None
        #: The timer that answers it at its deadline (``time.monotonic()``), unless it is
        #: a record sent at once (librdkafka's timeout is its deadline then).
        self.expiry: asyncio.TimerHandle | None = None
        self.deadline = 0.0
        #: Set when ``future`` was answered at the deadline while the append may still
        #: go on: done once its producer is done with it.
        self.ended: asyncio.Future[Any] | None = None

    def gate(self) -> asyncio.Future[Any]:
        """What a later append through the other producer waits for: this append's end."""
        return self.future if self.ended is None else self.ended


class Appends:
    """``Log.append`` on Kafka, checked against the topic ``registry``."""

    def __init__(
        self,
        node: KafkaNode,
        registry: TopicRegistry,
        ends: PartitionEnds,
        observe_commit: CommitObserver | None,
    ) -> None:
        self._node = node
        self._registry = registry
        self._ends = ends
        self._observe = observe_commit
        self._last: dict[_Key, _Pending] = {}
        #: Sends waiting for librdkafka to learn of their topic again (``send_single``).
        self._relearning: set[asyncio.Future[None]] = set()

    def append(self, batch: Sequence[NewRecord]) -> asyncio.Future[list[Appended]]:
        """Queue all records or none; see ``Log.append``."""
        if len(batch) == 1:
            return self._append_one(batch)
        return self._append(batch, offsets=False)

    def _append_one(self, batch: Sequence[NewRecord]) -> asyncio.Future[list[Appended]]:
        """``_append`` of one record, the usual request, sent at once when nothing stands
        in its way; anything else (a refusal to name, a partition whose last append went
        through a transaction and is not done) takes ``_append``."""
        [record] = batch
        node = self._node
        topic = self._registry.by_name.get(record.topic)
        partition = record.partition
        if (
            not node.running
            or node.down
            or node.queued() >= node.max_pending
            or topic is None
            or not 0 <= partition < topic.partitions
            or (record.key is None and compacted(topic))
        ):
            return self._append(batch, offsets=False)
        key = (node.prefix + record.topic, partition)
        last = self._last.get(key)
        if last is not None and (last.transactional or last.deferred) and not last.gate().done():
            return self._append(batch, offsets=False)
        result: asyncio.Future[list[Appended]] = asyncio.get_running_loop().create_future()
        self._last[key] = _Pending(False, result, False)
        self.send_single(key[0], record, result)
        return result

    async def append_offsets(self, batch: Sequence[NewRecord]) -> list[tuple[int, int]]:
        """``Log.append_offsets``: a transaction's offsets told from its placement, with no
        ``Appended`` made per record (a batch to one partition: a range, zipped in C)."""
        if len(batch) < 2:
            return [(a.partition, a.offset) for a in await self.append(batch)]
        offsets: list[tuple[int, int]] = await self._append(batch, offsets=True)
        return offsets

    def _append(self, batch: Sequence[NewRecord], *, offsets: bool) -> asyncio.Future[list[Any]]:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[list[Any]] = loop.create_future()
        try:
            self._admit(len(batch))
            if not batch:
                result.set_result([])
                return result
            keys = self._record_keys(batch)
        except SluicegateError as exc:
            result.set_exception(exc)
            return result
        transactional = len(batch) > 1
        pending = _Pending(transactional, result, offsets)
        blockers: list[asyncio.Future[list[Any]]] = []
        # Entries stay after their append is done (one per partition written, dropped with
        # the topic): cheaper than a done-callback per append on the hot path.
        last_appends = self._last
        if transactional:
            # A batch to one partition (a keyed one, the usual) holds one key object
            # repeated: counted by identity, where dict.fromkeys would hash each.
            first = keys[0]
            distinct: Iterable[_Key] = (
                (first,) if keys.count(first) == len(keys) else dict.fromkeys(keys)
            )
        else:
            distinct = keys
        for key in distinct:
            last = last_appends.get(key)
            if last is not None and (last.transactional != transactional or last.deferred):
                gate = last.gate()
                if not gate.done():
                    blockers.append(gate)
            last_appends[key] = pending
        if transactional or blockers:
            timeout = self._node.append_timeout
            pending.deadline = time.monotonic() + timeout
            pending.expiry = loop.call_later(timeout, self._expire, pending)
        if blockers:
            # Wait for the other producer's last append to these partitions, so the order
            # of calls is the order in the log. Rare: a partition fed both ways at once.
            pending.deferred = True
            gate = pending.blocked_by = asyncio.gather(*blockers, return_exceptions=True)
            gate.add_done_callback(lambda _: self._submit(batch, keys, pending))
        else:
            self._submit(batch, keys, pending)
        return result

    def forget(self, keys: Iterable[_Key]) -> None:
        """Drop what is remembered of partitions whose topic is gone."""
        for key in keys:
            self._last.pop(key, None)

    def _admit(self, size: int) -> None:
        node = self._node
        if not node.running:
            node.require_running()
        if node.down:
            raise StorageUnavailable(node.outage(), retry_after=PROBE_INTERVAL)
        if size and node.queued() + size > node.max_pending:
            raise Overloaded(f"more than {node.max_pending} records are waiting for Kafka")

    def _record_keys(self, batch: Sequence[NewRecord]) -> list[_Key]:
        """Each record's (Kafka topic, partition), checked against the registry."""
        if len(batch) > 1:
            partitions: Sequence[int] | None
            if isinstance(batch, TopicBatch):
                # Its columns, as they are: no record is made.
                names, partitions = {batch.topic}, batch.partitions
            else:
                names, partitions = set(map(_topic_of, batch)), None
            if len(names) == 1:
                # One topic, the usual batch: checked and keyed by iterations in C.
                [one] = names
                topic = self._registry.by_name.get(one)
                if topic is None:
                    raise UnknownTopic(f"topic {one!r} does not exist", topic=one)
                if partitions is None:
                    partitions = list(map(_partition_of, batch))
                first = partitions[0]
                if partitions.count(first) == len(partitions):
                    lowest = highest = first  # one partition: no pass to compare them
                else:
                    lowest, highest = min(partitions), max(partitions)
                for partition in (lowest, highest):
                    if not 0 <= partition < topic.partitions:
                        raise invalid_partition(one, partition, topic.partitions)
                if compacted(topic) and None in (
                    batch.keys if isinstance(batch, TopicBatch) else map(_key_of, batch)
                ):
                    raise keyless_refused(one)
                if lowest == highest:
                    # One partition (a keyed batch): one key object, repeated.
                    return [(self._node.prefix + one, lowest)] * len(batch)
                return list(zip(itertools.repeat(self._node.prefix + one), partitions))
        keys: list[_Key] = []
        name = None
        kafka_name, count, keyed = "", 0, False
        for record in batch:
            if record.topic != name:
                name = record.topic
                topic = self._registry.by_name.get(name)
                if topic is None:
                    raise UnknownTopic(f"topic {name!r} does not exist", topic=name)
                kafka_name, count, keyed = (
                    self._node.prefix + name,
                    topic.partitions,
                    compacted(topic),
                )
            if not 0 <= record.partition < count:
                raise invalid_partition(name, record.partition, count)
            if keyed and record.key is None:
                raise keyless_refused(name)
            keys.append((kafka_name, record.partition))
        return keys

    def _submit(self, batch: Sequence[NewRecord], keys: list[_Key], pending: _Pending) -> None:
        pending.deferred = False
        if pending.future.done():
            return  # answered at its deadline while it waited: never sent
        if not pending.transactional:
            if pending.expiry is None:
                self.send_single(keys[0][0], batch[0], pending.future)
                return
            # It waited: its deadline is nearer than librdkafka's timeout, which starts now.
            sent: asyncio.Future[list[Appended]] = asyncio.get_running_loop().create_future()
            sent.add_done_callback(lambda _: self._delivered(pending, sent))
            self.send_single(keys[0][0], batch[0], sent)
            return
        started = time.monotonic()
        pending.entry = self._node.transactions.submit(
            Batch(keys, batch),
            lambda outcome: self._committed(batch, outcome, pending, started),
            pending.deadline,
        )

    def _expire(self, pending: _Pending) -> None:
        """The append's deadline came: answer it now, whatever its producer still does."""
        future = pending.future
        entry = pending.entry
        if future.done() or (entry is not None and entry.decided):
            return  # answered, or decided and answered by its settling (within the deadline)
        if pending.deferred or (entry is not None and self._node.transactions.withdraw(entry)):
            # Never handed to Kafka, and now it never will be. A later append waits for
            # what this one waited for, in its place.
            pending.ended = pending.blocked_by
            future.set_exception(
                StorageUnavailable(
                    "Kafka took no write in time (storage.append_timeout): nothing of it is stored"
                )
            )
            return
        # Kafka has it: it ends stored whole or not at all, and later appends wait for that.
        pending.ended = asyncio.get_running_loop().create_future()
        _time_out(future)

    def _ended(self, pending: _Pending) -> None:
        """The producer is done with the append: stop its timer, free who waits for it."""
        if pending.expiry is not None:
            pending.expiry.cancel()
        ended = pending.ended
        if ended is not None and not ended.done():
            ended.set_result(None)

    def _delivered(self, pending: _Pending, sent: asyncio.Future[list[Appended]]) -> None:
        """A record that waited for the other producer has its outcome: its caller's."""
        self._ended(pending)
        future = pending.future
        error = sent.exception()  # read even if the caller was answered: asyncio logs it
        if future.done():
            return
        if error is None:
            future.set_result(sent.result())
        else:
            future.set_exception(error)

    def send_single(
        self,
        kafka_topic: str,
        record: NewRecord,
        future: asyncio.Future[list[Appended]],
        *,
        relearned: bool = False,
    ) -> None:
        """Send one record through the idempotent producer; ``future`` gets where it landed."""
        key = (kafka_topic, record.partition)
        fetcher = self._node.fetcher

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                if not future.done():
                    future.set_exception(translate(reported(error), topic=record.topic))
                return
            offset = message.offset()
            _, timestamp = message.timestamp()
            if offset is None:  # never for an acknowledged record of an idempotent producer
                offset = -1
            # Kept for the reads of the waiters it wakes, before it wakes them.
            fetcher.appended(key, offset, timestamp * 1000, record)
            self._ends.advance(key, offset + 1)
            if not future.done():
                appended = Appended(record.topic, record.partition, offset, timestamp * 1000)
                future.set_result([appended])

        try:
            self._node.producer.send(kafka_topic, record, delivered)
        except BufferError:
            future.set_exception(Overloaded("the Kafka producer's queue is full"))
        except KafkaException as exc:
            error = kafka_error(exc)
            if (
                error is not None
                and error.code() in STALE_METADATA
                and not relearned
                and record.topic in self._registry.by_name
            ):
                # librdkafka remembers the topic missing (deleted, and made again under
                # its name since) or with fewer partitions (grown since, through another
                # node or Kafka's tools). It learns otherwise at its next metadata
                # refresh, minutes away: ask now, then send again, once.
                relearning = asyncio.ensure_future(
                    self._relearn(
                        kafka_topic, record, future, time.monotonic() + self._node.append_timeout
                    )
                )
                self._relearning.add(relearning)
                relearning.add_done_callback(self._relearning.discard)
                return
            future.set_exception(translate(error, topic=record.topic) if error is not None else exc)

    async def _relearn(
        self,
        kafka_topic: str,
        record: NewRecord,
        future: asyncio.Future[list[Appended]],
        deadline: float,
    ) -> None:
        """Ask about ``kafka_topic``, then send ``record`` again; answered by ``deadline``
        (the question uses up some of it, and librdkafka's timeout starts with the send)."""
        logger.info("librdkafka took topic %r for missing: asking again", kafka_topic)
        try:
            await self._node.producer.learn(
                kafka_topic, max(min(self._node.timeout, deadline - time.monotonic()), 0.01)
            )
            self._node.require_running()
        except SluicegateError as exc:  # stopped meanwhile
            if not future.done():
                future.set_exception(exc)
            return
        self.send_single(kafka_topic, record, future, relearned=True)
        if not future.done():
            expiry = asyncio.get_running_loop().call_later(
                max(deadline - time.monotonic(), 0.0), _time_out, future
            )
            future.add_done_callback(lambda _: expiry.cancel())

    def _committed(
        self,
        batch: Sequence[NewRecord],
        outcome: Outcome,
        pending: _Pending,
        started: float,
    ) -> None:
        # Waiters were woken once for the whole transaction (until_visible).
        self._ended(pending)
        future = pending.future
        if isinstance(outcome, SluicegateError):
            if not future.done():
                future.set_exception(outcome)
            return
        result = outcome.offsets() if pending.offsets else outcome.appended(batch)
        if self._observe is not None:
            self._observe(len(batch), time.monotonic() - started)
        if not future.done():
            future.set_result(result)

    async def until_visible(self, ends: Mapping[_Key, int]) -> None:
        """Return once ``read_committed`` readers see every partition up to its end."""
        admin = self._node.admin
        missing = dict(ends)
        deadline = time.monotonic() + self._node.timeout
        while True:
            seen = await admin.list_offsets({key: OffsetSpec.latest() for key in missing})
            missing = {key: end for key, end in missing.items() if seen[key] < end}
            if not missing:
                self._ends.advanced(ends)
                return
            if time.monotonic() > deadline:
                raise StorageUnavailable("Kafka did not write the commit markers in time")
            # The coordinator writes the commit markers right after it answered.
            await asyncio.sleep(0.001)


def _time_out(future: asyncio.Future[list[Appended]]) -> None:
    """Answer a write Kafka has but has not confirmed by its deadline: 408."""
    if not future.done():
        future.set_exception(
            StorageTimeout(
                "Kafka did not confirm the write within storage.append_timeout; it is "
                "either stored whole or not at all"
            )
        )
