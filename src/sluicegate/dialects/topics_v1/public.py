"""Topics v1 public API: publish, batch publish and cursor consume by topic id.

``/api/v1/...`` as the seed lists it, and the legacy paths under ``/api/pubsub/topics/``
(``{id}/publish``, ``{id}/batch/publish``, ``{id}/consume``), which are rate-limited per
client (``limits.dialect_rates.topics_v1_legacy``, 1,000 requests a minute by default).
"""

from __future__ import annotations

import asyncio
import functools
import time

import msgspec

from sluicegate.core.auth.principals import ANONYMOUS
from sluicegate.core.cursor_reader import CursorReader, Delivery
from sluicegate.core.cursors import single_partition_id
from sluicegate.core.gateway import Gateway
from sluicegate.core.longpoll import Abandoned
from sluicegate.core.records import NewRecord, parse_timestamp
from sluicegate.core.schemas.validators import TopicSchemas, ValueSchema, describe_violations
from sluicegate.core.topics import Topic
from sluicegate.dialects.topics_v1.errors import render_error
from sluicegate.dialects.topics_v1.payloads import PayloadReader, message_time
from sluicegate.dialects.topics_v1.wire import (
    MAX_BATCH_PUBLISH,
    BatchPublishRequest,
    BatchPublishResponse,
    BatchResult,
    ConsumeRequest,
    ConsumeResponse,
    Message,
)
from sluicegate.errors import (
    BadRequest,
    InvalidSchema,
    Overloaded,
    RateLimited,
    UnknownTopic,
    UnsupportedMediaType,
)
from sluicegate.http.json_body import decode_json, lone_surrogate_at
from sluicegate.http.request import ClientDisconnected, Request
from sluicegate.http.responses import Response
from sluicegate.http.router import Route

__all__ = ["TopicsV1Public", "routes"]

_decode_any = msgspec.json.Decoder().decode
_check_json = msgspec.json.Decoder(msgspec.Raw).decode
_encode = msgspec.json.Encoder().encode
#: Media types a body may be sent as. The seed's own curl samples send no Content-Type,
#: so curl sends ``application/x-www-form-urlencoded``: the body is JSON all the same.
_MEDIA_TYPES = frozenset({"", "application/json", "application/x-www-form-urlencoded"})
_MAX_TOPIC_ID_DIGITS = 18
#: A batch's answer names its messages by their index, as text.
_INDEXES = tuple(str(index) for index in range(MAX_BATCH_PUBLISH))


@functools.lru_cache(maxsize=1024)
def _topic_id(text: str) -> int:
    # Clients send the same few ids again and again: parsed once each.
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_TOPIC_ID_DIGITS):
        raise BadRequest(f"invalid topic_id {text[:40]!r}: expected a positive integer")
    return int(text)


#: Content-Type values, as sent, that ``_check_media_type`` accepted: clients send the
#: same one or two, taken here by one set lookup (short ones only, a few dozen at most).
_ACCEPTED: set[bytes] = set()
_ACCEPTED_KEPT = 64
_ACCEPTED_BYTES = 128


def _check_media_type(request: Request) -> None:
    raw = request.raw_headers.get(b"content-type", b"")
    if raw in _ACCEPTED:
        return
    media_type = request.media_type
    if media_type not in _MEDIA_TYPES and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"unsupported Content-Type {media_type!r}: expected application/json"
        )
    if len(_ACCEPTED) < _ACCEPTED_KEPT and len(raw) <= _ACCEPTED_BYTES:
        _ACCEPTED.add(raw)


def _not_json(what: str, exc: msgspec.DecodeError, data: bytes) -> BadRequest:
    where = lone_surrogate_at(data)
    if where is not None:
        shown = "" if where == "the body" else f" in {where}"
        return BadRequest(
            f"{what} holds a lone UTF-16 surrogate escape (\\ud800-\\udfff){shown}, "
            "which is not Unicode text"
        )
    if str(exc).startswith("Number out of range"):
        # Valid JSON (a topic without a schema stores it as sent), but no number a
        # schema's checks can hold.
        return BadRequest(
            f"{what} holds a number beyond a double's range (such as 1e400), which the "
            "topic's schema cannot check"
        )
    return BadRequest(f"{what} is not valid JSON: {exc}")


def _stored_value(schema: ValueSchema | None, data: bytes, what: str) -> bytes:
    """The value to store for message ``data``: checked against the topic's schema."""
    try:
        if schema is None:
            _check_json(data)  # checked, not decoded: stored as sent
            return data
        datum = _decode_any(data)
    except msgspec.DecodeError as exc:
        raise _not_json(what, exc, data) from None
    violations = schema.violations(datum)
    if violations:
        listed, shown = describe_violations(violations)
        raise InvalidSchema(
            f"{what} does not comply with the topic's schema: {listed}", violations=shown
        )
    return schema.serialize(data, datum)


def _all_stored_values(schema: ValueSchema | None, raws: list[bytes]) -> list[bytes] | None:
    """The stored value of every message of a batch if all comply, found in one check.

    ``None``: some message may not comply, so each is checked on its own.
    """
    if schema is None:
        return raws  # each was checked as JSON when the request's body was decoded
    try:
        data = list(map(_decode_any, raws))
    except msgspec.DecodeError:
        return None  # the message is named by the check of each
    return schema.serialize_all(raws, data)


def _successes(ids: list[str]) -> dict[str, BatchResult]:
    """The ``message_ids`` of a batch stored whole."""
    results = [BatchResult(message_id=id_, result="success") for id_ in ids]
    return dict(zip(_INDEXES, results, strict=False))  # as many results as indexes used


class TopicsV1Public:
    """The public API over a gateway; one instance serves every request."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._catalog = gateway.topics
        self._producer = gateway.producer
        self._schemas = TopicSchemas(gateway.schemas)
        self._reader = CursorReader(gateway.log)
        self._long_polls = gateway.new_long_polls()
        self._payloads = PayloadReader(gateway.schemas)
        self._decode_consume = msgspec.json.Decoder(ConsumeRequest).decode
        self._decode_batch = msgspec.json.Decoder(BatchPublishRequest).decode

    async def _topic(self, request: Request) -> Topic:
        topic_id = _topic_id(request.path_params["topic_id"])
        return self._catalog.cached_by_id(topic_id) or await self._fresh_topic(topic_id)

    async def _fresh_topic(self, topic_id: int) -> Topic:
        try:
            return await self._catalog.by_id(topic_id)
        except UnknownTopic:
            raise UnknownTopic(f"no topic with id {topic_id}", topic_id=topic_id) from None

    async def publish(self, request: Request) -> Response:
        """Publish one message; 200 with its id once it is durable."""
        # ``_topic``, inlined: no coroutine per request when the topic is cached.
        topic_id = _topic_id(request.path_params["topic_id"])
        topic = self._catalog.cached_by_id(topic_id) or await self._fresh_topic(topic_id)
        self._gateway.authorize(request.principal, "produce", topic.name)
        # _check_media_type's own first test, inlined.
        if request.raw_headers.get(b"content-type", b"") not in _ACCEPTED:
            _check_media_type(request)
        body = request.ready_body(json=True)
        if body is None:
            body = await request.body(json=True)
        schema = self._schemas.for_topic(topic.name)
        if schema is None:
            # _stored_value's case without a schema, inlined: checked, stored as sent.
            try:
                _check_json(body)
            except msgspec.DecodeError as exc:
                raise _not_json("the message", exc, body) from None
            value = body
        else:
            value = _stored_value(schema, body, "the message")
        [appended] = await self._producer.send([self._producer.unkeyed_record(topic, value)])
        if topic.partitions == 1:
            published = single_partition_id(topic.id, appended.offset + 1)
        else:
            [text] = await self._reader.id_after(topic, [appended])
            published = text.encode()
        return Response(b'{"message_id":"' + published + b'"}')

    async def batch_publish(self, request: Request) -> Response:
        """Publish up to 100 messages; the valid ones are stored in one atomic append."""
        topic = await self._topic(request)
        self._gateway.authorize(request.principal, "produce", topic.name)
        _check_media_type(request)
        batch = decode_json(await request.body(json=True), self._decode_batch)
        raws = list(map(bytes, _payloads(batch)))
        schema = self._schemas.for_topic(topic.name)
        values = _all_stored_values(schema, raws)
        if values is not None:
            appended = await self._producer.send(self._producer.unkeyed_records(topic, values))
            stored = await self._reader.id_after(topic, appended)
            return Response(_encode(BatchPublishResponse(False, _successes(stored))))
        results: list[BatchResult | None] = []
        records: list[NewRecord] = []
        for index, raw in enumerate(raws):
            try:
                value = _stored_value(schema, raw, f"payloads[{index}]")
            except BadRequest as exc:
                results.append(BatchResult(result="error", error=exc.message))
                continue
            results.append(None)
            records.append(self._producer.unkeyed_record(topic, value))
        appended = await self._producer.send(records) if records else []
        ids = iter(await self._reader.id_after(topic, appended))
        answer = BatchPublishResponse(
            is_partial_error=len(records) < len(raws),
            message_ids={
                _INDEXES[index]: result or BatchResult(message_id=next(ids), result="success")
                for index, result in enumerate(results)
            },
        )
        return Response(_encode(answer))

    async def consume(self, request: Request) -> Response:
        """Up to ``batch_size`` messages after a cursor; a long poll if none are there yet."""
        topic = await self._topic(request)
        self._gateway.authorize(request.principal, "consume", topic.name)
        _check_media_type(request)
        body = await request.body(json=True)
        # No body at all (curl -X POST without --data) asks for the defaults.
        consume = decode_json(body, self._decode_consume) if body.strip() else ConsumeRequest()
        if consume.after_message_id is not None and consume.since_time is not None:
            raise BadRequest(
                "after_message_id and since_time cannot be used together: "
                "give after_message_id to go on from a message, or since_time to start at a time"
            )
        positions = await self._reader.start(
            topic, consume.after_message_id, _since(consume.since_time)
        )
        deliveries = await self._reader.read(topic, positions, consume.batch_size)
        if not deliveries and consume.timeout_secs > 0:
            deliveries = await self._long_poll(request, topic, positions, consume)
        payloads = self._payloads.payloads([record.value for record, _ in deliveries])
        messages = [
            Message(id_, payload, message_time(record.timestamp))
            for (record, id_), payload in zip(deliveries, payloads, strict=True)
        ]
        return Response(_encode(ConsumeResponse(messages)))

    async def _long_poll(
        self, request: Request, topic: Topic, positions: list[int], consume: ConsumeRequest
    ) -> list[Delivery]:
        """Wait up to ``timeout_secs`` for records after ``positions``, woken by the log.

        A topic deleted meanwhile answers 404; one purged meanwhile goes on waiting (the
        cursor is at its end, so nothing was missed) and answers what is published next.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + consume.timeout_secs
        client = request.principal.name if request.principal is not None else ANONYMOUS
        while (remaining := deadline - loop.time()) > 0:
            try:
                arrived = await self._long_polls.wait(
                    client,
                    self._reader.waiting_on(topic, positions),
                    remaining,
                    request.disconnected,
                )
            except Abandoned:
                raise ClientDisconnected from None
            except Overloaded as exc:
                # Workato's clients know 429 as "come back later"; the overall cap says so too.
                raise RateLimited(exc.message, retry_after=exc.retry_after) from None
            if not arrived:
                break
            # Woken: the topic may have been deleted (404) rather than written to.
            topic = await self._fresh_topic(topic.id)
            deliveries = await self._reader.read(topic, positions, consume.batch_size)
            if deliveries:
                return deliveries
        return []


def _payloads(batch: BatchPublishRequest) -> list[msgspec.Raw]:
    if batch.payloads is not None and batch.payload is not None:
        raise BadRequest("give the messages as payloads or as payload, not both")
    payloads = batch.payloads if batch.payloads is not None else batch.payload
    if payloads is None:
        raise BadRequest("payloads is required: an array of 1 to 100 messages")
    if not 1 <= len(payloads) <= MAX_BATCH_PUBLISH:
        raise BadRequest(
            f"payloads holds {len(payloads)} messages: expected 1 to {MAX_BATCH_PUBLISH}"
        )
    return payloads


def _since(text: str | None) -> int | None:
    """``since_time`` as the log's start time: the last microsecond of its millisecond, so
    that what is read is stamped at least a millisecond later. A time in the future means
    now (as the seed says).

    The seed offers a message's time as a place to go on from ("the Last message
    timestamp"), and a message's ``time`` is shown to the millisecond (``message_time``):
    compared to the microsecond, the message whose time was given came back with the
    next consume. A message is after ``since_time`` when its time as shown is.
    """
    if text is None:
        return None
    try:
        since = parse_timestamp(text)
    except ValueError as exc:
        raise BadRequest(f"invalid since_time: {exc}") from None
    return min(since, time.time_ns() // 1000) // 1000 * 1000 + 999


def routes(gateway: Gateway) -> list[Route]:
    """The public API's routes and their legacy twins."""
    api = TopicsV1Public(gateway)
    post = frozenset({"POST"})
    paths = [
        ("/api/v1/topics/{topic_id}/publish", api.publish, "topics_v1"),
        ("/api/v1/batch/topics/{topic_id}/publish", api.batch_publish, "topics_v1"),
        ("/api/v1/topics/{topic_id}/consume", api.consume, "topics_v1"),
        ("/api/pubsub/topics/{topic_id}/publish", api.publish, "topics_v1_legacy"),
        ("/api/pubsub/topics/{topic_id}/batch/publish", api.batch_publish, "topics_v1_legacy"),
        ("/api/pubsub/topics/{topic_id}/consume", api.consume, "topics_v1_legacy"),
    ]
    return [
        Route(path, endpoint, methods=post, render_error=render_error, dialect=dialect)
        for path, endpoint, dialect in paths
    ]
