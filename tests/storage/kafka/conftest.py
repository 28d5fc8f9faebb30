"""Kafka backend fixtures: logs of their own on the session's cluster, and plain clients."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as KafkaPartition
from confluent_kafka.admin import AdminClient

from sluicegate.config import KafkaSettings
from sluicegate.storage.base import running
from sluicegate.storage.kafka import KafkaLog
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
