"""``POST /v2/topics/{topic_name}/records``: parse, validate, serialize, produce."""

from __future__ import annotations

import binascii
import functools
import re
from typing import Literal

import msgspec

from sluicegate.core.auth.principals import Principal
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import Header, format_timestamp
from sluicegate.core.schemas.model import RegisteredSchema
from sluicegate.core.schemas.naming import subject_name
from sluicegate.core.schemas.registry import SchemaRegistry
from sluicegate.dialects.records_v2.errors import render_error
from sluicegate.dialects.records_v2.wire import (
    Payload,
    ProduceRequest,
    ProduceResponse,
    SchemaInfo,
)
from sluicegate.errors import (
    BadRequest,
    Forbidden,
    IncompatibleSchema,
    InvalidPartition,
    InvalidSchema,
    InvalidTopicName,
    NotFound,
    UnknownTopic,
    UnsupportedMediaType,
)
from sluicegate.http.json_body import decode_json
from sluicegate.http.request import Request
from sluicegate.http.responses import Response
from sluicegate.http.router import Route

__all__ = ["RecordsV2", "routes"]

# The seed: 1-200 characters of [a-zA-Z0-9-_.]. Kafka's own rules ('.', '..') follow
# in the catalog.
_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,200}")
_JSON = "application/json"
_decode_str = msgspec.json.Decoder(str).decode
_decode_any = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode

Part = Literal["key", "value"]


@functools.lru_cache(maxsize=1024)
def _valid_topic_name(name: str) -> bool:
    # Clients send the same few names again and again: a cache hit costs less than the regex.
    return _TOPIC.fullmatch(name) is not None


class RecordsV2:
    """The records v2 dialect over a gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._producer = gateway.producer
        self._decode_request = msgspec.json.Decoder(ProduceRequest).decode

    async def produce(self, request: Request) -> Response:
        """Produce one record; 200 once it is durable."""
        topic_name = request.path_params["topic_name"]
        if not _valid_topic_name(topic_name):
            raise InvalidTopicName(
                f"invalid topic_name {topic_name!r}: expected 1-200 characters "
                "matching ^[a-zA-Z0-9-_.]*$"
            )
        serializer = request.query_param("serializer")
        if serializer is not None and serializer != "confluent":
            raise BadRequest(
                f"invalid serializer {serializer!r}: the only allowed value is 'confluent'"
            )
        if request.media_type != _JSON:
            shown = request.media_type or "none"
            raise UnsupportedMediaType(
                f"unsupported Content-Type {shown!r}: expected application/json"
            )
        self._gateway.authorize(request.principal, "produce", topic_name)
        body = request.ready_body(json=True)  # without body()'s coroutine when it is there
        if body is None:
            body = await request.body(json=True)
        produce = decode_json(body, self._decode_request)
        headers = _headers(produce)
        key_payload, value_payload = produce.key, produce.value
        key: bytes | None
        value: bytes | None
        key_info: SchemaInfo | None
        value_info: SchemaInfo | None
        principal = request.principal
        assert principal is not None  # authorized above
        if key_payload is not None and key_payload.type == "avro":
            key, key_info = await self._avro(key_payload, "key", topic_name, serializer, principal)
        else:
            key, key_info = _plain(key_payload, "key"), None
        if value_payload is not None and value_payload.type == "avro":
            value, value_info = await self._avro(
                value_payload, "value", topic_name, serializer, principal
            )
        else:
            value, value_info = _plain(value_payload, "value"), None
        # Looked up (and auto-created) only for a record that can be stored: a refused
        # request leaves no topic behind. An Avro schema is registered before, as a
        # Confluent serializer registers it before its producer finds the topic.
        topic = self._producer.known_topic(topic_name) or await self._producer.topic(topic_name)
        try:
            [appended] = await self._producer.send(
                [self._producer.record(topic, key, value, headers)]
            )
        except (UnknownTopic, InvalidPartition):
            # The topic was deleted (and perhaps made again with fewer partitions) through
            # another node since this one cached it; nothing was stored. Looked up again
            # (auto-created if allowed, the partition chosen anew), once.
            self._producer.forget_topic(topic_name)
            topic = await self._producer.topic(topic_name)
            [appended] = await self._producer.send(
                [self._producer.record(topic, key, value, headers)]
            )
        response = ProduceResponse(
            partition_id=appended.partition,
            topic_name=appended.topic,
            offset=appended.offset,
            timestamp=format_timestamp(appended.timestamp),
            key=key_info,
            value=value_info,
        )
        return Response(_encode(response))

    async def _avro(
        self,
        payload: Payload,
        part: Part,
        topic: str,
        serializer: str | None,
        principal: Principal,
    ) -> tuple[bytes, SchemaInfo]:
        if serializer != "confluent":
            raise BadRequest(f"{part}.type 'avro' needs the query parameter serializer=confluent")
        if payload.schema is None:
            raise BadRequest(f"{part}.schema is required for type 'avro'")
        strategy = payload.schema_name_strategy or "topic"
        datum = _datum(_json_bytes(bytes(payload.data), part), part)
        registry = self._gateway.schemas
        try:
            full_name = None if strategy == "topic" else registry.full_name(payload.schema)
            subject = subject_name(strategy, topic, full_name, part == "key")
            registered = registry.remembered(subject, payload.schema)
            if registered is None:
                registered = await self._registered(registry, subject, payload.schema, principal)
        except (InvalidSchema, IncompatibleSchema) as exc:
            # The seed knows no 409: a schema that cannot be used is a bad request here.
            raise BadRequest(f"{part}.schema: {exc.message}") from None
        try:
            encoded = registry.encode_confluent(registered.id, datum)
        except InvalidSchema as exc:
            raise BadRequest(f"{part}.data does not match its schema: {exc.message}") from None
        return encoded, SchemaInfo("avro", registered.id, registered.subject)

    @staticmethod
    async def _registered(
        registry: SchemaRegistry, subject: str, schema: str, principal: Principal
    ) -> RegisteredSchema:
        """``schema``'s version under ``subject``, registered if the client may add one
        there as the registry's API allows (``Principal.may_register_schema``). A subject
        of the ``record`` or ``topicrecord`` strategy may be spelled as another topic's
        (``foo`` and record ``bar``: ``foo-bar-value``, topic ``foo-bar``'s), so producing
        to this topic is not enough to change it; a schema already there is found."""
        if principal.may_register_schema(subject):
            return await registry.register(subject, schema)
        try:
            return registry.lookup(subject, schema)
        except NotFound:
            raise Forbidden(
                f"client {principal.name!r} may not register a schema under subject "
                f"{subject!r}: it needs admin on the subject, or produce on the topic of a "
                "<topic>-key|value subject; an admin may register this schema there first",
                check="admin",
            ) from None


def _plain(payload: Payload | None, part: Part) -> bytes | None:
    """The bytes of a ``text``, ``binary`` or ``json`` key or value (None if absent)."""
    if payload is None:
        return None
    if payload.schema is not None or payload.schema_name_strategy is not None:
        raise BadRequest(f"{part}.schema applies only to type 'avro', not {payload.type!r}")
    kind = payload.type
    if kind == "json":
        return _json_bytes(payload.data, part)
    try:
        text = _decode_str(payload.data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        # The body was decoded (and checked as UTF-8) already; a DecodeError here would
        # be something the skip over a raw value let through: still the client's input.
        raise BadRequest(f"{part}.data must be a string") from None
    if kind == "text":
        return text.encode()
    data = _base64(text)
    if data is None:
        raise BadRequest(f"{part}.data is not valid base64")
    return data


def _base64(text: str) -> bytes | None:
    """The bytes ``text`` holds in base64, or ``None`` if it is not valid base64."""
    try:
        # What base64.b64decode(text, validate=True) does, without its Python wrapper.
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def _json_bytes(raw: msgspec.Raw | bytes, part: Part) -> bytes:
    """The JSON document for ``data``: as sent, or the JSON text a string holds."""
    data = bytes(raw)
    if not data.startswith(b'"'):
        return data  # already validated as JSON by the body's decode
    text = _decode_str(data)
    try:
        _decode_any(text)
    except msgspec.ValidationError:
        pass  # a number beyond a double's range (1e400): still JSON, stored as sent
    except (msgspec.DecodeError, RecursionError):
        raise BadRequest(
            f"{part}.data is a string but not JSON text; send the JSON value itself, "
            'or a string holding its JSON (e.g. "\\"hello\\"")'
        ) from None
    return text.encode()


def _datum(document: bytes, part: Part) -> object:
    """The JSON value an Avro ``data`` holds, to be encoded with its schema."""
    try:
        return _decode_any(document)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"{part}.data: {exc}") from None
    except RecursionError:
        raise BadRequest(f"{part}.data is nested too deeply") from None


def _headers(produce: ProduceRequest) -> list[Header]:
    if not produce.headers:
        return []
    headers: list[Header] = []
    for index, header in enumerate(produce.headers):
        if not header.name:
            raise BadRequest(f"headers[{index}].name must not be empty")
        value = _base64(header.value)
        if value is None:
            raise BadRequest(f"headers[{index}].value is not valid base64")
        headers.append((header.name, value))
    return headers


def routes(gateway: Gateway) -> list[Route]:
    """The records v2 routes."""
    dialect = RecordsV2(gateway)
    return [
        Route(
            "/v2/topics/{topic_name}/records",
            dialect.produce,
            methods=frozenset({"POST"}),
            render_error=render_error,
            dialect="records_v2",
        )
    ]
