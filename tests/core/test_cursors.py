"""Message ids: short, canonical, and refused with the right error when they cannot resume."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.core.cursors import (
    consecutive_message_ids,
    message_id,
    parse_message_id,
    resume_positions,
    single_partition_id,
)
from sluicegate.core.records import Watermarks
from sluicegate.errors import InvalidMessageId, MessagePurged
from sluicegate.storage.topic_rules import MAX_PARTITIONS


def test_single_partition_ids_are_short_and_url_safe() -> None:
    assert message_id(3, 0, (16,)) == "AxA"
    assert len(message_id(12, 0, (10_000_000,))) == 7  # 5 bytes
    for offset in (0, 1, 127, 128, 2**40):
        text = message_id(7, 0, (offset,))
        assert text.replace("-", "").replace("_", "").isalnum()
        parsed = parse_message_id(text)
        assert (parsed.topic_id, parsed.partition, parsed.positions) == (7, 0, (offset,))


@pytest.mark.parametrize("topic_id", [0, 1, 127, 128, 2**14 - 1, 2**14, 2**40])
@pytest.mark.parametrize("offset", [0, 1, 127, 128, 2**14 - 1, 2**14, 2**21, 2**63 - 1])
def test_a_single_partition_id_as_bytes_is_the_id(topic_id: int, offset: int) -> None:
    # What publish puts in its answer, across each varint length's edges; and the id
    # decodes back to where it came from (the varints' one- and two-byte shortcuts too).
    text = message_id(topic_id, 0, (offset,))
    assert single_partition_id(topic_id, offset) == text.encode()
    parsed = parse_message_id(text)
    assert (parsed.topic_id, parsed.partition, parsed.positions) == (topic_id, 0, (offset,))


def _reference_id(topic_id: int, offset: int) -> bytes:
    """The id's layout written out plainly: two varints, URL-safe base64 without padding."""
    data = bytearray()
    for value in (topic_id, offset):
        while value >= 0x80:
            data.append(value & 0x7F | 0x80)
            value >>= 7
        data.append(value)
    return base64.urlsafe_b64encode(bytes(data)).rstrip(b"=")


@given(
    topic_id=st.one_of(st.integers(0, 200), st.integers(0, 2**63 - 1)),
    offset=st.one_of(st.integers(0, 2**29), st.integers(0, 2**63 - 1)),
)
def test_ids_are_laid_out_as_two_varints_in_base64(topic_id: int, offset: int) -> None:
    # Against a plain encoding, not the module's own: publish's shortcuts for small topic
    # ids and the varints' unrolled lengths must give exactly the bytes of the layout.
    expected = _reference_id(topic_id, offset)
    assert single_partition_id(topic_id, offset) == expected
    assert message_id(topic_id, 0, (offset,)).encode() == expected


@pytest.mark.parametrize("topic_id", [0, 127, 128, 2**14, 2**40])
@pytest.mark.parametrize(
    "first", [0, 1, 77, 127, 128, 200, 2**14 - 60, 2**21 - 1, 2**28 - 3, 2**35 + 64]
)
@pytest.mark.parametrize("count", [0, 1, 50, 300])
def test_consecutive_ids_are_the_ids_one_by_one(topic_id: int, first: int, count: int) -> None:
    # Ids are a stored contract: worked out together they must be exactly the ids one by
    # one, across every varint length and block of 128 a run can cross.
    expected = [message_id(topic_id, 0, (n,)) for n in range(first, first + count)]
    assert consecutive_message_ids(topic_id, first, count) == expected


@settings(deadline=None)  # hundreds of ids one by one: slow on a busy machine
@given(
    topic_id=st.integers(0, 2**63 - 1),
    first=st.integers(0, 2**63 - 1000),
    count=st.integers(0, 300),
)
def test_consecutive_ids_match_at_any_position(topic_id: int, first: int, count: int) -> None:
    expected = [message_id(topic_id, 0, (n,)) for n in range(first, first + count)]
    assert consecutive_message_ids(topic_id, first, count) == expected


def test_multi_partition_ids_round_trip() -> None:
    positions = (5, 0, 300, 2**33, 1, 0, 0, 9)
    parsed = parse_message_id(message_id(42, 3, positions))
    assert (parsed.topic_id, parsed.partition, parsed.positions) == (42, 3, positions)


def test_the_longest_id_the_gateway_can_issue_is_read_back() -> None:
    # The most partitions a topic may have, every offset at its longest: an id a wide
    # topic's consumer must be able to go on from (8,192 characters were once the bound).
    positions = (2**63 - 1,) * MAX_PARTITIONS
    text = message_id(2**63 - 1, MAX_PARTITIONS - 1, positions)
    assert len(text) > 100_000
    parsed = parse_message_id(text)
    assert (parsed.partition, parsed.positions) == (MAX_PARTITIONS - 1, positions)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "A",
        "A12x!",
        "not an id",
        "////",
        "AxA=",  # padding is not part of an id
        "AxB",  # trailing bits: not the canonical spelling of any id
        "gwAQ",  # an overlong varint for 3
        "AwEC",  # three values: neither layout
        "AwUBAg",  # the message's partition (5) beyond the positions
        "x" * 140_000,
    ],
)
def test_malformed_ids_are_refused(text: str) -> None:
    with pytest.raises(InvalidMessageId, match="not an id this gateway issued"):
        parse_message_id(text)


MARKS = [Watermarks(low=2, high=10)]


def test_resume_after_a_message_of_this_topic() -> None:
    assert resume_positions(parse_message_id(message_id(3, 0, (4,))), 3, MARKS) == [4]
    assert resume_positions(parse_message_id(message_id(3, 0, (10,))), 3, MARKS) == [10]


def test_an_id_of_another_topic_is_refused() -> None:
    with pytest.raises(InvalidMessageId, match="belongs to topic 4, not to topic 3"):
        resume_positions(parse_message_id(message_id(4, 0, (4,))), 3, MARKS)


def test_an_id_past_the_end_was_never_issued() -> None:
    with pytest.raises(InvalidMessageId, match="never issued"):
        resume_positions(parse_message_id(message_id(3, 0, (11,))), 3, MARKS)
    with pytest.raises(InvalidMessageId, match="names 2 partitions"):
        resume_positions(parse_message_id(message_id(3, 1, (1, 1))), 3, MARKS)
    with pytest.raises(InvalidMessageId, match="names no message"):
        resume_positions(parse_message_id(message_id(3, 0, (0,))), 3, [Watermarks(0, 5)])


def test_messages_purged_before_they_were_read_are_an_error_not_a_restart() -> None:
    # Next offset 1 is below the low watermark 2: offset 1, not read yet, is gone.
    with pytest.raises(MessagePurged, match="before they were read"):
        resume_positions(parse_message_id(message_id(3, 0, (1,))), 3, MARKS)


def test_an_id_whose_own_message_is_gone_resumes_after_it() -> None:
    # Its reader had that message: nothing it had not read is missing.
    assert resume_positions(parse_message_id(message_id(3, 0, (2,))), 3, MARKS) == [2]
    # After a purge of everything (low == high), the last message's id goes on.
    after = resume_positions(parse_message_id(message_id(3, 0, (10,))), 3, [Watermarks(10, 10)])
    assert after == [10]


def test_records_the_id_had_not_reached_in_another_partition_were_removed() -> None:
    marks = [Watermarks(0, 10), Watermarks(5, 10)]
    with pytest.raises(MessagePurged):
        resume_positions(parse_message_id(message_id(3, 0, (4, 3))), 3, marks)
    assert resume_positions(parse_message_id(message_id(3, 0, (4, 5))), 3, marks) == [4, 5]


def test_partitions_added_after_the_id_start_at_their_low_watermark() -> None:
    marks = [Watermarks(0, 10), Watermarks(0, 3), Watermarks(1, 4)]
    assert resume_positions(parse_message_id(message_id(3, 0, (4,))), 3, marks) == [4, 0, 1]
