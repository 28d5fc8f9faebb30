"""The Kafka reader process lives and dies with its server, as the commit process does."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from sluicegate.testing.process import serve_in_subprocess
from tests.e2e.test_commit_process import children, gone
from tests.helpers import backend_env

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")


def _reader(pid: int) -> int:
    """The server's one child process: its Kafka reader."""
    [reader] = children(pid)
    command = Path(f"/proc/{reader}/cmdline").read_bytes().split(b"\0")
    assert b"sluicegate.storage.kafka.reader_worker" in command
    return reader


def test_kill_9_of_the_server_takes_the_reader_process_with_it(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with serve_in_subprocess(tmp_path, env=backend_env(request, "kafka")) as server:
        reader = _reader(server.pid)
        os.kill(server.pid, signal.SIGKILL)
        assert gone(reader), "the reader process outlived its server"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_whole_process_group_stops_server_and_reader_cleanly(
    tmp_path: Path, request: pytest.FixtureRequest, signum: signal.Signals
) -> None:
    # The reader ignores the job's signal; the server's shutdown closes it.
    env = backend_env(request, "kafka")
    with serve_in_subprocess(tmp_path, env=env, new_session=True) as server:
        reader = _reader(server.pid)
        os.killpg(server.pid, signum)
        assert server.process.wait(timeout=30) == 0
        assert gone(reader), "the reader process outlived its server"
