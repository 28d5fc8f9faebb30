"""The topics CloudEvents live in, created on first use with the dialect's own defaults.

An event type's topic gets ``cloudevents.partitions`` partitions (12: a group scales to
1, 2, 3, 4, 6 or 12 instances) and ``cloudevents.retention_ms`` (120 hours); a client's
test and dead streams (``streams.py``) one partition and the same retention. They are
created whatever ``topics.auto_create`` says: a CloudEvents producer names a type, never
a topic, so there is nobody else to create it. A topic an operator created beforehand
(e.g. the topic of an explicit route) is used as it is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sluicegate.config import CloudEventSettings
from sluicegate.core.cloudevents.streams import STREAM_PARTITIONS
from sluicegate.core.topics import Topic, TopicSpec
from sluicegate.errors import TopicExists, UnknownTopic
from sluicegate.storage.base import Log

__all__ = ["EventTopics"]

#: Seconds a topic's metadata is trusted (another node may add partitions meanwhile).
_TTL = 5.0
#: Topics remembered; beyond this the memory starts over.
_REMEMBERED = 65_536


class EventTopics:
    """Cached topic metadata for CloudEvents, and creation on first use.

    Not the dialects' ``TopicCatalog``: that one hides internal topics, and a client's
    test and dead streams are internal; sharing its cache would let any dialect find them.
    """

    def __init__(
        self,
        log: Log,
        settings: CloudEventSettings,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._partitions = settings.partitions
        self._retention_ms = settings.retention_ms
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, Topic]] = {}
        self._creating: dict[str, asyncio.Future[Topic]] = {}

    def forget(self) -> None:
        """Forget every topic seen: one of them was deleted since (through the admin API
        or outside the gateway), and ``get`` makes it again."""
        self._cache.clear()

    def cached(self, name: str) -> Topic | None:
        """The topic if it was seen recently; ``None`` means ask ``get``."""
        entry = self._cache.get(name)
        if entry is not None and entry[0] > self._monotonic():
            return entry[1]
        return None

    async def get(self, name: str) -> Topic:
        """The event-type topic ``name``, created with 12 partitions if it is missing."""
        return self.cached(name) or await self._fetch(name, self._partitions)

    async def stream(self, name: str) -> Topic:
        """A client's test or dead stream ``name``, created with one partition if missing."""
        return self.cached(name) or await self._fetch(name, STREAM_PARTITIONS)

    async def _fetch(self, name: str, partitions: int) -> Topic:
        try:
            topic = await self._log.get_topic(name)
        except UnknownTopic:
            topic = await self._create(name, partitions)
        if len(self._cache) >= _REMEMBERED:
            self._cache.clear()
        self._cache[name] = (self._monotonic() + _TTL, topic)
        return topic

    async def _create(self, name: str, partitions: int) -> Topic:
        # The first events of a new type often arrive together: create the topic once.
        pending = self._creating.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Topic] = asyncio.get_running_loop().create_future()
        self._creating[name] = future
        try:
            spec = TopicSpec(name=name, partitions=partitions, retention_ms=self._retention_ms)
            try:
                topic = await self._log.create_topic(spec)
            except TopicExists:
                topic = await self._log.get_topic(name)
            future.set_result(topic)
            return topic
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters get it, nobody else needs to
            raise
        finally:
            del self._creating[name]
