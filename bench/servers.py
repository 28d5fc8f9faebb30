"""Servers under test: each event loop pinned to core 0, so wrk has core 1 to itself.

A Python server's request rate is what one thread with the GIL can do, so the event loop
of every server (the bare baseline and sluicegate alike) runs on core 0. sluicegate's
storage threads and its commit process spend their time in fsync and in SQLite's C
code; like on any machine they may run on either core (``spread_helper_threads``),
which takes time from wrk, not from the loop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = [
    "SERVER_CPU",
    "WRK_CPU",
    "baseline_server",
    "child_processes",
    "spread_helper_threads",
]

SERVER_CPU = 0
WRK_CPU = 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


@contextmanager
def baseline_server(http2: bool = False) -> Iterator[str]:
    """The bare ASGI app, served as sluicegate is: uvicorn, or Hypercorn with ``http2``."""
    port = _free_port()
    command = [
        "taskset",
        "-c",
        str(SERVER_CPU),
        sys.executable,
        "-m",
        "bench.baseline_app",
        str(port),
        *(["--http2"] if http2 else []),
    ]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen(command, cwd=root, stdin=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def child_processes(pid: int) -> list[int]:
    """The child processes of ``pid`` (sluicegate's commit process, or its Kafka reader)."""
    found: list[int] = []
    for entry in os.listdir(f"/proc/{pid}/task"):
        with suppress(FileNotFoundError):
            found += map(int, Path(f"/proc/{pid}/task/{entry}/children").read_text().split())
    return found


def spread_helper_threads(pid: int) -> None:
    """Let every thread of ``pid`` but its main thread (the event loop), and every thread
    of its child processes, use every core."""
    every = set(range(os.cpu_count() or 1))
    for entry in os.listdir(f"/proc/{pid}/task"):
        tid = int(entry)
        if tid != pid:
            with suppress(ProcessLookupError):
                os.sched_setaffinity(tid, every)
    for child in child_processes(pid):
        with suppress(FileNotFoundError):
            for child_tid in os.listdir(f"/proc/{child}/task"):
                with suppress(ProcessLookupError):
                    os.sched_setaffinity(int(child_tid), every)
