"""Fetched messages as records: a partition's run converted at once gives, message for
message, what converting each alone gives, whatever headers the messages carry."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from sluicegate.core.records import Record
from sluicegate.storage.kafka.messages import offsets_of, to_record, to_records
from tests.storage.kafka.conftest import consume_all_async

Headers = list[tuple[str, bytes | None]] | None

#: Runs as a producer may write them: every message with headers (the CloudEvents
#: binding's), a header without a value, no headers at all, and the two mixed.
RUNS: dict[str, list[tuple[bytes | None, bytes | None, Headers]]] = {
    "headers": [
        (b"k-%d" % n, b'{"n": %d}' % n, [("ce_id", b"%d" % n), ("ce_type", b"T")])
        for n in range(50)
    ],
    "a header without a value": [
        (None, b"v-%d" % n, [("a", b"x"), ("b", None if n == 7 else b"y")]) for n in range(20)
    ],
    "no headers": [(None if n % 3 else b"k", b"v-%d" % n, None) for n in range(20)],
    "some with headers, some without": [
        (None, None if n == 4 else b"v", [("a", b"")] if n % 2 else None) for n in range(10)
    ],
}


def _produce(
    bootstrap: str, topic: str, run: list[tuple[bytes | None, bytes | None, Headers]]
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value, headers in run:
        producer.produce(topic, value, key, partition=0, headers=headers)
    assert producer.flush(30) == 0


@pytest.mark.parametrize("name", RUNS)
async def test_a_run_converted_at_once_is_each_message_converted_alone(
    kafka_bootstrap: str, name: str
) -> None:
    topic = f"messages-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    _produce(kafka_bootstrap, topic, RUNS[name])
    fetched: list[Any] = await consume_all_async(kafka_bootstrap, topic)
    assert len(fetched) == len(RUNS[name])
    # Fresh messages each way: librdkafka's headers are turned into a list on first use.
    again: list[Any] = await consume_all_async(kafka_bootstrap, topic)
    alone = [to_record(message, "gateway-name") for message in fetched]
    at_once = to_records(again, offsets_of(again), "gateway-name", 0)
    assert at_once == alone
    for record, (key, value, headers) in zip(at_once, RUNS[name], strict=True):
        assert (record.key, record.value) == (key, value)
        assert list(record.headers) == [(n, b"" if v is None else v) for n, v in headers or ()]
        assert record.topic == "gateway-name"
        assert record.timestamp > 0
    assert [record.offset for record in at_once] == list(range(len(fetched)))
    assert all(isinstance(record, Record) for record in at_once)
    admin.delete_topics([topic])
