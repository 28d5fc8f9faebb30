"""Run ``sluicegate serve`` in a subprocess and learn its URL from its log."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

__all__ = ["ServerProcess", "serve_in_subprocess"]

#: After start-up only errors are kept in ``ServerProcess.log``, at most this many lines.
_KEPT_LEVELS = (b'"level":"error"', b'"level":"critical"')
_KEPT_LINES = 1000


class ServerProcess:
    """A running ``sluicegate serve``; ``url`` is where it listens."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: list[str]) -> None:
        self.process = process
        self.url = url
        #: The server's log lines (JSON objects as text) up to start-up, then its errors.
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (the crash test's weapon)."""
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for a graceful exit; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def _read_until_listening(process: subprocess.Popen[bytes], deadline: float, log: list[str]) -> str:
    assert process.stderr is not None  # we created the pipe
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    buffer = b""
    while time.monotonic() < deadline:
        if not selector.select(timeout=0.1):
            if process.poll() is not None:
                break
            continue
        chunk = os.read(process.stderr.fileno(), 65536)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace")
            log.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "url" in entry:
                selector.close()
                return str(entry["url"])
    selector.close()
    process.kill()
    process.wait()
    raise RuntimeError("sluicegate serve did not start:\n" + "\n".join(log[-30:]))


@contextmanager
def serve_in_subprocess(
    data_dir: str | Path,
    *,
    args: Sequence[str] = ("--no-auth",),
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 60.0,
    cpu: int | None = None,
    stdout: str | Path | None = None,
    log_file: str | Path | None = None,
    new_session: bool = False,
) -> Iterator[ServerProcess]:
    """Start ``sluicegate serve --port 0`` on ``data_dir``; stop it (SIGTERM) on exit.

    Logs are JSON (stderr is a pipe); after start-up they are read so a chatty server
    never blocks on a full pipe: appended to ``log_file`` if given, and its errors kept in
    ``log``. ``cpu`` pins the server to one core. The server's stdout (the first-start
    message) goes to the file ``stdout``, or nowhere. ``new_session``: the server leads a
    process group of its own, as a shell's job does, so that a test can signal the group.
    """
    command = [
        sys.executable,
        "-m",
        "sluicegate.cli.main",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        *args,
    ]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    full_env = {**os.environ, "SLUICEGATE_SERVER__LOG_FORMAT": "json", **(env or {})}
    # The child gets its own copy of the file descriptor; ours is closed at once.
    with open(stdout, "wb") if stdout is not None else nullcontext(subprocess.DEVNULL) as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            env=full_env,
            start_new_session=new_session,
        )
    log: list[str] = []
    drain: threading.Thread | None = None
    try:
        url = _read_until_listening(process, time.monotonic() + startup_timeout, log)
        drain = threading.Thread(
            target=_drain, args=(process, log_file, log), name="sluicegate-stderr"
        )
        drain.start()
        yield ServerProcess(process, url, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if drain is not None:
            drain.join(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def _drain(process: subprocess.Popen[bytes], log_file: str | Path | None, log: list[str]) -> None:
    """Read stderr to its end so a chatty server never blocks on a full pipe; keep errors."""
    if process.stderr is None:
        return
    with open(log_file, "ab") if log_file is not None else nullcontext(None) as out:
        if out is not None:  # the lines read before the server listened come first
            out.write("".join(f"{line}\n" for line in log).encode())
        buffer = b""
        while chunk := os.read(process.stderr.fileno(), 65536):
            if out is not None:
                out.write(chunk)
                out.flush()
            *lines, buffer = (buffer + chunk).split(b"\n")
            for raw in lines:
                if len(log) < _KEPT_LINES and any(level in raw for level in _KEPT_LEVELS):
                    log.append(raw.decode(errors="replace"))
