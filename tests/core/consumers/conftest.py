"""Consumer instances over a running log, on every backend, with a clock the tests move."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping

import pytest

from sluicegate.core.consumers.registry import ConsumerInstances, ConsumerSettings
from sluicegate.core.consumers.subscription import RecordFilter
from sluicegate.core.gateway import Gateway
from sluicegate.core.longpoll import LongPolls
from sluicegate.core.records import NewRecord, TopicPartition
from sluicegate.core.topics import TopicSpec
from sluicegate.storage.base import Log
from tests.conftest import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class FakeClock:
    """Monotonic seconds that move only when a test moves them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Topics:
    """A subscription to a set of topics that a test can grow, with an optional filter;
    every instance reads all of the topics in ``everyone``."""

    def __init__(
        self, *names: str, accept: RecordFilter | None = None, everyone: Iterable[str] = ()
    ) -> None:
        self.names = set(names)
        self.accept = accept
        self.everyone = frozenset(everyone)
        self._version = 0

    def add(self, name: str) -> None:
        self.names.add(name)
        self._version += 1

    def version(self) -> int:
        return self._version

    async def topics(self) -> frozenset[str]:
        return frozenset(self.names)

    def filter(self, topic: str) -> RecordFilter | None:
        return self.accept

    def every_instance(self, topic: str) -> bool:
        return topic in self.everyone


class HeldCommits:
    """The log's ``commit_offsets``, counted, the first one held until ``release``; each
    call raises the next of ``failures`` while there are any."""

    def __init__(self, commit: Callable[..., Awaitable[None]]) -> None:
        self._commit = commit
        self.calls: list[dict[TopicPartition, int]] = []
        self.release = asyncio.Event()
        self.failures: list[Exception] = []
        #: Set as the first call begins, and as a call ends (before its caller hears).
        self.called = asyncio.Event()
        self.ended = asyncio.Event()

    @classmethod
    def on(cls, log: Log, monkeypatch: pytest.MonkeyPatch) -> HeldCommits:
        """``log``'s commits, counted and held from now on (until the test ends)."""
        held = cls(log.commit_offsets)
        monkeypatch.setattr(log, "commit_offsets", held)
        return held

    async def __call__(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        self.calls.append(dict(offsets))
        self.called.set()
        try:
            if len(self.calls) == 1:
                await self.release.wait()
            if self.failures:
                raise self.failures.pop(0)
            await self._commit(group, offsets)
        finally:
            self.ended.set()


async def never() -> None:
    await asyncio.Event().wait()


async def make_topic(gateway: Gateway, name: str, partitions: int = 1) -> str:
    await gateway.log.create_topic(TopicSpec(name=name, partitions=partitions))
    return name


async def append(gateway: Gateway, topic: str, partition: int, values: Iterable[bytes]) -> None:
    """Append ``values`` to one partition, one record per append (in order)."""
    for value in values:
        await gateway.log.append([NewRecord(topic, partition, None, value)])


def waiters(gateway: Gateway) -> float:
    """Waits on the log now (the Kafka backend's own state followers included)."""
    return gateway.log.stats()["waiters"]


async def parked(gateway: Gateway, before: float) -> None:
    """Return once one more wait than ``before`` is parked on the log (Kafka reads take a
    while before a long poll parks)."""
    async with asyncio.timeout(10):
        while waiters(gateway) <= before:  # noqa: ASYNC110 (a gauge, nothing to await)
            await asyncio.sleep(0.01)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def consumer_settings() -> ConsumerSettings:
    return ConsumerSettings(idle_timeout=60.0, max_unconfirmed=1000)


@pytest.fixture
def instances(
    gateway: Gateway, clock: FakeClock, consumer_settings: ConsumerSettings
) -> ConsumerInstances:
    return ConsumerInstances(
        gateway.log,
        LongPolls(gateway.log, gateway.limits.long_polls),
        consumer_settings,
        monotonic=clock,
    )
