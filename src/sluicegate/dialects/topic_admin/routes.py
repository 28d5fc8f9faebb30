"""``/admin/v1/topics``: create, inspect, change, purge, delete; produce and read."""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Callable
from typing import Any, TypeVar, cast

import msgspec

from sluicegate.core.gateway import Gateway
from sluicegate.core.longpoll import Abandoned
from sluicegate.core.producer import Producer
from sluicegate.core.records import Record, TopicPartition, format_timestamp
from sluicegate.core.topic_batch import TopicBatch
from sluicegate.core.topics import Topic, TopicSpec, TopicUpdate
from sluicegate.dialects.topic_admin.params import int_param, topic_to_read
from sluicegate.dialects.topic_admin.wire import (
    NewRecordIn,
    PartitionInfo,
    ProduceBatch,
    ProduceResult,
    RecordOut,
    RecordsOut,
    TopicCreate,
    TopicOut,
    TopicPatch,
)
from sluicegate.errors import BadRequest
from sluicegate.http.json_body import check_utf8, decode_json
from sluicegate.http.pagination import page_request, paginate
from sluicegate.http.request import ClientDisconnected, Request
from sluicegate.http.responses import Response, json_response
from sluicegate.http.router import Route

__all__ = ["MAX_READ_RECORDS", "MAX_WAIT_SECONDS", "routes"]

MAX_READ_RECORDS = 1000
#: The longest ``?name=`` filter of the topic list (a topic name is at most 249).
MAX_NAME_FILTER = 249
_MAX_READ_BYTES = 4 * 1024 * 1024
MAX_WAIT_SECONDS = 60.0

T = TypeVar("T")


#: A decoder per body type, built once: building one took as long as decoding a hundred
#: records.
_DECODERS: dict[type[Any], Callable[[bytes], Any]] = {}


def _decode(body: bytes, kind: type[T]) -> T:
    decode = _DECODERS.get(kind)
    if decode is None:
        decode = _DECODERS[kind] = msgspec.json.Decoder(kind).decode
    return cast(T, decode_json(body, decode))


#: How deep a ``ProduceBatch`` nests: its object, the records array, a record's object.
_PRODUCE_DEPTH = 3
_decode_produce_batch = msgspec.json.Decoder(ProduceBatch).decode


async def _produce_rows(request: Request) -> list[NewRecordIn]:
    """The rows of a produce request's body, refused exactly as ``body(json=True)`` and
    ``_decode`` refuse it (the JSON limits first, then UTF-8, then the decoder's errors).

    A batch is decoded before the limits' structure pass, which cost more than decoding
    it: a body that decodes into a ``ProduceBatch`` nests 3 levels deep, so once its
    strings and keys are bounded by its size and colons, only a body that fails to
    decode needs the pass, to tell which refusal comes first.
    """
    body = await request.body()
    limits = request.json_limits
    if limits is not None and not limits.bounded_at_depth(body, _PRODUCE_DEPTH):
        limits.check(body)
    try:
        rows = _decode_produce_batch(body).records
    except (msgspec.MsgspecError, RecursionError):
        if limits is not None:
            limits.check(body)  # again when it ran above: an error path, the order kept simple
        check_utf8(body)
        return decode_json(body, _decode_produce_batch).records  # raises the decoder's 400
    check_utf8(body)  # after the decode, in the order the checks refuse in
    return rows


def _records(producer: Producer, topic: Topic, rows: list[NewRecordIn]) -> TopicBatch:
    """The records of a produce request, partitioned as ``Producer.record`` does, as one
    ``TopicBatch``: columns, not a ``NewRecord`` per row.

    A batch often repeats a few keys: each distinct key is encoded and hashed once, and a
    batch of one key (one customer's, one device's) gets its key and partition repeated.
    """
    values = [None if (value := row.value) is None else value.encode() for row in rows]
    count = len(rows)
    first = rows[0].key if rows else None
    # One pass for both checks: a row with a partition of its own counts as keyless.
    if (
        first is not None
        and [row.key if row.partition is None else None for row in rows].count(first) == count
    ):
        key = first.encode()
        partition = producer.partition_of(topic, key)
        return TopicBatch(topic.name, [partition] * count, [key] * count, values)
    partitions: list[int] = []
    keys: list[bytes | None] = []
    keyed: dict[str, tuple[bytes, int]] = {}
    for row in rows:
        name = row.key
        if name is None or row.partition is not None:
            record = producer.record(
                topic,
                None if name is None else name.encode(),
                None,
                partition=row.partition,
            )
            partitions.append(record.partition)
            keys.append(record.key)
            continue
        known = keyed.get(name)
        if known is None:
            encoded = name.encode()
            known = keyed[name] = (encoded, producer.partition_of(topic, encoded))
        keys.append(known[0])
        partitions.append(known[1])
    return TopicBatch(topic.name, partitions, keys, values)


def _topic_out(topic: Topic, partitions: list[PartitionInfo] | None = None) -> TopicOut:
    return TopicOut(
        name=topic.name,
        id=topic.id,
        partitions=topic.partitions,
        retention_ms=topic.retention_ms,
        retention_bytes=topic.retention_bytes,
        config=topic.config,
        created_at=format_timestamp(topic.created_at),
        updated_at=format_timestamp(topic.updated_at),
        partition_offsets=partitions,
    )


def _record_out(record: Record) -> RecordOut:
    try:
        key = None if record.key is None else record.key.decode()
        value = None if record.value is None else record.value.decode()
        headers = [(name, raw.decode()) for name, raw in record.headers]
        encoding = "utf-8"
    except UnicodeDecodeError:
        key = None if record.key is None else b64encode(record.key).decode()
        value = None if record.value is None else b64encode(record.value).decode()
        headers = [(name, b64encode(raw).decode()) for name, raw in record.headers]
        encoding = "base64"
    return RecordOut(
        record.partition,
        record.offset,
        format_timestamp(record.timestamp),
        key,
        value,
        headers,
        encoding,
    )


class TopicAdmin:
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._topics = gateway.topics
        self._long_polls = gateway.new_long_polls()

    async def list_topics(self, request: Request) -> Response:
        """Topics by name, a page at a time; only those the principal may describe (any
        permission on the topic), and with ``?name=``, only those whose name contains it
        (any case)."""
        wanted = page_request(request, tuple[str])
        needle = (request.query_param("name") or "").casefold()
        if len(needle) > MAX_NAME_FILTER:
            raise BadRequest(
                f"query parameter name must be at most {MAX_NAME_FILTER} characters",
                field="name",
            )
        topics = await self._topics.list()
        principal = request.principal
        may_describe = principal.may_describe if principal is not None else lambda _: False
        page = paginate(
            topics,
            lambda topic: (topic.name,),
            wanted,
            lambda topic: (
                (not needle or needle in topic.name.casefold()) and may_describe(topic.name)
            ),
        )
        return page.response(request, _topic_out)

    async def create(self, request: Request) -> Response:
        spec = _decode(await request.body(json=True), TopicCreate)
        self._gateway.authorize(request.principal, "admin", spec.name)
        topic = await self._topics.create(
            TopicSpec(
                name=spec.name,
                partitions=spec.partitions,
                retention_ms=spec.retention_ms,
                retention_bytes=spec.retention_bytes,
                config=spec.config,
            )
        )
        return json_response(_topic_out(topic), 201)

    async def describe(self, request: Request) -> Response:
        name = request.path_params["name"]
        self._gateway.authorize_describe(request.principal, name)
        topic = await self._topics.get(name)
        partitions = []
        for partition in range(topic.partitions):
            marks = await self._gateway.log.watermarks(TopicPartition(name, partition))
            partitions.append(PartitionInfo(partition, marks.low, marks.high))
        return json_response(_topic_out(topic, partitions))

    async def alter(self, request: Request) -> Response:
        name = request.path_params["name"]
        self._gateway.authorize(request.principal, "admin", name)
        patch = _decode(await request.body(json=True), TopicPatch)
        config = patch.config
        if not isinstance(config, msgspec.UnsetType):
            # A merge patch (RFC 7396): the keys named change, null removes one, the rest
            # stay. Replacing the whole map dropped what other APIs keep there (topics v1's
            # description and schema) whenever an admin set one Kafka config.
            merged = dict((await self._topics.get(name)).config)
            for key, value in config.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            config = merged
        update = TopicUpdate(
            partitions=patch.partitions,
            retention_ms=patch.retention_ms,
            retention_bytes=patch.retention_bytes,
            config=config,
        )
        return json_response(_topic_out(await self._topics.alter(name, update)))

    async def purge(self, request: Request) -> Response:
        name = request.path_params["name"]
        self._gateway.authorize(request.principal, "admin", name)
        await self._topics.purge(name)
        return Response(status=204, content_type=None)

    async def delete(self, request: Request) -> Response:
        name = request.path_params["name"]
        self._gateway.authorize(request.principal, "admin", name)
        await self._topics.delete(name)
        return Response(status=204, content_type=None)

    async def produce(self, request: Request) -> Response:
        name = request.path_params["name"]
        self._gateway.authorize(request.principal, "produce", name)
        rows = await _produce_rows(request)
        producer = self._gateway.producer
        topic = await producer.topic(name)
        records = _records(producer, topic, rows)
        # The decoded rows (an object and two strings each) are freed now, while their
        # memory is still in the cache, not after the commit that the wait spans.
        del rows
        offsets = await producer.send_offsets(records) if records else []
        return json_response(ProduceResult(offsets))

    async def read(self, request: Request) -> Response:
        """Records of one partition from an offset; waits up to ``timeout`` seconds for more."""
        topic = await topic_to_read(self._gateway, request)
        partition = int_param(request, "partition", 0, 0, topic.partitions - 1)
        tp = TopicPartition(topic.name, partition)
        marks = await self._gateway.log.watermarks(tp)
        offset = int_param(request, "offset", marks.low, 0, 2**63 - 1)
        offset = max(offset, marks.low)
        limit = int_param(request, "max_records", 100, 1, MAX_READ_RECORDS)
        timeout = int_param(request, "timeout", 0, 0, int(MAX_WAIT_SECONDS))
        if offset >= marks.high and timeout:
            # A parked request holds memory and a connection: long polls have their own cap.
            principal = request.principal
            try:
                await self._long_polls.wait(
                    principal.name if principal else "",
                    {tp: offset},
                    timeout,
                    request.disconnected,
                )
            except Abandoned:
                raise ClientDisconnected from None
        records = await self._gateway.log.read(
            tp, offset, max_records=limit, max_bytes=_MAX_READ_BYTES
        )
        next_offset = records[-1].offset + 1 if records else offset
        high = (await self._gateway.log.watermarks(tp)).high
        return json_response(RecordsOut([_record_out(r) for r in records], next_offset, high))


def routes(gateway: Gateway) -> list[Route]:
    """The topic admin routes."""
    admin = TopicAdmin(gateway)
    get, post = frozenset({"GET"}), frozenset({"POST"})
    return [
        Route("/admin/v1/topics", admin.list_topics, get, dialect="topic_admin"),
        Route("/admin/v1/topics", admin.create, post, dialect="topic_admin"),
        Route("/admin/v1/topics/{name}", admin.describe, get, dialect="topic_admin"),
        Route("/admin/v1/topics/{name}", admin.alter, frozenset({"PATCH"}), dialect="topic_admin"),
        Route(
            "/admin/v1/topics/{name}", admin.delete, frozenset({"DELETE"}), dialect="topic_admin"
        ),
        Route("/admin/v1/topics/{name}/purge", admin.purge, post, dialect="topic_admin"),
        Route("/admin/v1/topics/{name}/records", admin.read, get, dialect="topic_admin"),
        Route("/admin/v1/topics/{name}/records", admin.produce, post, dialect="topic_admin"),
    ]
