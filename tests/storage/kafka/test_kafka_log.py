"""What only the Kafka backend does: plain Kafka records, topic configs, Kafka's own group
offsets, a registry shared by nodes, and its errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    TIMESTAMP_LOG_APPEND_TIME,
    ConsumerGroupTopicPartitions,
    KafkaError,
    Producer,
)
from confluent_kafka import TopicPartition as KafkaPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from sluicegate.config import KafkaSettings
from sluicegate.core.records import NewRecord, TopicPartition, format_timestamp
from sluicegate.core.topics import INTERNAL_PREFIX, TopicSpec, TopicUpdate
from sluicegate.errors import (
    InvalidPartition,
    Overloaded,
    PayloadTooLarge,
    StorageForbidden,
    StorageTimeout,
    StorageUnavailable,
    TopicExists,
    UnknownTopic,
)
from sluicegate.storage.kafka import KafkaLog
from sluicegate.storage.kafka.errors import translate
from sluicegate.storage.kafka.registry import REGISTRY_TOPIC, encode_entry
from tests.storage.kafka.conftest import OpenLog, consume_all_async, delete_in_kafka

BIG = 1 << 30


def _configs(admin: AdminClient, topic: str) -> dict[str, str]:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=10)
    return {name: entry.value for name, entry in entries.items()}


async def _configs_once_applied(
    admin: AdminClient, topic: str, expected: dict[str, str]
) -> dict[str, str]:
    """The topic's configs once the broker shows ``expected``: the controller has taken an
    alteration when it answers, and the broker applies it a moment later."""
    deadline = time.monotonic() + 10
    while True:
        configs = await asyncio.to_thread(_configs, admin, topic)
        if all(configs.get(k) == v for k, v in expected.items()) or time.monotonic() > deadline:
            return configs
        await asyncio.sleep(0.05)


async def test_records_are_plain_kafka_records(
    kafka_log: KafkaLog, kafka_settings: KafkaSettings
) -> None:
    await kafka_log.create_topic(TopicSpec(name="plain", partitions=2))
    headers = [("h", b"\x00\x01"), ("h", b"again")]
    single = await kafka_log.append([NewRecord("plain", 0, b"k", b"one", headers)])
    batch = await kafka_log.append(
        [NewRecord("plain", 0, None, b"two", [("h2", b"")]), NewRecord("plain", 1, b"k2", None)]
    )
    messages = await consume_all_async(
        kafka_settings.bootstrap_servers, kafka_settings.topic_prefix + "plain", 2
    )
    seen = {(m.partition(), m.offset()): m for m in messages}
    for appended, (key, value, hdrs) in zip(
        [*single, *batch],
        [(b"k", b"one", headers), (None, b"two", [("h2", b"")]), (b"k2", None, None)],
        strict=True,
    ):
        message = seen[(appended.partition, appended.offset)]
        assert (message.key(), message.value(), message.headers()) == (key, value, hdrs)
        kind, millis = message.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME
        assert millis * 1000 == appended.timestamp
    assert len(messages) == 3


async def test_settings_are_kafka_topic_configs(
    kafka_log: KafkaLog, kafka_settings: KafkaSettings, kafka_admin: AdminClient
) -> None:
    spec = TopicSpec(
        name="conf",
        retention_ms=60_000,
        config={"cleanup.policy": "compact", "description": "kept by the gateway"},
    )
    created = await kafka_log.create_topic(spec)
    kafka_name = kafka_settings.topic_prefix + "conf"
    configs = await asyncio.to_thread(_configs, kafka_admin, kafka_name)
    assert configs["retention.ms"] == "60000"
    assert configs["retention.bytes"] == "-1"
    assert configs["cleanup.policy"] == "compact"
    assert configs["message.timestamp.type"] == "LogAppendTime"
    assert "description" not in configs
    assert created.config == spec.config
    await kafka_log.alter_topic("conf", TopicUpdate(retention_ms=None, retention_bytes=4096))
    expected = {"retention.ms": "-1", "retention.bytes": "4096"}
    configs = await _configs_once_applied(kafka_admin, kafka_name, expected)
    assert (configs["retention.ms"], configs["retention.bytes"]) == ("-1", "4096")
    # A setting dropped from the topic's config goes back to the broker's default.
    await kafka_log.alter_topic("conf", TopicUpdate(config={"description": "now plain"}))
    configs = await _configs_once_applied(kafka_admin, kafka_name, {"cleanup.policy": "delete"})
    assert configs["cleanup.policy"] == "delete"
    assert configs["retention.bytes"] == "4096"


async def test_group_offsets_are_kafkas_own(
    kafka_log: KafkaLog, kafka_settings: KafkaSettings, kafka_admin: AdminClient
) -> None:
    await kafka_log.create_topic(TopicSpec(name="lag", partitions=2))
    await kafka_log.append([NewRecord("lag", 0, None, b"%d" % i) for i in range(3)])
    await kafka_log.commit_offsets("readers", {TopicPartition("lag", 0): 2})
    group = kafka_settings.topic_prefix + "readers"
    request = ConsumerGroupTopicPartitions(
        group, [KafkaPartition(kafka_settings.topic_prefix + "lag", p) for p in (0, 1)]
    )
    answer = await asyncio.to_thread(
        lambda: kafka_admin.list_consumer_group_offsets([request])[group].result(timeout=10)
    )
    assert [(tp.partition, tp.offset) for tp in answer.topic_partitions] == [(0, 2), (1, -1001)]


async def test_nodes_share_topics_and_ids(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog
) -> None:
    async with open_kafka_log(kafka_settings) as a, open_kafka_log(kafka_settings) as b:
        created = await a.create_topic(TopicSpec(name="shared", partitions=3, config={"x": 1}))
        assert await b.get_topic("shared") == created
        assert await b.get_topic_by_id(created.id) == created
        tp = TopicPartition("shared", 1)
        waiting = asyncio.create_task(b.wait({tp: 0}, timeout=10))
        await asyncio.sleep(0.2)
        [appended] = await a.append([NewRecord("shared", 1, None, b"from a")])
        assert await asyncio.wait_for(waiting, 10) is True  # the tail saw a's record
        [record] = await b.read(tp, appended.offset, max_records=5, max_bytes=BIG)
        assert record.value == b"from a"
        await b.delete_topic("shared")
        for _ in range(200):  # a follows the registry: the delete shows within moments
            if "shared" not in {t.name for t in await a.list_topics()}:
                break
            await asyncio.sleep(0.05)
        with pytest.raises(UnknownTopic):
            await a.get_topic("shared")
        recreated = await a.create_topic(TopicSpec(name="shared"))
        assert recreated.id > created.id


async def test_a_read_woken_by_this_nodes_append_gets_the_record_kafka_stored(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog
) -> None:
    """The waiter's read is answered from what the node appended (``read_ahead``): it must
    be the record another node reads from the broker, through batches' commit markers."""
    async with open_kafka_log(kafka_settings) as a, open_kafka_log(kafka_settings) as b:
        created = await a.create_topic(TopicSpec(name="woken"))
        assert await b.get_topic("woken") == created  # b follows the registry
        tp = TopicPartition("woken", 0)
        headers = (("kind", b"first"), ("empty", b""))
        [first] = await a.append([NewRecord("woken", 0, b"k", b"v0", headers)])
        assert len(await a.read(tp, first.offset, max_records=5, max_bytes=BIG)) == 1
        position = first.offset + 1
        for round_ in range(3):
            waiting = asyncio.create_task(a.wait({tp: position}, timeout=10))
            await asyncio.sleep(0.05)
            if round_ == 1:  # a transaction: its commit marker follows its records
                await a.append([NewRecord("woken", 0, None, b"t%d" % n) for n in range(2)])
            [single] = await a.append([NewRecord("woken", 0, b"k", b"s%d" % round_, headers)])
            assert await asyncio.wait_for(waiting, 10) is True
            read_here = await a.read(tp, position, max_records=10, max_bytes=BIG)
            read_there = await b.read(tp, position, max_records=10, max_bytes=BIG)
            assert read_here == read_there
            assert read_here[-1].offset == single.offset
            assert read_here[-1].value == b"s%d" % round_
            position = single.offset + 1


async def test_a_record_too_large_for_kafka_is_413_and_alone_in_failing(
    kafka_log: KafkaLog, kafka_settings: KafkaSettings
) -> None:
    await kafka_log.create_topic(TopicSpec(name="big", partitions=2))
    huge = b"x" * (2 * 1024 * 1024)  # above the broker's and producer's 1 MB default
    with pytest.raises(PayloadTooLarge):
        await kafka_log.append([NewRecord("big", 0, None, huge)])
    # Queued together, batches share a transaction: the one with the huge record fails
    # alone, and none of its records is ever visible.
    good = [NewRecord("big", 1, None, b"good %d" % i) for i in range(2)]
    bad = [NewRecord("big", 0, None, b"doomed"), NewRecord("big", 1, None, huge)]
    results = await asyncio.gather(
        kafka_log.append(good),
        kafka_log.append(bad),
        kafka_log.append(good),
        return_exceptions=True,
    )
    assert isinstance(results[1], PayloadTooLarge)
    assert all(isinstance(r, list) and len(r) == 2 for r in (results[0], results[2]))
    messages = await consume_all_async(
        kafka_settings.bootstrap_servers, kafka_settings.topic_prefix + "big", 2
    )
    assert sorted(m.value() for m in messages) == sorted([b"good 0", b"good 1"] * 2)


async def test_single_records_past_the_pending_bound_are_overloaded(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog
) -> None:
    # Single records go straight to the idempotent producer (``Appends._append_one``);
    # a full queue, an unknown topic and a partition out of range are refused there too.
    async with open_kafka_log(kafka_settings, max_pending_appends=10) as log:
        await log.create_topic(TopicSpec(name="bounded", partitions=2))
        values = [b"%d" % i for i in range(30)]
        # The bound counts records whose report has not run on the loop, exactly: neither
        # a report the producer's thread served meanwhile (it runs on the loop later) nor
        # librdkafka's other queued events (one CI run's 9 of 10) move it between the 30.
        futures = [log.append([NewRecord("bounded", i % 2, None, v)]) for i, v in enumerate(values)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        accepted = [v for v, r in zip(values, results, strict=True) if isinstance(r, list)]
        assert len(accepted) == 10
        assert all(isinstance(r, Overloaded) for r in results if not isinstance(r, list))
        with pytest.raises(UnknownTopic):
            await log.append([NewRecord("missing", 0, None, b"x")])
        with pytest.raises(InvalidPartition):
            await log.append([NewRecord("bounded", 2, None, b"x")])
        # Once reported, the queue takes records again.
        await log.append([NewRecord("bounded", 0, None, b"after")])
    messages = await consume_all_async(
        kafka_settings.bootstrap_servers, kafka_settings.topic_prefix + "bounded", 2
    )
    assert sorted(m.value() for m in messages) == sorted([*accepted, b"after"])


async def test_a_fatal_error_of_the_idempotent_producer_puts_a_new_one_in_its_place(
    kafka_log: KafkaLog, kafka_settings: KafkaSettings
) -> None:
    # A fatal error leaves a producer refusing every record for good. No client API makes
    # one happen, so the test reports it as librdkafka does: through the producer's
    # error callback. Everything after that is real.
    await kafka_log.create_topic(TopicSpec(name="renewed", partitions=1))
    node = kafka_log._node
    first = node.producer
    await kafka_log.append([NewRecord("renewed", 0, None, b"before")])
    fatal = KafkaError(KafkaError._FATAL, "injected: out of order sequence", fatal=True)
    first._error(fatal)
    await asyncio.sleep(0)  # the callback crosses to the loop (the thread's side)
    second = node.producer
    assert second is not first
    async with asyncio.timeout(15):
        await first.worker.ended  # closed, its thread ended
    await kafka_log.append([NewRecord("renewed", 0, None, b"after")])
    # The retired producer's thread ending is no death of the log, and a second report
    # from the retired producer replaces nothing.
    first._error(fatal)
    await asyncio.sleep(0)
    assert node.producer is second
    assert not any(ended.done() for ended in node.worker_ends())
    await kafka_log.append([NewRecord("renewed", 0, None, b"last")])
    await kafka_log.check()
    messages = await consume_all_async(
        kafka_settings.bootstrap_servers, kafka_settings.topic_prefix + "renewed", 1
    )
    assert [m.value() for m in messages] == [b"before", b"after", b"last"]


async def test_a_record_whose_partition_left_the_metadata_in_flight_is_an_unknown_topic(
    kafka_log: KafkaLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A topic deleted outside: librdkafka retries a record Kafka refused as "unknown topic
    # or partition" until its metadata drops the partition. If that happens while a retry
    # is in flight, the retry is put back in the dropped partition, whose end fails it
    # with _DESTROY, its producer alive (no fatal error, nothing retired): seen once in
    # the registry test, and in 1 of 40 deletions with another thread asking for
    # metadata. Injected here as librdkafka reports it.
    await kafka_log.create_topic(TopicSpec(name="dropped", partitions=1))
    node = kafka_log._node
    producer = node.producer

    def send(topic: str, record: NewRecord, on_delivery: Any) -> None:
        on_delivery(KafkaError(KafkaError._DESTROY), None)

    monkeypatch.setattr(producer, "send", send)
    with pytest.raises(UnknownTopic, match="'dropped' does not exist"):
        await kafka_log.append([NewRecord("dropped", 0, None, b"x")])
    assert node.producer is producer


def test_records_whose_outcome_is_unknown_are_408_and_those_never_sent_503() -> None:
    outcome_unknown = (
        KafkaError._FATAL,
        KafkaError._PURGE_INFLIGHT,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._DESTROY,
    )
    for code in outcome_unknown:
        assert isinstance(translate(KafkaError(code)), StorageTimeout), code
    assert isinstance(translate(KafkaError(KafkaError._PURGE_QUEUE)), StorageUnavailable)


def test_requests_failed_by_brokers_forgotten_or_moved_are_503() -> None:
    # Not retriable by librdkafka's own flag, yet only a moment of a cluster's life.
    for code in (KafkaError._DESTROY_BROKER, KafkaError._NODE_UPDATE, KafkaError._PARTIAL):
        assert isinstance(translate(KafkaError(code)), StorageUnavailable), code


def test_an_unknown_topic_the_report_does_not_name_is_said_so() -> None:
    # A transaction's record reports carry Kafka's names, not the gateway's.
    unknown = translate(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
    assert isinstance(unknown, UnknownTopic)
    assert str(unknown).startswith("a topic does not exist in Kafka: ")
    named = translate(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART), topic="orders")
    assert str(named).startswith("topic 'orders' does not exist in Kafka: ")


def test_refusals_of_the_gateways_login_or_acls_are_500s_that_say_so() -> None:
    # Not the client's doing, and no retry gets past them: never a 503.
    for code in (
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    ):
        refused = translate(KafkaError(code), topic="orders")
        assert isinstance(refused, StorageForbidden), code
        assert (refused.status, refused.retriable) == (500, False)
        assert "ACLs do not allow the gateway's principal this on topic 'orders'" in str(refused)
    for code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        refused = translate(KafkaError(code))
        assert isinstance(refused, StorageForbidden), code
        assert "refused the gateway's credentials" in str(refused)


NODE_LOGGER = "sluicegate.storage.kafka.node"


async def test_a_clients_report_of_every_broker_down_is_asked_about_before_the_node_is_down(
    kafka_log: KafkaLog, caplog: pytest.LogCaptureFixture
) -> None:
    # librdkafka connects to the brokers it needs: a client whose connections all went
    # to a broker stopped (a rolling restart) reports every broker down while the others
    # serve. The test hands the node such a report as the client's error callback does,
    # with the broker up; the node asks the cluster, finds it, and never turns away.
    caplog.set_level(logging.INFO, logger=NODE_LOGGER)
    await kafka_log.create_topic(TopicSpec(name="reported", partitions=1))
    node = kafka_log._node
    node.kafka_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "injected: 1/1 brokers are down"))
    assert kafka_log.unreachable() is None
    await kafka_log.append([NewRecord("reported", 0, None, b"served")])
    said: list[str] = []
    async with asyncio.timeout(10):
        while not any("another broker answers" in message for message in said):
            await asyncio.sleep(0.05)
            said = [r.getMessage() for r in caplog.records if r.name == NODE_LOGGER]
    assert kafka_log.unreachable() is None
    assert not any("every Kafka broker is unreachable" in message for message in said), said
    await kafka_log.check()


async def test_a_cluster_unreachable_at_start_is_waited_for_until_close() -> None:
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:9", request_timeout=1.0)
    log = KafkaLog(settings, node_id="nowhere")
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    run = asyncio.create_task(log.run(ready))
    async with asyncio.timeout(5):  # the first question fails within the request timeout
        while log.unreachable() is None:  # noqa: ASYNC110 (a state, nothing to await)
            await asyncio.sleep(0.05)
    assert log.unreachable() == "every Kafka broker is unreachable"
    assert not ready.done()  # still waiting,
    assert not run.done()  # not failed
    async with asyncio.timeout(5):
        await log.close()
        await run
    assert not ready.done()


def _connections_to(port: int, pids: list[int]) -> int:
    """The established TCP connections of the processes ``pids`` to 127.0.0.1:``port``.

    Only theirs: whatever else on the machine talks to that port is not the node's doing.
    """
    sockets = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    sockets.add(target[len("socket:[") : -1])
    remote = f"0100007F:{port:04X}"
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            # ESTABLISHED, and one of theirs (the socket's inode)
            if fields[2] == remote and fields[3] == "01" and fields[9] in sockets:
                count += 1
    return count


async def test_ten_thousand_waiting_consumers_open_no_connection(
    kafka_log: KafkaLog, kafka_bootstrap: str
) -> None:
    port = int(kafka_bootstrap.rsplit(":", 1)[1])
    await kafka_log.create_topic(TopicSpec(name="idle", partitions=20))
    # Every client of the node talks to the broker once: the fixed few connections.
    await kafka_log.append([NewRecord("idle", p, None, b"x") for p in range(20)])
    await kafka_log.read(TopicPartition("idle", 0), 0, max_records=1, max_bytes=BIG)
    await kafka_log.wait({TopicPartition("idle", p): 5 for p in range(20)}, timeout=0.2)
    node = [os.getpid(), kafka_log.reader_pid or os.getpid()]  # the reader is a process
    # On a broker just started, one more connection came a second or two later (not the
    # waiters': it came without them too): the count is taken once it holds for two seconds.
    counts = [_connections_to(port, node)]
    while len(counts) < 30 and (len(counts) < 5 or len(set(counts[-5:])) > 1):
        await asyncio.sleep(0.5)
        counts.append(_connections_to(port, node))
    before = counts[-1]
    assert before > 0
    waiting = [
        asyncio.create_task(kafka_log.wait({TopicPartition("idle", i % 20): 1}, timeout=30))
        for i in range(10_000)
    ]
    await asyncio.sleep(1)
    assert _connections_to(port, node) <= before
    assert kafka_log.stats()["waiters"] >= 10_000  # and the topic registry's follower
    await kafka_log.append([NewRecord("idle", 7, None, b"wake")])
    woken = await asyncio.wait_for(asyncio.gather(*waiting[7::20]), 10)
    assert all(woken)
    assert not any(task.done() for i, task in enumerate(waiting) if i % 20 != 7)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_partitions_added_outside_the_gateway_are_taken_by_every_node(
    kafka_settings: KafkaSettings,
    open_kafka_log: OpenLog,
    kafka_admin: AdminClient,
    kafka_bootstrap: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As kafka-topics.sh --alter --partitions does it; then another Kafka client writes
    # to a new partition, which the gateway's readers must not miss.
    async with open_kafka_log(kafka_settings) as a, open_kafka_log(kafka_settings) as b:
        created = await a.create_topic(TopicSpec(name="grown", partitions=2, config={"x": 1}))
        kafka_name = kafka_settings.topic_prefix + "grown"
        grow = kafka_admin.create_partitions([NewPartitions(kafka_name, 4)])[kafka_name]
        await asyncio.to_thread(grow.result, 30)
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(kafka_name, b"from another client", partition=3)
        assert await asyncio.to_thread(producer.flush, 10) == 0
        assert await a._topics.adopt_outside_changes() == (["grown"], [])
        grown = await a.get_topic("grown")
        assert (grown.id, grown.partitions, grown.config) == (created.id, 4, {"x": 1})
        assert grown.updated_at > created.updated_at
        # b follows the registry; asked itself, it finds nothing left to take.
        for _ in range(200):
            if (await b.get_topic("grown")).partitions == 4:
                break
            await asyncio.sleep(0.05)
        assert await b.get_topic("grown") == grown
        assert await b._topics.adopt_outside_changes() == ([], [])
        tp = TopicPartition("grown", 3)
        [record] = await b.read(tp, 0, max_records=5, max_bytes=BIG)
        assert record.value == b"from another client"
        [appended] = await a.append([NewRecord("grown", 3, None, b"from the gateway")])
        assert appended.offset == 1
        with pytest.raises(InvalidPartition):
            await a.append([NewRecord("grown", 4, None, b"x")])
        # An update written from an entry read before the growth does not undo it.
        stale = encode_entry(created, creating=False)
        producer.produce(kafka_settings.topic_prefix + REGISTRY_TOPIC, stale, b"grown")
        assert await asyncio.to_thread(producer.flush, 10) == 0
        await a.create_topic(TopicSpec(name="after-the-stale-entry"))  # a has read it
        assert (await a.get_topic("grown")).partitions == 4
    said = [r.getMessage() for r in caplog.records if "grew outside the gateway" in r.getMessage()]
    assert len(said) == 1
    assert "'grown' has 4 partitions in Kafka, 2 in the gateway's registry" in said[0]


async def test_a_producer_that_wrote_before_the_growth_writes_to_the_new_partitions(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog, kafka_admin: AdminClient
) -> None:
    # librdkafka remembers the topic's partitions from its first write, for minutes: a
    # record for a partition added since was refused as "Unknown partition", a 404.
    async with open_kafka_log(kafka_settings) as log:
        await log.create_topic(TopicSpec(name="used", partitions=1))
        await log.append([NewRecord("used", 0, None, b"before")])
        await log.append([NewRecord("used", 0, None, b"a"), NewRecord("used", 0, None, b"b")])
        kafka_name = kafka_settings.topic_prefix + "used"
        grow = kafka_admin.create_partitions([NewPartitions(kafka_name, 3)])[kafka_name]
        await asyncio.to_thread(grow.result, 30)
        assert await log._topics.adopt_outside_changes() == (["used"], [])
        [single] = await log.append([NewRecord("used", 2, None, b"single")])
        assert (single.partition, single.offset) == (2, 0)
        both = await log.append(
            [NewRecord("used", 1, None, b"x"), NewRecord("used", 2, None, b"y")]
        )
        assert [(a.partition, a.offset) for a in both] == [(1, 0), (2, 1)]


async def test_a_topic_made_with_kafkas_tools_under_the_prefix_is_taken_by_its_creation(
    kafka_settings: KafkaSettings,
    kafka_log: KafkaLog,
    kafka_admin: AdminClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Made in Kafka, not through the gateway: its name was "taken" (409) yet unknown (404)
    # for good. Created through the gateway now (a dialect's auto-creation, most often,
    # asking for its defaults), it is taken as Kafka has it: its records, its partitions
    # (its producers' keys stay where they are) and its retention (records kept forever
    # must not become deletable); only its timestamps become log-append time.
    def made_in_kafka(name: str, partitions: int, configs: dict[str, str]) -> None:
        kafka_name = kafka_settings.topic_prefix + name
        new = NewTopic(kafka_name, partitions, 1, config=configs)
        kafka_admin.create_topics([new])[kafka_name].result(30)
        producer = Producer({"bootstrap.servers": kafka_settings.bootstrap_servers})
        producer.produce(kafka_name, b"already", key=b"k", partition=partitions - 1)
        assert producer.flush(30) == 0

    def kafka_configs(name: str) -> dict[str, str]:
        resource = ConfigResource(ConfigResource.Type.TOPIC, kafka_settings.topic_prefix + name)
        entries = kafka_admin.describe_configs([resource])[resource].result(30)
        return {key: entry.value for key, entry in entries.items()}

    forever = {"retention.ms": "-1", "cleanup.policy": "compact"}
    await asyncio.to_thread(made_in_kafka, "made", 2, forever)
    await asyncio.to_thread(made_in_kafka, "small", 1, {})
    made = await kafka_log.create_topic(TopicSpec(name="made", partitions=1, retention_ms=60_000))
    assert (made.partitions, made.retention_ms) == (2, None)
    assert made.config == {"cleanup.policy": "compact"}
    configs = await asyncio.to_thread(kafka_configs, "made")
    assert (configs["retention.ms"], configs["cleanup.policy"]) == ("-1", "compact")
    assert configs["message.timestamp.type"] == "LogAppendTime"
    [record] = await kafka_log.read(TopicPartition("made", 1), 0, max_records=10, max_bytes=1 << 20)
    assert record.value == b"already"
    small = await kafka_log.create_topic(TopicSpec(name="small", partitions=3))
    assert small.partitions == 1
    await kafka_log.append([NewRecord("small", 0, None, b"new")])
    kafka_name = kafka_settings.topic_prefix + "small"
    messages = await consume_all_async(kafka_settings.bootstrap_servers, kafka_name, 1)
    assert sorted((m.partition(), m.value()) for m in messages) == [(0, b"already"), (0, b"new")]
    with pytest.raises(TopicExists):
        await kafka_log.create_topic(TopicSpec(name="made", partitions=1))
    said = [r.getMessage() for r in caplog.records if "taken as it is" in r.getMessage()]
    assert said == [
        "topic 'made' is in Kafka but not in the gateway's topic registry: taken as it is, "
        "with its records (partitions: 2, retention.ms: -1)",
        "topic 'small' is in Kafka but not in the gateway's topic registry: taken as it is, "
        "with its records (partitions: 1, retention.ms: 604800000)",
    ]


async def test_nodes_making_the_gateways_own_topics_together_take_over_nothing(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog, caplog: pytest.LogCaptureFixture
) -> None:
    # Nodes started together all make the gateway's own topics. The one that loses a
    # creation in Kafka waits for the winner's registry record; it used to take the
    # (empty) topic over at once, with a warning that spoke of a topic left behind.
    names = [f"{INTERNAL_PREFIX}_together_{i}" for i in range(6)]
    async with open_kafka_log(kafka_settings) as one, open_kafka_log(kafka_settings) as two:

        async def create(log: KafkaLog, name: str) -> bool:
            try:
                await log.create_topic(TopicSpec(name=name, partitions=2))
            except TopicExists:
                return False
            return True

        made = await asyncio.gather(*(create(log, name) for name in names for log in (one, two)))
        assert sum(made) == len(names)  # each made once
        for log in (one, two):
            assert {t.name for t in await log.list_topics(include_internal=True)} >= set(names)
    assert not [r.getMessage() for r in caplog.records if "taken as it is" in r.getMessage()]


async def test_records_stamped_beyond_what_a_date_shows_are_read(
    kafka_settings: KafkaSettings, kafka_log: KafkaLog, kafka_admin: AdminClient
) -> None:
    # Kafka takes any 64-bit CreateTime. One beyond year 9999 (in µs, beyond 64 bits)
    # killed the reader process at every read of its partition: a poison record.
    kafka_name = kafka_settings.topic_prefix + "stamped"
    anything = {"message.timestamp.after.max.ms": str(2**63 - 1)}
    new = NewTopic(kafka_name, 1, 1, config=anything)
    await asyncio.to_thread(kafka_admin.create_topics([new])[kafka_name].result, 30)
    producer = Producer({"bootstrap.servers": kafka_settings.bootstrap_servers})
    for value, stamp in [(b"before", 1), (b"far", 2**62), (b"past", -(2**62)), (b"after", 2)]:
        producer.produce(kafka_name, value, timestamp=stamp)
    assert await asyncio.to_thread(producer.flush, 30) == 0
    await kafka_log.create_topic(TopicSpec(name="stamped"))  # taken as Kafka has it
    records = await kafka_log.read(TopicPartition("stamped", 0), 0, max_records=10, max_bytes=BIG)
    assert [(r.value, format_timestamp(r.timestamp)) for r in records] == [
        (b"before", "1970-01-01T00:00:00.001000Z"),
        (b"far", "9999-12-31T23:59:59.999999Z"),
        (b"past", "0001-01-01T00:00:00.000000Z"),
        (b"after", "1970-01-01T00:00:00.002000Z"),
    ]


async def test_a_topic_deleted_outside_the_gateway_leaves_every_node(
    kafka_settings: KafkaSettings,
    open_kafka_log: OpenLog,
    kafka_admin: AdminClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As kafka-topics.sh --delete does it. One check that misses a topic is not enough
    # (a broker's metadata may lag behind it): only a second one in a row drops it.
    def delete(name: str) -> None:
        delete_in_kafka(kafka_admin, kafka_settings.topic_prefix + name)

    async with open_kafka_log(kafka_settings) as a, open_kafka_log(kafka_settings) as b:
        kept = await a.create_topic(TopicSpec(name="kept", partitions=2))
        back = await a.create_topic(TopicSpec(name="back", partitions=3))
        gone = await a.create_topic(TopicSpec(name="gone", partitions=2))
        await asyncio.to_thread(delete, "gone")
        await asyncio.to_thread(delete, "back")
        assert await a._topics.adopt_outside_changes() == ([], [])
        # "back" is made again in Kafka before the next check: it stays, as it was.
        for _ in range(100):  # Kafka finishes a deletion a moment after it answers
            try:
                await a._node.admin.create_topic(kafka_settings.topic_prefix + "back", 3, {})
                break
            except TopicExists:
                await asyncio.sleep(0.1)
        await a._node.admin.until_led(kafka_settings.topic_prefix + "back", 3)
        assert await a._topics.adopt_outside_changes() == ([], ["gone"])
        assert await a.get_topic("back") == back
        for _ in range(200):  # b follows the registry
            if "gone" not in {t.name for t in await b.list_topics()}:
                break
            await asyncio.sleep(0.05)
        for log in (a, b):
            with pytest.raises(UnknownTopic):
                await log.get_topic("gone")
            assert sorted(t.name for t in await log.list_topics()) == ["back", "kept"]
        assert await b._topics.adopt_outside_changes() == ([], [])
        # The name is free again; the topic made under it is a new one.
        again = await b.create_topic(TopicSpec(name="gone", partitions=1))
        assert again.id not in (gone.id, kept.id, back.id)
        assert await a.get_topic("gone") == again
        [appended] = await a.append([NewRecord("gone", 0, None, b"anew")])
        assert appended.offset == 0
        assert await a._topics.adopt_outside_changes() == ([], [])
    said = [r.getMessage() for r in caplog.records if "outside the gateway" in r.getMessage()]
    assert said == [
        "topic 'gone' is gone from Kafka (missing in two checks 30 s apart): it was deleted "
        "outside the gateway, whose nodes drop it now"
    ]


async def test_a_topic_made_again_under_its_name_is_written_at_once(
    kafka_settings: KafkaSettings,
    open_kafka_log: OpenLog,
    kafka_admin: AdminClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Deleted outside the gateway, written to in vain (so librdkafka remembers it
    # missing), then deleted and made again through the gateway: both producers write
    # to the new topic at once, not after their next metadata refresh, minutes away.
    caplog.set_level(logging.INFO, logger="sluicegate.storage.kafka")
    kafka_name = kafka_settings.topic_prefix + "again"

    def single(value: bytes) -> list[NewRecord]:
        return [NewRecord("again", 0, None, value)]

    def batch(value: bytes) -> list[NewRecord]:
        return [NewRecord("again", 0, None, value + b"-%d" % n) for n in range(2)]

    async with open_kafka_log(kafka_settings) as log:
        await log.create_topic(TopicSpec(name="again", partitions=1))
        await log.append(single(b"old"))
        await log.append(batch(b"old"))
        await asyncio.to_thread(delete_in_kafka, kafka_admin, kafka_name)
        # Both producers learn it is gone, as their next metadata refresh would tell them.
        node = log._node
        await node.producer.learn(kafka_name, 5)
        transactional = node.transactions._producer
        assert transactional is not None
        await asyncio.to_thread(transactional.list_topics, topic=kafka_name, timeout=5)
        for lost in (single(b"lost"), batch(b"lost")):
            with pytest.raises((UnknownTopic, StorageUnavailable, StorageTimeout)):
                await log.append(lost)
        await log.delete_topic("again")
        await log.create_topic(TopicSpec(name="again", partitions=1))
        caplog.clear()
        await log.append(single(b"new"))
        await log.append(batch(b"new"))
        messages = await consume_all_async(kafka_settings.bootstrap_servers, kafka_name, 1)
    assert [m.value() for m in messages] == [b"new", b"new-0", b"new-1"]
    said = [r.getMessage() for r in caplog.records if "asking again" in r.getMessage()]
    assert said == [
        f"librdkafka took topic {kafka_name!r} for missing: asking again",
        f"librdkafka took a topic of {[kafka_name]} for missing: asking again",
    ]


async def test_registry_records_it_cannot_read_are_skipped_by_every_node(
    kafka_settings: KafkaSettings,
    open_kafka_log: OpenLog,
    kafka_bootstrap: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Any producer with the right may append to the registry topic: what the gateway
    cannot read stopped the node that followed it, and every node at its next start."""
    unreadable = [
        (b"\xff", b'{"partitions": 1, "created_at": 1, "updated_at": 1}'),
        (b"x", b"{not json"),
        (b"y", b'{"partitions": 0, "created_at": 1, "updated_at": 1}'),
        (b"z", b"[]"),
    ]
    async with open_kafka_log(kafka_settings) as running_node:
        await running_node.create_topic(TopicSpec(name="before", partitions=1))
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for key, value in unreadable:
            producer.produce(kafka_settings.topic_prefix + REGISTRY_TOPIC, value, key)
        assert producer.flush(10) == 0
        await running_node.create_topic(TopicSpec(name="after", partitions=2))
        async with open_kafka_log(kafka_settings) as starting_node:
            nodes = (running_node, starting_node)
            for log in nodes:
                names = {topic.name for topic in await log.list_topics()}
                assert names == {"before", "after"}
                await log.append([NewRecord("after", 1, None, b"still served")])
            counted = [log.stats()["unreadable_records_skipped_total"] for log in nodes]
            assert counted == [len(unreadable)] * 2
    skipped = [r for r in caplog.records if "cannot read" in r.getMessage()]
    assert len(skipped) == 2 * len(unreadable)
