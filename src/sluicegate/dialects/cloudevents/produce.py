"""``POST /ce/produce/raw``, ``/ce/produce/event``, ``/ce/produce/events``: parse the HTTP
binding's binary, structured or batch form, let the core check and store, answer 202.

``202`` is sent only once every event is durable. Errors are rendered by ``errors.py``
(which answers 401 for every authorization failure).
"""

from __future__ import annotations

from functools import partial

from sluicegate.core.auth.principals import Principal
from sluicegate.core.cloudevents.binding import (
    PlainBatch,
    decode_batch,
    from_http_binary,
    from_structured,
    plain_binary,
)
from sluicegate.core.cloudevents.event import CloudEvent
from sluicegate.core.cloudevents.producer import EventProducer, require_producer
from sluicegate.core.gateway import Gateway
from sluicegate.core.limits.json_limits import JsonLimits
from sluicegate.dialects.cloudevents.errors import render_error
from sluicegate.errors import Forbidden, Unauthenticated, UnknownTopic, UnsupportedMediaType
from sluicegate.http.json_body import check_utf8
from sluicegate.http.request import Request
from sluicegate.http.responses import Response
from sluicegate.http.router import Route

__all__ = ["RAW_MEDIA_TYPES", "principal_of", "raw_event", "routes"]

#: The Content-Types of a raw event's body, as the seed lists them.
RAW_MEDIA_TYPES = frozenset({"application/json", "application/octet-stream", "text/plain"})
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


def principal_of(request: Request) -> Principal:
    """The request's client (every route here is authenticated)."""
    if request.principal is None:
        raise Unauthenticated("this request needs credentials")
    return request.principal


def producer_of(request: Request) -> Principal:
    """The request's client, if it is a producer: refused before its body is read."""
    principal = principal_of(request)
    require_producer(principal)
    return principal


def consumer_of(request: Request) -> Principal:
    """The request's client, if it is a consumer (401 otherwise, as every authorization
    failure of this dialect)."""
    return require_consumer(principal_of(request))


def require_consumer(principal: Principal) -> Principal:
    """``principal``, if it is a consumer; ``Forbidden`` otherwise."""
    if not principal.permissions.ce_consume_types:
        raise Forbidden(
            f"client {principal.name!r} is not a consumer: it is not registered as a "
            "CloudEvents consumer (it has no ce_consume_types)",
            check="consumer",
        )
    return principal


def _refused(media_type: str) -> str:
    """How a 415 names the request's media type (``""``: it sent none)."""
    return f"unsupported Content-Type {media_type!r}" if media_type else "no Content-Type"


def _require_media_type(request: Request, expected: str, hint: str) -> None:
    if request.media_type != expected:
        refused = _refused(request.media_type)
        raise UnsupportedMediaType(f"{refused}: expected {expected} ({hint})")


async def raw_event(request: Request) -> CloudEvent:
    """The event of a raw (binary-mode) request: ``ce-`` headers and a body whose
    Content-Type is one of ``RAW_MEDIA_TYPES``. Also the form of test and dead events."""
    media_type = _raw_media_type(request, "")
    body = await request.body(json=media_type == "application/json")
    return from_http_binary(request.raw_headers, body)


#: Where a producer's other forms of event go, said when a raw event's type is refused.
_OTHER_FORMS = " (structured events go to /ce/produce/event, batches to /ce/produce/events)"


def _raw_media_type(request: Request, others: str = _OTHER_FORMS) -> str:
    """The media type of a raw event's body, refused unless one of ``RAW_MEDIA_TYPES``;
    ``others`` ends the refusal (where the other forms go, for a producer)."""
    media_type = request.media_type
    if media_type not in RAW_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"{_refused(media_type)}: a raw event's body is application/json, "
            f"application/octet-stream or text/plain{others}"
        )
    return media_type


class Produce:
    """The three produce endpoints over the gateway's ``EventProducer``."""

    def __init__(self, producer: EventProducer) -> None:
        self._produce = producer.produce
        self._produce_one = producer.produce_one
        self._produce_binary = producer.produce_binary
        self._produce_batch = producer.produce_batch
        self._topic_gone = producer.topic_gone

    async def raw(self, request: Request) -> Response:
        """One event in binary mode; 202 once durable."""
        # producer_of's steps, without its call and principal_of's.
        principal = request.principal
        if principal is None:
            principal = principal_of(request)  # raises Unauthenticated
        require_producer(principal)
        # raw_event's steps, without its coroutine frame.
        media_type = _raw_media_type(request)
        json = media_type == "application/json"
        body = request.ready_body(json=json)  # without body()'s coroutine when it is there
        if body is None:
            body = await request.body(json=json)
        headers = request.raw_headers
        # The usual event takes the plain lane; anything else, or any doubt, the general
        # one, which gives every error.
        plain = plain_binary(headers, body)
        stored = None if plain is None else self._produce_binary(principal, plain)
        if stored is None:
            event = from_http_binary(headers, body) if plain is None else plain.cloud_event()
            stored = self._produce_one(principal, event)
        try:
            await stored
        except UnknownTopic:
            # The type's topic was deleted since it was looked up: nothing was stored.
            # Made again by this second try, which a client would otherwise have to make.
            self._topic_gone()
            event = from_http_binary(headers, body) if plain is None else plain.cloud_event()
            await self._produce_one(principal, event)
        return Response(b"", 202, content_type=None)

    async def event(self, request: Request) -> Response:
        """One event in structured mode; 202 once durable."""
        principal = producer_of(request)
        _require_media_type(request, STRUCTURED, "a batch goes to /ce/produce/events")
        body = await request.body(json=True)
        try:
            await self._produce_one(principal, from_structured(body))
        except UnknownTopic:  # as in raw
            self._topic_gone()
            await self._produce_one(principal, from_structured(body))
        return Response(b"", 202, content_type=None)

    async def events(self, request: Request) -> Response:
        """A batch: all events stored, in one atomic append, or none; 202 once durable."""
        principal = producer_of(request)
        _require_media_type(request, BATCH, "a single event goes to /ce/produce/event")
        # Read without the JSON checks of ``body(json=True)``: ``decode_batch`` makes them
        # (``_checked_batch_body``) before it judges any event, so every answer is the same,
        # and settles the limits of a plain batch (the usual) by its decoded shape, not by
        # passes over the body's structure (as costly as decoding it).
        body = request.ready_body()  # without body()'s coroutine when it is there
        if body is None:
            body = await request.body()
        check = partial(_checked_batch_body, request.json_limits)
        try:
            await self._produce_batch(principal, decode_batch(body, check), within=len(body))
        except UnknownTopic:  # as in raw
            self._topic_gone()
            await self._produce_batch(principal, decode_batch(body, check), within=len(body))
        return Response(b"", 202, content_type=None)


def _checked_batch_body(limits: JsonLimits | None, body: bytes, plain: PlainBatch | None) -> None:
    """``Request.body(json=True)``'s checks of a batch's ``body`` (``plain``: the body
    decoded as a plain batch, or ``None``): the JSON limits, then UTF-8."""
    if limits is not None and (
        plain is None or not limits.bounded_at_depth(body, plain.depth_bound(limits.max_depth))
    ):
        limits.check(body)
    check_utf8(body)


def routes(gateway: Gateway) -> list[Route]:
    """The producer API's routes."""
    produce = Produce(gateway.event_producer)
    post = frozenset({"POST"})
    return [
        Route(path, endpoint, methods=post, render_error=render_error, dialect="cloudevents")
        for path, endpoint in (
            ("/ce/produce/raw", produce.raw),
            ("/ce/produce/event", produce.event),
            ("/ce/produce/events", produce.events),
        )
    ]
