"""The commit process itself: ``python -m sluicegate.storage.sqlite.commit_worker``.

See ``commit_process`` for what it does and why. It is a module of its own so that the
server never imports it: runpy warns when the module it runs was imported already.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from sluicegate.storage.pipes import FRAME_LENGTH, die_with_parent, outlive_the_servers_shutdown
from sluicegate.storage.sqlite.commit_process import run_statements


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


def main() -> None:
    outlive_the_servers_shutdown()
    database, parent, *pragmas = sys.argv[1:]
    die_with_parent(int(parent))
    _serve(database, pragmas)


if __name__ == "__main__":
    main()
