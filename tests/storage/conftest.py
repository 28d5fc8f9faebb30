"""The ``log`` fixture: a running backend per parametrized name, with the levers tests use.

The contract suite asks only for ``log`` (and ``harness`` when it needs to let time pass
or to know whether offsets are gap-free), so a new backend joins it by adding a name to
``BACKENDS`` and a branch to ``_open``. Tests that set log-append time by hand or run a
retention pass on demand ask for ``clocked_harness``: only backends whose clock the
gateway owns serve it (Kafka's log-append time is the broker's, and its brokers enforce
retention on their own schedule).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sluicegate.config import KafkaSettings
from sluicegate.storage.base import Log, running
from sluicegate.storage.kafka import KafkaLog
from sluicegate.storage.sqlite import SqliteLog

#: ``kafka-3``: the Kafka backend on a broker of the 3.x line (``KAFKA_3_VERSION``).
BACKENDS = ["sqlite", "kafka", "kafka-3"]
#: Backends whose log-append time the gateway takes from an injected clock, and that
#: apply retention when asked.
CLOCKED_BACKENDS = ["sqlite"]


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
    #: Offsets are gap-free per partition. Kafka's are not: each transaction leaves a
    #: commit marker, which takes an offset no record has.
    gap_free: bool
    #: Log-append time, if the test sets it (see ``CLOCKED_BACKENDS``).
    clock: ManualClock | None = None
    #: Apply retention now, as the backend's periodic pass would (clocked backends).
    enforce_retention: Callable[[], Awaitable[None]] | None = None

    async def tick(self) -> None:
        """Let log-append time move forward, so later appends have later timestamps."""
        if self.clock is not None:
            self.clock.advance(1)
        else:
            await asyncio.sleep(0.002)  # Kafka keeps milliseconds


def kafka_test_settings(bootstrap: str, **changes: Any) -> KafkaSettings:
    """Settings for a log of its own on a shared cluster: a fresh prefix per test."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    return KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, **changes)


def _open(
    backend: str, tmp_path: Path, clock: ManualClock, request: pytest.FixtureRequest
) -> Harness:
    if backend == "sqlite":
        # A long interval: retention runs only when a test asks for it.
        log = SqliteLog(tmp_path / "data", clock=clock, retention_interval=3600.0)
        return Harness(log, gap_free=True, clock=clock, enforce_retention=log.enforce_retention)
    if backend in ("kafka", "kafka-3"):
        bootstrap: str = request.getfixturevalue(backend.replace("-", "_") + "_bootstrap")
        return Harness(KafkaLog(kafka_test_settings(bootstrap), node_id="node"), gap_free=False)
    raise ValueError(f"unknown backend {backend!r}")


async def _serve(log: Log, started: asyncio.Future[None], stop: asyncio.Event) -> None:
    # One task owns the log from start to close; pytest-asyncio runs a fixture's setup
    # and teardown in different tasks, which a TaskGroup must not straddle.
    async with running(log):
        started.set_result(None)
        await stop.wait()


async def _running_harness(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Harness]:
    harness = _open(request.param, tmp_path, ManualClock(), request)
    log = harness.log
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


@pytest.fixture(params=BACKENDS)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    async for running_harness in _running_harness(request, tmp_path):
        yield running_harness


@pytest.fixture(params=CLOCKED_BACKENDS)
async def clocked_harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    async for running_harness in _running_harness(request, tmp_path):
        yield running_harness


@pytest.fixture
def log(harness: Harness) -> Log:
    return harness.log
