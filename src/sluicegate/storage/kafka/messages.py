"""Fetched messages as the log's records, one by one or a partition's run at a time.

Every record the reader fetches is converted here, on the reader's thread, which shares
the GIL with the loop: the fewer Python steps per message, the more a consumer reads. A
run of one partition's messages (as ``consume`` returns them, one fetch response after
the other) is converted by C loops, one ``map`` per field, with no bytecode per message;
only a run holding a message without headers or a header without a value goes message
by message.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, repeat
from operator import countOf, itemgetter, mul
from typing import cast

from confluent_kafka import Message

from sluicegate.core.records import Header, Record

__all__ = ["offsets_of", "to_record", "to_records"]

# Unbound methods, called by ``map`` for each message of a run.
_HEADERS = Message.headers
_KEY = Message.key
_OFFSET = Message.offset
_TIMESTAMP = Message.timestamp
_VALUE = Message.value
_SECOND = itemgetter(1)
_MILLIS_TO_MICROS = 1000


def to_record(message: Message, topic: str) -> Record:
    """A stored record from a fetched message; ``topic`` is the gateway's name for it."""
    # A fetched message's headers are a list of (str, bytes) pairs, or (str, None) for a
    # header without a value, which the gateway's records carry as b"".
    headers = cast(list[tuple[str, bytes | None]] | None, message.headers())
    kept: Sequence[Header] = ()
    if headers:
        kept = cast(list[Header], headers)
        for _, value in headers:
            if value is None:
                kept = [(name, b"" if value is None else value) for name, value in headers]
                break
    offset = message.offset()
    return Record(
        topic,
        message.partition() or 0,
        -1 if offset is None else offset,
        message.timestamp()[1] * _MILLIS_TO_MICROS,
        message.key(),
        message.value(),
        kept,
    )


def offsets_of(messages: Sequence[Message]) -> list[int]:
    """The offsets of fetched records (never None: only errors lack one)."""
    return cast(list[int], list(map(_OFFSET, messages)))


def to_records(
    messages: Sequence[Message], offsets: list[int], topic: str, partition: int
) -> list[Record]:
    """``to_record`` of each of ``messages``, records of ``partition`` at ``offsets``."""
    count = len(messages)
    heads = cast(list[list[tuple[str, bytes | None]] | None], list(map(_HEADERS, messages)))
    missing = countOf(heads, None)
    kept: Sequence[Sequence[Header]]
    if missing == count:
        kept = [()] * count  # no headers at all: records share the empty tuple
    elif missing:
        return [to_record(message, topic) for message in messages]
    else:
        # The values laid end to end: joining them fails on a None, found with no step
        # per header (a header list is never empty: librdkafka gives None instead).
        try:
            pairs = chain.from_iterable(cast(list[list[tuple[str, bytes | None]]], heads))
            b"".join(cast(list[bytes], list(chain.from_iterable(pairs))[1::2]))
        except TypeError:
            return [to_record(message, topic) for message in messages]
        kept = cast(list[list[Header]], heads)
    stamps = map(mul, map(_SECOND, map(_TIMESTAMP, messages)), repeat(_MILLIS_TO_MICROS))
    return list(
        map(
            Record,
            repeat(topic, count),
            repeat(partition, count),
            offsets,
            stamps,
            map(_KEY, messages),
            map(_VALUE, messages),
            kept,
        )
    )
