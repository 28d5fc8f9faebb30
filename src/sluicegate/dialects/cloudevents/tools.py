"""The tool API, for developers: ``GET /ce/tools/my-settings`` and
``POST /ce/tools/consumer/test``.

``my-settings`` shows the caller's own configuration: the sources and types it may
produce, the types it consumes (and which of them have been produced so far), the routes
that put those types in shared topics, the limits its requests meet, and where to
connect. Never a secret: no key, no certificate, no other client. The seed calls its
format internal and changeable; ``openapi.json`` describes the current one.

``consumer/test`` stores a raw event (the form of ``POST /ce/produce/raw``) in the
caller's own test stream, which its ``test=true`` consumers receive, whatever their
group. Only a consumer (a client with ``ce_consume_types``) may; anyone else gets 401.
"""

from __future__ import annotations

import msgspec

from sluicegate.config import CloudEventSettings
from sluicegate.core.auth.patterns import PatternSet
from sluicegate.core.auth.principals import Principal
from sluicegate.core.cloudevents import streams
from sluicegate.core.cloudevents.producer import EventProducer
from sluicegate.core.cloudevents.types import EventTypes
from sluicegate.core.gateway import Gateway
from sluicegate.dialects.cloudevents.errors import render_error
from sluicegate.dialects.cloudevents.produce import consumer_of, principal_of, raw_event
from sluicegate.dialects.cloudevents.sse import SSE_PATH
from sluicegate.dialects.cloudevents.websocket import WEBSOCKET_PATH
from sluicegate.errors import Forbidden
from sluicegate.http.request import Request
from sluicegate.http.responses import Response
from sluicegate.http.router import Route

__all__ = ["MySettings", "routes"]


class RouteOut(msgspec.Struct, frozen=True):
    """An explicit route: events of these types are stored in ``topic`` together."""

    types: list[str]
    topic: str


class ProducerOut(msgspec.Struct, frozen=True):
    sources: list[str]
    types: list[str]


class ConsumerOut(msgspec.Struct, frozen=True):
    types: list[str]
    #: Types produced so far that ``types`` match: what a new consumer starts receiving.
    types_produced: list[str]
    websocket: str
    sse: str
    #: What a consumer's requests meet: the long poll's wait (default and longest), the
    #: most events one poll returns, unconfirmed events a WebSocket connection may hold,
    #: and the idle time after which an instance expires.
    poll_timeout_seconds: float
    max_poll_timeout_seconds: float
    batch_size: int
    websocket_window: int
    idle_timeout_seconds: float
    #: Deliveries after which an unconfirmed event goes to the dead stream (0: off), unless
    #: a group asks for its own with ``max_deliveries``.
    max_deliveries: int


class LimitsOut(msgspec.Struct, frozen=True):
    max_request_bytes: int
    max_event_bytes: int
    clock_skew_seconds: float
    partitions: int
    retention_hours: float


class MySettings(msgspec.Struct, frozen=True):
    """The body of ``GET /ce/tools/my-settings``."""

    client: str
    bridge: str
    producer: ProducerOut | None
    consumer: ConsumerOut | None
    routes: list[RouteOut]
    limits: LimitsOut


def _overlaps(mine: PatternSet, theirs: list[str]) -> bool:
    """Whether a route's type patterns and a client's may name a common type."""
    route = PatternSet(theirs)
    return any(mine.matches(t) or route.matches(p) for t in theirs for p in mine.patterns)


class Tools:
    """The two tool endpoints."""

    def __init__(self, gateway: Gateway) -> None:
        self._settings: CloudEventSettings = gateway.settings.cloudevents
        self._bridge = gateway.settings.server.node_id
        self._registry: EventTypes = gateway.type_registry
        self._producer: EventProducer = gateway.event_producer
        self._encode = msgspec.json.Encoder().encode

    def settings_of(self, principal: Principal) -> MySettings:
        """What ``principal`` may do, and the settings its requests meet."""
        permissions = principal.permissions
        ce = self._settings
        produces = PatternSet(permissions.ce_produce_types)
        consumes = PatternSet(permissions.ce_consume_types)
        producer = (
            ProducerOut(sources=permissions.ce_sources, types=permissions.ce_produce_types)
            if permissions.ce_produce_types and permissions.ce_sources
            else None
        )
        consumer = (
            ConsumerOut(
                types=permissions.ce_consume_types,
                types_produced=self._registry.types_matching(consumes),
                websocket=WEBSOCKET_PATH,
                sse=SSE_PATH,
                poll_timeout_seconds=ce.poll_timeout,
                max_poll_timeout_seconds=ce.max_poll_timeout,
                batch_size=ce.batch_size,
                websocket_window=ce.websocket_window,
                idle_timeout_seconds=ce.consumer_idle_timeout,
                max_deliveries=permissions.ce_max_deliveries,
            )
            if permissions.ce_consume_types
            else None
        )
        routes = [
            RouteOut(types=route.types, topic=route.topic)
            for route in ce.routes
            if _overlaps(produces, route.types) or _overlaps(consumes, route.types)
        ]
        return MySettings(
            client=principal.name,
            bridge=self._bridge,
            producer=producer,
            consumer=consumer,
            routes=routes,
            limits=LimitsOut(
                max_request_bytes=ce.max_request_bytes,
                max_event_bytes=ce.max_event_bytes,
                clock_skew_seconds=ce.clock_skew,
                partitions=ce.partitions,
                retention_hours=ce.retention_ms / 3_600_000,
            ),
        )

    async def my_settings(self, request: Request) -> Response:
        """The caller's settings; 200. A client registered neither as a producer nor as
        a consumer gets the seed's 401 for "not registered as producer or consumer", as
        on every other route of the dialect."""
        principal = principal_of(request)
        settings = self.settings_of(principal)
        if settings.producer is None and settings.consumer is None:
            raise Forbidden(
                f"client {principal.name!r} is registered neither as a CloudEvents producer "
                "(it needs ce_sources and ce_produce_types) nor as a consumer (it needs "
                "ce_consume_types)",
                check="client",
            )
        return Response(self._encode(settings))

    async def consumer_test(self, request: Request) -> Response:
        """A test event into the caller's test stream; 202 once durable."""
        principal = consumer_of(request)
        event = await raw_event(request)
        await self._producer.produce_to_stream(streams.test_topic(principal.name), [event])
        return Response(b"", 202, content_type=None)


def routes(gateway: Gateway) -> list[Route]:
    """The tool API's routes."""
    tools = Tools(gateway)
    return [
        Route(
            "/ce/tools/my-settings",
            tools.my_settings,
            render_error=render_error,
            dialect="cloudevents",
        ),
        Route(
            "/ce/tools/consumer/test",
            tools.consumer_test,
            methods=frozenset({"POST"}),
            render_error=render_error,
            dialect="cloudevents",
        ),
    ]
