"""A topic batch is the sequence of records its columns hold, whoever reads it."""

from __future__ import annotations

import pytest

from sluicegate.core.records import NewRecord
from sluicegate.core.topic_batch import TopicBatch


def _batch() -> TopicBatch:
    return TopicBatch("t", [0, 2, 2], [b"k", None, b"key"], [b"value", b"v", None])


def test_its_records_are_its_columns_row_by_row() -> None:
    expected = [
        NewRecord("t", 0, b"k", b"value"),
        NewRecord("t", 2, None, b"v"),
        NewRecord("t", 2, b"key", None),
    ]
    batch = _batch()
    assert len(batch) == 3
    assert list(batch) == expected
    assert [batch[i] for i in range(-3, 3)] == expected * 2
    assert list(batch[1:]) == expected[1:]
    assert isinstance(batch[1:], TopicBatch)


def test_its_size_is_the_sum_of_its_records_sizes() -> None:
    batch = _batch()
    assert batch.size() == sum(record.size() for record in batch) == 10
    assert TopicBatch("t", [], [], []).size() == 0
    keyed = TopicBatch("t", [1] * 3, [b"key"] * 3, [b"a", None, b"bc"])
    assert keyed.size() == sum(record.size() for record in keyed) == 12


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="as long as each other"):
        TopicBatch("t", [0, 0], [None], [b"a", b"b"])
