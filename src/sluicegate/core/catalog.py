"""Topic metadata for the hot path: cached lookups and Kafka-style auto-creation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from sluicegate.config import TopicSettings
from sluicegate.core.topics import (
    RESERVED_PREFIX,
    Topic,
    TopicSpec,
    TopicUpdate,
    is_internal,
    validate_topic_name,
)
from sluicegate.errors import TopicExists, UnknownTopic
from sluicegate.storage.base import Log

__all__ = ["CACHE_SIZE", "TopicCatalog"]

#: Topics remembered at most, by name and by id: the topics a node serves at one time.
#: Every backend keeps its topics in memory, so a topic beyond them costs an ``await``
#: of the log, not a query; the bound keeps 10,000 topics a node once saw from costing
#: a cache entry each for ever (about 140 bytes a topic: docs/design-notes.md).
CACHE_SIZE = 1024

_Entry = tuple[float, Topic]
K = TypeVar("K")


def _bounded_put(cache: dict[K, _Entry], key: K, entry: _Entry, size: int) -> None:
    """Store ``entry`` as the newest of ``cache``, dropping the oldest beyond ``size``.

    A topic in use is stored again each time its entry expires, so the oldest entries
    are those nobody asked for longest: least recently used, at the granularity of the
    TTL, with nothing to update on a hit.
    """
    cache.pop(key, None)
    cache[key] = entry
    if len(cache) > size:
        del cache[next(iter(cache))]


class TopicCatalog:
    """Topics as the dialects see them: cached, auto-created, internal ones hidden.

    A produce request needs the partition count of its topic; asking storage for it on
    every request would cost an ``await``, so topics are cached for ``ttl`` seconds, at
    most ``cache_size`` of them. Changes made through this catalog invalidate the cache
    at once; the TTL only bounds how long another node's change (several nodes on one
    Kafka cluster) takes to show.
    """

    def __init__(
        self,
        log: Log,
        settings: TopicSettings,
        *,
        ttl: float = 5.0,
        cache_size: int = CACHE_SIZE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._settings = settings
        self._ttl = ttl
        self._cache_size = cache_size
        self._monotonic = monotonic
        self._cache: dict[str, _Entry] = {}
        self._cache_by_id: dict[int, _Entry] = {}
        self._creating: dict[str, asyncio.Future[Topic]] = {}

    def cached(self, name: str) -> Topic | None:
        """The topic if it was seen less than the cache TTL ago; ``None`` means ask ``get``."""
        cached = self._cache.get(name)
        if cached is not None and cached[0] > self._monotonic():
            return cached[1]
        return None

    def cached_by_id(self, topic_id: int) -> Topic | None:
        """``cached`` for a topic's integer id (the topics v1 dialect addresses topics by it)."""
        cached = self._cache_by_id.get(topic_id)
        if cached is not None and cached[0] > self._monotonic():
            return cached[1]
        return None

    def forget(self, name: str) -> None:
        """Drop what the cache says of ``name``: a write found it gone or with fewer
        partitions (deleted, and perhaps made again, through another node), and the next
        ``get`` asks the log."""
        forgotten = self._cache.pop(name, None)
        if forgotten is not None:
            self._cache_by_id.pop(forgotten[1].id, None)

    async def get(self, name: str, *, auto_create: bool = False) -> Topic:
        """The topic ``name``; created with the defaults if allowed and missing."""
        cached = self.cached(name)
        if cached is not None:
            return cached
        validate_topic_name(name)
        if is_internal(name):
            raise UnknownTopic(f"topic {name!r} does not exist", topic=name)
        try:
            topic = await self._log.get_topic(name)
        except UnknownTopic:
            if not (auto_create and self._settings.auto_create):
                raise
            topic = await self._auto_create(name)
        return self._remember(topic)

    async def _auto_create(self, name: str) -> Topic:
        # Many first requests for a new topic arrive together; create it once.
        pending = self._creating.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Topic] = asyncio.get_running_loop().create_future()
        self._creating[name] = future
        try:
            try:
                topic = await self._log.create_topic(self._default_spec(name))
            except TopicExists:
                topic = await self._log.get_topic(name)
            future.set_result(topic)
            return topic
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else needs to
            raise
        finally:
            del self._creating[name]

    def _default_spec(self, name: str) -> TopicSpec:
        return TopicSpec(
            name=name,
            partitions=self._settings.default_partitions,
            retention_ms=self._settings.default_retention_ms,
        )

    def _remember(self, topic: Topic) -> Topic:
        entry = (self._monotonic() + self._ttl, topic)
        _bounded_put(self._cache, topic.name, entry, self._cache_size)
        _bounded_put(self._cache_by_id, topic.id, entry, self._cache_size)
        return topic

    async def create(self, spec: TopicSpec) -> Topic:
        validate_topic_name(spec.name)
        if is_internal(spec.name):
            raise TopicExists(
                f"topic names starting with {RESERVED_PREFIX!r} are reserved for internal "
                "topics (Kafka's own and the gateway's)"
            )
        return self._remember(await self._log.create_topic(spec))

    async def by_id(self, topic_id: int) -> Topic:
        topic = await self._log.get_topic_by_id(topic_id)
        if is_internal(topic.name):
            raise UnknownTopic(f"no topic with id {topic_id}", topic_id=topic_id)
        return self._remember(topic)

    async def list(self) -> list[Topic]:
        return await self._log.list_topics()

    async def alter(self, name: str, update: TopicUpdate) -> Topic:
        await self.get(name)
        return self._remember(await self._log.alter_topic(name, update))

    async def purge(self, name: str) -> None:
        await self.get(name)
        await self._log.purge_topic(name)

    async def delete(self, name: str) -> None:
        await self.get(name)
        self.forget(name)
        await self._log.delete_topic(name)
