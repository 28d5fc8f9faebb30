"""The ``log`` fixture: a running backend per parametrized name, with a clock tests move.

The contract suite asks only for ``log`` (and ``harness`` when it needs the clock or a
retention pass), so a new backend joins it by adding a name to ``BACKENDS`` and a branch
to ``_open``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sluicegate.storage.base import Log, running
from sluicegate.storage.sqlite import SqliteLog

BACKENDS = ["sqlite"]


class ManualClock:
    """Log-append time in µs since the epoch that moves only when a test moves it."""

    def __init__(self, start: int = 1_700_000_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1_000_000)


@dataclass
class Harness:
    """A running log plus the levers a backend-neutral test needs."""

    log: Log
    clock: ManualClock
    #: Apply retention now, as the backend's periodic pass would.
    enforce_retention: Callable[[], Awaitable[None]]


def _open(backend: str, tmp_path: Path, clock: ManualClock) -> tuple[Log, Harness]:
    if backend == "sqlite":
        # A long interval: retention runs only when a test asks for it.
        log = SqliteLog(tmp_path / "data", clock=clock, retention_interval=3600.0)
        return log, Harness(log, clock, log.enforce_retention)
    raise ValueError(f"unknown backend {backend!r}")


async def _serve(log: Log, started: asyncio.Future[None], stop: asyncio.Event) -> None:
    # One task owns the log from start to close; pytest-asyncio runs a fixture's setup
    # and teardown in different tasks, which a TaskGroup must not straddle.
    async with running(log):
        started.set_result(None)
        await stop.wait()


@pytest.fixture(params=BACKENDS)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    log, harness = _open(request.param, tmp_path, ManualClock())
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    owner = asyncio.create_task(_serve(log, started, stop), name=f"{request.param}-log")
    await asyncio.wait((started, owner), return_when=asyncio.FIRST_COMPLETED)
    if owner.done():
        owner.result()  # the log failed to start: raise its error here
    try:
        yield harness
    finally:
        stop.set()
        await owner  # a failure of the log during the test fails the test here


@pytest.fixture
def log(harness: Harness) -> Log:
    return harness.log
