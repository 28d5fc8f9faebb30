"""Topics on Kafka: created, altered, purged and deleted through the Admin API, with the
gateway's own facts about each (its id, the dialects' settings) in the registry topic.

The registry (``registry``) is replayed at start and followed afterwards, so a topic
another node created or deleted is known here too; an operation that does not find a
topic asks the registry again before answering that it does not exist.

A topic may also change outside the gateway (``kafka-topics.sh``, any admin client).
Every ``OUTSIDE_CHECK_INTERVAL`` a node asks Kafka for the gateway's topics (one
DescribeTopics request) and adopts what it finds, writing the registry as its own
operations do:

- a topic with more partitions than the registry says grew: from then on every node
  reads the new partitions (records other clients write there reach the HTTP consumers
  too), the partitioners spread over them, and groups take them into their assignments.
  Kafka never shrinks a topic, so the registry keeps the largest count an update of a
  topic names (``TopicRegistry.apply``): a node's stale update does not undo a growth
  another node adopted;
- a topic Kafka no longer has, in two checks in a row, was deleted: it leaves the
  registry as if deleted through the gateway (its name is free again; CloudEvents
  creates an event type's topic anew on its next event). One check is not enough: a
  broker's metadata may lag a moment behind a topic created or changed. The gateway's
  own (internal) topics are no exception: what one held is lost, and the code that
  follows it makes it again (``core.state_topic``, the CloudEvents identity markers).
  Partitions added to an internal topic are not taken: its readers read what they made.

And a topic Kafka has under the gateway's prefix but the registry does not (made with
Kafka's tools, left by a creation whose registry record failed, or any topic after the
registry itself was deleted and made again) is taken by the next creation of its name,
its records kept (``KafkaTopics._taken_over``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import NamedTuple

import msgspec
from confluent_kafka.admin import OffsetSpec

from sluicegate.core.records import Appended, NewRecord, TopicPartition
from sluicegate.core.topics import Topic, TopicSpec, TopicUpdate, is_internal
from sluicegate.errors import SluicegateError, StorageUnavailable, TopicExists, UnknownTopic
from sluicegate.storage.groups import GroupCoordinator
from sluicegate.storage.kafka.appends import Appends
from sluicegate.storage.kafka.node import PROBE_INTERVAL, KafkaNode
from sluicegate.storage.kafka.partition_ends import PartitionEnds
from sluicegate.storage.kafka.registry import REGISTRY_TOPIC, TopicRegistry, encode_entry
from sluicegate.storage.kafka.topic_configs import PASSED_THROUGH, kafka_topic_configs
from sluicegate.storage.topic_rules import invalid_partition, updated_topic, validate_spec

__all__ = ["OUTSIDE_CHECK_INTERVAL", "KafkaTopics", "OutsideChanges"]

logger = logging.getLogger(__name__)

_Key = tuple[str, int]
#: A topic just deleted may still be "being deleted" for a moment: tries to create it again.
_CREATE_ATTEMPTS = 20
_REGISTRY_BATCH = 1000
_REGISTRY_BYTES = 4 * 1024 * 1024
#: Seconds between a node's questions about its topics in Kafka (Kafka's own consumers
#: notice new partitions after ``metadata.max.age.ms``, 5 minutes by default).
OUTSIDE_CHECK_INTERVAL = 30.0


class OutsideChanges(NamedTuple):
    """The topics a check found changed outside the gateway, and adopted."""

    grown: list[str]
    deleted: list[str]


def _wall_clock_us() -> int:
    return time.time_ns() // 1000


def _retention(value: str | None) -> int | None:
    """A Kafka retention config as a topic's setting: ``-1`` (or none) is forever."""
    return None if value is None or int(value) < 0 else int(value)


class KafkaTopics:
    """The log's topics: the registry's view of them, and the Admin API's operations."""

    def __init__(
        self,
        node: KafkaNode,
        registry: TopicRegistry,
        appends: Appends,
        ends: PartitionEnds,
        groups: GroupCoordinator,
    ) -> None:
        self._node = node
        self._registry = registry
        self._appends = appends
        self._ends = ends
        self._groups = groups
        self._lock = asyncio.Lock()
        #: Held by this node's changes of a topic's registry entry (``alter``, a change
        #: made outside the gateway adopted), so that none writes an entry read before
        #: another's.
        self._changing = asyncio.Lock()
        #: The topics (name: id) Kafka did not have at the last check.
        self._missing: dict[str, int] = {}
        #: The registry's (Kafka topic, partition).
        self.registry_key: _Key = (node.prefix + REGISTRY_TOPIC, 0)

    def kafka_name(self, topic: str) -> str:
        return self._node.prefix + topic

    def checked(self, tp: TopicPartition) -> tuple[Topic, _Key]:
        """The partition's topic and (Kafka topic, partition), or why it does not exist."""
        topic = self._registry.get(tp.topic)
        if not 0 <= tp.partition < topic.partitions:
            raise invalid_partition(tp.topic, tp.partition, topic.partitions)
        return topic, (self.kafka_name(tp.topic), tp.partition)

    async def known(self, name: str) -> Topic:
        """The topic, asking the registry again before saying it does not exist."""
        found = self._registry.by_name.get(name)
        if found is not None:
            return found
        await self.catch_up()  # another node may have just created it
        return self._registry.get(name)

    # -- the registry ----------------------------------------------------------------

    async def catch_up(self) -> None:
        """Apply every registry record up to its current end."""
        admin, fetcher = self._node.admin, self._node.fetcher
        key = self.registry_key
        async with self._lock:
            end = (await admin.list_offsets({key: OffsetSpec.latest()}))[key]
            registry = self._registry
            if registry.position == 0:
                start = (await admin.list_offsets({key: OffsetSpec.earliest()}))[key]
                registry.position = start
            while registry.position < end:
                records = await self._node.bounded(
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

    async def follow(self) -> None:
        """Apply other nodes' topic changes as they arrive."""
        tail, ends = self._node.tail, self._ends
        key = self.registry_key
        while True:
            position = self._registry.position
            tail.watch(key, position)
            if ends.passed({key: position}) or await ends.waiters.wait(
                {key: position}, timeout=30.0
            ):
                try:
                    await self.catch_up()
                except StorageUnavailable as exc:
                    logger.warning("cannot follow the topic registry: %s", exc.message)
                    await asyncio.sleep(PROBE_INTERVAL)

    async def _write(self, name: str, value: bytes | None) -> Appended:
        """Append one registry record; applied here (and on every node) once read back."""
        future: asyncio.Future[list[Appended]] = asyncio.get_running_loop().create_future()
        record = NewRecord(REGISTRY_TOPIC, 0, name.encode(), value)
        self._appends.send_single(self.registry_key[0], record, future)
        try:
            [appended] = await future
        except UnknownTopic as exc:
            raise StorageUnavailable(
                f"the gateway's topic registry {self.registry_key[0]!r} is gone from Kafka "
                "(deleted outside the gateway?): no topic can be created, changed or "
                "deleted until a node is started again, which makes it anew"
            ) from exc
        while self._registry.position <= appended.offset:
            await self.catch_up()
        return appended

    # -- operations ------------------------------------------------------------------

    async def create(self, spec: TopicSpec) -> Topic:
        """Create a topic; ``TopicExists`` if the name is taken, ``BadRequest`` if invalid."""
        validate_spec(spec)
        admin = self._node.running_admin()
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
        kafka_name = self.kafka_name(spec.name)
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                await admin.create_topic(kafka_name, spec.partitions, configs)
                await admin.until_led(kafka_name, spec.partitions)
                break
            except TopicExists:
                await self.catch_up()
                last = attempt == _CREATE_ATTEMPTS - 1
                if spec.name in self._registry.by_name:
                    raise TopicExists(
                        f"topic {spec.name!r} already exists", topic=spec.name
                    ) from None
                # In Kafka, not in the registry: a topic another node is creating (made
                # in Kafka, its registry record not written yet: nodes started together
                # all make the gateway's own topics), or one deleted a moment ago whose
                # deletion is finishing, are waited for; taken only if still there, and
                # still unregistered, after the last try. One of the gateway's own that
                # holds records is taken at once: its registry was deleted and made
                # again, and nothing else would fill it in.
                if last or (is_internal(spec.name) and await self._holds_records(kafka_name)):
                    taken = await self._taken_over(topic, configs)
                    if taken is not None:
                        topic = taken
                        break
                    if last:
                        raise TopicExists(
                            f"topic {spec.name!r} already exists", topic=spec.name
                        ) from None
                await asyncio.sleep(0.1)
        appended = await self._write(spec.name, encode_entry(topic, creating=True))
        created = self._registry.get(spec.name)
        if created.id != appended.offset + 1:  # the id the registry gives its creator
            raise TopicExists(f"topic {spec.name!r} already exists", topic=spec.name)
        return created

    async def _holds_records(self, kafka_name: str) -> bool:
        """Whether the Kafka topic ``kafka_name`` has, or had, a record (``False`` if it
        is gone): a topic made a moment ago by another node has none yet."""
        admin = self._node.running_admin()
        partitions = (await admin.partition_counts([kafka_name])).get(kafka_name, 0)
        ends = await admin.list_offsets(
            {(kafka_name, partition): OffsetSpec.latest() for partition in range(partitions)}
        )
        return any(ends.values())

    async def _taken_over(self, topic: Topic, configs: dict[str, str]) -> Topic | None:
        """``topic`` as Kafka has it though the registry does not (made with Kafka's
        tools under the gateway's prefix, left by a creation whose registry record failed,
        or the gateway's own after the registry was deleted and made again), its records
        kept; ``None`` if Kafka has no such topic by now. Two nodes taking it at once
        both write its registry entry; the first one read holds, as for two creations.

        One of the gateway's own topics gets the partitions and settings it is made with.
        Any other keeps its partitions, retention and Kafka settings: the creation that
        finds it (a dialect's auto-creation, most often) asks for defaults, and applying
        them would cut the retention of records kept for longer, or move its keys to
        other partitions under the producers that write there. Only its timestamps
        become log-append time, which the storage contract's reads by time rely on.
        """
        admin = self._node.running_admin()
        kafka_name = self.kafka_name(topic.name)
        had = (await admin.partition_counts([kafka_name])).get(kafka_name)
        if had is None:
            return None
        if is_internal(topic.name):
            partitions = max(had, topic.partitions)
            if partitions > had:
                await admin.grow(kafka_name, partitions)
                await admin.until_led(kafka_name, partitions)
            await admin.set_configs(kafka_name, configs)
            taken = msgspec.structs.replace(topic, partitions=partitions)
        else:
            kept = await admin.topic_configs(kafka_name)
            await admin.set_configs(kafka_name, {"message.timestamp.type": "LogAppendTime"})
            taken = msgspec.structs.replace(
                topic,
                partitions=had,
                retention_ms=_retention(kept.get("retention.ms")),
                retention_bytes=_retention(kept.get("retention.bytes")),
                config={
                    **{k: v for k, v in topic.config.items() if k not in PASSED_THROUGH},
                    **{k: v for k, v in kept.items() if k in PASSED_THROUGH},
                },
            )
        logger.warning(
            "topic %r is in Kafka but not in the gateway's topic registry: taken as it is, "
            "with its records (partitions: %d, retention.ms: %s)",
            topic.name,
            taken.partitions,
            -1 if taken.retention_ms is None else taken.retention_ms,
        )
        return taken

    async def by_id(self, topic_id: int) -> Topic:
        """The topic with this stable id, or ``UnknownTopic``."""
        found = self._registry.by_id.get(topic_id)
        if found is not None:
            return found
        await self.catch_up()
        return self._registry.get_by_id(topic_id)

    def listed(self, *, include_internal: bool) -> list[Topic]:
        """All topics by name; internal (``__*``: Kafka's and the gateway's) ones only if asked."""
        return self._registry.topics(include_internal=include_internal)

    async def alter(self, name: str, update: TopicUpdate) -> Topic:
        """Change settings; partitions may only grow (``BadRequest`` otherwise)."""
        async with self._changing:
            return await self._alter(name, update)

    async def _alter(self, name: str, update: TopicUpdate) -> Topic:
        admin = self._node.running_admin()
        old = await self.known(name)
        new = updated_topic(old, update, max(_wall_clock_us(), old.updated_at + 1))
        kafka_name = self.kafka_name(name)
        if new.partitions > old.partitions:
            await admin.grow(kafka_name, new.partitions)
            await admin.until_led(kafka_name, new.partitions)
        configs, before = kafka_topic_configs(new), kafka_topic_configs(old)
        if configs != before:
            await admin.set_configs(kafka_name, configs, removed=before.keys() - configs.keys())
        await self._write(name, encode_entry(new, creating=False))
        return self._registry.get(name)

    async def adopt_outside_changes_forever(self) -> None:
        """``adopt_outside_changes`` at start, then every ``OUTSIDE_CHECK_INTERVAL``, while
        the log runs: a node started after one of the gateway's own topics was deleted
        outside it adopts the deletion in one interval, and reads its state from then on."""
        while True:
            if not self._node.down:  # else the probe says so; the next round asks again
                try:
                    await self.adopt_outside_changes()
                except SluicegateError as exc:
                    logger.warning("cannot ask Kafka about the gateway's topics: %s", exc)
            await asyncio.sleep(OUTSIDE_CHECK_INTERVAL)

    async def adopt_outside_changes(self) -> OutsideChanges:
        """Take what Kafka says of the gateway's topics where it differs from the registry
        because of a change made outside the gateway: a growth, a deletion."""
        topics = {self.kafka_name(t.name): t for t in self.listed(include_internal=True)}
        counts = await self._node.admin.partition_counts(sorted(topics))
        changes = OutsideChanges(grown=[], deleted=[])
        for kafka_name, count in counts.items():
            topic = topics[kafka_name]
            # The gateway's own topics are read as it made them: partitions added to one
            # would hold what no node reads or writes.
            if is_internal(topic.name) or count <= topic.partitions:
                continue
            if await self._adopt_growth(topic, count):
                changes.grown.append(topic.name)
        missing = {t.name: t.id for kafka_name, t in topics.items() if kafka_name not in counts}
        missing_before, self._missing = self._missing, missing
        for name, topic_id in missing.items():
            if missing_before.get(name) == topic_id and await self._adopt_deletion(name, topic_id):
                changes.deleted.append(name)
        return changes

    async def _adopt_growth(self, topic: Topic, count: int) -> bool:
        async with self._changing:
            await self.catch_up()  # another node may have taken it already
            current = self._registry.by_name.get(topic.name)
            if current is None or current.id != topic.id or count <= current.partitions:
                return False  # deleted, perhaps created again, or grown meanwhile
            logger.warning(
                "topic %r has %d partitions in Kafka, %d in the gateway's registry: it "
                "grew outside the gateway, whose nodes use every partition from now on",
                topic.name,
                count,
                current.partitions,
            )
            new = msgspec.structs.replace(
                current,
                partitions=count,
                updated_at=max(_wall_clock_us(), current.updated_at + 1),
            )
            await self._write(topic.name, encode_entry(new, creating=False))
            return True

    async def _adopt_deletion(self, name: str, topic_id: int) -> bool:
        async with self._changing:
            await self.catch_up()  # another node may have dropped it already
            current = self._registry.by_name.get(name)
            if current is None or current.id != topic_id:
                return False
            if is_internal(name):
                # Its followers make it again, empty (``core.state_topic``).
                logger.error(
                    "the gateway's internal topic %r is gone from Kafka (missing in two "
                    "checks %.0f s apart): it was deleted outside the gateway, and the "
                    "state it held with it",
                    name,
                    OUTSIDE_CHECK_INTERVAL,
                )
            else:
                logger.warning(
                    "topic %r is gone from Kafka (missing in two checks %.0f s apart): it "
                    "was deleted outside the gateway, whose nodes drop it now",
                    name,
                    OUTSIDE_CHECK_INTERVAL,
                )
            await self._write(name, None)
            return True

    async def purge(self, name: str) -> None:
        """Drop every record; offsets keep counting from the old high watermark."""
        admin = self._node.running_admin()
        topic = await self.known(name)
        keys = [(self.kafka_name(name), p) for p in range(topic.partitions)]
        await admin.delete_records(keys)
        self._node.fetcher.forget(keys)  # records kept for the next read are gone too
        self._ends.purged(keys)  # and the watermarks asked before

    async def delete(self, name: str) -> None:
        """Delete the topic, its records and its groups' committed offsets.

        Kafka drops the committed offsets of a deleted topic's partitions itself.
        """
        admin = self._node.running_admin()
        await self.known(name)
        with contextlib.suppress(UnknownTopic):  # already gone from Kafka: finish the job
            await admin.delete_topic(self.kafka_name(name))
        await self._write(name, None)

    def removed(self, topic: Topic) -> None:
        """The registry dropped ``topic``: wake its waiters, forget its partitions."""
        keys = [(self.kafka_name(topic.name), p) for p in range(topic.partitions)]
        # Waiters wake to find the topic gone; groups drop its partitions.
        self._ends.forget(keys)
        self._appends.forget(keys)
        self._node.fetcher.forget(keys)
        tail = self._node.tail
        for key in keys:
            tail.forget(key)
        self._groups.topics_changed([topic.name])
