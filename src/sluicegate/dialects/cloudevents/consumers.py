"""The long-polling consumer API: create an instance, poll it (raw, event, events),
confirm, report dead events, delete.

``POST /ce/consumers`` answers ``201`` with the instance's absolute URL,
``{base}/{bridge}/ce/consumers/{group}/instances/{instance}`` (base: see
``http.base_url``; bridge: ``server.node_id``). Every other route is under that URL. The
work is the consumer core's (``core.consumers``) on a CloudEvents subscription
(``core.cloudevents.consumers``); here requests are parsed and events rendered:

* ``…/raw``: the data as the body, every attribute as a ``ce-`` header, ``ce-offset``;
* ``…/event``: one ``application/cloudevents+json`` event with ``offset``;
* ``…/events``: an ``application/cloudevents-batch+json`` array (``cloudevents.batch_size``
  events and ``cloudevents.batch_bytes`` of data at most); the same array as
  ``application/cloudevents+json``, the type MConnect Events documents for it, to a
  client whose ``Accept`` asks for that type and not the batch type.

A poll with nothing to deliver waits (``cloudevents.poll_timeout``, or ``?timeout=``
seconds up to ``cloudevents.max_poll_timeout``) and answers ``204``. Errors are rendered
by ``errors.py``: 401 for every authorization failure (a client without
``ce_consume_types`` is no consumer), 404 for an instance that is not there — deleted,
expired, another client's, or on another bridge.
"""

from __future__ import annotations

import math
from urllib.parse import quote, urlsplit

import msgspec

from sluicegate.core.auth.authenticator import Credentials
from sluicegate.core.auth.principals import MAX_DELIVERIES, Principal
from sluicegate.core.cloudevents.binding import http_binary, structured_batch_of, structured_json
from sluicegate.core.cloudevents.consumers import (
    DEFAULT_GROUP,
    EventSubscription,
    check_group_name,
    storage_group,
)
from sluicegate.core.cloudevents.streams import dead_topic
from sluicegate.core.consumers.batch import Batch
from sluicegate.core.consumers.instance import ConsumerInstance
from sluicegate.core.gateway import Gateway
from sluicegate.core.longpoll import Abandoned
from sluicegate.dialects.cloudevents.errors import render_error
from sluicegate.dialects.cloudevents.produce import consumer_of, raw_event, require_consumer
from sluicegate.errors import BadRequest, UnknownConsumerInstance
from sluicegate.http.base_url import BaseUrl
from sluicegate.http.forwarding import Forwarder
from sluicegate.http.request import ClientDisconnected, Request
from sluicegate.http.responses import Response
from sluicegate.http.router import Route
from sluicegate.http.tls import peer_certificate

__all__ = [
    "max_deliveries_of",
    "routes",
    "still_allowed",
    "stream_credentials",
    "subscription_of",
]

STRUCTURED = b"application/cloudevents+json"
BATCH = b"application/cloudevents-batch+json"
INSTANCE_PATH = "/{bridge}/ce/consumers/{group}/instances/{instance}"
_MAX_OFFSET_DIGITS = 18
_FLAGS = {"true": True, "false": False, "1": True, "0": False}


def _batch_media_type(request: Request) -> bytes:
    """The Content-Type of ``…/events``: the CloudEvents JSON batch format's, unless the
    client's ``Accept`` names ``application/cloudevents+json`` and not it."""
    accept = request.raw_headers.get(b"accept")
    if accept is None or b"cloudevents+json" not in accept.lower():
        return BATCH  # also what "*/*", no Accept and the batch type itself get
    named = {part.split(b";", 1)[0].strip().lower() for part in accept.split(b",")}
    return STRUCTURED if STRUCTURED in named and BATCH not in named else BATCH


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_param(name)
    if value is None:
        return default
    flag = _FLAGS.get(value.lower())
    if flag is None:
        raise BadRequest(
            f"query parameter {name} must be true or false, got {value[:40]!r}", field=name
        )
    return flag


def _offset(request: Request) -> int | None:
    value = request.query_param("offset")
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):
        raise BadRequest(
            f"query parameter offset must be an event's offset (a positive integer), "
            f"got {value[:40]!r}",
            field="offset",
        )
    if len(value) > _MAX_OFFSET_DIGITS:
        raise BadRequest(
            f"offset {value[:40]} was never delivered: an instance's offsets have at most "
            f"{_MAX_OFFSET_DIGITS} digits",
            field="offset",
        )
    return int(value)


def max_deliveries_of(request: Request, principal: Principal) -> int:
    """The group's ``max_deliveries``: the query option, else the client's
    ``ce_max_deliveries`` (0: off)."""
    value = request.query_param("max_deliveries")
    if value is None:
        return principal.permissions.ce_max_deliveries
    if not (value.isascii() and value.isdigit() and int(value) <= MAX_DELIVERIES):
        raise BadRequest(
            f"query parameter max_deliveries must be 0 (off) to {MAX_DELIVERIES}, "
            f"got {value[:40]!r}",
            field="max_deliveries",
        )
    return int(value)


def stream_credentials(request: Request, gateway: Gateway) -> Credentials:
    """The credentials a stream's handshake came with, to prove again while it lasts
    (``still_allowed`` here; the topic admin API's tail asks for ``consume``)."""
    authorization = request.raw_headers.get(b"authorization")
    return gateway.auth.credentials(authorization, peer_certificate(request.scope))


def still_allowed(credentials: Credentials, instance: ConsumerInstance) -> None:
    """Prove a stream's credentials again before it delivers: ``Unauthenticated`` once
    the client's key is revoked or expired or the client deleted, ``Forbidden`` once it
    is no consumer; a change of the types it may consume is taken by the instance, as
    each request to a long-polling instance does (``Consumers._instance``)."""
    principal = require_consumer(credentials.principal())
    subscription = instance.subscription
    if isinstance(subscription, EventSubscription) and subscription.follows(principal):
        instance.resubscribe()


def subscription_of(
    request: Request, principal: Principal, gateway: Gateway
) -> tuple[str, EventSubscription]:
    """The group and the subscription the query options ask for (``events``, ``test``,
    ``dead``, ``group``): a long-polling instance's and a WebSocket connection's."""
    events = _flag(request, "events", True)
    test = _flag(request, "test", True)
    dead = _flag(request, "dead", False)
    group = check_group_name(request.query_param("group") or DEFAULT_GROUP)
    subscription = EventSubscription(
        principal, gateway.type_registry, gateway.event_topics, events=events, test=test, dead=dead
    )
    return group, subscription


class Consumers:
    """The consumer API over the gateway's consumer instances."""

    def __init__(self, gateway: Gateway) -> None:
        settings = gateway.settings
        ce = settings.cloudevents
        self._gateway = gateway
        self._instances = gateway.consumers
        self._bridge = settings.server.node_id
        self._bridge_in_url = quote(settings.server.node_id, safe="")
        self._base_url = BaseUrl(ce.public_base_url, settings.server.trusted_proxies)
        self._poll_timeout = ce.poll_timeout
        self._max_poll_timeout = ce.max_poll_timeout
        self._batch_size = ce.batch_size
        self._producer = gateway.event_producer

    # -- the instance ----------------------------------------------------------------

    def group_of(self, request: Request) -> str:
        """The storage group a ``POST /ce/consumers`` asks for (where it is served)."""
        principal = consumer_of(request)
        group = check_group_name(request.query_param("group") or DEFAULT_GROUP)
        return storage_group(principal.name, group)

    def relocate(self, request: Request, location: bytes) -> bytes:
        """An instance URL made by another node, on this request's base URL."""
        path = urlsplit(location.decode("latin-1")).path
        return (self._base_url.of(request) + path).encode("latin-1")

    async def create(self, request: Request) -> Response:
        """A new instance in the client's group; 201 with its absolute URL."""
        principal = consumer_of(request)
        group, subscription = subscription_of(request, principal, self._gateway)
        base = self._base_url.of(request)
        instance = await self._instances.create(
            principal.name,
            storage_group(principal.name, group),
            subscription,
            max_deliveries=max_deliveries_of(request, principal),
        )
        location = f"{base}/{self._bridge_in_url}/ce/consumers/{group}/instances/{instance.id}"
        return Response(b"", 201, content_type=None, headers=[(b"location", location.encode())])

    def _instance(self, request: Request) -> ConsumerInstance:
        """The instance the path names, if it is this client's and on this bridge."""
        principal = consumer_of(request)
        params = request.path_params
        bridge, group = params["bridge"], params["group"]
        if bridge != self._bridge:
            raise UnknownConsumerInstance(
                f"consumer instance not found: it is not on this bridge ({self._bridge!r}; "
                f"the URL names {bridge[:64]!r}). Use the URL the instance was created with.",
                bridge=bridge[:64],
            )
        instance = self._instances.get(
            principal.name, storage_group(principal.name, group), params["instance"]
        )
        subscription = instance.subscription
        if isinstance(subscription, EventSubscription) and subscription.follows(principal):
            instance.resubscribe()
        return instance

    async def delete(self, request: Request) -> Response:
        """Delete the instance: its unconfirmed events go to the group's other instances."""
        instance = self._instance(request)
        await self._instances.discard(instance)
        return Response(b"", 204, content_type=None)

    # -- polling ---------------------------------------------------------------------

    def _timeout(self, request: Request) -> float:
        value = request.query_param("timeout")
        if value is None:
            return self._poll_timeout
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if not 0 <= seconds <= self._max_poll_timeout:
            raise BadRequest(
                f"query parameter timeout must be seconds from 0 to {self._max_poll_timeout:g}, "
                f"got {value[:40]!r}",
                field="timeout",
            )
        return seconds

    async def _poll(self, request: Request, max_events: int) -> Batch:
        instance = self._instance(request)
        if instance.confirmable is not None:
            raise BadRequest(
                "this instance streams its events over Server-Sent Events (GET /ce/sse); "
                "it can be confirmed, sent dead events and deleted here, not polled"
            )
        timeout = self._timeout(request)
        if _flag(request, "confirm", False):
            # Its answer is the next events, not the commit: the group's background
            # round writes it (see ``ConsumerInstance.confirm``).
            await instance.confirm(durable=False)
        try:
            return await instance.next_batch(max_events, timeout, request.disconnected)
        except Abandoned:
            raise ClientDisconnected from None

    async def raw(self, request: Request) -> Response:
        """The next event in binary mode: data as the body, attributes as headers."""
        batch = await self._poll(request, 1)
        if not batch:
            return Response(b"", 204, content_type=None)
        headers, body = http_binary(batch.records[0], batch.first)
        return Response(body, 200, content_type=None, headers=headers)

    async def event(self, request: Request) -> Response:
        """The next event in structured mode, with its offset."""
        batch = await self._poll(request, 1)
        if not batch:
            return Response(b"", 204, content_type=None)
        return Response(structured_json(batch.records[0], batch.first), content_type=STRUCTURED)

    async def events(self, request: Request) -> Response:
        """The next events (``cloudevents.batch_size`` at most) as a batch."""
        batch = await self._poll(request, self._batch_size)
        if not batch:
            return Response(b"", 204, content_type=None)
        body = structured_batch_of(batch.records, batch.first)
        return Response(body, content_type=_batch_media_type(request))

    # -- confirming and dead events --------------------------------------------------

    async def confirm(self, request: Request) -> Response:
        """Confirm every event up to ``offset`` (all delivered ones without it)."""
        instance = self._instance(request)
        await instance.confirm(_offset(request))
        return Response(b"", 204, content_type=None)

    async def dead(self, request: Request) -> Response:
        """Store a dead event (binary mode) in the client's dead stream; 202 once durable."""
        instance = self._instance(request)
        event = await raw_event(request)
        if "offset" in event.extensions:
            # The event as ``…/raw`` gave it, ce-offset included: that offset was this
            # instance's delivery number, nothing of the event's own.
            extensions = {k: v for k, v in event.extensions.items() if k != "offset"}
            event = msgspec.structs.replace(event, extensions=extensions)
        await self._producer.produce_to_stream(
            dead_topic(instance.owner), [event], check_data=False
        )
        return Response(b"", 202, content_type=None)


def routes(gateway: Gateway, forwarder: Forwarder | None = None) -> list[Route]:
    """The consumer API's routes; with ``forwarder``, an instance route sends a request
    for another node's instance on to that node, and a creation goes to the node serving
    its group (``http.forwarding``)."""
    api = Consumers(gateway)
    wrap = forwarder.wrap if forwarder is not None else (lambda endpoint: endpoint)
    create = (
        forwarder.place(api.create, gateway.group_shards, api.group_of, api.relocate)
        if forwarder is not None
        else api.create
    )
    get, post = frozenset({"GET"}), frozenset({"POST"})
    table = [
        ("/ce/consumers", create, post),
        (INSTANCE_PATH, api.delete, frozenset({"DELETE"})),
        (f"{INSTANCE_PATH}/raw", api.raw, get),
        (f"{INSTANCE_PATH}/event", api.event, get),
        (f"{INSTANCE_PATH}/events", api.events, get),
        (f"{INSTANCE_PATH}/confirm", api.confirm, post),
        (f"{INSTANCE_PATH}/dead", api.dead, post),
    ]
    return [
        Route(
            path,
            wrap(endpoint) if path.startswith(INSTANCE_PATH) else endpoint,
            methods=methods,
            render_error=render_error,
            dialect="cloudevents",
            head=False,  # a poll's GET delivers events
        )
        for path, endpoint, methods in table
    ]
