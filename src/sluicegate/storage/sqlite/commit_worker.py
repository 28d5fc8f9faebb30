"""The commit process itself: ``python -m sluicegate.storage.sqlite.commit_worker``.

See ``commit_process`` for what it does and why. It is a module of its own so that the
server never imports it: runpy warns when the module it runs was imported already.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from sluicegate.storage.sqlite.commit_process import FRAME_LENGTH, run_statements

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)  # the server died before we could ask: nothing to serve


def _serve(database: str, pragmas: Sequence[str]) -> None:
    conn = sqlite3.connect(database, isolation_level=None)
    for pragma in pragmas:
        conn.execute(pragma)
    decode = msgspec.msgpack.Decoder(tuple[int, list[tuple[str, list[Any], bool]]]).decode
    encode = msgspec.msgpack.Encoder().encode
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while len(head := source.read(FRAME_LENGTH.size)) == FRAME_LENGTH.size:
        job, statements = decode(source.read(FRAME_LENGTH.unpack(head)[0]))
        error: list[Any] | None = None
        try:
            run_statements(conn, statements)
        except sqlite3.Error as exc:
            error = [exc.sqlite_errorcode, exc.sqlite_errorname, str(exc)]
        except Exception as exc:  # noqa: BLE001 - reported to the server, which stops
            error = [-1, type(exc).__name__, str(exc)]
        reply = encode([job, error])
        sink.write(FRAME_LENGTH.pack(len(reply)) + reply)
        sink.flush()
    conn.close()


def _outlive_the_servers_shutdown() -> None:
    # Ctrl-C in a terminal, ``timeout``, ``kill -- -PGID`` and a service manager's stop
    # signal every process of the job, this one too; but the server's graceful shutdown
    # commits what is queued through this process. The server decides when it ends: it
    # closes our input (``_serve`` returns), or it dies (``_die_with_parent``).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main() -> None:
    _outlive_the_servers_shutdown()
    database, parent, *pragmas = sys.argv[1:]
    _die_with_parent(int(parent))
    _serve(database, pragmas)


if __name__ == "__main__":
    main()
