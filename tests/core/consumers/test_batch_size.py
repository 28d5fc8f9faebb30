"""The bytes a batch counts are the records' own ``size()``, counted in bulk."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.core.consumers.instance import _size
from sluicegate.core.records import Record

_RECORDS = st.builds(
    Record,
    topic=st.just("t"),
    partition=st.just(0),
    offset=st.integers(0, 100),
    timestamp=st.just(1),
    key=st.one_of(st.none(), st.binary(max_size=5)),
    value=st.one_of(st.none(), st.binary(max_size=50)),
    headers=st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=8)), max_size=4).map(tuple),
)


@settings(deadline=None)  # timed per example: a loaded machine is not a failure
@given(st.lists(_RECORDS, max_size=10))
def test_size_is_the_sum_of_record_sizes(records: list[Record]) -> None:
    assert _size(records) == sum(record.size() for record in records)
