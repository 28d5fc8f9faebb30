"""Message ids: opaque, short, URL-safe cursor positions on one topic.

A message id names its topic (the catalog's integer id) and the position *right after*
the message: the next offset to read in every partition of the topic. Resuming after an
id therefore needs no look-up, and on a topic with several partitions (one written
through records v2 with 8, say) a walk of ids delivers every record exactly once
whatever order the partitions are merged in: each partition's offset only moves past
records that were delivered.

Layout, before base64url (no padding): unsigned LEB128 varints.

* one partition: ``topic_id, next_offset`` (a few bytes: ``AxA`` is topic 3, offset 16);
* several: ``topic_id, partition, next_offset[0], ..., next_offset[n-1]``, where
  ``partition`` is the message's own (so its existence can be checked).

Anything else (bad characters, a truncated or overlong varint, three values, an id that
does not re-encode to itself) is malformed. Valid-looking ids are then checked against
the topic: another topic's id or a position past the high watermark (never issued) is
``InvalidMessageId`` (400); records the id had not yet reached that were removed since
(purged, or expired by retention) is ``MessagePurged`` (404), never a silent restart.
The message the id names may be gone itself: its reader had it, and resuming after it
is exact (a consumer that had read everything goes on after a purge, as a long poll
waiting through one does).
"""

from __future__ import annotations

import binascii
import functools
import re
from collections.abc import Sequence

from sluicegate.core.records import Watermarks
from sluicegate.errors import InvalidMessageId, MessagePurged
from sluicegate.storage.topic_rules import MAX_PARTITIONS

__all__ = [
    "MessageId",
    "consecutive_message_ids",
    "message_id",
    "parse_message_id",
    "resume_positions",
    "single_partition_id",
]

#: Longer ids are not ones this gateway issued: the longest it can issue, a topic of the
#: most partitions a topic may have with every varint at its longest (10 bytes), in
#: base64 (about 133,000 characters, held in a body of at most 1 MiB).
_MAX_LENGTH = -(-(MAX_PARTITIONS + 2) * 10 * 4 // 3)
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")


class MessageId:
    """A decoded message id: topic, the message's partition, next offset per partition."""

    __slots__ = ("partition", "positions", "topic_id")

    def __init__(self, topic_id: int, partition: int, positions: tuple[int, ...]) -> None:
        self.topic_id = topic_id
        self.partition = partition
        self.positions = positions

    def __repr__(self) -> str:
        return f"MessageId({self.topic_id}, {self.partition}, {self.positions})"


def _varint(value: int) -> bytes:
    # Up to four bytes without a loop: every topic id a catalog hands out in practice,
    # and offsets below 268,435,456 (a loop of bytearray appends cost a three-byte
    # varint 4,500 instructions, these 3,000 with the call).
    if value < 0x80:
        return _LAST_BYTES[value]
    if value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0x200000:
        return bytes(((value & 0x7F) | 0x80, (value >> 7 & 0x7F) | 0x80, value >> 14))
    if value < 0x10000000:
        return bytes(
            (
                (value & 0x7F) | 0x80,
                (value >> 7 & 0x7F) | 0x80,
                (value >> 14 & 0x7F) | 0x80,
                value >> 21,
            )
        )
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@functools.lru_cache(maxsize=1024)
def _topic_prefix(topic_id: int) -> bytes:
    # Every id of a topic starts with the same bytes: encoded once per topic.
    return _varint(topic_id)


def _b64(data: bytes) -> str:
    return _b64_bytes(data).decode()


def _b64_bytes(data: bytes) -> bytes:
    # The padding is deleted by the same translate that makes the text URL-safe.
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE, b"=")


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def message_id(topic_id: int, partition: int, positions: Sequence[int]) -> str:
    """The id of the message on ``partition`` after which ``positions`` are next to read."""
    if len(positions) == 1:
        return _b64(_topic_prefix(topic_id) + _varint(positions[0]))
    parts = [_topic_prefix(topic_id), _varint(partition)]
    parts.extend(_varint(position) for position in positions)
    return _b64(b"".join(parts))


def single_partition_id(topic_id: int, next_offset: int) -> bytes:
    """``message_id(topic_id, 0, (next_offset,))`` as ASCII bytes, ready for a body."""
    # One of these per published message. A topic id below 128 is one byte: the id's
    # bytes are then laid out at once, without _topic_prefix's and _varint's calls and
    # the concatenation (7,800 instructions at an offset of 123,457; 5,000 this way).
    if topic_id < 0x80 and next_offset < 0x200000:
        if next_offset < 0x80:
            data = bytes((topic_id, next_offset))
        elif next_offset < 0x4000:
            data = bytes((topic_id, (next_offset & 0x7F) | 0x80, next_offset >> 7))
        else:
            data = bytes(
                (
                    topic_id,
                    (next_offset & 0x7F) | 0x80,
                    (next_offset >> 7 & 0x7F) | 0x80,
                    next_offset >> 14,
                )
            )
    else:
        data = _topic_prefix(topic_id) + _varint(next_offset)
    # _b64_bytes, inlined.
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE, b"=")


# Single varint bytes: a value below 128 as it is, and a low group of 7 bits with the
# continuation bit set. Sliced, they are the first varint bytes of a run of positions.
_LAST_BYTES = tuple(bytes((b,)) for b in range(0x80))
_CONTINUED_BYTES = tuple(bytes((b | 0x80,)) for b in range(0x80))
# Zero bytes that make a length a multiple of 3, by ``length % 3``.
_ALIGN = (b"", b"\0\0", b"\0")


def _same_length_ids(prefix: bytes, lows: Sequence[bytes], tail: bytes) -> list[str]:
    """``_b64(prefix + low + tail)`` for each of ``lows``, with one base64 call for all."""
    # Base64 turns each 3 bytes into 4 characters on their own, so ids padded with zero
    # bytes to a multiple of 3 and laid end to end encode to the ids' texts end to end,
    # each followed by the "A"s of its padding, which the slices below leave out.
    size = len(prefix) + 1 + len(tail)
    align = _ALIGN[size % 3]
    chars = (4 * size + 2) // 3
    step = (size + len(align)) // 3 * 4
    blob = prefix + (tail + align + prefix).join(lows) + tail + align
    text = _b64(blob)
    return [text[start : start + chars] for start in range(0, len(text), step)]


def consecutive_message_ids(topic_id: int, first: int, count: int) -> list[str]:
    """``message_id(topic_id, 0, (n,))`` for ``n`` from ``first`` to ``first + count - 1``.

    The ids a one-partition topic hands out for a run of records, worked out together:
    positions share their higher varint bytes in blocks of 128, so each block is one
    join and one base64 call, and each id one slice of its text.
    """
    prefix = _topic_prefix(topic_id)
    ids: list[str] = []
    position, end = first, first + count
    while position < end:
        block_end = min(end, (position | 0x7F) + 1)
        if position < 0x80:
            ids += _same_length_ids(prefix, _LAST_BYTES[position:block_end], b"")
        else:
            low, high = position & 0x7F, ((block_end - 1) & 0x7F) + 1
            ids += _same_length_ids(prefix, _CONTINUED_BYTES[low:high], _varint(position >> 7))
        position = block_end
    return ids


def _malformed(text: str) -> InvalidMessageId:
    shown = text if len(text) <= 64 else text[:64] + "..."
    return InvalidMessageId(
        f"invalid message id {shown!r}: not an id this gateway issued "
        "(ids are the message_id values that publish and consume return)"
    )


def _varints(data: bytes) -> list[int] | None:
    values: list[int] = []
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 63:
                return None
            continue
        values.append(value)
        value = shift = 0
    return values if shift == 0 else None


def parse_message_id(text: str) -> MessageId:
    """Decode ``text``; ``InvalidMessageId`` if it is not exactly an id we issue."""
    if not 2 <= len(text) <= _MAX_LENGTH or _ALPHABET.fullmatch(text) is None:
        raise _malformed(text)
    raw = text.encode().translate(_FROM_URLSAFE)
    try:
        data = binascii.a2b_base64(raw + b"=" * (-len(raw) % 4), strict_mode=True)
    except binascii.Error:
        raise _malformed(text) from None
    values = _varints(data)
    if values is None or len(values) == 3 or len(values) < 2:
        raise _malformed(text)
    if len(values) == 2:
        parsed = MessageId(values[0], 0, (values[1],))
    else:
        parsed = MessageId(values[0], values[1], tuple(values[2:]))
    # One canonical spelling per id: no overlong varints, no stray trailing bits.
    if parsed.partition >= len(parsed.positions) or (
        message_id(parsed.topic_id, parsed.partition, parsed.positions) != text
    ):
        raise _malformed(text)
    return parsed


def resume_positions(
    parsed: MessageId, topic_id: int, watermarks: Sequence[Watermarks]
) -> list[int]:
    """The next offset to read per partition after ``parsed``, checked against the topic.

    A partition added after the id was issued starts at its low watermark: it was empty
    when the id was issued, so every record in it comes after the message.
    """
    if parsed.topic_id != topic_id:
        raise InvalidMessageId(
            f"message id belongs to topic {parsed.topic_id}, not to topic {topic_id}"
        )
    positions = parsed.positions
    if len(positions) > len(watermarks):
        raise InvalidMessageId(
            f"message id names {len(positions)} partitions; topic {topic_id} has "
            f"{len(watermarks)}: it was never issued for this topic"
        )
    for position, marks in zip(positions, watermarks, strict=False):
        if position > marks.high:
            raise InvalidMessageId(
                f"message id is past the end of topic {topic_id}: it was never issued"
            )
    own = positions[parsed.partition]
    if own < 1:
        raise InvalidMessageId(f"message id names no message of topic {topic_id}")
    if any(position < marks.low for position, marks in zip(positions, watermarks, strict=False)):
        raise MessagePurged(
            f"messages after the one this id names were purged from topic {topic_id} (or "
            "expired by its retention) before they were read; start again without "
            "after_message_id, or with since_time"
        )
    return [*positions, *(marks.low for marks in watermarks[len(positions) :])]
