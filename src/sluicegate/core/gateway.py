"""The gateway core: everything a dialect may use, and nothing of HTTP."""

from __future__ import annotations

import asyncio

from sluicegate.config import Settings
from sluicegate.core.auth.authenticator import Authenticator
from sluicegate.core.auth.clients import ClientStore
from sluicegate.core.auth.principals import Action, Principal
from sluicegate.core.catalog import TopicCatalog
from sluicegate.core.cloudevents.consumers import consumer_settings, follow_types
from sluicegate.core.cloudevents.dead_letters import StreamDeadLetters
from sluicegate.core.cloudevents.dedup import EventIds
from sluicegate.core.cloudevents.producer import EventProducer
from sluicegate.core.cloudevents.routing import TypeRouter
from sluicegate.core.cloudevents.schemas import EventSchemas
from sluicegate.core.cloudevents.topics import EventTopics
from sluicegate.core.cloudevents.types import EventTypes
from sluicegate.core.consumers.count_store import DeliveryCountStore
from sluicegate.core.consumers.lag import GroupLag
from sluicegate.core.consumers.registry import ConsumerInstances
from sluicegate.core.consumers.stream import Streams
from sluicegate.core.group_shards import GroupShards
from sluicegate.core.limits.policy import Limits
from sluicegate.core.longpoll import LongPolls
from sluicegate.core.membership import Membership
from sluicegate.core.producer import Producer
from sluicegate.core.schemas.registry import SchemaRegistry
from sluicegate.errors import Unauthenticated
from sluicegate.storage.base import Log
from sluicegate.storage.outages import until_available

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
        #: CloudEvents are stored only through ``event_ids.append_once`` or ``append_one``
        #: (source + id once).
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
        #: The long polls of each dialect that has them (``new_long_polls``).
        self._long_polls: list[LongPolls] = []
        #: This node's CloudEvents consumer instances (long polling; WebSocket and SSE next).
        #: Delivery counts of the groups that dead-letter, kept in the log.
        self.delivery_counts = DeliveryCountStore(log)
        self.consumers = ConsumerInstances(
            log,
            self.new_long_polls(),
            consumer_settings(settings.cloudevents),
            dead_letters=StreamDeadLetters(self.event_producer),
            count_store=self.delivery_counts,
        )
        #: Each consumer group's lag and health (/metrics, the admin API).
        self.consumer_lag = GroupLag(log, self.consumers)
        #: The consumer instances streaming over a connection (WebSocket, Server-Sent Events).
        self.streams = Streams(self.consumers)
        #: The gateway nodes sharing this log (this one alone on the embedded log).
        self.cluster = Membership(
            log,
            settings.cluster,
            shared=settings.storage.backend == "kafka",
            counts=self._instance_counts,
        )
        #: Which node serves each consumer group (``group_shards.owner(group)``).
        self.group_shards = GroupShards(log, self.cluster, settings.cluster)
        self.consumers.placement = self.group_shards

    def new_long_polls(self) -> LongPolls:
        """Long polls of requests, under the long-poll caps, each dialect's own (its waits
        are counted apart), all ended when the server stops (``stop_serving``)."""
        polls = LongPolls(self.log, self.limits.long_polls)
        self._long_polls.append(polls)
        return polls

    async def stop_serving(self, grace: float) -> None:
        """The server stops taking requests: every long poll answers now, as at its
        timeout, and every stream is told to end, within ``grace`` seconds."""
        for polls in self._long_polls:
            polls.end()
        await self.streams.close_all(grace)

    def _instance_counts(self) -> tuple[int, int]:
        """This node's consumer instances and streams, for its heartbeats."""
        return int(self.consumers.stats()["instances"]), len(self.streams)

    def open_consumers(self) -> dict[str, int]:
        """CloudEvents consumers waiting or streaming now, by kind (for /metrics)."""
        return {"long_poll": self.consumers.long_polls.waiting, **self.streams.open_by_kind}

    def authorize(self, principal: Principal | None, action: Action, topic: str) -> None:
        """Raise ``Unauthenticated`` without a principal, ``Forbidden`` without the right."""
        if principal is None:
            raise Unauthenticated("this request needs credentials")
        principal.require(action, topic)

    def authorize_describe(self, principal: Principal | None, topic: str) -> None:
        """``authorize`` for seeing a topic described: any permission on it will do."""
        if principal is None:
            raise Unauthenticated("this request needs credentials")
        principal.require_describe(topic)

    async def start(self) -> None:
        """Load the state kept in the log (the log must be running), waiting out storage
        outages.

        A cluster lost while the state is read fails a read within the request timeout;
        the state is then read again from where it stopped: every loader is safe to call
        again (a state topic takes up its replay, ``EventIds`` reads its markers afresh,
        registrations and heartbeats are written again alike), so a record is applied once.
        """
        await until_available(self._load, "reading the gateway's state failed")

    async def _load(self) -> None:
        await self.auth.load()
        await self.schemas.load()
        await self.event_schemas.load_configured(self.settings.cloudevents.schemas)
        await self.type_registry.load()
        await self.event_ids.load()
        await self.cluster.start()
        await self.group_shards.load()
        await self.delivery_counts.load()

    async def run(self) -> None:
        """Housekeeping until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.schemas.follow(), name="schemas.follow")
            tg.create_task(self.auth.run(), name="auth")
            tg.create_task(self.type_registry.follow(), name="type_registry.follow")
            tg.create_task(self.event_ids.follow(), name="event_ids.follow")
            tg.create_task(self.consumers.run(), name="consumers.reaper")
            tg.create_task(self.cluster.run(), name="cluster.membership")
            tg.create_task(self.group_shards.run(), name="cluster.group_shards")
            tg.create_task(
                self.consumers.close_lost(self.group_shards.lost()), name="consumers.lost_shards"
            )
            tg.create_task(self.delivery_counts.follow(), name="delivery_counts.follow")
            tg.create_task(
                follow_types(self.type_registry, self.consumers), name="consumers.follow_types"
            )
