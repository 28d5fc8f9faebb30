"""The reader process against a real broker: one killed is replaced and reads go on, one
that cannot stay up stops the node, and librdkafka's errors and log lines reach the
server as they did from a thread."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time

import pytest
from confluent_kafka import KafkaError

from sluicegate.config import KafkaSettings
from sluicegate.core.records import NewRecord, Record, TopicPartition
from sluicegate.core.topics import TopicSpec
from sluicegate.errors import StorageError, StorageUnavailable
from sluicegate.storage.kafka import KafkaLog
from sluicegate.storage.kafka.clients import consumer_config
from sluicegate.storage.kafka.fetcher import Fetcher
from sluicegate.storage.kafka.reader_process import ReaderProcess
from tests.storage.kafka.conftest import OpenLog

BIG = 1 << 30


async def _replaced(log: KafkaLog, old: int) -> int:
    """The reader process that took over from ``old`` (waited for)."""
    deadline = time.monotonic() + 10
    while (pid := log.reader_pid) in (old, None):
        assert time.monotonic() < deadline, "no reader process took over"
        await asyncio.sleep(0.05)
    assert pid is not None
    return pid


async def _read_all(log: KafkaLog, tp: TopicPartition) -> list[Record]:
    return await log.read(tp, 0, max_records=1000, max_bytes=BIG)


async def test_a_killed_reader_fails_the_reads_it_held_and_another_serves_the_rest(
    kafka_settings: KafkaSettings, kafka_log: KafkaLog
) -> None:
    await kafka_log.create_topic(TopicSpec(name="kept", partitions=2))
    for partition in (0, 1):
        await kafka_log.append(
            [NewRecord("kept", partition, b"k", b"%d-%d" % (partition, n)) for n in range(50)]
        )
    first = await _read_all(kafka_log, TopicPartition("kept", 0))
    assert [r.value for r in first] == [b"0-%d" % n for n in range(50)]
    await asyncio.sleep(1.0)  # older than a process that cannot stay up (it would stop)
    old = kafka_log.reader_pid
    assert old is not None
    # Stopped, the process holds the next read (a partition never read: not in memory);
    # killed, it never answers it.
    os.kill(old, signal.SIGSTOP)
    held = asyncio.ensure_future(_read_all(kafka_log, TopicPartition("kept", 1)))
    await asyncio.sleep(0.3)
    assert not held.done()
    os.kill(old, signal.SIGKILL)
    with pytest.raises(StorageUnavailable, match="reader process exited"):
        await held
    await _replaced(kafka_log, old)
    again = await _read_all(kafka_log, TopicPartition("kept", 1))
    assert [r.value for r in again] == [b"1-%d" % n for n in range(50)]
    assert await _read_all(kafka_log, TopicPartition("kept", 0)) == first
    # The node is still up: it appends and reads what it appended.
    await kafka_log.append([NewRecord("kept", 0, b"k", b"after")])
    tail = await kafka_log.read(TopicPartition("kept", 0), 50, max_records=10, max_bytes=BIG)
    assert [r.value for r in tail] == [b"after"]


async def test_a_reader_killed_while_idle_is_replaced_without_a_failed_read(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog
) -> None:
    async with open_kafka_log(kafka_settings) as log:
        await log.create_topic(TopicSpec(name="idle"))
        await log.append([NewRecord("idle", 0, None, b"%d" % n) for n in range(10)])
        await asyncio.sleep(1.0)
        old = log.reader_pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        await _replaced(log, old)
        read = await _read_all(log, TopicPartition("idle", 0))
        assert [r.value for r in read] == [b"%d" % n for n in range(10)]


async def _started(settings: KafkaSettings, *, timeout: float) -> tuple[ReaderProcess, int]:
    """A reader process on its own (no fetcher), started, and its process id."""
    config = consumer_config(settings, "test-reader", "test-group", fetch_wait_ms=10)
    process = ReaderProcess(
        config, timeout=timeout, on_outcome=lambda _: None, on_lost=lambda _: None
    )
    await process.start()
    assert process.pid is not None
    return process, process.pid


async def test_a_reader_process_that_cannot_stay_up_ends_the_node(
    kafka_settings: KafkaSettings,
) -> None:
    process, pid = await _started(kafka_settings, timeout=5.0)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(StorageError, match=r"exited with status -9 .* after it started"):
        await asyncio.wait_for(process.ended, 10)
    await process.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_errors_and_log_lines_of_the_reader_reach_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing listens on the port: librdkafka's connection errors, from the process, are
    # the server's error callbacks and log lines; the read fails within its timeout.
    settings = KafkaSettings(bootstrap_servers=f"127.0.0.1:{_closed_port()}", request_timeout=1.0)
    errors: list[KafkaError] = []
    fetcher = Fetcher(
        consumer_config(settings, "test-reader", "test-group", fetch_wait_ms=10),
        asyncio.get_running_loop(),
        timeout=1.0,
        on_error=errors.append,
    )
    caplog.set_level(logging.DEBUG, logger="sluicegate.storage.kafka.librdkafka")
    await fetcher.start()
    try:
        read = fetcher.read("nowhere", "nowhere", 0, 0, 10, max_records=10, max_bytes=BIG)
        with pytest.raises(StorageUnavailable, match="did not return records within 1s"):
            await asyncio.wait_for(read, 10)
    finally:
        await fetcher.close()
    codes = {error.code() for error in errors}
    assert codes & {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT}, errors
    lines = [r for r in caplog.records if r.name == "sluicegate.storage.kafka.librdkafka"]
    assert any("Connection refused" in r.getMessage() for r in lines), lines
    assert fetcher.worker.ended.done()
    assert fetcher.worker.ended.exception() is None


async def test_a_reader_that_does_not_end_when_asked_is_killed(
    kafka_settings: KafkaSettings,
) -> None:
    process, pid = await _started(kafka_settings, timeout=1.0)
    os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    await asyncio.wait_for(process.close(), 30)
    assert time.monotonic() - started < 10  # its round's deadline (1 s) and the grace
    assert process.ended.done()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
