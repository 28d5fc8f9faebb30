"""Checkpoints that keep the WAL file bounded, under load and across crashes.

A PASSIVE checkpoint copies committed pages into the database but never restarts the
WAL: SQLite rewinds to the WAL's start only when a writer begins a transaction and
finds every frame already copied back and no reader still using the WAL. Under
sustained produce the commit process appends new frames while each PASSIVE pass is
copying, so that moment never comes and the file grows for as long as the load lasts
(163 MB after 90 s of wrk); after a kill -9 the next server appended to the old WAL.

So, three rules (measured in ``docs/design-notes.md``):

- **At start**, before any other connection exists, a TRUNCATE checkpoint copies
  whatever a crashed server left in the WAL and empties the file.
- **Every pass**, a PASSIVE checkpoint on a connection of its own does the copying off
  the writer's path. When the WAL then holds more than ``limit`` bytes of frames, a
  RESTART checkpoint runs as an exclusive write: no group commit is in flight, so it
  only copies what arrived during the PASSIVE pass and waits (``READER_WAIT_MS`` at
  most) for readers' short transactions to end; the next commit starts the WAL over, and
  ``journal_size_limit`` (a writer pragma) truncates the file back to ``limit``.
- **When idle** (no frame written since the last pass), a TRUNCATE checkpoint empties
  the file, so a quiet gateway holds no WAL at all.
- **A hard cap**: should the passes fall behind, the writer itself runs a RESTART before
  its next group commit once the file holds twice the limit (``WalCap``), so the WAL's
  bound is one of size, whatever the passes' pace.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

from sluicegate.errors import ShuttingDown, StorageError
from sluicegate.storage.sqlite.connection import DbThread
from sluicegate.storage.sqlite.writer import Exclusive

__all__ = [
    "CAP_WAIT_MS",
    "READER_WAIT_MS",
    "Checkpointer",
    "WalCap",
    "WalCheckpoint",
    "WalState",
    "checkpoint",
    "wal_bytes",
]

logger = logging.getLogger(__name__)

#: How long a pass's RESTART or TRUNCATE waits for readers to leave the WAL (ms).
READER_WAIT_MS = 50
#: How long the hard cap's RESTART waits for them, and for a PASSIVE pass to end (ms).
CAP_WAIT_MS = 5000
#: A WAL file's header, and each frame's header before its page.
_WAL_HEADER = 32
_FRAME_HEADER = 24


class WalState(msgspec.Struct, frozen=True):
    """What ``PRAGMA wal_checkpoint`` answers: ``busy``, frames in the WAL, frames copied."""

    busy: bool
    frames: int
    copied: int


def checkpoint(
    conn: sqlite3.Connection, mode: Literal["PASSIVE", "RESTART", "TRUNCATE"]
) -> WalState:
    """Run one checkpoint of ``mode`` on ``conn``."""
    busy, frames, copied = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    return WalState(bool(busy), frames, copied)


def wal_bytes(frames: int, page_size: int) -> int:
    """The size of a WAL file holding ``frames`` pages of ``page_size`` bytes."""
    return 0 if frames <= 0 else _WAL_HEADER + frames * (_FRAME_HEADER + page_size)


class WalCheckpoint(Exclusive[WalState]):
    """A checkpoint that completes: run by the writer while no group commit is in flight.

    RESTART and TRUNCATE take the database's write lock for their duration; as an
    exclusive write they never make a commit wait on SQLite's busy handler (which
    sleeps in steps of milliseconds), only on the writer's own queue.
    """

    transactional = False

    def __init__(self, mode: Literal["RESTART", "TRUNCATE"], wait_ms: int = READER_WAIT_MS) -> None:
        self._mode: Literal["RESTART", "TRUNCATE"] = mode
        self._wait_ms = wait_ms
        self._state = WalState(busy=True, frames=-1, copied=-1)

    def plan(self) -> bool:
        return True

    def work(self, conn: sqlite3.Connection) -> None:
        # Every queued write waits behind this: a reader that holds an old snapshot
        # longer than ``wait_ms`` makes this pass give up (busy), not stall the log.
        (usual,) = conn.execute("PRAGMA busy_timeout").fetchone()
        conn.execute(f"PRAGMA busy_timeout = {self._wait_ms}")
        try:
            self._state = checkpoint(conn, self._mode)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(usual)}")

    def apply(self) -> WalState:
        return self._state


class WalCap:
    """The writer's hard cap: a RESTART before the next commit once the WAL file passes it.

    The background passes restart the WAL near the limit, but past it the WAL grows by
    whatever the writer commits while a pass runs, and a pass starved of CPU runs long.
    So the writer asks this before each group commit (one ``stat``). A file past ``cap``
    holds that many bytes of frames: ``journal_size_limit`` truncates it to the limit at
    every rewind. After a RESTART the file keeps its size until the next commit rewinds
    and truncates it, and a RESTART that found a reader changes nothing, so another is
    asked for only once the file has grown by ``step`` since the last.
    """

    def __init__(self, wal: Path, cap: int, step: int) -> None:
        self._wal = wal
        self._cap = cap
        self._step = step
        self._asked_at = 0

    def __call__(self) -> WalCheckpoint | None:
        try:
            size = os.stat(self._wal).st_size
        except FileNotFoundError:
            return None
        if size <= self._cap:
            self._asked_at = 0
            return None
        if self._asked_at and size < self._asked_at + self._step:
            return None
        self._asked_at = size
        # Past the cap, holding writes back is the point: wait as long as a commit would
        # for a lock (a PASSIVE pass that still copies, a reader on an old snapshot).
        return WalCheckpoint("RESTART", wait_ms=CAP_WAIT_MS)


class Checkpointer:
    """The background checkpoint pass, every ``interval`` seconds (see the module's rules).

    ``exclusive`` queues a ``WalCheckpoint`` on the writer and returns its future.
    """

    def __init__(
        self,
        db: DbThread,
        exclusive: Callable[[WalCheckpoint], asyncio.Future[WalState]],
        *,
        limit: int,
        interval: float,
    ) -> None:
        self._db = db
        self._exclusive = exclusive
        self._limit = limit
        self._interval = interval
        self._page_size = 4096
        self._last_frames = 0

    async def run(self) -> None:
        """Check the WAL every ``interval`` seconds until cancelled or the log closes."""
        self._page_size = await self._db.call(
            lambda conn: int(conn.execute("PRAGMA page_size").fetchone()[0])
        )
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run_once()
            except ShuttingDown:
                return
            except StorageError as exc:
                # A full disk or a busy reader fails this pass; the next one tries again,
                # and the WAL (which holds every committed record) just grows meanwhile.
                logger.warning("WAL checkpoint failed: %s", exc.message)

    async def run_once(self) -> WalState:
        """One pass: PASSIVE, then RESTART past the limit or TRUNCATE when idle."""
        state = await self._db.call(checkpoint, "PASSIVE")
        idle = state.frames == self._last_frames
        if state.frames > 0 and (idle or wal_bytes(state.frames, self._page_size) > self._limit):
            state = await self._exclusive(WalCheckpoint("TRUNCATE" if idle else "RESTART"))
            if state.busy:
                # A reader kept its snapshot past READER_WAIT_MS: the WAL goes on
                # growing until a later pass finds a moment without one.
                logger.info("WAL checkpoint (%d frames) waited for a reader", state.frames)
        # After a RESTART the frame count is the old one until the next commit rewinds;
        # a pass with no commit in between then finds it unchanged and truncates.
        self._last_frames = state.frames
        return state
