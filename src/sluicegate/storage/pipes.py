"""What the storage layer's helper processes share: frames on pipes, and their lifetime.

Each backend keeps one kind of work out of the server's interpreter, whose GIL the event
loop holds while it has work: SQLite's group commits (``sqlite.commit_process``) and
Kafka's fetches (``kafka.reader_process``). Both talk to the server over their standard
input and output in frames (a little-endian ``u32`` length, then msgpack), live exactly as
long as the server, and let only the server end them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import sys

__all__ = [
    "FRAME_LENGTH",
    "PipeClosed",
    "die_with_parent",
    "outlive_the_servers_shutdown",
    "wide_pipe",
]

#: Every frame starts with its length.
FRAME_LENGTH = struct.Struct("<I")

#: Bytes a pipe to a helper holds (Linux's default is 64 KiB). A frame of a megabyte or so
#: (a group commit, a fetch) in a pipe that holds all of it is one write, not a write per
#: 64 KiB each waiting for the other side to be scheduled and read the last one.
_PIPE_BYTES = 1024 * 1024

_PR_SET_PDEATHSIG = 1


def wide_pipe() -> tuple[int, int]:
    """A pipe's read and write ends, widened to ``_PIPE_BYTES`` where the kernel allows.

    Made here rather than asked of ``create_subprocess_exec``: uvloop gives a child's
    standard input as a socket pair, whose buffer ``F_SETPIPE_SZ`` cannot widen.
    """
    read_fd, write_fd = os.pipe()
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if set_size is not None:
        # Not allowed past /proc/sys/fs/pipe-max-size: the default size still works.
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_fd, set_size, _PIPE_BYTES)
    return read_fd, write_fd


class PipeClosed(asyncio.BaseProtocol):
    """A write end's protocol: it only says when the pipe has closed."""

    def __init__(self, closed: asyncio.Future[None]) -> None:
        self.closed = closed

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def die_with_parent(parent: int) -> None:
    """In a helper: be killed with the server ``parent``, or exit now if it is gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)  # the server died before we could ask: nothing to serve


def outlive_the_servers_shutdown() -> None:
    """In a helper: ignore the signals that stop the whole job.

    Ctrl-C in a terminal, ``timeout``, ``kill -- -PGID`` and a service manager's stop
    signal every process of the job, the helper too; but the server's graceful shutdown
    still works through it. The server decides when it ends: it closes the helper's input,
    or it dies (``die_with_parent``).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
