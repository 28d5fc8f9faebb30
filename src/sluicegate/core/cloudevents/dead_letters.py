"""Automatic dead-lettering of CloudEvents: an event its group had delivered
``max_deliveries`` times without a confirmation goes to the client's dead stream
(``streams.py``), with extension attributes that say why:

* ``deadreason``: ``maxdeliveries``;
* ``deliverycount``: how many times it was delivered (an integer);
* ``deadgroup``: the consumer group that gave up on it.

Its other attributes and its data are the event's own, as a consumer received them.
An event too large for the dead stream with them (another Kafka client may write an
event close to its topic's limit, and the extensions add to it) goes without its data,
and if still too large without its other extensions too; ``deadomitted`` then says what
was left out (``data``, ``data extensions``). The event itself stays in its topic. A
dead event refused for good would otherwise be tried again at every read and stop its
group there, the very thing dead-lettering is for.
"""

from __future__ import annotations

import logging

import msgspec

from sluicegate.core.cloudevents.binding import from_record
from sluicegate.core.cloudevents.producer import EventProducer
from sluicegate.core.cloudevents.streams import dead_topic
from sluicegate.core.records import Record
from sluicegate.errors import PayloadTooLarge

__all__ = ["MAX_DELIVERIES_REASON", "StreamDeadLetters", "consumer_group_of"]

MAX_DELIVERIES_REASON = "maxdeliveries"

logger = logging.getLogger(__name__)


def consumer_group_of(storage_group: str) -> str:
    """The client's group name in a storage group ``ce/<client>/<group>``."""
    return storage_group.split("/", 2)[-1]


class StreamDeadLetters:
    """``core.consumers.dead.DeadLetters`` writing to each client's dead stream."""

    def __init__(self, producer: EventProducer) -> None:
        self._producer = producer

    async def dead_letter(self, owner: str, group: str, record: Record, deliveries: int) -> None:
        event = from_record(record)
        own = {k: v for k, v in event.extensions.items() if k not in _OURS}
        reason = {
            "deadreason": MAX_DELIVERIES_REASON,
            "deliverycount": str(deliveries),
            "deadgroup": consumer_group_of(group),
        }
        whole = msgspec.structs.replace(
            event, extensions=own | reason, literal=event.literal | {"deliverycount"}
        )
        without_data = msgspec.structs.replace(
            whole, data=None, extensions=own | reason | {_OMITTED: "data"}
        )
        bare = msgspec.structs.replace(
            without_data,
            extensions=reason | {_OMITTED: "data extensions"},
            literal=frozenset({"deliverycount"}),
        )
        stream = dead_topic(owner)
        for attempt in (whole, without_data, bare):
            try:
                await self._producer.store_dead_letter(stream, group, attempt)
                return
            except PayloadTooLarge:
                continue
        # Its id, source and type alone are too large: nothing of it can be stored, and
        # the group must not stop at it for good.
        logger.error(
            "event %s/%d@%d (group %r) given up on is too large for the dead stream %r "
            "even without its data and extensions; passed over",
            record.topic,
            record.partition,
            record.offset,
            group,
            stream,
        )


_OMITTED = "deadomitted"
_OURS = frozenset({"deadreason", "deliverycount", "deadgroup", _OMITTED})
