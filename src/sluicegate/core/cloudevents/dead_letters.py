"""Automatic dead-lettering of CloudEvents: an event its group had delivered
``max_deliveries`` times without a confirmation goes to the client's dead stream
(``streams.py``), with extension attributes that say why:

* ``deadreason``: ``maxdeliveries``;
* ``deliverycount``: how many times it was delivered (an integer);
* ``deadgroup``: the consumer group that gave up on it.

Its other attributes and its data are the event's own, as a consumer received them.
"""

from __future__ import annotations

import msgspec

from sluicegate.core.cloudevents.binding import from_record
from sluicegate.core.cloudevents.producer import EventProducer
from sluicegate.core.cloudevents.streams import dead_topic
from sluicegate.core.records import Record

__all__ = ["MAX_DELIVERIES_REASON", "StreamDeadLetters", "consumer_group_of"]

MAX_DELIVERIES_REASON = "maxdeliveries"


def consumer_group_of(storage_group: str) -> str:
    """The client's group name in a storage group ``ce/<client>/<group>``."""
    return storage_group.split("/", 2)[-1]


class StreamDeadLetters:
    """``core.consumers.dead.DeadLetters`` writing to each client's dead stream."""

    def __init__(self, producer: EventProducer) -> None:
        self._producer = producer

    async def dead_letter(self, owner: str, group: str, record: Record, deliveries: int) -> None:
        event = from_record(record)
        extensions = {
            **{k: v for k, v in event.extensions.items() if k not in _OURS},
            "deadreason": MAX_DELIVERIES_REASON,
            "deliverycount": str(deliveries),
            "deadgroup": consumer_group_of(group),
        }
        event = msgspec.structs.replace(
            event, extensions=extensions, literal=event.literal | {"deliverycount"}
        )
        await self._producer.store_dead_letter(dead_topic(owner), group, event)


_OURS = frozenset({"deadreason", "deliverycount", "deadgroup"})
