"""The development broker is a real Kafka: it stores what it acknowledges, across restarts."""

from __future__ import annotations

import base64
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from sluicegate.testing.kafka_broker import (
    KAFKA_VERSION,
    BrokerError,
    KafkaBroker,
    KafkaCluster,
    _cluster_id,
    fetch,
)


def _create_topic(bootstrap: str, partitions: int = 1) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until the future resolves
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)
    return name


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    failures: list[object] = []
    for value in values:
        producer.produce(
            topic, value, on_delivery=lambda err, _msg: failures.append(err) if err else None
        )
    assert producer.flush(30) == 0
    assert failures == []


def _consume(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        values: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            value = message.value()
            assert value is not None
            values.append(value)
        return values
    finally:
        consumer.close()


def test_acknowledged_records_are_read_back_in_order(kafka_bootstrap: str) -> None:
    topic = _create_topic(kafka_bootstrap)
    sent = [f"record-{i}".encode() for i in range(200)]
    _produce(kafka_bootstrap, topic, sent)
    assert _consume(kafka_bootstrap, topic, len(sent)) == sent


def test_a_restarted_broker_keeps_its_records(tmp_path: Path) -> None:
    with KafkaBroker(tmp_path) as broker:
        topic = _create_topic(broker.bootstrap_servers)
        _produce(broker.bootstrap_servers, topic, [b"kept"])
    assert (tmp_path / "data" / "meta.properties").exists()
    with KafkaBroker(tmp_path) as again:  # formatted once: the second start keeps the data
        assert _consume(again.bootstrap_servers, topic, 1) == [b"kept"]
    assert "Kafka Server started" in again.log_path.read_text()


def test_fetch_resolves_once_and_is_cached() -> None:
    lib = fetch()
    assert lib.name == "lib"
    assert lib.parent.name == KAFKA_VERSION
    jars = {path.name for path in lib.glob("*.jar")}
    assert f"kafka_2.13-{KAFKA_VERSION}.jar" in jars
    assert any(name.startswith("slf4j-simple-") for name in jars)  # the broker logs
    assert fetch() == lib


def _settings(broker: KafkaBroker) -> dict[str, str]:
    lines = broker._properties().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_a_clusters_nodes_share_a_quorum_and_keep_three_replicas(tmp_path: Path) -> None:
    # What a cluster is made of, without starting it (the failover tests start one).
    cluster = KafkaCluster(tmp_path, size=3)
    nodes = [_settings(broker) for broker in cluster.brokers]
    assert [node["node.id"] for node in nodes] == ["1", "2", "3"]
    voters = {node["controller.quorum.voters"] for node in nodes}
    assert len(voters) == 1
    assert voters.pop().count("@127.0.0.1:") == 3
    assert len({node["listeners"] for node in nodes}) == 3
    assert len({node["log.dirs"] for node in nodes}) == 3
    for node in nodes:
        assert node["default.replication.factor"] == "3"
        assert node["min.insync.replicas"] == "2"
        assert node["transaction.state.log.replication.factor"] == "3"
        assert node["transaction.state.log.min.isr"] == "2"
        assert node["offsets.topic.replication.factor"] == "3"
    assert cluster.bootstrap_servers.count(",") == 2
    assert cluster.node(2) is cluster.brokers[1]
    alone = _settings(KafkaBroker(tmp_path / "alone"))
    assert (alone["default.replication.factor"], alone["min.insync.replicas"]) == ("1", "1")
    with pytest.raises(BrokerError, match="two nodes or more"):
        KafkaCluster(tmp_path, size=1)


def test_cluster_ids_are_kafkas_and_never_read_as_an_option() -> None:
    for _ in range(200):
        made = _cluster_id()
        assert not made.startswith("-")
        assert len(base64.urlsafe_b64decode(made + "==")) == 16
