"""A server that dies of a fatal signal in native code leaves its threads' Python stacks."""

from __future__ import annotations

import signal
from pathlib import Path

from sluicegate.testing.process import serve_in_subprocess


def test_a_fatal_signal_leaves_every_threads_python_stack_on_stderr(tmp_path: Path) -> None:
    # SIGABRT is what glibc raises on a corrupted heap ("double free detected"), and
    # librdkafka on a failed assertion.
    stderr = tmp_path / "stderr.log"
    with serve_in_subprocess(tmp_path / "data", log_file=stderr) as server:
        server.process.send_signal(signal.SIGABRT)
        assert server.process.wait(timeout=30) == -signal.SIGABRT
    said = stderr.read_text()
    assert "Fatal Python error: Aborted" in said
    assert "Current thread" in said  # the one that got the signal, then every other
    assert "in serve" in said  # the event loop's thread, where the server runs
