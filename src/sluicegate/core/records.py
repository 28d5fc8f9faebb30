"""Records: exactly Kafka's record, so every backend can store them one to one."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

__all__ = [
    "Appended",
    "Header",
    "NewRecord",
    "Record",
    "TopicPartition",
    "Watermarks",
    "format_timestamp",
    "parse_timestamp",
]

#: A record header: a name and raw bytes. Order and duplicates are kept, as in Kafka.
Header = tuple[str, bytes]

# The Structs below hold only strings, numbers, bytes and tuples or lists of them, so they
# can never be part of a reference cycle: ``gc=False`` keeps them out of the cyclic
# collector, which would otherwise walk every record in flight on each young collection.


class TopicPartition(msgspec.Struct, frozen=True, order=True, array_like=True, gc=False):
    topic: str
    partition: int


class NewRecord(msgspec.Struct, frozen=True, gc=False):
    """A record to append. The partition is already chosen (see ``core.partitioner``)."""

    topic: str
    partition: int
    key: bytes | None = None
    value: bytes | None = None
    headers: Sequence[Header] = ()
    #: What ``size()`` returns, when whoever made the record counted it already: a
    #: dialect that builds many records from shared headers knows it in a few additions,
    #: where counting header by header costs more than the rest of storing the record.
    #: Storage takes it as given (it must equal ``size()``); ``None``: storage counts.
    known_size: int | None = None

    def size(self) -> int:
        """Bytes of key, value and headers: what retention and read limits count."""
        if self.known_size is not None:
            return self.known_size
        return (
            (len(self.key) if self.key is not None else 0)
            + (len(self.value) if self.value is not None else 0)
            + sum(len(name) + len(value) for name, value in self.headers)
        )


class Appended(msgspec.Struct, frozen=True, gc=False):
    """Where an acknowledged record landed. Durable once you hold it."""

    topic: str
    partition: int
    offset: int
    #: Log-append time in microseconds since the epoch, never decreasing per partition.
    timestamp: int


class Record(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """A stored record.

    Array-like: the Kafka reader process sends each as a msgpack array, which the server
    decodes into records in one C call (``storage/kafka/reader_process.py``); one without
    headers leaves them out.

    Headers are tuples, never a list: consumers' read-aheads keep tens of thousands of
    records alive, and the collector stops following a tuple of strings and bytes after
    its first collection, where it walks a list and its pairs at every collection of the
    generation that holds them.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()

    def size(self) -> int:
        return (
            (len(self.key) if self.key is not None else 0)
            + (len(self.value) if self.value is not None else 0)
            + sum(len(name) + len(value) for name, value in self.headers)
        )


class Watermarks(msgspec.Struct, frozen=True):
    """``low`` is the first offset still stored; ``high`` the offset the next record gets."""

    low: int
    high: int


@functools.lru_cache(maxsize=4)
def _format_seconds(seconds: int) -> str:
    # Every response formats a timestamp, and they share their second: format it once.
    # ``isoformat``, not ``%Y``: that does not pad a year before 1000 to four digits.
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None).isoformat()


@functools.lru_cache(maxsize=256)
def format_timestamp(timestamp_us: int) -> str:
    """RFC 3339 in UTC with microseconds, e.g. ``2022-01-24T06:43:39.079206Z``."""
    # Cached too: every record of one group commit shares its timestamp.
    seconds, micros = divmod(timestamp_us, 1_000_000)
    return f"{_format_seconds(seconds)}.{micros:06d}Z"


def parse_timestamp(text: str) -> int:
    """Parse RFC 3339 (any offset, fraction optional) into microseconds since the epoch.

    Raises ``ValueError`` naming what was expected.
    """
    try:
        dt = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"expected an RFC 3339 timestamp, got {text!r}") from None
    if dt.tzinfo is None:
        raise ValueError(f"expected an RFC 3339 timestamp with a time zone, got {text!r}")
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
