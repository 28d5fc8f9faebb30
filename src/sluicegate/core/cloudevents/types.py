"""The event types produced so far, and the topics their events are in.

A consumer subscribes to types by pattern (``ce_consume_types``: ``Order.*``), but the
log knows topics. This registry maps every type ever produced to the topics it was stored
in, so a consumer's patterns become a set of topics (``topics_matching``). It lives in the
internal state topic ``__sluicegate_ce_types`` (``core/state_topic.py``): every node
replays it at start and follows it, and a restart forgets nothing. The topic is made
by the first registration.

A type is registered durably *before* its first events are appended (``register``), so
no event is ever stored in a topic its consumers cannot find. If that append then fails,
the type is known with no events yet: harmless. A type normally keeps one topic; if an
operator changes the routes, the new topic is added, and consumers read both.

Consumers created before a type's first event learn of it through the change signal:
``version`` counts the changes applied (here or followed from another node) and
``changed(version)`` returns once it moves on, so they subscribe to the new topic
without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

import msgspec

from sluicegate.core.auth.patterns import PatternSet
from sluicegate.core.state_topic import StateTopic
from sluicegate.errors import UnknownTopic
from sluicegate.storage.base import Log
from sluicegate.storage.outages import until_available

__all__ = ["EventTypes", "TypeEntry"]

STATE_NAME = "ce_types"
#: Seconds between looks for a state topic another node may have made.
_LOOK_AGAIN = 5.0


class TypeEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A produced type: the topics its events were stored in, and when it was first seen."""

    topics: list[str]
    #: Microseconds since the epoch.
    first_seen: int


class EventTypes:
    """Type → topics of every type produced so far, durable and followed across nodes."""

    def __init__(self, log: Log) -> None:
        self._state: StateTopic[TypeEntry] = StateTopic(
            log, STATE_NAME, TypeEntry, on_change=self._applied
        )
        #: (type, topic) pairs known: the producer's check is one set lookup.
        self._known: set[tuple[str, str]] = set()
        self._registering: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._changed = asyncio.Event()
        self._log = log
        self._opening = asyncio.Lock()
        self._opened = asyncio.Event()
        #: Counts the changes applied; see ``changed``.
        self.version = 0

    async def load(self) -> None:
        """Replay the state topic if it exists; the log must be running.

        The topic is made by the first registration (``register``), not here: a gateway
        whose clients never produce CloudEvents has no such topic, and the ids of the
        topics users create do not depend on it.
        """
        try:
            await self._log.get_topic(self._state.topic)
        except UnknownTopic:
            return
        await self._open()

    async def _open(self) -> None:
        async with self._opening:
            if not self._opened.is_set():
                await self._state.load()
                self._opened.set()

    async def follow(self) -> None:
        """Apply other nodes' registrations as they are written; runs until cancelled.

        Until the state topic exists, it is looked for every ``_LOOK_AGAIN`` seconds
        (another node may make it), or at once when this node makes it. A storage outage
        meanwhile does not end it: it looks again once the storage answers.
        """
        await until_available(self._look_for_the_topic, "looking for the CloudEvents types failed")
        await self._state.follow()

    async def _look_for_the_topic(self) -> None:
        while not self._opened.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._opened.wait(), _LOOK_AGAIN)
            if not self._opened.is_set():
                await self.load()

    def _applied(self, event_type: str, entry: TypeEntry | None) -> None:
        if entry is not None:
            self._known.update((event_type, topic) for topic in entry.topics)
        self.version += 1
        # Wake every waiter of the version that just ended, and start the next one.
        self._changed.set()
        self._changed = asyncio.Event()

    # -- producers -------------------------------------------------------------------

    def knows(self, event_type: str, topic: str) -> bool:
        """Whether events of ``event_type`` in ``topic`` are registered already."""
        return (event_type, topic) in self._known

    async def register(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Durably record every new (type, topic) pair, in one append; returns once
        consumers on any node can find them. Concurrent callers share one write."""
        waiting: list[asyncio.Future[None]] = []
        new: list[tuple[str, str]] = []
        for pair in set(pairs):
            if pair in self._known:
                continue
            pending = self._registering.get(pair)
            if pending is not None:
                waiting.append(pending)
            else:
                new.append(pair)
        if new:
            await self._write(new)
        for pending in waiting:
            await asyncio.shield(pending)

    async def _write(self, pairs: list[tuple[str, str]]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for pair in pairs:
            self._registering[pair] = future
        try:
            await self._open()
            now = time.time_ns() // 1000
            entries: dict[str, TypeEntry] = {}
            for event_type, topic in pairs:
                entry = entries.get(event_type) or self._state.get(event_type)
                topics = [] if entry is None else list(entry.topics)
                if topic not in topics:
                    topics.append(topic)
                first_seen = now if entry is None else entry.first_seen
                entries[event_type] = TypeEntry(topics=topics, first_seen=first_seen)
            await self._state.put_many(list(entries.items()))
            future.set_result(None)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters get it, nobody else needs to
            raise
        finally:
            for pair in pairs:
                del self._registering[pair]

    # -- consumers -------------------------------------------------------------------

    def topics_matching(self, patterns: PatternSet) -> set[str]:
        """The topics holding events of every type ``patterns`` match."""
        if not patterns:
            return set()
        return {
            topic
            for event_type, entry in self._state.items()
            if patterns.matches(event_type)
            for topic in entry.topics
        }

    def types_matching(self, patterns: PatternSet) -> list[str]:
        """The produced types ``patterns`` match, sorted."""
        if not patterns:
            return []
        return sorted(t for t, _ in self._state.items() if patterns.matches(t))

    def get(self, event_type: str) -> TypeEntry | None:
        return self._state.get(event_type)

    def __len__(self) -> int:
        return len(self._state)

    async def changed(self, version: int) -> int:
        """Wait until ``version`` is no longer the current one; return the current one.

        A consumer reads ``version``, subscribes to ``topics_matching``, then awaits
        ``changed(that version)``: a type registered in between is never missed.
        """
        while self.version == version:
            await self._changed.wait()
        return self.version
