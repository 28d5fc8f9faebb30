"""Kafka mode: records v2 produce on a Kafka-backed gateway, against same-run baselines.

- ``kafka-records-v2-text``: single-record produce over 64 connections on a gateway
  stored in Kafka (``acks=all``, idempotent), against the same request on a gateway on
  embedded SQLite storage, the two taking turns in one-second runs (``bench.http_produce``),
  before any batch is sent.
- ``kafka-batch-100``: records/s produced in requests of 100 records (the topic admin
  API's all-or-nothing batch: a Kafka transaction), against the ceiling of the broker
  in the same run: confluent-kafka's producer alone, ``acks=all`` and idempotent, with
  records of the same size. The same batches on embedded storage are reported beside it
  (``embedded``): what the gateway's request path does with 100 records whatever stores them.
- ``kafka-batch-100-embedded``: those same batches on embedded storage against the same
  producer alone: how far the request path itself goes with no Kafka behind it, the
  other ceiling ``kafka-batch-100`` stands under.
- ``kafka-batch-100-transactions``: the same rate against what Kafka's transactions allow
  these batches, measured in the same run. Each batch is all or nothing, so the gateway
  stores it in a transaction, and a producer has one transaction open at a time. The
  baseline is that producer alone (the gateway's transactional settings), committing
  one transaction after another, each holding every record the 64 connections can have
  in flight (64 x 100): the most one gateway transaction can hold in this benchmark.

The broker is ``$SLUICEGATE_BENCH_KAFKA_BOOTSTRAP`` (or the tests'
``$SLUICEGATE_TEST_KAFKA_BOOTSTRAP``) if set, else a single-node broker started for the
run (``sluicegate.testing.kafka_broker``). Either way, so that no entry runs on a broker
whose JVM has not compiled its code yet, it first takes five seconds of records from the
producer alone and then fifteen seconds of single-record requests through the Kafka
gateway: the producer's large batches leave the path of many small produce requests
cold, and a broker just started answered the gateway's single records at 7,000-10,000
requests/s in its first ten seconds of them and at 17,000-20,000 after (one-second wrk
runs, one sitting), which made the first run after a broker's start report about half
the ratio of the next.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.http_produce import TEXT_BODY, _wrk, take_turns
from bench.servers import SERVER_CPU, spread_helper_threads
from bench.wrk import CONNECTIONS, combined
from sluicegate.config import KafkaSettings
from sluicegate.storage.kafka.clients import producer_config
from sluicegate.testing.kafka_broker import KafkaBroker
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["kafka_cluster", "kafka_server_env", "run"]

KEY = "customer-42"
VALUE = "x" * 100
BATCH = 100
#: Seconds of produce, by the producer alone, before anything is measured.
BROKER_WARM_UP = 5.0
#: Seconds of single-record requests through the Kafka gateway after that, before anything
#: is measured (the module's docstring says why).
SINGLE_RECORD_WARM_UP = 15.0
BATCH_BODY = json.dumps({"records": [{"key": KEY, "value": VALUE}] * BATCH})


@contextlib.contextmanager
def kafka_cluster() -> Iterator[str]:
    """The bootstrap servers of the broker the Kafka-mode benchmarks run against."""
    existing = os.environ.get("SLUICEGATE_BENCH_KAFKA_BOOTSTRAP") or os.environ.get(
        "SLUICEGATE_TEST_KAFKA_BOOTSTRAP"
    )
    if existing:
        yield existing
        return
    with tempfile.TemporaryDirectory() as directory, KafkaBroker(Path(directory)) as broker:
        yield broker.bootstrap_servers


def kafka_server_env(bootstrap: str) -> dict[str, str]:
    """A server on the broker at ``bootstrap``, in a topic namespace of its own."""
    return {
        "SLUICEGATE_STORAGE__BACKEND": "kafka",
        "SLUICEGATE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "SLUICEGATE_KAFKA__TOPIC_PREFIX": f"bench-{uuid.uuid4().hex[:8]}.",
    }


def _new_topic(bootstrap: str, prefix: str) -> str:
    """A one-partition topic of its own for a ceiling's records; its name."""
    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, -1)])[topic].result(timeout=30)
    return topic


def producer_ceiling(
    bootstrap: str, duration: float, clock: Callable[[], float] = time.monotonic
) -> float:
    """Records a second of confluent-kafka's producer alone (``acks=all``, idempotent), by
    ``clock``: wall time by default, ``time.process_time`` for records per CPU-second."""
    topic = _new_topic(bootstrap, "bench-ceiling")
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    key, value = KEY.encode(), VALUE.encode()
    for _ in range(1000):  # warm-up: connections, producer id, metadata
        producer.produce(topic, value, key)
    producer.flush(30)
    sent = 0
    started = clock()
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        for _ in range(1000):
            try:
                producer.produce(topic, value, key)
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("the producer did not deliver everything")
    return sent / (clock() - started)


def transactional_ceiling(bootstrap: str, duration: float, per_transaction: int) -> float:
    """Records a second (wall time) of a transactional producer alone, configured as the
    gateway's committer is, committing transactions of ``per_transaction`` records of the
    benchmark's size, one after another."""
    topic = _new_topic(bootstrap, "bench-transactions")
    config = producer_config(
        KafkaSettings(bootstrap_servers=bootstrap),
        "bench-transactions",
        append_timeout=30.0,
        transactional_id=f"bench-transactions-{uuid.uuid4().hex[:8]}",
    )
    del config["logger"]  # librdkafka's log lines to stderr, not the gateway's logger
    producer = Producer(config)
    producer.init_transactions(30)
    key, value = KEY.encode(), VALUE.encode()

    def one_transaction() -> None:
        producer.begin_transaction()
        for _ in range(per_transaction):
            producer.produce(topic, value, key, 0)
        producer.commit_transaction(30)

    one_transaction()  # warm-up: the coordinator, the partition's first registration
    sent = 0
    started = time.monotonic()
    while time.monotonic() < started + duration:
        one_transaction()
        sent += per_transaction
    return sent / (time.monotonic() - started)


def _entry(value: float, unit: str, baseline: float, **extra: Any) -> dict[str, Any]:
    return {
        "value": round(value, 1),
        "unit": unit,
        "baseline": round(baseline, 1),
        "ratio": round(value / baseline, 3) if baseline else None,
        **extra,
    }


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Run the Kafka-mode benchmarks, ``duration`` seconds per measurement."""
    with (
        kafka_cluster() as bootstrap,
        tempfile.TemporaryDirectory() as sqlite_dir,
        tempfile.TemporaryDirectory() as kafka_dir,
        serve_in_subprocess(sqlite_dir, cpu=SERVER_CPU) as embedded,
        serve_in_subprocess(
            kafka_dir,
            cpu=SERVER_CPU,
            env=kafka_server_env(bootstrap),
        ) as on_kafka,
    ):
        for server in (embedded, on_kafka):
            spread_helper_threads(server.pid)
        # A broker just started runs its code interpreted until the JVM has compiled it:
        # the first seconds of produce cost it more CPU, which it takes from the two
        # cores the gateway runs on, and only the Kafka entries' first turns paid for it.
        producer_ceiling(bootstrap, BROKER_WARM_UP)
        json_headers = {"content-type": "application/json"}
        single = {
            name: f"{s.url}/v2/topics/bench/records"
            for name, s in (("embedded", embedded), ("kafka", on_kafka))
        }
        batch = {
            name: f"{s.url}/admin/v1/topics/batches/records"
            for name, s in (("embedded", embedded), ("kafka", on_kafka))
        }
        for url in single.values():
            httpx.post(url, content=TEXT_BODY, headers=json_headers).raise_for_status()
        for url in batch.values():
            httpx.post(url, content=BATCH_BODY, headers=json_headers).raise_for_status()
        _wrk(single["kafka"], TEXT_BODY, SINGLE_RECORD_WARM_UP)
        # Single records take their turns before any batch: a turn of batches leaves the
        # broker and the disk writing for seconds (log segments, transaction markers,
        # SQLite's checkpoint), which would land on whichever single-record turn came next.
        runs = take_turns(
            {
                "embedded-records-v2-text": (single["embedded"], TEXT_BODY),
                "kafka-records-v2-text": (single["kafka"], TEXT_BODY),
            },
            duration,
        ) | take_turns(
            {
                "embedded-batch-100": (batch["embedded"], BATCH_BODY),
                "kafka-batch-100": (batch["kafka"], BATCH_BODY),
            },
            duration,
        )
        rates = {name: combined(results) for name, results in runs.items()}
        ceiling = producer_ceiling(bootstrap, duration)
        transactions = transactional_ceiling(bootstrap, duration, CONNECTIONS * BATCH)
    embedded_rps, _ = rates["embedded-records-v2-text"]
    kafka_rps, kafka_p99 = rates["kafka-records-v2-text"]
    batch_rps, batch_p99 = rates["kafka-batch-100"]
    embedded_batch_rps, _ = rates["embedded-batch-100"]
    return {
        "kafka-records-v2-text": _entry(
            kafka_rps, "requests/s", embedded_rps, p99_ms=kafka_p99, target=0.7
        ),
        "kafka-batch-100": _entry(
            batch_rps * BATCH,
            "records/s",
            ceiling,
            p99_ms=batch_p99,
            target=0.5,
            embedded=round(embedded_batch_rps * BATCH, 1),
        ),
        # The request path's own ceiling: the same batches, stored with no Kafka.
        "kafka-batch-100-embedded": _entry(embedded_batch_rps * BATCH, "records/s", ceiling),
        # The same rate against what one producer's transactions allow, one at a time.
        "kafka-batch-100-transactions": _entry(
            batch_rps * BATCH,
            "records/s",
            transactions,
            records_per_transaction=CONNECTIONS * BATCH,
        ),
    }
