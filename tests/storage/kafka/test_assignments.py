"""Assigning a partition of a topic the consumer has not seen: metadata asked first."""

from __future__ import annotations

import socket
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaPartition
from confluent_kafka.admin import AdminClient, NewTopic

from sluicegate.storage.kafka.assignments import KnownTopics


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"assign-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "log.connection.close": False,
        }
    )


def _first_value(consumer: Consumer) -> bytes | None:
    for _ in range(100):
        message = consumer.poll(0.1)
        if message is not None and message.error() is None:
            return message.value()
    return None


def test_a_new_topics_partitions_are_fetched_from_where_they_were_assigned(
    kafka_bootstrap: str, kafka_admin: AdminClient
) -> None:
    topic = f"assign-{uuid.uuid4().hex[:8]}"
    kafka_admin.create_topics([NewTopic(topic, 2, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for value in (b"first", b"second"):
        producer.produce(topic, value, partition=1)
    assert producer.flush(10) == 0
    consumer = _consumer(kafka_bootstrap)
    try:
        known = KnownTopics(consumer)
        known.assign([KafkaPartition(topic, 1, 1)])
        assert _first_value(consumer) == b"second"
        known.incremental_assign([KafkaPartition(topic, 0, 0)])
        assert {(p.topic, p.partition) for p in consumer.assignment()} == {(topic, 0), (topic, 1)}
    finally:
        consumer.close()


def test_an_unanswered_metadata_question_does_not_stop_the_assignment() -> None:
    # A port nothing listens on: the question times out, the partition is assigned anyway.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    consumer = _consumer(f"127.0.0.1:{port}")
    try:
        known = KnownTopics(consumer)
        known.assign([KafkaPartition("nowhere", 0, 0)])
        assert [(p.topic, p.partition) for p in consumer.assignment()] == [("nowhere", 0)]
        known.forget(["nowhere"])
        known.incremental_assign([KafkaPartition("nowhere", 1, 0)])
        assert len(consumer.assignment()) == 2
    finally:
        consumer.close()
