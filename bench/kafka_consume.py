"""Kafka mode: the topics v1 consume benchmarks on a gateway stored in Kafka.

Run: ``python -m bench.run --only kafka-consume``. The same targets as on embedded storage
(``bench.topics_v1``), against the broker of ``bench.kafka_produce.kafka_cluster``:

- ``kafka-topics-v1-consume-walk``: one client walks a cursor over 100,000 messages in
  batches of 50, messages/s against the 100,000 target.
- ``kafka-topics-v1-idle-long-polls-*``: 10,000 long polls parked on 100 idle topics:
  added resident memory (≤ 200 MB), ``/healthz`` round trips while they wait (loop lag,
  p99 ≤ 10 ms), and a publish reaching a waiting consumer (p99 ≤ 5 ms after the
  publisher's 200).
- ``kafka-idle-long-polls-broker-connections``: the established TCP connections of the
  server and its reader process to the broker's port while the 10,000 polls wait, against
  the same count before they were opened (read from ``/proc/<pid>/fd`` and
  ``/proc/net/tcp``): a consumer must cost no connection, only memory.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any

from bench.http_produce import _entry
from bench.kafka_produce import kafka_cluster, kafka_server_env
from bench.servers import SERVER_CPU, child_processes, spread_helper_threads
from bench.topics_v1 import IDLE_POLLS, idle_long_polls, idle_poll_caps, walk_entry
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["broker_connections", "run"]

#: ``/proc/net/tcp`` state of an established connection.
_ESTABLISHED = "01"


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def broker_connections(pid: int, bootstrap: str) -> int:
    """Established TCP connections of process ``pid`` and its children to the port of
    ``bootstrap``."""
    port = int(bootstrap.split(",")[0].rsplit(":", 1)[1])
    inodes: set[str] = set()
    for process in [pid, *child_processes(pid)]:
        with suppress(FileNotFoundError):
            inodes |= _socket_inodes(process)
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == _ESTABLISHED and fields[9] in inodes:
                count += 1
    return count


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """The Kafka-mode consume benchmarks (``duration`` is not used: each has a fixed size)."""
    caps = idle_poll_caps()
    with (
        kafka_cluster() as bootstrap,
        tempfile.TemporaryDirectory() as data_dir,
        serve_in_subprocess(
            data_dir, cpu=SERVER_CPU, env={**caps, **kafka_server_env(bootstrap)}
        ) as server,
    ):
        spread_helper_threads(server.pid)
        results = walk_entry(server.url, name="kafka-topics-v1-consume-walk")
        before = broker_connections(server.pid, bootstrap)

        def while_parked() -> dict[str, dict[str, Any]]:
            during = broker_connections(server.pid, bootstrap)
            return {
                "kafka-idle-long-polls-broker-connections": _entry(
                    during, "connections", before, polls=IDLE_POLLS, before_polls=before
                )
            }

        results.update(
            asyncio.run(idle_long_polls(server.url, server.pid, "kafka-topics-v1", while_parked))
        )
    return results
