"""Storing CloudEvents: every check first, then one atomic, de-duplicated, durable append.

``produce`` is the producer API's core (``POST /ce/produce/raw|event|events``):

1. the client must be a producer, and may use each event's ``source`` and ``type``
   (``Forbidden``, which the dialect answers with 401);
2. each event is at most ``cloudevents.max_event_bytes`` (413), its ``time`` is not
   ahead of the gateway's clock by more than ``cloudevents.clock_skew`` (400; an event
   without ``time`` gets the gateway's), it does not use the ``offset`` attribute, which
   consumers receive their delivery offset in (400), and its data satisfies its type's
   schema (422, each violation listed);
3. only then is anything written: each type's topic (created on first use), the type in
   the registry of produced types (durable before its first event), and every event in
   **one** ``EventIds.append_once`` — one ``Log.append``, all or nothing across every
   topic the batch's types route to, each ``source`` + ``id`` stored once.

Every error of a batch names the event's ``index`` (and the ``attribute``), and the
first wrong event decides the answer. Work that repeats is done once: authorization per
distinct (source, type) of a request, a type's topic and schema per distinct type.

``produce_one`` is ``produce`` of one event outside a batch (a raw or structured request):
the same checks, errors and outcome, through ``EventIds.append_one``.

``produce_to_stream`` stores a client's test or dead events (``streams.py``): the same
checks but authorization, which the caller does (the client must be a consumer).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import msgspec

from sluicegate.config import CloudEventSettings
from sluicegate.core.auth.principals import Principal
from sluicegate.core.cloudevents.binding import (
    PlainBatch,
    PlainBinary,
    plain_records,
    to_record,
    to_records,
)
from sluicegate.core.cloudevents.dedup import EventIds
from sluicegate.core.cloudevents.event import CloudEvent, is_json_media_type
from sluicegate.core.cloudevents.routing import TypeRouter
from sluicegate.core.cloudevents.schemas import EventSchemas
from sluicegate.core.cloudevents.topics import EventTopics
from sluicegate.core.cloudevents.types import EventTypes
from sluicegate.core.partitioner import Partitioner, partition_for_key
from sluicegate.core.records import format_timestamp
from sluicegate.core.schemas.validators import ValueSchema, describe_violations
from sluicegate.core.topics import Topic
from sluicegate.errors import BadRequest, Forbidden, PayloadTooLarge, UnknownTopic, Unprocessable

__all__ = ["EventProducer", "identity_key", "require_producer", "topic_scope"]


def identity_key(event: CloudEvent) -> bytes:
    """The de-duplication key of a produced event: ``source``, NUL, ``id``."""
    return event.source.encode() + b"\x00" + event.id.encode()


def topic_scope(topic: Topic) -> bytes:
    """What an identity key starts with in ``topic``: its id, never reused.

    An event is stored once in the topic it goes to (its type's). A topic deleted (and
    made again, a new id) takes the memory of its events with it: an event sent again
    is stored in the new topic, not acknowledged as a duplicate of records that are gone.
    A ``source`` is a URI reference, which never holds the control byte this begins with.
    """
    return b"\x01%d\x00" % topic.id


def _prefix(index: int | None) -> str:
    return "" if index is None else f"events[{index}]: "


def _detail(attribute: str, index: int | None) -> dict[str, object]:
    return {"attribute": attribute} if index is None else {"attribute": attribute, "index": index}


class EventProducer:
    """Checks and stores CloudEvents; one per gateway, shared by every request."""

    def __init__(
        self,
        settings: CloudEventSettings,
        *,
        router: TypeRouter,
        topics: EventTopics,
        types: EventTypes,
        ids: EventIds,
        schemas: EventSchemas,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._max_event_bytes = settings.max_event_bytes
        self._skew_us = round(settings.clock_skew * 1_000_000)
        self._topic_for = router.topic_for
        self._topics = topics
        self._types = types
        self._ids = ids
        self._schemas = schemas
        self._clock = clock
        self._partitioner = Partitioner()

    # -- producers -------------------------------------------------------------------

    async def produce(
        self,
        principal: Principal,
        events: Sequence[CloudEvent],
        *,
        batch: bool = False,
        within: int | None = None,
    ) -> None:
        """Check every event, then store them all or none; returns once durable.

        ``batch``: the events came as an array, so errors name their index. ``within``:
        the bytes of the JSON body the events were read from, which no event's size can
        exceed (each value is at most as long as its JSON text), so at or below the
        per-event limit no event needs measuring.
        """
        require_producer(principal)
        if not events:
            return  # an empty batch: nothing to store
        if len(events) == 1:
            _authorize(principal, events[0], 0 if batch else None)
            await self._produce_one(self._checked_one(events[0], 0 if batch else None))
            return
        if not all(
            principal.may_use_source(source) and principal.may_produce_type(event_type)
            for source, event_type in {(event.source, event.type) for event in events}
        ):
            _authorize_each(principal, events, batch)
        events = self._checked(events, batch, within)
        topics = await self._topics_of({event.type for event in events})
        partition = self._partitioner.partition
        # Partition keys recur within a request (a customer's orders): chosen once each.
        chosen: dict[tuple[str, str], tuple[str, int]] = {}
        places: list[tuple[str, int]] = []
        for event in events:
            topic = topics[event.type]
            key = event.extensions.get("partitionkey")
            if key is None:
                places.append((topic.name, partition(topic.name, None, topic.partitions)))
                continue
            place = chosen.get((event.type, key))
            if place is None:
                place = chosen[event.type, key] = (
                    topic.name,
                    partition(topic.name, key.encode(), topic.partitions),
                )
            places.append(place)
        records = to_records(events, places)
        scopes = {event_type: topic_scope(topic) for event_type, topic in topics.items()}
        await self._ids.append_once(
            [
                # ``identity_key(event)`` in its topic's scope, without a call per event.
                (
                    scopes[event.type] + event.source.encode() + b"\x00" + event.id.encode(),
                    (record,),
                )
                for event, record in zip(events, records, strict=True)
            ]
        )

    async def produce_batch(
        self,
        principal: Principal,
        events: PlainBatch | list[CloudEvent],
        *,
        within: int | None = None,
    ) -> None:
        """``produce(principal, events, batch=True, within=within)`` for what
        ``binding.decode_batch`` gives: the same checks, answers and records.

        A batch of plain events is checked and stored from its decoded structs, each
        check once per distinct value (permissions per (source, type), schema per type,
        each ``time``) and its records built in one pass; no ``CloudEvent`` is made.
        When some check fails (or a type has a schema, or an event might be over the size
        limit), its ``CloudEvent``s take ``produce``, which names the first wrong event.
        """
        if isinstance(events, PlainBatch):
            if (
                len(events) > 1
                and within is not None
                and within <= self._max_event_bytes
                and await self._produce_plain(principal, events)
            ):
                return
            events = events.cloud_events()
        await self.produce(principal, events, batch=True, within=within)

    async def _produce_plain(self, principal: Principal, batch: PlainBatch) -> bool:
        """Store ``batch`` if every check passes at once; False (nothing done) if not.

        Within the body's bound (the caller's test), no event is over the size limit;
        a plain event has no extension but ``partitionkey``, so none uses ``offset``.
        """
        require_producer(principal)
        if not all(
            principal.may_use_source(source) and principal.may_produce_type(event_type)
            for source, event_type in batch.pairs
        ):
            return False
        event_types = {event_type for _, event_type in batch.pairs}
        schema_for = self._schemas.for_type
        if any(schema_for(event_type) is not None for event_type in event_types):
            return False
        now_us = self._clock() // 1000
        latest = datetime.fromtimestamp((now_us + self._skew_us) / 1_000_000, UTC)
        for text in batch.times:
            if text is not None and not _before(text, latest):
                return False
        topics = await self._topics_of(event_types)
        partition = self._partitioner.partition

        def place(event_type: str, key: str | None) -> tuple[str, int]:
            topic = topics[event_type]
            encoded = None if key is None else key.encode()
            return topic.name, partition(topic.name, encoded, topic.partitions)

        now_text = format_timestamp(now_us) if None in batch.times else ""

        def scope(event_type: str) -> bytes:
            return topic_scope(topics[event_type])

        records, keys = plain_records(batch, now_text, place, scope)
        # Items of (identity key, (record,)), built by two zips in C: ``zip(records)``
        # yields each record alone in a tuple.
        await self._ids.append_once(
            list(zip(keys, zip(records), strict=True)),
            # Every record goes to its type's topic: the set append_once would collect.
            {topic.name for topic in topics.values()},
        )
        return True

    def topic_gone(self) -> None:
        """A produce found a topic it routed to unknown to the log: deleted since this
        node looked (its metadata is trusted a few seconds), so nothing was stored. The
        topics are looked up again, and a type's is made again, by the next produce."""
        self._topics.forget()

    def produce_one(self, principal: Principal, event: CloudEvent) -> Awaitable[None]:
        """``produce`` of one event outside a batch (a raw or structured request, the most
        frequent): checked before this returns, stored by the awaitable, which ends once
        durable.

        A plain function, not a coroutine: once the event's topic and type are known
        (every request but a type's first few) the awaitable is ``EventIds.append_one``'s
        own, so a request runs one coroutine frame less per layer.
        """
        require_producer(principal)
        if not principal.may_produce(event.source, event.type):
            _authorize(principal, event, None)  # raises the error naming the attribute
        event = self._checked_one(event)
        event_type = event.type
        name = self._topic_for(event_type)
        topic = self._topics.cached(name)
        if topic is None or not self._types.knows(event_type, name):
            return self._produce_one(event)
        return self._store_one(event, topic)

    def produce_binary(self, principal: Principal, event: PlainBinary) -> Awaitable[None] | None:
        """``produce_one`` of a raw request's plain event, stored from its header values
        (``PlainBinary.record``) when every check passes at once; ``None``, with nothing
        done, when any would fail or needs more than this lane does (a schema to satisfy,
        the type's first use), for ``produce_one`` of its ``CloudEvent`` to decide.
        """
        event_type = event.type
        # ``may_produce`` holds only for a producer: require_producer's test is in it.
        if not principal.may_produce(event.source, event_type):
            return None
        if event.size > self._max_event_bytes or self._schemas.for_type(event_type) is not None:
            return None
        name = self._topic_for(event_type)
        topic = self._topics.cached(name)
        if topic is None or not self._types.knows(event_type, name):
            return None
        now_us = self._clock() // 1000
        if event.time is None:
            now = format_timestamp(now_us)
        else:
            # _checked_one's test of the time, without its error (the general lane's).
            time_us = _PARSED_TIMES.get(event.time)
            if time_us is None:
                try:
                    time_us = _microseconds_of(event.time, None)
                except BadRequest:
                    return None
            if time_us > now_us + self._skew_us:
                return None
            now = ""
        partition = self._partition_of(topic, event.key)
        return self._ids.append_one(
            topic_scope(topic) + event.identity,
            event.record(topic.name, partition, now),
            topic.retention_ms,
        )

    def _partition_of(self, topic: Topic, key: bytes | None) -> int:
        """The partition of a single event with partition key ``key`` (encoded) in
        ``topic``: the key's, or the partitioner's choice for an event without one."""
        if key is None:
            return self._partitioner.partition(topic.name, None, topic.partitions)
        return partition_for_key(key, topic.partitions)  # what partition() calls

    async def _topics_of(self, event_types: set[str]) -> dict[str, Topic]:
        """Each type's topic, every type not yet known there registered first (durably,
        before any of its events is stored: see ``types.py``)."""
        topics: dict[str, Topic] = {}
        new_types: list[tuple[str, str]] = []
        for event_type in event_types:
            name = self._topic_for(event_type)
            topics[event_type] = self._topics.cached(name) or await self._topics.get(name)
            if not self._types.knows(event_type, name):
                new_types.append((event_type, name))
        if new_types:
            await self._types.register(new_types)
        return topics

    async def _produce_one(self, event: CloudEvent) -> None:
        """Store one checked event: what ``produce`` does for many, without the sets,
        dicts and comprehensions that share work between events."""
        event_type = event.type
        name = self._topic_for(event_type)
        topic = self._topics.cached(name) or await self._topics.get(name)
        if not self._types.knows(event_type, name):
            await self._types.register([(event_type, name)])
        await self._store_one(event, topic)

    def _store_one(self, event: CloudEvent, topic: Topic) -> Awaitable[None]:
        key = event.extensions.get("partitionkey")
        partition = self._partition_of(topic, None if key is None else key.encode())
        record = to_record(event, topic.name, partition=partition)
        # The topic's retention as the metadata this request routes by says (trusted for
        # EventTopics' few seconds, as its partitions are), not asked of the log again.
        return self._ids.append_one(
            # topic_scope(topic) + identity_key(event)
            b"\x01%d\x00%b\x00%b" % (topic.id, event.source.encode(), event.id.encode()),
            record,
            topic.retention_ms,
        )

    async def produce_to_stream(
        self, stream: str, events: Sequence[CloudEvent], *, check_data: bool = True
    ) -> None:
        """Check ``events`` and store them in a client's test or dead stream ``stream``.

        ``check_data=False`` (a dead event a consumer reports) skips the check of the data
        against the type's schema, and only that: the consumer reports the event as it has
        it, perhaps edited, and data the schema refuses (the schema changed since, or the
        data is why the event is dead) must not keep it out of the dead stream.

        De-duplicated within the stream: a dead event keeps the ``source`` and ``id`` of
        the event it reports, which is stored (and remembered) already.
        """
        checked = self._checked(events, batch=False, check_data=check_data)
        await self._store_in_stream(stream, b"\x00" + stream.encode() + b"\x00", checked)

    async def store_dead_letter(self, stream: str, group: str, event: CloudEvent) -> None:
        """Store ``event``, which ``group`` gave up on, in the dead stream ``stream``.

        Not checked again (it was when produced, and a limit or schema changed since must
        not keep it from the dead stream forever). De-duplicated per group: written twice
        by the same group (a crash between the write and the commit past it) it is stored
        once, while two groups that both gave up on it each leave their own record.
        """
        scope = b"\x00" + stream.encode() + b"\x00" + group.encode() + b"\x00"
        await self._store_in_stream(stream, scope, [event])

    async def _store_in_stream(
        self, stream: str, scope: bytes, events: Sequence[CloudEvent]
    ) -> None:
        """Store ``events`` in the stream ``stream``, each once per ``scope``.

        A stream deleted since this node looked it up (outside the gateway: its topic is
        internal) stored nothing; the second try makes it again, as a type's next events
        make the type's topic again (``topic_gone``).
        """
        for last_try in (False, True):
            topic = self._topics.cached(stream) or await self._topics.stream(stream)
            try:
                scoped = topic_scope(topic) + scope
                await self._ids.append_once(
                    [(scoped + identity_key(e), (to_record(e, topic.name),)) for e in events]
                )
                return
            except UnknownTopic:
                if last_try:
                    raise
                self.topic_gone()

    # -- checks ----------------------------------------------------------------------

    def _checked(
        self,
        events: Sequence[CloudEvent],
        batch: bool,
        within: int | None = None,
        *,
        check_data: bool = True,
    ) -> list[CloudEvent]:
        """``events`` checked (size, time, reserved names, and data against the type's
        schema unless ``check_data`` is False), each with a ``time``."""
        now_us = self._clock() // 1000
        latest = datetime.fromtimestamp((now_us + self._skew_us) / 1_000_000, UTC)
        if len(events) > 1:  # one event is checked as fast one by one
            checked = self._checked_at_once(events, now_us, latest, within, check_data)
            if checked is not None:
                return checked
        return self._checked_each(events, batch, now_us, latest, check_data)

    def _check_size_and_offset(self, event: CloudEvent, index: int | None) -> None:
        """The first two checks of every event: its size, and no ``offset`` attribute."""
        if event.size() > self._max_event_bytes:
            raise PayloadTooLarge(
                f"{_prefix(index)}the event is {event.size()} bytes, more than the limit "
                f"of {self._max_event_bytes} bytes per event",
                **({} if index is None else {"index": index}),
            )
        if "offset" in event.extensions:
            raise BadRequest(
                f"{_prefix(index)}attribute offset is reserved: consumers receive "
                "their delivery offset in it",
                **_detail("offset", index),
            )

    def _checked_one(self, event: CloudEvent, index: int | None = None) -> CloudEvent:
        """``event`` checked as ``_checked_each`` checks each event (the same checks, in
        the same order, with the same errors), without its per-request sets and dicts."""
        if event.size() > self._max_event_bytes or "offset" in event.extensions:
            self._check_size_and_offset(event, index)  # raises the error that says which
        schema = self._schemas.for_type(event.type)
        if schema is not None:
            _check_data(schema, event, index)
        now_us = self._clock() // 1000
        if event.time is None:
            return msgspec.structs.replace(event, time=format_timestamp(now_us))
        # In whole microseconds: what _checked_each compares as datetimes (its ``latest``
        # is now + skew to the microsecond), without making one per request.
        # _microseconds_of's memory first, without its call.
        time_us = _PARSED_TIMES.get(event.time)
        if time_us is None:
            time_us = _microseconds_of(event.time, index)
        if time_us > now_us + self._skew_us:
            raise BadRequest(
                f"{_prefix(index)}attribute time {event.time!r} is in the future "
                f"(the gateway allows {self._skew_us / 1_000_000:g} s of clock skew)",
                **_detail("time", index),
            )
        return event

    def _checked_at_once(
        self,
        events: Sequence[CloudEvent],
        now_us: int,
        latest: datetime,
        within: int | None,
        check_data: bool = True,
    ) -> list[CloudEvent] | None:
        """``events`` checked, each check made once for the whole request; ``None`` when
        any event fails one (or has a schema to satisfy), for ``_checked_each`` to find
        the first event that is wrong and say so, exactly as it always does.
        """
        limit = self._max_event_bytes
        if (within is None or within > limit) and max(e.size() for e in events) > limit:
            return None
        if any("offset" in event.extensions for event in events):
            return None
        for event_type in {event.type for event in events} if check_data else ():
            if self._schemas.for_type(event_type) is not None:
                return None
        times = {event.time for event in events}
        for text in times:
            if text is not None and not _before(text, latest):
                return None
        if None not in times:
            return list(events)
        now_text = format_timestamp(now_us)
        return [
            event if event.time is not None else msgspec.structs.replace(event, time=now_text)
            for event in events
        ]

    def _checked_each(
        self,
        events: Sequence[CloudEvent],
        batch: bool,
        now_us: int,
        latest: datetime,
        check_data: bool = True,
    ) -> list[CloudEvent]:
        """``events`` checked one by one: the first that is wrong decides the error."""
        now_text: str | None = None
        schemas: dict[str, ValueSchema | None] = {}
        # Events of one request often share their time (an outbox flushed at once).
        times_checked: set[str] = set()
        checked: list[CloudEvent] = []
        for index, event in enumerate(events):
            where = index if batch else None
            self._check_size_and_offset(event, where)
            if check_data:
                if event.type not in schemas:
                    schemas[event.type] = self._schemas.for_type(event.type)
                schema = schemas[event.type]
                if schema is not None:
                    _check_data(schema, event, where)
            if event.time is None:
                now_text = now_text or format_timestamp(now_us)
                event = msgspec.structs.replace(event, time=now_text)
            elif event.time not in times_checked:
                if _parse_time(event.time, where) > latest:
                    raise BadRequest(
                        f"{_prefix(where)}attribute time {event.time!r} is in the future "
                        f"(the gateway allows {self._skew_us / 1_000_000:g} s of clock skew)",
                        **_detail("time", where),
                    )
                times_checked.add(event.time)
            checked.append(event)
        return checked


def require_producer(principal: Principal) -> None:
    """Raise ``Forbidden`` unless ``principal`` may produce some source and some type."""
    permissions = principal.permissions
    if not permissions.ce_produce_types or not permissions.ce_sources:
        missing = "ce_produce_types" if not permissions.ce_produce_types else "ce_sources"
        raise Forbidden(
            f"client {principal.name!r} is not registered as a CloudEvents producer: "
            f"it has no {missing}",
            check="producer",
        )


def _authorize_each(principal: Principal, events: Sequence[CloudEvent], batch: bool) -> None:
    """Raise ``Forbidden`` for the first event ``principal`` may not produce."""
    granted: set[tuple[str, str]] = set()
    for index, event in enumerate(events):
        pair = (event.source, event.type)
        if pair not in granted:
            _authorize(principal, event, index if batch else None)
            granted.add(pair)


def _authorize(principal: Principal, event: CloudEvent, index: int | None) -> None:
    if not principal.may_use_source(event.source):
        raise Forbidden(
            f"{_prefix(index)}client {principal.name!r} may not produce events with "
            f"source {event.source!r}",
            check="source",
            **_detail("source", index),
        )
    if not principal.may_produce_type(event.type):
        raise Forbidden(
            f"{_prefix(index)}client {principal.name!r} may not produce events of "
            f"type {event.type!r}",
            check="type",
            **_detail("type", index),
        )


def _parse_time(text: str, index: int | None) -> datetime:
    # Python's parser takes neither lower-case t/z nor a leap second, which RFC 3339 allows;
    # a leap second is a moment in the past for this check.
    if "t" in text or "z" in text:
        text = text.upper()
    if text[17:19] == "60":
        text = text[:17] + "59" + text[19:]
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"{_prefix(index)}attribute time {text!r} is not a valid date and time",
            **_detail("time", index),
        ) from None


#: Times read by ``_microseconds_of``: a producer's events often carry the same time
#: text (a fixed one in tests and benchmarks, one per second or per flush in production).
_PARSED_TIMES: dict[str, int] = {}
_PARSED_TIMES_MAX = 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _microseconds_of(text: str, index: int | None) -> int:
    """``_parse_time(text, index)`` in microseconds since the epoch, parsed once per
    distinct valid text."""
    parsed = _PARSED_TIMES.get(text)
    if parsed is None:
        parsed = (_parse_time(text, index) - _EPOCH) // _MICROSECOND
        if len(_PARSED_TIMES) >= _PARSED_TIMES_MAX:
            _PARSED_TIMES.clear()
        _PARSED_TIMES[text] = parsed
    return parsed


def _before(text: str, latest: datetime) -> bool:
    """Whether the time ``text`` is valid and no later than ``latest``."""
    try:
        return _parse_time(text, None) <= latest
    except BadRequest:
        return False


def _check_data(schema: ValueSchema, event: CloudEvent, index: int | None) -> None:
    """Raise ``Unprocessable`` listing each way ``event``'s data breaks its type's schema."""
    data = event.data
    if data is not None and not is_json_media_type(event.datacontenttype):
        raise Unprocessable(
            f"{_prefix(index)}events of type {event.type!r} carry JSON data, which their "
            f"schema describes; got datacontenttype {event.datacontenttype!r}",
            **_detail("datacontenttype", index),
        )
    try:
        datum = None if data is None else msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BadRequest(
            f"{_prefix(index)}the data is not valid JSON: {exc}", **_detail("data", index)
        ) from None
    violations = schema.violations(datum)
    if violations:
        listed, shown = describe_violations(violations)
        raise Unprocessable(
            f"{_prefix(index)}the data does not satisfy the schema of type "
            f"{event.type!r}: {listed}",
            violations=shown,
            **_detail("data", index),
        )
