"""Assigning partitions of topics a consumer has not seen yet, without waiting a second.

librdkafka learns a topic's leaders from metadata. A partition assigned before its topic is
in the consumer's metadata cache waits for the client's periodic scan of unknown topics,
which runs once a second: the first read of a new topic, or the first record a tail
follows on it, arrived 0.4-0.8 s late. Asking for the topic's metadata first (one small
request, once per topic per consumer) lets the fetch start at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

__all__ = ["KnownTopics"]

#: Seconds one metadata question may take; past it the assignment waits for the scan.
_METADATA_SECONDS = 1.0


class KnownTopics:
    """The topics one consumer has metadata for; used on that consumer's thread only."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer
        self._known: set[str] = set()

    def assign(self, partitions: list[KafkaPartition]) -> None:
        """``consumer.assign(partitions)``, each new topic's metadata asked first."""
        self._learn(p.topic for p in partitions)
        self._consumer.assign(partitions)

    def incremental_assign(self, partitions: list[KafkaPartition]) -> None:
        """``consumer.incremental_assign(partitions)``, each new topic's metadata asked first."""
        self._learn(p.topic for p in partitions)
        self._consumer.incremental_assign(partitions)

    def forget(self, topics: Iterable[str]) -> None:
        """``topics`` are gone: a topic created again under a name is asked about again."""
        self._known.difference_update(topics)

    def _learn(self, topics: Iterable[str]) -> None:
        for topic in set(topics) - self._known:
            # Known from here on whatever the answer: a broker that does not answer
            # must not hold up every later round of this topic by a second each.
            self._known.add(topic)
            # Unanswered, the assignment goes ahead: librdkafka's own scan finds the leader.
            with contextlib.suppress(KafkaException):
                self._consumer.list_topics(topic, timeout=_METADATA_SECONDS)
