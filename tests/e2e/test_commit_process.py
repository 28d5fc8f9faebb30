"""The commit process lives and dies with its server, and holds the data directory too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from sluicegate.testing.process import ServerProcess, serve_in_subprocess

BODY = '{"value": {"type": "text", "data": "x"}}'
HEADERS = {"content-type": "application/json"}


def children(pid: int) -> list[int]:
    found: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        found += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    return found


def gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie that nobody reaps is gone too: its state in /proc says so.
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@contextmanager
def serving(data_dir: Path) -> Iterator[tuple[ServerProcess, str, int]]:
    """A server that has committed one record; its produce URL and its commit process."""
    with serve_in_subprocess(data_dir) as server:
        url = f"{server.url}/v2/topics/t/records"
        httpx.post(url, content=BODY, headers=HEADERS).raise_for_status()
        [worker] = children(server.pid)
        yield server, url, worker


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_kill_9_of_the_server_takes_the_commit_process_with_it(tmp_path: Path) -> None:
    with serving(tmp_path) as (server, _, worker):
        os.kill(server.pid, signal.SIGKILL)
        assert gone(worker), "the commit process outlived its server"
    # The directory is free again: a new server starts on it and finds the record.
    with serve_in_subprocess(tmp_path) as server:
        response = httpx.post(f"{server.url}/v2/topics/t/records", content=BODY, headers=HEADERS)
        assert response.json()["offset"] == 1


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_dead_commit_process_stops_the_server(tmp_path: Path) -> None:
    with serving(tmp_path) as (server, url, worker):
        os.kill(worker, signal.SIGKILL)
        # Never a 200 for a record nobody commits: a 5xx, or no server at all.
        try:
            response = httpx.post(url, content=BODY, headers=HEADERS, timeout=10)
        except httpx.TransportError:
            pass
        else:
            assert response.status_code >= 500, response.text
        assert server.process.wait(timeout=30) != 0
        # The log says what stopped it, with the traceback, not only the task groups
        # around the error.
        _until_logged(server, "the server stopped")
        [stopped] = [line for line in server.log if "the server stopped" in line]
        assert "the commit process exited" in stopped


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_requests_in_flight_when_the_commit_process_dies_are_answered(tmp_path: Path) -> None:
    # Storage gone under load: the server stops the graceful way, so each request it has
    # is answered (503: not stored; 408: sent to a commit nobody confirmed), never a 500,
    # and none is cut by a cancelled task ("Exception in ASGI application").
    statuses: Counter[int] = Counter()

    def produce(url: str, until: float) -> None:
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < until:
                try:
                    response = client.post(url, content=BODY, headers=HEADERS)
                except httpx.TransportError:  # not listening any more, or closing
                    return
                statuses[response.status_code] += 1

    with serving(tmp_path) as (server, url, worker):
        until = time.monotonic() + 20
        with ThreadPoolExecutor(8) as pool:
            for _ in range(8):
                pool.submit(produce, url, until)
            time.sleep(1)
            os.kill(worker, signal.SIGKILL)
        assert server.process.wait(timeout=30) != 0
        _until_logged(server, "the server stopped")
    assert statuses[200] > 0, statuses
    assert set(statuses) <= {200, 408, 503}, statuses
    assert not [line for line in server.log if "Exception in ASGI application" in line]


def _until_logged(server: ServerProcess, text: str) -> None:
    deadline = time.monotonic() + 10
    while not any(text in line for line in server.log):
        assert time.monotonic() < deadline, server.log
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_server_restarted_at_once_after_kill_9_starts(tmp_path: Path) -> None:
    # As a supervisor restarts it: reaped, then started again without waiting for the
    # old commit process, which may hold the directory's lock a moment longer.
    for expected in range(1, 4):
        with serving(tmp_path) as (server, _, _):
            os.kill(server.pid, signal.SIGKILL)
            server.process.wait()
        with serve_in_subprocess(tmp_path) as server:
            url = f"{server.url}/v2/topics/t/records"
            response = httpx.post(url, content=BODY, headers=HEADERS)
            assert response.json()["offset"] == 2 * expected - 1


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_whole_process_group_stops_the_server_cleanly(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # Ctrl-C in a terminal, ``timeout`` and ``kill -- -PGID`` signal every process of the
    # job, the commit process too: it must outlive the server's graceful shutdown, which
    # commits what is queued through it.
    with serve_in_subprocess(tmp_path, new_session=True) as server:
        url = f"{server.url}/v2/topics/t/records"
        httpx.post(url, content=BODY, headers=HEADERS).raise_for_status()
        [worker] = children(server.pid)
        os.killpg(server.pid, signum)
        assert server.process.wait(timeout=30) == 0
        assert gone(worker), "the commit process outlived its server"
    with serve_in_subprocess(tmp_path) as server:
        response = httpx.post(f"{server.url}/v2/topics/t/records", content=BODY, headers=HEADERS)
        assert response.json()["offset"] == 1


def test_a_second_server_on_a_held_directory_says_so_in_one_line(tmp_path: Path) -> None:
    with serve_in_subprocess(tmp_path) as server:
        command = [sys.executable, "-m", "sluicegate.cli.main", "serve", "--port", "0"]
        second = subprocess.run(
            [*command, "--data-dir", str(tmp_path), "--no-auth"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert server.process.poll() is None  # the first one serves on
    assert second.returncode == 1
    # The last line (folded to the terminal's width) says why; nothing before it but
    # the server's start.
    words = " ".join(second.stderr.split())
    assert words.endswith(f"error: another sluicegate server holds {tmp_path}")
    assert "Traceback" not in second.stderr
