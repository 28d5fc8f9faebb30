"""Kafka mode: CPU per record of batch produce, a measure a busy machine does not bend.

Run: ``python -m bench.run --only kafka-cpu``.

On a machine shared with other work, records/s measure how much of a core the process was
given as much as what it does with it. Records per second of the process's own CPU time
(every thread: the loop, the committer, librdkafka's) do not depend on that share:

- ``kafka-cpu-batch-100``: 64 tasks posting batches of 100 records (the topic admin API's
  produce, a Kafka transaction each) to the app in this process (ASGI calls: the request
  path from the router on, without an HTTP parser), records per CPU-second, against the
  same measure of confluent-kafka's producer alone (``acks=all``, idempotent, records of
  the same size) in the same run: the ``kafka-batch-100`` target (>= 0.5) per CPU.
- ``kafka-cpu-batch-100-embedded``: the same requests on embedded storage (SQLite), against
  the Kafka figure: what storing in Kafka costs per record beyond the request path.

Each gateway entry also says where the CPU went (``cpu_us_per_record``, Linux only): the
event loop's thread, the Kafka committer's, librdkafka's own threads and the rest, in
microseconds of CPU per record.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.http_produce import _entry
from bench.kafka_produce import BATCH, BATCH_BODY, kafka_cluster, producer_ceiling
from sluicegate.app import GatewayApp, build_app
from sluicegate.cli.serve import tune_gc
from sluicegate.config import load_settings
from sluicegate.core.gateway import Gateway
from sluicegate.observability.metrics import Metrics
from sluicegate.storage.base import running
from sluicegate.storage.factory import open_log

__all__ = ["run"]

TASKS = 64
_PATH = "/admin/v1/topics/batches/records"
_BODY = BATCH_BODY.encode()


async def _post(app: GatewayApp, body: bytes) -> int:
    """One ASGI request to ``app``; its status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": _PATH,
        "raw_path": _PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)  # type: ignore[arg-type]
    return status


def _thread_cpu() -> dict[str, float]:
    """CPU seconds each thread of this process has used, by name: Python's name for its
    own threads, the kernel's for the others (librdkafka's ``rdk:...``). Linux only."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return {}
    names = {str(thread.native_id): thread.name for thread in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    cpu: dict[str, float] = {}
    for task in tasks.iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        name = names.get(task.name) or stat[stat.index("(") + 1 : stat.rindex(")")]
        # After the name: state is field 3 of stat(5), utime and stime fields 14 and 15.
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu[name] = cpu.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return cpu


def _group(name: str) -> str:
    if name == "MainThread":
        return "loop"
    if name.startswith("kafka-transactions"):
        return "committer"
    if name.startswith("rdk:"):
        return "librdkafka"
    return "other"


def _cpu_per_record(
    before: dict[str, float], after: dict[str, float], records: int
) -> dict[str, float]:
    """Microseconds of CPU per record by group of threads, between two ``_thread_cpu``."""
    used: dict[str, float] = {}
    for name, seconds in after.items():
        group = _group(name)
        used[group] = used.get(group, 0.0) + seconds - before.get(name, 0.0)
    return {group: round(seconds / records * 1e6, 3) for group, seconds in sorted(used.items())}


async def _gateway_rate(storage: dict[str, Any], duration: float) -> tuple[float, dict[str, float]]:
    """Records per CPU-second of 64 tasks posting batches of 100 to an app on ``storage``,
    and the CPU per record of each group of threads."""
    with tempfile.TemporaryDirectory() as data_dir:
        overrides: dict[str, Any] = {
            "storage": {"data_dir": data_dir, **storage.get("storage", {})},
            "auth": {"enabled": False},
        }
        if "kafka" in storage:
            overrides["kafka"] = storage["kafka"]
        settings = load_settings(environ={}, overrides=overrides)
        metrics = Metrics()
        async with running(open_log(settings, observe_commit=metrics.observe_commit)) as log:
            gateway = Gateway(settings, log)
            await gateway.start()
            app = build_app(gateway, metrics=metrics)
            if await _post(app, _BODY) != 200:  # warm-up: the topic, the producers' ids
                raise RuntimeError("the first batch failed")
            tune_gc()  # as ``sluicegate serve`` does once started
            produced = 0
            deadline = time.monotonic() + duration

            async def producing() -> None:
                nonlocal produced
                while time.monotonic() < deadline:
                    status = await _post(app, _BODY)
                    if status != 200:
                        raise RuntimeError(f"a batch failed: {status}")
                    produced += BATCH

            threads = _thread_cpu()
            started = time.process_time()
            await asyncio.gather(*(producing() for _ in range(TASKS)))
            rate = produced / (time.process_time() - started)
            return rate, _cpu_per_record(threads, _thread_cpu(), produced)


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Each measure for ``duration`` seconds: Kafka, embedded, the producer alone."""
    with kafka_cluster() as bootstrap:
        kafka = {
            "storage": {"backend": "kafka"},
            "kafka": {
                "bootstrap_servers": bootstrap,
                "topic_prefix": f"bench-cpu-{uuid.uuid4().hex[:8]}.",
            },
        }
        on_kafka, kafka_cpu = asyncio.run(_gateway_rate(kafka, duration))
        embedded, embedded_cpu = asyncio.run(_gateway_rate({}, duration))
        alone = producer_ceiling(bootstrap, duration, clock=time.process_time)
    return {
        "kafka-cpu-batch-100": _entry(
            on_kafka,
            "records/CPU-s",
            alone,
            tasks=TASKS,
            batch=BATCH,
            target=0.5,
            cpu_us_per_record=kafka_cpu,
        ),
        "kafka-cpu-batch-100-embedded": _entry(
            embedded,
            "records/CPU-s",
            on_kafka,
            tasks=TASKS,
            batch=BATCH,
            cpu_us_per_record=embedded_cpu,
        ),
    }
