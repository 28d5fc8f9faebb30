"""Kafka backend fixtures: logs of their own on the session's cluster, and plain clients."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as KafkaPartition
from confluent_kafka.admin import AdminClient

from sluicegate.config import KafkaSettings
from sluicegate.storage.base import running
from sluicegate.storage.kafka import KafkaLog
from sluicegate.testing.kafka_broker import KafkaBroker
from tests.storage.conftest import kafka_test_settings

OpenLog = Callable[..., AbstractAsyncContextManager[KafkaLog]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_at(
    data: Path, port: int, log: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``sluicegate serve --no-auth`` on 127.0.0.1 at ``port``, known before the server
    says it listens (a node waiting for its cluster answers ``/readyz`` without saying
    so); its JSON log goes to ``log``."""
    command = [sys.executable, "-m", "sluicegate.cli.main", "serve", "--no-auth", *args]
    command += ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)]
    full_env = {**os.environ, **(env or {}), "SLUICEGATE_SERVER__LOG_FORMAT": "json"}
    with log.open("ab") as err:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=full_env
        )


def write_gateway_config(
    directory: Path, *, node: str, bootstrap: str, prefix: str, client: str
) -> Path:
    """A gateway's ``sluicegate.toml`` in ``directory`` for node ``node`` on a cluster
    at ``bootstrap``, its topics under ``prefix``; ``client``: the ``[kafka.client]``
    table's lines (security, SASL, TLS)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "sluicegate.toml"
    path.write_text(
        f"""
[storage]
backend = "kafka"

[server]
node_id = "{node}"

[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"
request_timeout = 2.0

[kafka.client]
{client}
"""
    )
    return path


async def serve_until_readyz_says(
    tmp_path: Path, config: Path, log: Path, words: str
) -> dict[str, str]:
    """Serve with ``config`` until ``/readyz`` says ``words`` (a minute at most), as a
    node waiting for its cluster: its answer (a 503, ``starting``), once the node has
    stopped cleanly on SIGTERM."""
    port = free_port()
    process = serve_at(tmp_path / "data", port, log, "--config", str(config))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    ready: httpx.Response | None = await http.get("/readyz")
                except httpx.TransportError:
                    ready = None
                if ready is not None and words in ready.text:
                    break
                assert time.monotonic() < deadline, ready.text if ready else "no answer"
                await asyncio.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        process.kill()
        process.wait()
    assert (ready.status_code, ready.json()["error"]) == (503, "starting")
    answer: dict[str, str] = ready.json()
    return answer


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A broker of the test module's own, which its tests may stop, kill and start
    again without disturbing the session's cluster (a module may define its own)."""
    with KafkaBroker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    return kafka_test_settings(kafka_bootstrap, request_timeout=5.0)


@pytest.fixture
def open_kafka_log() -> OpenLog:
    """``async with open_kafka_log(settings, node_id=...) as log``: a running KafkaLog."""

    def opened(settings: KafkaSettings, **options: Any) -> AbstractAsyncContextManager[KafkaLog]:
        options.setdefault("node_id", f"node-{uuid.uuid4().hex[:6]}")
        return running(KafkaLog(settings, **options))  # type: ignore[return-value]

    return opened


@pytest.fixture
async def kafka_log(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog
) -> AsyncIterator[KafkaLog]:
    async with open_kafka_log(kafka_settings) as log:
        yield log


@pytest.fixture
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


def delete_in_kafka(admin: AdminClient, kafka_name: str) -> None:
    """Delete a topic as ``kafka-topics.sh --delete`` does, and return once the broker's
    metadata no longer lists it: Kafka answers the deletion a moment before its metadata
    has it, and a check made in that moment still finds the topic."""
    admin.delete_topics([kafka_name])[kafka_name].result(30)
    deadline = time.monotonic() + 30
    while kafka_name in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"{kafka_name!r} is still listed after 30 s"
        time.sleep(0.05)


def consume_all(
    bootstrap: str, topic: str, partitions: int = 1, *, committed: bool = True
) -> list[Any]:
    """Every record of ``topic`` as a plain Kafka consumer sees it (messages, in offset order)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed" if committed else "read_uncommitted",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([KafkaPartition(topic, p, 0) for p in range(partitions)])
        messages: list[Any] = []
        ended: set[int] = set()
        deadline = time.monotonic() + 30
        while len(ended) < partitions and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                partition = message.partition()
                assert error.code() == error._PARTITION_EOF, error
                assert partition is not None
                ended.add(partition)
                continue
            messages.append(message)
        assert len(ended) == partitions, "the consumer did not reach the end in time"
        return messages
    finally:
        consumer.close()


async def consume_all_async(
    bootstrap: str, topic: str, partitions: int = 1, **kw: Any
) -> list[Any]:
    return await asyncio.to_thread(consume_all, bootstrap, topic, partitions, **kw)
