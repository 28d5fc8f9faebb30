"""The development broker is a real Kafka: it stores what it acknowledges, across restarts."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from sluicegate.testing.kafka_broker import KAFKA_VERSION, KafkaBroker, fetch


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
