"""CloudEvents consumers on the consumer-instance core: groups, subscriptions, settings.

Groups are per client: the group ``g`` of client ``c`` is the storage group
``ce/<c>/<g>``. Client names never contain ``/`` and group names may not, so two
(client, group) pairs never share a storage group, and a plain Kafka tool lists them
under one recognizable prefix.

An instance subscribes to:

* ``events=true``: the topics of every type produced so far that the client may consume
  (``ce_consume_types`` patterns, through the type registry, ``types.py``), filtered by
  the ``ce_type`` header, since a route may put several types in one topic (and a
  record without CloudEvents headers, written there by another API, is no event);
* ``test=true``: the client's own test stream, ``dead=true``: its own dead stream
  (``streams.py``), every record of them, read whole by every instance rather than
  shared out by the group (``Subscription.every_instance``): each of its instances sees
  each test and dead event, whatever its group.

A type produced for the first time after an instance was created is found without a
restart: each instance compares the type registry's version at each read and re-joins
with the grown topic set, and ``follow_types`` turns the registry's change signal into
``ConsumerInstances.subscriptions_changed``, which wakes the instances waiting in a long
poll to do it at once.
"""

from __future__ import annotations

import functools
import operator
import re

from sluicegate.config import CloudEventSettings
from sluicegate.core.auth.patterns import PatternSet
from sluicegate.core.auth.principals import Principal
from sluicegate.core.cloudevents.binding import from_structured_record, type_header
from sluicegate.core.cloudevents.streams import dead_topic, test_topic
from sluicegate.core.cloudevents.topics import EventTopics
from sluicegate.core.cloudevents.types import EventTypes
from sluicegate.core.consumers.registry import ConsumerInstances, ConsumerSettings
from sluicegate.core.consumers.subscription import RecordFilter
from sluicegate.core.records import Record
from sluicegate.core.topic_sets import shared_topics
from sluicegate.errors import BadRequest

__all__ = [
    "DEFAULT_GROUP",
    "EventSubscription",
    "check_group_name",
    "consumer_settings",
    "follow_types",
    "storage_group",
]

DEFAULT_GROUP = "~default"
#: Group names: URL-path-safe, so a Location needs no escaping, and never ``/``.
_GROUP_NAME = re.compile(r"[A-Za-z0-9~][A-Za-z0-9._~@:+-]{0,127}")
#: (patterns, type) decisions remembered across all consumers.
_DECISIONS = 65_536


def check_group_name(group: str) -> str:
    """``group`` if it is a valid consumer group name, else ``BadRequest``."""
    if _GROUP_NAME.fullmatch(group) is None:
        raise BadRequest(
            f"invalid consumer group name {group[:140]!r}: expected 1-128 characters of "
            "[A-Za-z0-9._~@:+-], starting with a letter, a digit or ~",
            field="group",
        )
    return group


def storage_group(client: str, group: str) -> str:
    """The storage group of ``client``'s consumer group ``group``."""
    return f"ce/{client}/{group}"


def consumer_settings(settings: CloudEventSettings) -> ConsumerSettings:
    """The consumer core's settings from the ``[cloudevents]`` section."""
    return ConsumerSettings(
        idle_timeout=settings.consumer_idle_timeout,
        max_unconfirmed=settings.max_unconfirmed,
        handover_timeout=settings.handover_timeout,
        max_batch_bytes=settings.batch_bytes,
        max_instances=settings.max_consumer_instances,
        max_instances_per_client=settings.max_consumer_instances_per_client,
    )


@functools.lru_cache(maxsize=1024)
def _pattern_set(patterns: tuple[str, ...]) -> PatternSet:
    # Shared by every instance of clients with the same types: one object, one filter,
    # and decisions cached once for all of them.
    return PatternSet(patterns)


@functools.lru_cache(maxsize=_DECISIONS)
def _consumes(patterns: PatternSet, event_type: bytes) -> bool:
    try:
        return patterns.matches(event_type.decode("utf-8"))
    except UnicodeDecodeError:
        return False


_headers = operator.attrgetter("headers")
_fourth = operator.itemgetter(3)


@functools.lru_cache(maxsize=1024)
def _filter_for(patterns: PatternSet) -> RecordFilter:
    """Events of a type ``patterns`` match, each in the binary mode of the Kafka binding."""

    def accepts(record: Record) -> bool:
        event_type = type_header(record.headers)
        return event_type is not None and _consumes(patterns, event_type)

    def accepted_one(record: Record) -> Record | None:
        if accepts(record):
            return record
        if any(name == "ce_type" for name, _ in record.headers):
            return None  # an event of a type not consumed
        # A Kafka producer's event in structured mode, or no event at all (a record written
        # to the topic by another API): the first is delivered as the gateway stores events.
        event = from_structured_record(record)
        return event if event is not None and accepts(event) else None

    def accepted(chunk: list[Record]) -> list[Record]:
        # The fourth header of every record, taken by C loops, is one or a few
        # ("ce_type", type) pairs in a chunk, each decided once: when all are consumed,
        # the chunk is, with no Python call per record. Otherwise, record by record.
        try:
            fourths = list(map(_fourth, map(_headers, chunk)))
            # One type throughout, nearly always: told by comparing each pair with the
            # first (equal strings and bytes compare by length and bytes), where a set
            # would hash every freshly decoded name and type first.
            if fourths and fourths != [fourths[0]] * len(fourths):
                fourths = list(set(fourths))
            else:
                del fourths[1:]
        except (IndexError, TypeError):  # a record of fewer headers, or of another kind
            fourths = None
        if fourths is not None and all(
            name == "ce_type" and _consumes(patterns, value) for name, value in fourths
        ):
            return chunk.copy()  # the caller may cut what it returns
        return [event for event in map(accepted_one, chunk) if event is not None]

    return accepted


class EventSubscription:
    """What a CloudEvents consumer instance reads (see the module docstring)."""

    __slots__ = ("_accepts", "_patterns", "_topics", "_types", "client", "dead", "events", "test")

    def __init__(
        self,
        principal: Principal,
        types: EventTypes,
        topics: EventTopics,
        *,
        events: bool,
        test: bool,
        dead: bool,
    ) -> None:
        self.client = principal.name
        self.events = events
        self.test = test
        self.dead = dead
        self._types = types
        self._topics = topics
        self._patterns = _pattern_set(tuple(principal.permissions.ce_consume_types))
        self._accepts = _filter_for(self._patterns)

    def follows(self, principal: Principal) -> bool:
        """Take the client's current consumable types; whether they changed.

        An operator may change a client's ``ce_consume_types`` while its instances live:
        each request brings the client's current permissions, and a change takes effect
        at once (the caller then makes the instance look again at its topics).
        """
        patterns = _pattern_set(tuple(principal.permissions.ce_consume_types))
        if patterns is self._patterns:
            return False
        self._patterns = patterns
        self._accepts = _filter_for(patterns)
        return True

    def version(self) -> int:
        """The type registry's version: it moves when a type is first produced."""
        return self._types.version

    async def topics(self) -> frozenset[str]:
        """The event types' topics, and the client's test and dead streams (created on
        first use, so that the instance reads them from their first event)."""
        topics: set[str] = set()
        if self.events:
            topics.update(self._types.topics_matching(self._patterns))
        if self.test:
            topics.add((await self._topics.stream(test_topic(self.client))).name)
        if self.dead:
            topics.add((await self._topics.stream(dead_topic(self.client))).name)
        return shared_topics(topics)

    def filter(self, topic: str) -> RecordFilter | None:
        """Every record of the client's own streams; events of consumable types elsewhere."""
        if self.test and topic == test_topic(self.client):
            return None
        if self.dead and topic == dead_topic(self.client):
            return None
        return self._accepts

    def every_instance(self, topic: str) -> bool:
        """The client's test and dead streams: every instance sees each of their events."""
        return topic == test_topic(self.client) or topic == dead_topic(self.client)


async def follow_types(types: EventTypes, instances: ConsumerInstances) -> None:
    """Tell the consumer instances whenever a type is registered; runs until cancelled."""
    version = types.version
    while True:
        version = await types.changed(version)
        instances.subscriptions_changed()
