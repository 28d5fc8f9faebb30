"""The Admin API, awaited on the loop: librdkafka answers admin requests on its own
background thread and resolves ``concurrent.futures`` futures, which the loop awaits
without a thread of ours. Every call is bounded by the request timeout and its errors
are translated (``errors``).

**Group offsets have a client of their own, replaced when it gets stuck.** Commits and
reads of committed offsets go to the group's coordinator, which librdkafka (2.16) looks up
once and caches. When that broker dies, a request finds the cached coordinator down and
waits for it to come back, re-asking who coordinates only when some broker's state
changes; none does, so every such request of the client times out, and kept doing so for
as long as we watched (minutes), until the client aborted the process (an assertion in
its coordinator path, librdkafka #4605). A coordinator request that fails unavailable
replaces that client: the next one looks the coordinator up afresh and finds the
successor. The replaced client is kept until its requests have timed out, then dropped.
The node replaces it too when its cluster answers again after an outage (``KafkaNode``),
before it says it is ready: consumers must not meet the stale client first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicCollection,
)
from confluent_kafka import TopicPartition as KafkaPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from sluicegate.errors import SluicegateError, StorageUnavailable, UnknownTopic
from sluicegate.storage.kafka.durability import Replication
from sluicegate.storage.kafka.errors import kafka_error, translate

__all__ = ["KafkaAdmin"]

T = TypeVar("T")
_Key = tuple[str, int]
#: librdkafka's "no committed offset" (OFFSET_INVALID).
_NO_OFFSET = -1001
_RETRY_SECONDS = 0.05
#: Seconds ``_relearn_brokers``' metadata request may wait, and at least between two of
#: them. A connected broker answers in milliseconds; with none, the request waits for one,
#: and a stop waits for its thread.
_RELEARN_SECONDS = 1.0
#: Seconds a question that may have gone to a broker just killed waits before the client
#: is taught the brokers (and leaders) again and the question asked anew.
_SHORT_WAIT = 1.0
#: Seconds a topic just created may take to have leaders for all its partitions.
_LEADER_PATIENCE = 30.0
#: Answers of a partition whose leadership is moving (or a broker that just restarted);
#: a leader just elected answers OFFSET_NOT_AVAILABLE until its high watermark caught up.
_LEADERLESS = {
    KafkaError.OFFSET_NOT_AVAILABLE,
    KafkaError._NOENT,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.UNKNOWN_LEADER_EPOCH,
    KafkaError.FENCED_LEADER_EPOCH,
}


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Retrieve a finished task's exception: one nobody awaits any more is not an error."""
    if not task.cancelled():
        task.exception()


def _leaderless(exc: Exception) -> bool:
    cause = exc.__cause__
    error = kafka_error(cause) if cause is not None else None
    return error is not None and error.code() in _LEADERLESS


class KafkaAdmin:
    """Topic, offset and group-offset requests of one node, bounded by ``timeout``.

    ``topic`` is the one ``ping`` asks about (the node's topic registry, which may not
    exist yet). ``on_error`` hears the client's errors, and its log lines go to the
    config's ``logger``, when ``poll`` serves them.
    """

    def __init__(
        self,
        config: dict[str, Any],
        *,
        timeout: float,
        replication_factor: int,
        topic: str,
        on_error: Callable[[KafkaError], None],
    ):
        with_callback: dict[str, Any] = {**config, "error_cb": on_error}
        self._config = with_callback
        self._client = AdminClient(with_callback)
        #: Group-offset requests' client (see the module's docstring), and those it
        #: replaced, kept until their requests end.
        self._coordinated = AdminClient(with_callback)
        self._replaced: list[AdminClient] = []
        self._timeout = timeout
        self._replication = replication_factor
        self._topic = topic
        #: The metadata request of ``_relearn_brokers`` in flight, if any, and when the
        #: last one started (loop time).
        self._relearning: asyncio.Future[Any] | None = None
        self._relearned_at = -_RELEARN_SECONDS

    async def _await(
        self, future: Future[T], topic: str | None = None, *, timeout: float | None = None
    ) -> T:
        try:
            async with asyncio.timeout(self._timeout if timeout is None else timeout):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            self._relearn_brokers()
            raise StorageUnavailable(
                f"Kafka did not answer within {self._timeout:g}s (kafka.request_timeout)"
            ) from None
        except KafkaException as exc:
            error = kafka_error(exc)
            failure = (
                StorageUnavailable(f"Kafka failed: {exc}")
                if error is None
                else translate(error, topic=topic)
            )
            if isinstance(failure, StorageUnavailable):
                self._relearn_brokers()
            raise failure from exc

    async def _await_coordinator(
        self, client: AdminClient, future: Future[T], topic: str | None = None
    ) -> T:
        """``_await`` of a request of the group-offsets client ``client``; replaced if the
        request failed unavailable (its coordinator may be dead and cached)."""
        try:
            return await self._await(future, topic=topic)
        except StorageUnavailable:
            if client is self._coordinated:
                self.renew_coordinated()
            raise

    def renew_coordinated(self) -> None:
        """Replace the group-offsets client: its next request looks the coordinator up
        afresh. The old one is kept until its requests have timed out.

        Also called when the cluster answers again after an outage: a client that lived
        through it waits for the coordinator it cached even once that broker is back (a
        broker restarted: the first request timed out, at the request timeout, while the
        node said it was ready again), where a new client finds it at once.
        """
        client = self._coordinated
        self._coordinated = AdminClient(self._config)
        self._replaced.append(client)
        # librdkafka fails its requests at the request timeout; dropped after.
        loop = asyncio.get_running_loop()
        loop.call_later(self._timeout + 1.0, self._replaced.remove, client)

    def _options(self) -> dict[str, float]:
        return {"request_timeout": self._timeout}

    def _relearn_brokers(self) -> None:
        """After a request failed for want of a broker: ask for metadata the plain way,
        in the background: one request at a time, at most one a second, each waiting at
        most a second.

        A client that lost every broker connects to its bootstrap servers again and asks
        which brokers there are; a metadata answer that lists none (a broker starting up
        or fenced after a stall answers so) leaves it knowing none, and librdkafka does
        not ask again by itself: a request for the controller then waits until the
        connection closes, minutes later. A plain metadata request goes to any broker
        connected, bootstrap ones included, and its answer teaches the client the brokers
        again. It blocks, so it runs on a thread.
        """
        now = asyncio.get_running_loop().time()
        if self._relearning is not None or now - self._relearned_at < _RELEARN_SECONDS:
            return
        self._relearned_at = now
        ask = functools.partial(
            self._client.list_topics, topic=self._topic, timeout=_RELEARN_SECONDS
        )
        self._relearning = relearning = asyncio.ensure_future(asyncio.to_thread(ask))

        def done(_: asyncio.Future[Any]) -> None:
            self._relearning = None
            _retrieved(relearning)  # a cluster still away: the next failure asks again

        relearning.add_done_callback(done)

    async def _relearned(self) -> None:
        """Return once ``_relearn_brokers``' request in flight, if any, has ended."""
        relearning = self._relearning
        if relearning is not None:
            await asyncio.wait([relearning])

    def poll(self) -> None:
        """Serve the error callback and the log lines waiting in the client's queue.

        Answers to requests need no poll (librdkafka's background thread resolves their
        futures), so only these wait; the node polls every second, which bounds them.
        """
        self._client.poll(0)
        self._coordinated.poll(0)
        for replaced in self._replaced:
            replaced.poll(0)

    async def ping(self, *, timeout: float | None = None) -> None:
        """Return once a broker answered a question about the admin's topic.

        DescribeConfigs of that topic, sent to the broker librdkafka knows as the
        controller as DescribeCluster would be. Not DescribeCluster: its answer is parsed
        as metadata, and librdkafka (2.16) aborts the process when that metadata lists no
        broker, its parser reporting success with no result. DescribeConfigs' parser fails
        such an answer. (DescribeTopics, below, shares the flaw only for an answer listing
        neither a broker nor a topic, and a broker lists every topic asked about.)

        A broker killed stays "the controller" for the client until it asks for metadata
        again, and a question sent there waits for it: so the first question waits
        ``_SHORT_WAIT`` only; then the client is taught the live brokers
        (``_relearn_brokers``, which that failure starts) and asked again for the rest of
        the request timeout (or ``timeout``, when given). A live cluster answers in
        milliseconds either way.
        """
        resource = ConfigResource(ConfigResource.Type.TOPIC, self._topic)
        timeout = self._timeout if timeout is None else timeout
        first = min(_SHORT_WAIT, timeout / 2)
        try:
            await self._describe_configs(resource, first)
            return
        except StorageUnavailable:
            await self._relearned()
        await self._describe_configs(resource, timeout - first)

    async def _describe_configs(self, resource: ConfigResource, timeout: float) -> None:
        futures = self._client.describe_configs([resource], request_timeout=timeout)
        with contextlib.suppress(UnknownTopic):
            await self._await(futures[resource], topic=self._topic, timeout=timeout)

    async def replication(self) -> Replication:
        """How the admin's topic is replicated (the fewest replicas of its partitions),
        its ``min.insync.replicas``, and how many brokers the cluster has.

        A metadata request (it blocks, so on a thread, bounded by the request timeout)
        and DescribeConfigs of the topic: what any principal that may use the topic may
        ask, where the broker's own configs would need a right on the cluster.
        """
        # The topic may be just created: a broker other than its leader (which answered
        # ``until_led``) may not know it yet for a moment, in its metadata or its configs.
        deadline = asyncio.get_running_loop().time() + self._timeout
        while True:
            try:
                return await self._ask_replication()
            except UnknownTopic:
                if asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(_RETRY_SECONDS)

    async def _ask_replication(self) -> Replication:
        ask = functools.partial(self._client.list_topics, topic=self._topic, timeout=self._timeout)
        try:
            metadata = await asyncio.to_thread(ask)
        except KafkaException as exc:
            error = kafka_error(exc)
            raise (StorageUnavailable(str(exc)) if error is None else translate(error)) from exc
        found = metadata.topics.get(self._topic)
        if found is None or found.error is not None or not found.partitions:
            raise UnknownTopic(f"topic {self._topic!r} has no partitions", topic=self._topic)
        replicas = min(len(partition.replicas) for partition in found.partitions.values())
        resource = ConfigResource(ConfigResource.Type.TOPIC, self._topic)
        futures = self._client.describe_configs([resource], **self._options())
        configs = await self._await(futures[resource], topic=self._topic)
        min_insync = int(configs["min.insync.replicas"].value)
        return Replication(len(metadata.brokers), replicas, min_insync)

    async def partition_counts(self, names: Sequence[str]) -> dict[str, int]:
        """How many partitions Kafka has for each of ``names`` (one DescribeTopics request);
        a topic Kafka does not have is left out."""
        if not names:
            return {}
        futures = self._client.describe_topics(TopicCollection(list(names)), **self._options())
        counts: dict[str, int] = {}
        for name, future in futures.items():
            with contextlib.suppress(UnknownTopic):
                described = await self._await(future, topic=name)
                counts[name] = len(described.partitions)
        return counts

    async def topic_configs(self, name: str) -> dict[str, str]:
        """The configs set on topic ``name`` itself, with its ``retention.ms`` and
        ``retention.bytes`` whatever they come from (the broker's defaults included)."""
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        futures = self._client.describe_configs([resource], **self._options())
        entries = await self._await(futures[resource], topic=name)
        return {
            key: entry.value
            for key, entry in entries.items()
            if entry.value is not None
            and (
                # An int from librdkafka, though typed as the enum.
                getattr(entry.source, "value", entry.source)
                == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
                or key in ("retention.ms", "retention.bytes")
            )
        }

    async def create_topic(self, name: str, partitions: int, configs: dict[str, str]) -> None:
        new = NewTopic(
            name, num_partitions=partitions, replication_factor=self._replication, config=configs
        )
        futures = self._client.create_topics([new], **self._options())
        await self._await(futures[name], topic=name)

    async def until_led(self, name: str, partitions: int) -> None:
        """Return once every partition of a topic just created has a leader."""
        # A busy cluster (a new one creating its internal topics) may take seconds.
        specs = {(name, p): OffsetSpec.latest() for p in range(partitions)}
        await self.list_offsets(specs, name, patience=_LEADER_PATIENCE)

    async def delete_topic(self, name: str) -> None:
        futures = self._client.delete_topics([name], operation_timeout=self._timeout)
        await self._await(futures[name], topic=name)

    async def grow(self, name: str, partitions: int) -> None:
        futures = self._client.create_partitions(
            [NewPartitions(name, partitions)], **self._options()
        )
        await self._await(futures[name], topic=name)

    async def set_configs(
        self, name: str, configs: Mapping[str, str], removed: Iterable[str] = ()
    ) -> None:
        """Set ``configs`` on topic ``name``; the ``removed`` ones go back to the broker's
        default (those left out are left as they are)."""
        entries = [
            ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
            for key, value in configs.items()
        ]
        entries += [
            ConfigEntry(key, None, incremental_operation=AlterConfigOpType.DELETE)
            for key in removed
        ]
        resource = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
        futures = self._client.incremental_alter_configs([resource], **self._options())
        await self._await(futures[resource], topic=name)

    async def delete_records(self, partitions: Sequence[_Key]) -> None:
        """Drop every record below each partition's high watermark."""
        # OFFSET_END (-1) asks the broker for its high watermark, whatever it is by now.
        futures = self._client.delete_records(
            [KafkaPartition(t, p, -1) for t, p in partitions], **self._options()
        )
        for future in futures.values():
            await self._await(future)

    async def list_offsets(
        self, specs: Mapping[_Key, OffsetSpec], topic: str | None = None, *, patience: float = 0
    ) -> dict[_Key, int]:
        """Offsets as a ``read_committed`` reader sees them (the end is the last stable one).

        Asked again until the request timeout, or ``patience`` seconds if longer, while a
        partition has no leader (a topic just created, a broker failing over) or no broker
        answers. A question goes to the leader librdkafka has cached, and a leader killed
        stays so (in the cluster's metadata too, until the controller fences it, seconds
        later): a question sent there waits for it, even once another broker leads. So a
        question unanswered after ``_SHORT_WAIT`` is asked anew, the metadata refreshed
        first, and the first answer of either is taken: a slow cluster's, or the new
        leader's.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self._timeout, patience)
        partitions = {KafkaPartition(t, p): spec for (t, p), spec in specs.items()}
        topics = sorted({t for t, _ in specs})

        async def ask(refreshed: bool) -> dict[_Key, int]:
            if refreshed:
                await self._refresh_metadata(topics, deadline)
            wait = max(deadline - loop.time(), _RETRY_SECONDS)
            futures = self._client.list_offsets(
                partitions, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=wait
            )
            out: dict[_Key, int] = {}
            for tp, future in futures.items():
                info = await self._await(future, topic=topic, timeout=wait)
                out[(tp.topic, tp.partition)] = info.offset
            return out

        asking: set[asyncio.Task[dict[_Key, int]]] = set()
        failure: SluicegateError | None = None
        try:
            while True:
                question = asyncio.ensure_future(ask(refreshed=failure is not None or bool(asking)))
                question.add_done_callback(_retrieved)
                asking.add(question)
                wait = max(min(_SHORT_WAIT, deadline - loop.time()), 0)
                done, asking = await asyncio.wait(
                    asking, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                for answered in done:
                    if answered.exception() is None:
                        return answered.result()
                for answered in done:
                    exc = answered.exception()
                    assert exc is not None  # every answer in ``done`` failed, by now
                    if not isinstance(exc, SluicegateError) or not (
                        # Patient callers just created the topic: a broker may not know it.
                        (patience > 0 and isinstance(exc, UnknownTopic))
                        or _leaderless(exc)
                        or isinstance(exc, StorageUnavailable)
                    ):
                        raise exc
                    failure = exc
                if loop.time() >= deadline:
                    if failure is not None and _leaderless(failure):
                        # Still no leader (every broker gone, say): unavailable.
                        raise StorageUnavailable(
                            f"no Kafka broker leads the partitions now: {failure.message}"
                        ) from failure
                    raise failure or StorageUnavailable(
                        f"Kafka did not answer within {self._timeout:g}s (kafka.request_timeout)"
                    )
                if done:
                    await asyncio.sleep(_RETRY_SECONDS)
                else:
                    self._relearn_brokers()
        finally:
            for question in asking:
                question.cancel()

    async def _refresh_metadata(self, topics: list[str], deadline: float) -> None:
        """Ask for ``topics``' metadata (by ``deadline``, loop time), which refreshes the
        leaders librdkafka cached; after a broker lost, wait for the client to be taught
        the live ones first (``_relearn_brokers``, which that failure started)."""
        await self._relearned()
        wait = max(min(_SHORT_WAIT, deadline - asyncio.get_running_loop().time()), _RETRY_SECONDS)
        described = self._client.describe_topics(TopicCollection(topics), request_timeout=wait)
        for future in described.values():
            with contextlib.suppress(SluicegateError):
                await self._await(future, timeout=wait)

    async def commit(self, group: str, offsets: Mapping[_Key, int]) -> None:
        """Store the group's next offsets in ``__consumer_offsets``."""
        request = ConsumerGroupTopicPartitions(
            group, [KafkaPartition(t, p, offset) for (t, p), offset in offsets.items()]
        )
        client = self._coordinated
        futures = client.alter_consumer_group_offsets([request], **self._options())
        answer = await self._await_coordinator(client, futures[group])
        for tp in answer.topic_partitions or ():
            if tp.error is not None:
                raise translate(tp.error, topic=tp.topic)

    async def committed(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        """The group's committed offsets on ``topic``, by partition (absent: none).

        Not asked anew after a short wait, as ``list_offsets`` is: with a second
        group-offsets question out (on a client of its own) while the first waited for a
        coordinator just killed, librdkafka (2.16) aborted the process, an assertion in
        its coordinator path (``rd_kafka_enq_once_del_source_return``).
        """
        request = ConsumerGroupTopicPartitions(
            group, [KafkaPartition(topic, p) for p in range(partitions)]
        )
        client = self._coordinated
        futures = client.list_consumer_group_offsets([request], **self._options())
        answer = await self._await_coordinator(client, futures[group], topic)
        return {
            tp.partition: tp.offset
            for tp in answer.topic_partitions or ()
            if tp.error is None and tp.offset != _NO_OFFSET and tp.offset >= 0
        }
