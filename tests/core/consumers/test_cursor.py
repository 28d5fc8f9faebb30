"""A partition's in-flight deliveries: confirmed prefixes, committable positions, compaction."""

from __future__ import annotations

from sluicegate.core.consumers.counts import MAX_TRACKED, DeliveryCounts
from sluicegate.core.consumers.cursor import PartitionCursor
from sluicegate.core.records import TopicPartition


def test_nothing_in_flight_commits_the_read_position() -> None:
    cursor = PartitionCursor(7)
    assert cursor.committable() == 7
    assert cursor.unconfirmed == 0


def test_the_first_unconfirmed_delivery_bounds_the_commit() -> None:
    cursor = PartitionCursor(0)
    # Offsets with gaps, as Kafka's transaction markers leave them; sequence numbers of
    # another partition's deliveries (2, 4) interleave.
    cursor.deliver(1, [0])
    cursor.deliver(3, [2])
    cursor.deliver(5, [5, 6])
    cursor.position = 7
    assert cursor.confirm(2) == 1
    assert cursor.committable() == 2
    assert cursor.confirm(4) == 1
    assert cursor.committable() == 5
    assert cursor.unconfirmed == 2
    assert cursor.confirm(5) == 1
    assert cursor.committable() == 6
    assert cursor.confirm(100) == 1
    assert cursor.committable() == 7
    assert cursor.unconfirmed == 0


def test_confirming_again_changes_nothing() -> None:
    cursor = PartitionCursor(0)
    cursor.deliver(1, [0, 1, 2])
    cursor.position = 3
    assert cursor.confirm(2) == 2
    assert cursor.confirm(2) == 0
    assert cursor.confirm(1) == 0
    assert cursor.committable() == 2


def test_a_long_stream_compacts_what_was_confirmed() -> None:
    cursor = PartitionCursor(0)
    total = 5000
    cursor.deliver(1, list(range(total)))
    cursor.position = total
    for upto in range(100, total, 100):
        cursor.confirm(upto)
        assert cursor.committable() == upto
        assert cursor.unconfirmed == total - upto
    assert cursor.sequences is not None
    assert len(cursor.sequences) < total  # the confirmed front was dropped


def test_a_commit_by_another_instance_skips_what_it_covers() -> None:
    cursor = PartitionCursor(0)
    cursor.deliver(1, [0, 1, 2, 3])
    cursor.position = 4
    cursor.skip_to(2)
    assert (cursor.position, cursor.unconfirmed, cursor.committable()) == (4, 2, 2)
    cursor.skip_to(9)
    assert (cursor.position, cursor.unconfirmed, cursor.committable()) == (9, 0, 9)
    cursor.skip_to(5)  # behind: nothing moves
    assert cursor.position == 9


def test_delivery_counts_keep_only_redeliveries() -> None:
    counts = DeliveryCounts()
    tp = TopicPartition("t", 0)
    assert counts.delivered(tp, [0, 1, 2]) is None
    assert counts.count(tp, 1) == 1
    assert counts.count(tp, 3) == 0
    assert counts.delivered(tp, [1, 2, 3]) == {0: 2, 1: 2}
    assert counts.delivered(tp, [2, 3]) == {0: 3, 1: 2}
    assert counts.redelivered == 3
    counts.committed(tp, 3)
    assert counts.redelivered == 1
    assert counts.count(tp, 3) == 2


def test_delivery_counts_are_bounded() -> None:
    counts = DeliveryCounts()
    tp = TopicPartition("t", 0)
    everything = list(range(MAX_TRACKED + 100))
    counts.delivered(tp, everything)
    again = counts.delivered(tp, everything)
    assert again is not None
    assert set(again.values()) == {2}
    assert counts.redelivered == MAX_TRACKED
    assert counts.delivered(tp, [0]) == {0: 3}  # tracked ones go on counting
