"""The gateway core: everything a dialect may use, and nothing of HTTP."""

from __future__ import annotations

import asyncio

from sluicegate.cluster.membership import Membership
from sluicegate.config import Settings
from sluicegate.core.auth.authenticator import Authenticator
from sluicegate.core.auth.clients import ClientStore
from sluicegate.core.auth.principals import Action, Principal
from sluicegate.core.catalog import TopicCatalog
from sluicegate.core.cloudevents.consumers import consumer_settings, follow_types
from sluicegate.core.cloudevents.dedup import EventIds
from sluicegate.core.cloudevents.producer import EventProducer
from sluicegate.core.cloudevents.routing import TypeRouter
from sluicegate.core.cloudevents.schemas import EventSchemas
from sluicegate.core.cloudevents.topics import EventTopics
from sluicegate.core.cloudevents.types import EventTypes
from sluicegate.core.consumers.registry import ConsumerInstances
from sluicegate.core.consumers.stream import Streams
from sluicegate.core.limits.policy import Limits
from sluicegate.core.longpoll import LongPolls
from sluicegate.core.producer import Producer
from sluicegate.core.schemas.registry import SchemaRegistry
from sluicegate.errors import Unauthenticated
from sluicegate.storage.base import Log

__all__ = ["Gateway"]


class Gateway:
    """Topics, producing, schemas, clients and limits over one log.

    Built once per process; dialects receive it and hold no storage code of their own.
    ``start()`` loads the state kept in internal topics; ``run()`` is the gateway's
    housekeeping (following other nodes' state changes, reaping idle consumers) and runs
    in the server's TaskGroup until cancelled.
    """

    def __init__(self, settings: Settings, log: Log) -> None:
        self.settings = settings
        self.log = log
        self.topics = TopicCatalog(log, settings.topics)
        self.producer = Producer(log, self.topics)
        self.schemas = SchemaRegistry(log)
        self.clients = ClientStore(log, settings.auth.clients)
        self.auth = Authenticator(settings.auth, self.clients)
        self.limits = Limits(settings.limits)
        self.event_types = TypeRouter(settings.cloudevents)
        self.event_topics = EventTopics(log, settings.cloudevents)
        #: Every CloudEvents type produced so far and its topics (consumers subscribe by it).
        self.type_registry = EventTypes(log)
        #: CloudEvents are stored only through ``event_ids.append_once`` (source + id once).
        self.event_ids = EventIds(log, settings.cloudevents)
        self.event_schemas = EventSchemas(self.schemas)
        self.event_producer = EventProducer(
            settings.cloudevents,
            router=self.event_types,
            topics=self.event_topics,
            types=self.type_registry,
            ids=self.event_ids,
            schemas=self.event_schemas,
        )
        #: This node's CloudEvents consumer instances (long polling; WebSocket and SSE next).
        self.consumers = ConsumerInstances(
            log, LongPolls(log, self.limits.long_polls), consumer_settings(settings.cloudevents)
        )
        #: The consumer instances streaming over a connection (WebSocket, Server-Sent Events).
        self.streams = Streams(self.consumers)
        #: The gateway nodes sharing this log (this one alone on the embedded log).
        self.cluster = Membership(
            log,
            settings.cluster,
            shared=settings.storage.backend == "kafka",
            counts=self._instance_counts,
        )

    def _instance_counts(self) -> tuple[int, int]:
        """This node's consumer instances and streams, for its heartbeats."""
        return int(self.consumers.stats()["instances"]), len(self.streams)

    def authorize(self, principal: Principal | None, action: Action, topic: str) -> None:
        """Raise ``Unauthenticated`` without a principal, ``Forbidden`` without the right."""
        if principal is None:
            raise Unauthenticated("this request needs credentials")
        principal.require(action, topic)

    def allowed(self, principal: Principal | None, action: Action, topic: str) -> bool:
        return principal is not None and principal.allows(action, topic)

    async def start(self) -> None:
        """Load state from the log; the log must be running."""
        await self.auth.load()
        await self.schemas.load()
        await self.event_schemas.load_configured(self.settings.cloudevents.schemas)
        await self.type_registry.load()
        await self.event_ids.load()
        await self.cluster.start()

    async def run(self) -> None:
        """Housekeeping until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.schemas.follow(), name="schemas.follow")
            tg.create_task(self.auth.run(), name="auth")
            tg.create_task(self.type_registry.follow(), name="type_registry.follow")
            tg.create_task(self.consumers.run(), name="consumers.reaper")
            tg.create_task(self.cluster.run(), name="cluster.membership")
            tg.create_task(
                follow_types(self.type_registry, self.consumers), name="consumers.follow_types"
            )
