"""CloudEvents long-polling consumers. Run: ``python -m bench.run --only cloudevents-consume``.

- ``cloudevents-consume-events``: a backlog of ``BACKLOG`` events (one type, 12
  partitions, produced in batches through ``/ce/produce/events``), read by one consumer
  instance with ``GET …/events?confirm=true`` (batches of ``cloudevents.batch_size``,
  1,000; each poll confirms the batch before, committed in the group's background round,
  the last one by a ``POST …/confirm`` that waits) over one keep-alive connection;
  events/s against the 100,000 target. The events are parsed by the client, as a
  consumer would.
- ``cloudevents-idle-instances-rss``: ``INSTANCES`` live consumer instances (10 in each
  of 1,000 groups, each having polled once, so each holds its partitions' positions; on
  a server of its own with no events), the server's added resident memory against the
  200 MB target.
- ``cloudevents-consume-events-kafka``: the first again on the Kafka backend, when
  ``SLUICEGATE_TEST_KAFKA_BOOTSTRAP`` names a broker.
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from bench.http_produce import _entry
from bench.servers import SERVER_CPU, spread_helper_threads
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["run"]

BACKLOG = 100_000
PRODUCE_BATCH = 500
INSTANCES = 10_000
GROUPS = 1_000
EVENT = {
    "specversion": "1.0",
    "source": "urn:bench:orders",
    "type": "Bench.Order.Created",
    "time": "2025-01-31T12:00:00Z",
    "subject": "order",
    "datacontenttype": "application/json",
    "data": {"order": 1001, "customer": "c-42", "total": 12.5, "lines": [1, 2, 3]},
}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class _Client:
    """One keep-alive connection, as a consumer library would hold."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"content-type": content_type} if content_type else {}
        self._connection.request(method, path, body=body, headers=headers)
        response = self._connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()

    def close(self) -> None:
        self._connection.close()


def _produce(client: _Client, count: int) -> None:
    encode = msgspec.json.encode
    for start in range(0, count, PRODUCE_BATCH):
        batch = [
            {**EVENT, "id": f"bench-{n}", "partitionkey": f"customer-{n % 97}"}
            for n in range(start, min(count, start + PRODUCE_BATCH))
        ]
        status, _, body = client.request(
            "POST", "/ce/produce/events", encode(batch), "application/cloudevents-batch+json"
        )
        if status != 202:
            raise RuntimeError(f"produce: {status} {body[:200]!r}")


def _create(client: _Client, group: str) -> str:
    status, headers, body = client.request("POST", f"/ce/consumers?group={group}")
    if status != 201:
        raise RuntimeError(f"create: {status} {body[:200]!r}")
    location = next(v for k, v in headers.items() if k.lower() == "location")
    return urlsplit(location).path


def _consume(url: str, pid: int) -> dict[str, dict[str, Any]]:
    client = _Client(url)
    _produce(client, BACKLOG)
    instance = _create(client, "bench-reader")
    decode = msgspec.json.Decoder(list[dict[str, Any]]).decode
    seen, polls = 0, 0
    path = f"{instance}/events?timeout=0&confirm=true"
    started = time.perf_counter()
    while seen < BACKLOG:
        status, _, body = client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"consume: {status} after {seen} events {body[:200]!r}")
        seen += len(decode(body))
        polls += 1
    elapsed = time.perf_counter() - started
    client.request("POST", f"{instance}/confirm")
    client.close()
    return {
        "cloudevents-consume-events": _entry(
            seen / elapsed,
            "events/s",
            100_000,
            events=seen,
            polls=polls,
            confirm_each_poll=True,
            server_rss_mb=round(_rss_mb(pid)),
        )
    }


def _idle_instances(url: str, pid: int) -> dict[str, dict[str, Any]]:
    client = _Client(url)
    rss_before = _rss_mb(pid)
    started = time.perf_counter()
    for n in range(INSTANCES):
        instance = _create(client, f"bench-idle-{n % GROUPS}")
        status, _, body = client.request("GET", f"{instance}/events?timeout=0")
        if status not in (200, 204):
            raise RuntimeError(f"poll: {status} {body[:200]!r}")
    created = time.perf_counter() - started
    time.sleep(1.0)  # let the allocator settle
    rss_after = _rss_mb(pid)
    metrics = client.request("GET", "/metrics")[2].decode()
    live = next(
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("sluicegate_cloudevents_consumers_instances ")
    )
    client.close()
    if live < INSTANCES:
        raise RuntimeError(f"only {live} of {INSTANCES} instances are live")
    return {
        "cloudevents-idle-instances-rss": _entry(
            rss_after - rss_before,
            "MB",
            200,
            instances=INSTANCES,
            groups=GROUPS,
            rss_before_mb=round(rss_before),
            created_per_second=round(INSTANCES / created),
        )
    }


def kafka_env() -> dict[str, str] | None:
    """The Kafka backend on ``SLUICEGATE_TEST_KAFKA_BOOTSTRAP``'s broker, topics of a
    prefix of their own; ``None`` when that variable is not set."""
    bootstrap = os.environ.get("SLUICEGATE_TEST_KAFKA_BOOTSTRAP")
    if not bootstrap:
        return None
    return {
        "SLUICEGATE_STORAGE__BACKEND": "kafka",
        "SLUICEGATE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "SLUICEGATE_KAFKA__TOPIC_PREFIX": f"bench{uuid.uuid4().hex[:8]}.",
    }


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Both CloudEvents consumer benchmarks (``duration`` does not apply: fixed sizes);
    the backlog read again on the Kafka backend (``cloudevents-consume-events-kafka``)
    when ``SLUICEGATE_TEST_KAFKA_BOOTSTRAP`` names a broker."""
    caps = {"SLUICEGATE_CLOUDEVENTS__MAX_CONSUMER_INSTANCES_PER_CLIENT": str(INSTANCES + 10)}
    results: dict[str, dict[str, Any]] = {}
    kafka = kafka_env()
    if kafka is not None:
        with (
            tempfile.TemporaryDirectory() as data_dir,
            serve_in_subprocess(data_dir, cpu=SERVER_CPU, env={**caps, **kafka}) as server,
        ):
            spread_helper_threads(server.pid)
            measured = _consume(server.url, server.pid)
            results["cloudevents-consume-events-kafka"] = measured["cloudevents-consume-events"]
    # A server each: the idle instances' groups are new and would each read the backlog.
    for measure in (_consume, _idle_instances):
        with (
            tempfile.TemporaryDirectory() as data_dir,
            serve_in_subprocess(data_dir, cpu=SERVER_CPU, env=caps) as server,
        ):
            spread_helper_threads(server.pid)
            results.update(measure(server.url, server.pid))
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
