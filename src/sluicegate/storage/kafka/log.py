"""``KafkaLog``: the storage contract on an Apache Kafka cluster.

Records are plain Kafka records in topics named ``<prefix><topic>``: any Kafka client
reads what the gateway wrote. The node's resources are fixed, however many requests and
consumers it serves:

- one idempotent ``acks=all`` producer for single-record appends (``producer``), and one
  transactional producer that group-commits multi-record batches (``transactions``);
- one reader consumer serving every read in batched rounds (``fetcher``), and one tail
  consumer following the partitions somebody waits on (``tail``);
- one admin client for topics, offsets and group offsets (``admin``).

Topic ids and the dialects' topic settings live in the compacted registry topic
(``registry``); group offsets live in Kafka's own ``__consumer_offsets``, so Kafka's tools
show each group's lag. Group membership is this node's (``storage.groups``): a member is
an HTTP consumer this node serves, not a Kafka consumer.

Order: appends called one after another are stored in that order per partition, even
when one goes through the idempotent producer and the next through a transaction: an
append waits (off the loop's critical path, by callbacks) for the last append of each of
its partitions that went the other way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import OffsetSpec

from sluicegate.config import KafkaSettings
from sluicegate.core.records import Appended, NewRecord, Record, TopicPartition, Watermarks
from sluicegate.core.topics import Topic, TopicSpec, TopicUpdate
from sluicegate.errors import (
    BadRequest,
    ConfigError,
    OffsetOutOfRange,
    Overloaded,
    ShuttingDown,
    SluicegateError,
    StorageUnavailable,
    TopicExists,
    UnknownTopic,
)
from sluicegate.storage.base import Assignment, CommitObserver, Log
from sluicegate.storage.groups import GroupCoordinator, check_offsets
from sluicegate.storage.kafka.admin import KafkaAdmin
from sluicegate.storage.kafka.clients import admin_config, consumer_config, producer_config
from sluicegate.storage.kafka.delivery import Report
from sluicegate.storage.kafka.errors import kafka_error, translate
from sluicegate.storage.kafka.fetcher import Fetcher
from sluicegate.storage.kafka.producer import IdempotentProducer
from sluicegate.storage.kafka.registry import REGISTRY_TOPIC, TopicRegistry, encode_entry
from sluicegate.storage.kafka.tail import Tail
from sluicegate.storage.kafka.topic_configs import kafka_topic_configs
from sluicegate.storage.kafka.transactions import Batch, Outcome, TransactionalProducer
from sluicegate.storage.kafka.waiters import Waiters
from sluicegate.storage.topic_rules import invalid_partition, updated_topic, validate_spec

__all__ = ["KafkaLog"]

logger = logging.getLogger(__name__)

_Key = tuple[str, int]
#: Seconds between probes of a cluster that was reported down.
_PROBE_INTERVAL = 1.0
#: Seconds between passes that stop following partitions nobody waits on.
_TAIL_SWEEP_INTERVAL = 10.0
#: A topic just deleted may still be "being deleted" for a moment: tries to create it again.
_CREATE_ATTEMPTS = 20
_REGISTRY_BATCH = 1000
_REGISTRY_BYTES = 4 * 1024 * 1024


def _wall_clock_us() -> int:
    return time.time_ns() // 1000


class _Pending:
    """The last append of a partition: which producer took it, and whether it went yet."""

    __slots__ = ("deferred", "future", "transactional")

    def __init__(self, transactional: bool, future: asyncio.Future[list[Appended]]) -> None:
        self.transactional = transactional
        self.future = future
        self.deferred = False


class KafkaLog(Log):
    """The log on the Kafka cluster of ``settings``.

    ``node_id`` makes the transactional id (unique per node, stable across restarts, so a
    restarted node fences its previous incarnation's open transaction).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        node_id: str,
        append_timeout: float = 30.0,
        max_pending_appends: int = 100_000,
        observe_commit: CommitObserver | None = None,
    ) -> None:
        for key, value in (
            ("storage.max_pending_appends", max_pending_appends),
            ("storage.append_timeout", append_timeout),
            ("kafka.request_timeout", settings.request_timeout),
        ):
            if not value > 0:
                raise ConfigError(key, f"must be > 0, got {value}")
        if not settings.bootstrap_servers:
            raise ConfigError("kafka.bootstrap_servers", "required for the kafka backend")
        self._settings = settings
        self._prefix = settings.topic_prefix
        self._node = f"{self._prefix}{node_id}"
        self._transactional_id = settings.transactional_id or f"sluicegate-{self._node}"
        self._append_timeout = append_timeout
        self._timeout = settings.request_timeout
        self._max_pending = max_pending_appends
        self._observe = observe_commit
        self._registry_key: _Key = (self._prefix + REGISTRY_TOPIC, 0)
        self._registry = TopicRegistry(self._topic_removed)
        self._registry_lock = asyncio.Lock()
        self._waiters = Waiters()
        self._groups = GroupCoordinator(self._partition_count)
        self._last: dict[_Key, _Pending] = {}
        self._admin: KafkaAdmin | None = None
        self._producer: IdempotentProducer | None = None
        self._transactions: TransactionalProducer | None = None
        self._fetcher: Fetcher | None = None
        self._tail: Tail | None = None
        self._started = False
        self._running = False
        self._closing = False
        #: Set when a client reports every broker down; cleared by the next good answer.
        self._down = False
        self._stop = asyncio.Event()
        self._stopped = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, ready: asyncio.Future[None]) -> None:
        """Connect, replay the registry, resolve ``ready``, then serve until ``close()``."""
        if self._started:
            raise RuntimeError("KafkaLog.run() may be called only once")
        self._started = True
        try:
            await self._open()
            transactions, fetcher, tail, producer = self._parts()
            workers: list[asyncio.Future[Any]] = [
                fetcher.worker.ended,
                tail.worker.ended,
                producer.worker.ended,
            ]
            async with asyncio.TaskGroup() as tg:
                committing = tg.create_task(transactions.run(), name="kafka-transactions")
                housekeeping = [
                    tg.create_task(self._groups.sweep(), name="group-session-sweeper"),
                    tg.create_task(self._follow_registry(), name="kafka-topic-registry"),
                    tg.create_task(self._probe_forever(), name="kafka-probe"),
                    tg.create_task(self._sweep_tail_forever(), name="kafka-tail-sweeper"),
                ]
                self._running = not self._closing
                if not ready.done():
                    ready.set_result(None)
                stopping = tg.create_task(self._stop.wait(), name="kafka-stop")
                await asyncio.wait(
                    [stopping, committing, *workers], return_when=asyncio.FIRST_COMPLETED
                )
                for ended in workers:
                    if ended.done():
                        ended.result()  # a thread died: bring the gateway down with it
                        raise StorageUnavailable("a Kafka client thread stopped unexpectedly")
                self._running = False
                transactions.close()
                await asyncio.wait((committing,))
                for task in (*housekeeping, stopping):
                    task.cancel()
        finally:
            self._closing = True
            self._running = False
            self._waiters.wake_all()
            try:
                await self._release()
            finally:
                self._stopped.set()

    def _parts(self) -> tuple[TransactionalProducer, Fetcher, Tail, IdempotentProducer]:
        assert self._transactions is not None  # _open() made them
        assert self._fetcher is not None
        assert self._tail is not None
        assert self._producer is not None
        return self._transactions, self._fetcher, self._tail, self._producer

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        settings = self._settings
        client = f"sluicegate-{self._node}"
        self._admin = KafkaAdmin(
            admin_config(settings, f"{client}-admin"),
            timeout=self._timeout,
            replication_factor=settings.replication_factor,
        )
        await self._admin.describe_cluster()
        with contextlib.suppress(TopicExists):
            await self._admin.create_topic(
                self._registry_key[0],
                1,
                {"cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime"},
            )
        self._producer = IdempotentProducer(
            producer_config(
                settings,
                f"{client}-producer",
                append_timeout=self._append_timeout,
                transactional_id=None,
            ),
            loop,
            self._kafka_error,
        )
        self._transactions = TransactionalProducer(
            producer_config(
                settings,
                f"{client}-transactions",
                append_timeout=self._append_timeout,
                transactional_id=self._transactional_id,
            ),
            append_timeout=self._append_timeout,
            request_timeout=self._timeout,
            on_error=self._kafka_error,
            visible=self._until_visible,
        )
        group = f"{self._prefix}sluicegate-fetch"
        self._fetcher = Fetcher(
            consumer_config(settings, f"{client}-fetcher", group),
            loop,
            timeout=self._timeout,
            on_error=self._kafka_error,
        )
        self._tail = Tail(
            consumer_config(settings, f"{client}-tail", group),
            loop,
            self._waiters.advanced,
            self._kafka_error,
        )
        self._producer.start()
        self._fetcher.start()
        self._tail.start()
        await self._transactions.start()
        await self._catch_up_registry()

    async def _release(self) -> None:
        if self._producer is not None:
            await self._producer.close(self._timeout)
        if self._transactions is not None:
            await self._transactions.shutdown()
        if self._fetcher is not None:
            await self._fetcher.close()
        if self._tail is not None:
            await self._tail.close()

    async def close(self) -> None:
        """Refuse new writes, commit the queue, wake every waiter; ``run`` then returns."""
        self._closing = True
        self._running = False
        self._waiters.wake_all()
        if not self._started:
            return
        self._stop.set()
        await self._stopped.wait()

    async def check(self) -> None:
        """Raise ``StorageUnavailable`` unless a broker answers now."""
        self._require_running()
        await self._require_admin().describe_cluster()
        self._down = False

    def stats(self) -> dict[str, float]:
        """Gauges for /metrics: long-poll waiters and records not yet acknowledged."""
        return {"waiters": self._waiters.count, "queued_records": self._queued()}

    def _queued(self) -> int:
        queued = 0
        if self._producer is not None:
            queued += self._producer.queued()
        if self._transactions is not None:
            queued += self._transactions.queued_records
        return queued

    def _require_running(self) -> None:
        if not self._running:
            if self._closing:
                raise ShuttingDown("the log is closed")
            raise StorageUnavailable("the log is not running yet")

    def _require_admin(self) -> KafkaAdmin:
        self._require_running()
        assert self._admin is not None  # running implies opened
        return self._admin

    def _kafka_error(self, error: KafkaError) -> None:
        """A client's error callback (on the loop): librdkafka retries; we only watch."""
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            if not self._down:
                logger.warning("every Kafka broker is unreachable: %s", error.str())
            self._down = True
        elif error.fatal():
            logger.error("Kafka client error: %s", error.str())

    async def _probe_forever(self) -> None:
        """While the cluster is reported down, ask it every second whether it is back."""
        admin = self._require_admin()
        while True:
            await asyncio.sleep(_PROBE_INTERVAL)
            if not self._down:
                continue
            try:
                await admin.describe_cluster()
            except SluicegateError:
                continue
            logger.info("a Kafka broker answers again")
            self._down = False

    async def _sweep_tail_forever(self) -> None:
        _, _, tail, _ = self._parts()
        while True:
            await asyncio.sleep(_TAIL_SWEEP_INTERVAL)
            tail.forget_idle()

    # -- names -----------------------------------------------------------------------

    def _kafka_name(self, topic: str) -> str:
        return self._prefix + topic

    def _partition_count(self, topic: str) -> int:
        found = self._registry.by_name.get(topic)
        return 0 if found is None else found.partitions

    def _checked(self, tp: TopicPartition) -> tuple[Topic, _Key]:
        topic = self._registry.get(tp.topic)
        if not 0 <= tp.partition < topic.partitions:
            raise invalid_partition(tp.topic, tp.partition, topic.partitions)
        return topic, (self._kafka_name(tp.topic), tp.partition)

    # -- the topic registry ----------------------------------------------------------

    async def _catch_up_registry(self) -> None:
        """Apply every registry record up to its current end."""
        _, fetcher, _, _ = self._parts()
        admin = self._admin
        assert admin is not None
        key = self._registry_key
        async with self._registry_lock:
            end = (await admin.list_offsets({key: OffsetSpec.latest()}))[key]
            registry = self._registry
            if registry.position == 0:
                start = (await admin.list_offsets({key: OffsetSpec.earliest()}))[key]
                registry.position = start
            while registry.position < end:
                records = await self._bounded(
                    fetcher.read(
                        key[0],
                        REGISTRY_TOPIC,
                        0,
                        registry.position,
                        end,
                        max_records=_REGISTRY_BATCH,
                        max_bytes=_REGISTRY_BYTES,
                    )
                )
                if not records:
                    break
                for record in records:
                    registry.apply(record)

    async def _follow_registry(self) -> None:
        """Apply other nodes' topic changes as they arrive."""
        _, _, tail, _ = self._parts()
        key = self._registry_key
        while True:
            position = self._registry.position
            tail.watch(key, position)
            if self._waiters.passed({key: position}) or await self._waiters.wait(
                {key: position}, timeout=30.0
            ):
                try:
                    await self._catch_up_registry()
                except StorageUnavailable as exc:
                    logger.warning("cannot follow the topic registry: %s", exc.message)
                    await asyncio.sleep(_PROBE_INTERVAL)

    async def _write_registry(self, name: str, value: bytes | None) -> Appended:
        """Append one registry record; applied here (and on every node) once read back."""
        future = self._loop_future()
        record = NewRecord(REGISTRY_TOPIC, 0, name.encode(), value)
        self._send_single(self._registry_key[0], record, future)
        [appended] = await future
        while self._registry.position <= appended.offset:
            await self._catch_up_registry()
        return appended

    def _topic_removed(self, topic: Topic) -> None:
        keys = [(self._kafka_name(topic.name), p) for p in range(topic.partitions)]
        # Waiters wake to find the topic gone; groups drop its partitions.
        self._waiters.forget(keys)
        for key in keys:
            self._last.pop(key, None)
        if self._tail is not None:
            for key in keys:
                self._tail.forget(key)
        self._groups.topics_changed([topic.name])

    async def _known(self, name: str) -> Topic:
        """The topic, asking the registry again before saying it does not exist."""
        found = self._registry.by_name.get(name)
        if found is not None:
            return found
        await self._catch_up_registry()  # another node may have just created it
        return self._registry.get(name)

    # -- topics ----------------------------------------------------------------------

    async def create_topic(self, spec: TopicSpec) -> Topic:
        """Create a topic; ``TopicExists`` if the name is taken, ``BadRequest`` if invalid."""
        validate_spec(spec)
        admin = self._require_admin()
        if spec.name in self._registry.by_name:
            raise TopicExists(f"topic {spec.name!r} already exists", topic=spec.name)
        now = _wall_clock_us()
        topic = Topic(
            name=spec.name,
            id=-1,
            partitions=spec.partitions,
            retention_ms=spec.retention_ms,
            retention_bytes=spec.retention_bytes,
            config=spec.config,
            created_at=now,
            updated_at=now,
        )
        configs = kafka_topic_configs(topic)
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                await admin.create_topic(self._kafka_name(spec.name), spec.partitions, configs)
                await admin.until_led(self._kafka_name(spec.name), spec.partitions)
                break
            except TopicExists:
                await self._catch_up_registry()
                if spec.name in self._registry.by_name or attempt == _CREATE_ATTEMPTS - 1:
                    raise TopicExists(
                        f"topic {spec.name!r} already exists", topic=spec.name
                    ) from None
                # Deleted a moment ago, by us or another node: the deletion is finishing.
                await asyncio.sleep(0.1)
        appended = await self._write_registry(spec.name, encode_entry(topic, creating=True))
        created = self._registry.get(spec.name)
        if created.id != appended.offset + 1:  # the id the registry gives its creator
            raise TopicExists(f"topic {spec.name!r} already exists", topic=spec.name)
        return created

    async def get_topic(self, name: str) -> Topic:
        """The topic called ``name``, or ``UnknownTopic``."""
        return await self._known(name)

    async def get_topic_by_id(self, topic_id: int) -> Topic:
        """The topic with this stable id, or ``UnknownTopic``."""
        found = self._registry.by_id.get(topic_id)
        if found is not None:
            return found
        await self._catch_up_registry()
        return self._registry.get_by_id(topic_id)

    async def list_topics(self, *, include_internal: bool = False) -> list[Topic]:
        """All topics by name; internal (``__sluicegate*``) ones only if asked."""
        return self._registry.topics(include_internal=include_internal)

    async def alter_topic(self, name: str, update: TopicUpdate) -> Topic:
        """Change settings; partitions may only grow (``BadRequest`` otherwise)."""
        admin = self._require_admin()
        old = await self._known(name)
        new = updated_topic(old, update, max(_wall_clock_us(), old.updated_at + 1))
        kafka_name = self._kafka_name(name)
        if new.partitions > old.partitions:
            await admin.grow(kafka_name, new.partitions)
            await admin.until_led(kafka_name, new.partitions)
        configs = kafka_topic_configs(new)
        if configs != kafka_topic_configs(old):
            await admin.set_configs(kafka_name, configs)
        await self._write_registry(name, encode_entry(new, creating=False))
        if new.partitions > old.partitions:
            self._groups.topics_changed([name])
        return self._registry.get(name)

    async def purge_topic(self, name: str) -> None:
        """Drop every record; offsets keep counting from the old high watermark."""
        admin = self._require_admin()
        topic = await self._known(name)
        kafka_name = self._kafka_name(name)
        await admin.delete_records([(kafka_name, p) for p in range(topic.partitions)])

    async def delete_topic(self, name: str) -> None:
        """Delete the topic, its records and its groups' committed offsets.

        Kafka drops the committed offsets of a deleted topic's partitions itself.
        """
        admin = self._require_admin()
        await self._known(name)
        with contextlib.suppress(UnknownTopic):  # already gone from Kafka: finish the job
            await admin.delete_topic(self._kafka_name(name))
        await self._write_registry(name, None)

    # -- records ---------------------------------------------------------------------

    def _loop_future(self) -> asyncio.Future[list[Appended]]:
        return asyncio.get_running_loop().create_future()

    def append(self, batch: Sequence[NewRecord]) -> asyncio.Future[list[Appended]]:
        """Queue all records or none; see ``Log.append``."""
        result = self._loop_future()
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
        pending = _Pending(transactional, result)
        blockers: list[asyncio.Future[list[Appended]]] = []
        # Entries stay after their append is done (one per partition written, dropped with
        # the topic): cheaper than a done-callback per append on the hot path.
        last_appends = self._last
        for key in dict.fromkeys(keys) if transactional else keys:
            last = last_appends.get(key)
            if (
                last is not None
                and (last.transactional != transactional or last.deferred)
                and not last.future.done()
            ):
                blockers.append(last.future)
            last_appends[key] = pending
        if blockers:
            # Wait for the other producer's last append to these partitions, so the order
            # of calls is the order in the log. Rare: a partition fed both ways at once.
            pending.deferred = True
            gate = asyncio.gather(*blockers, return_exceptions=True)
            gate.add_done_callback(lambda _: self._submit(batch, keys, pending))
        else:
            self._submit(batch, keys, pending)
        return result

    def _admit(self, size: int) -> None:
        if not self._running:
            self._require_running()
        if self._down:
            raise StorageUnavailable("no Kafka broker is reachable", retry_after=_PROBE_INTERVAL)
        if size and self._queued() + size > self._max_pending:
            raise Overloaded(f"more than {self._max_pending} records are waiting for Kafka")

    def _record_keys(self, batch: Sequence[NewRecord]) -> list[_Key]:
        """Each record's (Kafka topic, partition), checked against the registry."""
        keys: list[_Key] = []
        name = None
        kafka_name, count = "", 0
        for record in batch:
            if record.topic != name:
                name = record.topic
                topic = self._registry.by_name.get(name)
                if topic is None:
                    raise UnknownTopic(f"topic {name!r} does not exist", topic=name)
                kafka_name, count = self._prefix + name, topic.partitions
            if not 0 <= record.partition < count:
                raise invalid_partition(name, record.partition, count)
            keys.append((kafka_name, record.partition))
        return keys

    def _submit(self, batch: Sequence[NewRecord], keys: list[_Key], pending: _Pending) -> None:
        pending.deferred = False
        if pending.future.done():
            return
        if not pending.transactional:
            self._send_single(keys[0][0], batch[0], pending.future)
            return
        transactions, _, _, _ = self._parts()
        started = time.monotonic()
        transactions.submit(
            Batch(keys, batch),
            lambda outcome: self._committed(batch, outcome, pending.future, started),
        )

    def _send_single(
        self, kafka_topic: str, record: NewRecord, future: asyncio.Future[list[Appended]]
    ) -> None:
        producer = self._producer
        assert producer is not None  # appends are admitted only while running
        key = (kafka_topic, record.partition)

        def delivered(report: Report) -> None:
            error, offset, timestamp = report
            if error is not None:
                if not future.done():
                    future.set_exception(translate(error, topic=record.topic))
                return
            self._waiters.advance(key, offset + 1)
            if not future.done():
                appended = Appended(record.topic, record.partition, offset, timestamp * 1000)
                future.set_result([appended])

        try:
            producer.send(kafka_topic, record, delivered)
        except BufferError:
            future.set_exception(Overloaded("the Kafka producer's queue is full"))
        except KafkaException as exc:
            error = kafka_error(exc)
            future.set_exception(translate(error, topic=record.topic) if error is not None else exc)

    def _committed(
        self,
        batch: Sequence[NewRecord],
        outcome: Outcome,
        future: asyncio.Future[list[Appended]],
        started: float,
    ) -> None:
        # Waiters were woken once for the whole transaction (_until_visible).
        if isinstance(outcome, SluicegateError):
            if not future.done():
                future.set_exception(outcome)
            return
        appended = [
            Appended(record.topic, record.partition, offset, timestamp * 1000)
            for record, (offset, timestamp) in zip(batch, outcome, strict=True)
        ]
        if self._observe is not None:
            self._observe(len(batch), time.monotonic() - started)
        if not future.done():
            future.set_result(appended)

    async def _until_visible(self, ends: Mapping[_Key, int]) -> None:
        """Return once ``read_committed`` readers see every partition up to its end."""
        admin = self._admin
        assert admin is not None  # transactions commit only after _open()
        missing = dict(ends)
        deadline = time.monotonic() + self._timeout
        while True:
            seen = await admin.list_offsets({key: OffsetSpec.latest() for key in missing})
            missing = {key: end for key, end in missing.items() if seen[key] < end}
            if not missing:
                self._waiters.advanced(ends)
                return
            if time.monotonic() > deadline:
                raise StorageUnavailable("Kafka did not write the commit markers in time")
            # The coordinator writes the commit markers right after it answered.
            await asyncio.sleep(0.001)

    async def _bounded(self, read: asyncio.Future[list[Record]]) -> list[Record]:
        # The fetcher answers within the request timeout; this bounds a fetcher that died.
        try:
            async with asyncio.timeout(self._timeout + 5.0):
                return await read
        except TimeoutError:
            raise StorageUnavailable("the Kafka fetcher did not answer") from None

    async def _marks(self, key: _Key, topic: str) -> Watermarks:
        specs = {key: OffsetSpec.earliest()}
        low = (await self._require_admin().list_offsets(specs, topic=topic))[key]
        specs = {key: OffsetSpec.latest()}
        high = (await self._require_admin().list_offsets(specs, topic=topic))[key]
        return Watermarks(low=low, high=max(low, high))

    async def read(
        self, tp: TopicPartition, offset: int, *, max_records: int, max_bytes: int
    ) -> list[Record]:
        """Records from ``offset`` on, bounded by count and bytes (the first always fits)."""
        if max_records < 1:
            raise BadRequest(f"max_records must be >= 1, got {max_records}", field="max_records")
        _, key = self._checked(tp)
        marks = await self._marks(key, tp.topic)
        if offset == marks.high:
            return []
        if not marks.low <= offset < marks.high:
            raise OffsetOutOfRange(
                f"offset {offset} is out of range for {tp.topic}/{tp.partition}: "
                f"expected {marks.low} (low watermark) to {marks.high} (high watermark)",
                topic=tp.topic,
                partition=tp.partition,
                offset=offset,
                low=marks.low,
                high=marks.high,
            )
        _, fetcher, _, _ = self._parts()
        read = fetcher.read(
            key[0],
            tp.topic,
            tp.partition,
            offset,
            marks.high,
            max_records=max_records,
            max_bytes=max_bytes,
        )
        return await self._bounded(read)

    async def watermarks(self, tp: TopicPartition) -> Watermarks:
        """Low and high watermark of a partition, as a ``read_committed`` reader sees them."""
        _, key = self._checked(tp)
        return await self._marks(key, tp.topic)

    async def offset_for_time(self, tp: TopicPartition, timestamp: int) -> int:
        """The first offset whose timestamp is >= ``timestamp`` (µs), else the high watermark."""
        _, key = self._checked(tp)
        admin = self._require_admin()
        # Kafka keeps milliseconds: the first record at or after ``timestamp`` µs is the
        # first one at or after the millisecond that holds it, rounded up.
        millis = max(0, -(-timestamp // 1000))
        found = (await admin.list_offsets({key: OffsetSpec.for_timestamp(millis)}, tp.topic))[key]
        if found < 0:
            return (await self._marks(key, tp.topic)).high
        return found

    async def wait(self, positions: Mapping[TopicPartition, int], timeout: float) -> bool:
        """Wait until some partition has a record at or past its position, or timeout."""
        keyed = {self._checked(tp)[1]: position for tp, position in positions.items()}
        if self._waiters.passed(keyed):
            return True
        if self._closing:
            return False
        _, _, tail, _ = self._parts()
        for key, position in keyed.items():
            tail.watch(key, position)
        return await self._waiters.wait(keyed, timeout)

    # -- consumer groups -------------------------------------------------------------

    def _group(self, group: str) -> str:
        return self._prefix + group

    async def commit_offsets(
        self,
        group: str,
        offsets: Mapping[TopicPartition, int],
        *,
        member_id: str | None = None,
        generation: int | None = None,
    ) -> None:
        """Store the next offsets in ``__consumer_offsets``, fenced if a member is given."""
        admin = self._require_admin()
        check_offsets(offsets)
        keyed = {self._checked(tp)[1]: offset for tp, offset in offsets.items()}
        if member_id is not None:
            self._groups.check_owner(group, member_id, generation, offsets)
        if keyed:
            await admin.commit(self._group(group), keyed)

    async def committed_offsets(self, group: str, topic: str) -> dict[int, int]:
        """Committed next offsets of ``group`` on ``topic``, by partition."""
        admin = self._require_admin()
        found = await self._known(topic)
        return await admin.committed(self._group(group), self._kafka_name(topic), found.partitions)

    async def join_group(
        self, group: str, member_id: str, topics: Sequence[str], session_timeout: float
    ) -> Assignment:
        """Join (or re-join) ``group`` subscribed to ``topics``; rebalances the group."""
        for name in topics:
            await self._known(name)
        return self._groups.join(group, member_id, topics, session_timeout)

    async def heartbeat(self, group: str, member_id: str) -> Assignment:
        """Keep the member alive; returns its current assignment."""
        return self._groups.heartbeat(group, member_id)

    async def leave_group(self, group: str, member_id: str) -> None:
        """Remove the member and rebalance; unknown members are ignored."""
        self._groups.leave(group, member_id)
