"""A batch over several partitions: offsets given in bulk equal the record-by-record ones."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.core.records import Appended, NewRecord
from sluicegate.storage.sqlite.catalog import PartitionState
from sluicegate.storage.sqlite.writer import _Pending, _spread


def _states() -> list[PartitionState]:
    return [
        PartitionState(topic_id=t, index=p, low=0, high=10 * t + p, last_ts=5)
        for t in (1, 2)
        for p in range(4)
    ]


def _by_record(
    batch: list[NewRecord],
    states: list[PartitionState],
    touched: dict[PartitionState, _Pending],
    now: int,
) -> list[Appended]:
    # The writer's loop before the bulk path, kept here as the reference.
    results = []
    for record, state in zip(batch, states, strict=True):
        pending = touched.get(state)
        if pending is None:
            pending = touched[state] = _Pending(state, now)
        offset = state.next
        state.next = offset + 1
        pending.records.append(record)
        results.append(Appended(record.topic, state.index, offset, pending.ts))
    return results


@settings(max_examples=300, deadline=None)
@given(
    places=st.lists(st.integers(0, 7), min_size=1, max_size=60),
    already=st.lists(st.integers(0, 7), max_size=3),
)
def test_spread_equals_the_record_by_record_loop(places: list[int], already: list[int]) -> None:
    outcomes = []
    for spread in (_spread, _by_record):
        states = _states()
        touched: dict[PartitionState, _Pending] = {}
        for at in already:  # partitions an earlier append of the same group touched
            touched.setdefault(states[at], _Pending(states[at], 7))
        chosen = [states[at] for at in places]
        batch = [
            NewRecord(f"t{s.topic_id}", s.index, None, b"%d" % n) for n, s in enumerate(chosen)
        ]
        results = spread(batch, chosen, touched, 9)
        outcomes.append(
            (
                results,
                [(s.topic_id, s.index, s.next) for s in states],
                [(s.topic_id, s.index, p.base, p.ts, p.records) for s, p in touched.items()],
            )
        )
    assert outcomes[0] == outcomes[1]
