"""What the reader keeps past a read answers the next read only when it holds all of it."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from sluicegate.core.records import NewRecord, Record
from sluicegate.storage.kafka import read_ahead
from sluicegate.storage.kafka.read_ahead import ReadAhead

KEY = ("p.t", 0)
BIG = 1 << 20


def records(*offsets: int, size: int = 10) -> list[Record]:
    return [Record("t", 0, o, 0, None, b"x" * size, ()) for o in offsets]


def sizes(kept: list[Record]) -> list[int]:
    return [record.size() for record in kept]


def keep(ahead: ReadAhead, start: int, kept: list[Record]) -> None:
    ahead.keep(KEY, start, kept, sizes(kept))


def refill(ahead: ReadAhead, start: int, brought: list[Record], end: int) -> None:
    ahead.continue_with(KEY, start, brought, sizes(brought), end)


def test_the_read_from_where_the_last_stopped_is_answered_and_the_rest_kept() -> None:
    ahead = ReadAhead()
    keep(ahead, 10, records(10, 11, 13, 14))  # 12: a commit marker
    taken = ahead.take(KEY, 10, 100, max_records=3, max_bytes=BIG)
    assert taken is not None
    assert [r.offset for r in taken] == [10, 11, 13]
    rest = ahead.take(KEY, 14, 100, max_records=1, max_bytes=BIG)
    assert rest is not None
    assert [r.offset for r in rest] == [14]
    assert ahead.take(KEY, 15, 100, max_records=1, max_bytes=BIG) is None


def test_an_offset_outside_the_entry_or_too_little_goes_to_the_broker_and_drops_it() -> None:
    ahead = ReadAhead()
    keep(ahead, 10, records(10, 11))
    assert ahead.take(KEY, 9, 100, max_records=1, max_bytes=BIG) is None
    keep(ahead, 10, records(10, 11))
    assert ahead.take(KEY, 13, 100, max_records=1, max_bytes=BIG) is None
    keep(ahead, 10, records(10, 11))
    assert ahead.take(KEY, 10, 100, max_records=5, max_bytes=BIG) is None  # ran out
    assert ahead.take(KEY, 10, 100, max_records=1, max_bytes=BIG) is None  # dropped


def test_the_end_and_the_byte_limit_complete_a_read() -> None:
    ahead = ReadAhead()
    keep(ahead, 0, records(0, 1, 2, 3))
    taken = ahead.take(KEY, 0, 2, max_records=10, max_bytes=BIG)
    assert taken is not None
    assert [r.offset for r in taken] == [0, 1]
    by_bytes = ahead.take(KEY, 2, 100, max_records=10, max_bytes=15)
    assert by_bytes is not None
    assert [r.offset for r in by_bytes] == [2]  # the first always fits; 3 would not
    rest = ahead.take(KEY, 3, 100, max_records=1, max_bytes=BIG)
    assert rest is not None
    assert [r.offset for r in rest] == [3]


def test_entries_expire_and_are_forgotten_with_their_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ahead = ReadAhead()
    keep(ahead, 0, records(0, 1))
    ahead.forget([KEY])
    assert ahead.take(KEY, 0, 100, max_records=1, max_bytes=BIG) is None
    keep(ahead, 0, records(0, 1))
    later = time.monotonic() + 60
    monkeypatch.setattr(read_ahead, "time", SimpleNamespace(monotonic=lambda: later))
    assert ahead.take(KEY, 0, 100, max_records=1, max_bytes=BIG) is None


def appended(offset: int) -> tuple[int, int, NewRecord]:
    return offset, 7, NewRecord("t", 0, b"k", b"v%d" % offset, (("h", b"1"),))


def test_an_append_at_the_end_of_what_is_kept_continues_it() -> None:
    ahead = ReadAhead()
    keep(ahead, 10, records(10, 11))
    ahead.extend(KEY, *appended(12))
    taken = ahead.take(KEY, 10, 13, max_records=10, max_bytes=BIG)
    assert taken is not None
    assert [r.offset for r in taken] == [10, 11, 12]
    # As the reader would have fetched it: the gateway's topic, µs, headers as a tuple.
    assert taken[-1] == Record("t", 0, 12, 7, b"k", b"v12", (("h", b"1"),))


def test_a_read_that_took_everything_leaves_its_end_for_the_next_append() -> None:
    ahead = ReadAhead()
    keep(ahead, 10, records(10))
    assert ahead.take(KEY, 10, 11, max_records=10, max_bytes=BIG) is not None
    ahead.extend(KEY, *appended(11))
    taken = ahead.take(KEY, 11, 12, max_records=10, max_bytes=BIG)
    assert taken is not None
    assert [r.offset for r in taken] == [11]
    keep(ahead, 20, [])  # a round that ended at 20 with nothing after it
    ahead.extend(KEY, *appended(20))
    taken = ahead.take(KEY, 20, 21, max_records=10, max_bytes=BIG)
    assert taken is not None
    assert [r.offset for r in taken] == [20]


def test_an_append_past_a_gap_or_to_a_full_entry_changes_nothing() -> None:
    ahead = ReadAhead()
    keep(ahead, 10, records(10, 11))
    # 12 may be a commit marker or another writer's record: 13 does not continue 11.
    ahead.extend(KEY, *appended(13))
    assert ahead.take(KEY, 10, 14, max_records=10, max_bytes=BIG) is None
    ahead.extend(KEY, *appended(10))  # nothing kept: nothing to continue
    assert ahead.take(KEY, 10, 11, max_records=10, max_bytes=BIG) is None
    full = records(*range(read_ahead.RECORDS))
    keep(ahead, 0, full)
    ahead.extend(KEY, *appended(read_ahead.RECORDS))
    end = read_ahead.RECORDS + 1
    assert ahead.take(KEY, 0, end, max_records=end, max_bytes=BIG) is None


def test_what_is_kept_in_all_is_bounded_by_bytes_the_oldest_going_first() -> None:
    ahead = ReadAhead()
    value = 1024 * 1024 - read_ahead.RECORD_OVERHEAD  # a MiB a record, counted
    per_entry = read_ahead.MAX_BYTES // (1024 * 1024) // 2
    entries = [("p.t", n) for n in range(3)]
    for key in entries:
        kept = records(*range(per_entry), size=value)
        ahead.keep(key, 0, kept, sizes(kept))
    # Three halves of the bound: the first entry made room for the third.
    assert ahead.take(entries[0], 0, 1, max_records=1, max_bytes=BIG) is None
    for key in entries[1:]:
        assert ahead.take(key, 0, 1, max_records=1, max_bytes=BIG) is not None
    # An append that would pass the bound is not kept either.
    ahead.extend(entries[2], per_entry, 0, NewRecord("t", 0, None, b"x" * value))
    end = per_entry + 1
    assert ahead.take(entries[2], 1, end, max_records=end, max_bytes=1 << 40) is None


def test_any_offset_the_entry_covers_is_answered_from_it() -> None:
    ahead = ReadAhead()
    keep(ahead, 10, records(10, 11, 13, 14))  # 12: a commit marker
    first = ahead.take(KEY, 12, 100, max_records=2, max_bytes=BIG)
    assert first is not None
    assert [r.offset for r in first] == [13, 14]
    # A filtered reader that took fewer than it read goes back to one of them.
    again = ahead.take(KEY, 11, 100, max_records=2, max_bytes=BIG)
    assert again is not None
    assert [r.offset for r in again] == [11, 13]


def test_an_entry_that_reached_the_partitions_end_answers_a_read_to_it() -> None:
    ahead = ReadAhead()
    # The reader found the end at 12: 11 is a commit marker, no record lies there.
    ahead.keep(KEY, 10, records(10), [10], 12)
    taken = ahead.take(KEY, 10, 12, max_records=1000, max_bytes=BIG)
    assert taken is not None
    assert [r.offset for r in taken] == [10]
    assert ahead.take(KEY, 11, 12, max_records=1000, max_bytes=BIG) == []
    # Past what it knows (the reader learned of a later end): the broker is asked.
    assert ahead.take(KEY, 11, 20, max_records=1000, max_bytes=BIG) is None


def test_the_read_that_made_an_entry_is_kept_with_it() -> None:
    ahead = ReadAhead()
    after = records(13, 14)
    ahead.keep(KEY, 13, after, [10] * 4, read=(10, records(10, 12)))
    back = ahead.take(KEY, 12, 100, max_records=2, max_bytes=BIG)
    assert back is not None
    assert [r.offset for r in back] == [12, 13]


def test_an_entry_running_low_is_refilled_from_its_end_while_it_ends_there() -> None:
    ahead = ReadAhead()
    keep(ahead, 0, records(*range(read_ahead.REFILL_BELOW + 10)))
    assert ahead.wanted(KEY, 10_000) is None  # enough left
    assert ahead.take(KEY, 0, 10_000, max_records=20, max_bytes=BIG) is not None
    wanted = ahead.wanted(KEY, 10_000)
    assert wanted == (
        read_ahead.REFILL_BELOW + 10,
        read_ahead.RECORDS - read_ahead.REFILL_BELOW + 10,
    )
    assert ahead.wanted(KEY, read_ahead.REFILL_BELOW + 10) is None  # nothing known past it
    start = read_ahead.REFILL_BELOW + 10
    refill(ahead, start, records(start + 1, start + 2), start + 5)
    taken = ahead.take(KEY, 20, start + 5, max_records=10_000, max_bytes=BIG)
    assert taken is not None
    assert [r.offset for r in taken] == [*range(20, start), start + 1, start + 2]
    # A refill from where the entry no longer ends (an append continued it) is dropped.
    ahead.extend(KEY, *appended(start + 5))
    refill(ahead, start + 5, records(start + 6), start + 7)
    assert ahead.take(KEY, start + 3, start + 7, max_records=10, max_bytes=BIG) is None


def test_a_refill_keeps_the_last_read_and_drops_what_came_before_it() -> None:
    ahead = ReadAhead()
    keep(ahead, 0, records(*range(100)))
    assert ahead.take(KEY, 0, 1000, max_records=50, max_bytes=BIG) is not None
    assert ahead.take(KEY, 50, 1000, max_records=40, max_bytes=BIG) is not None
    refill(ahead, 100, records(*range(100, 110)), 110)
    back = ahead.take(KEY, 60, 1000, max_records=50, max_bytes=BIG)  # within the last read
    assert back is not None
    assert [r.offset for r in back] == list(range(60, 110))
    assert ahead.take(KEY, 49, 1000, max_records=1, max_bytes=BIG) is None  # dropped


def test_a_refill_is_cut_to_the_bounds_and_evicts_nothing() -> None:
    ahead = ReadAhead()
    other = ("p.t", 1)
    value = 1024 * 1024 - read_ahead.RECORD_OVERHEAD  # a MiB a record, counted
    half = read_ahead.MAX_BYTES // (1024 * 1024) // 2
    kept = records(*range(half), size=value)
    ahead.keep(other, 0, kept, sizes(kept))
    keep(ahead, 0, [])
    refill(ahead, 0, records(*range(half + 5), size=value), half + 5)
    taken = ahead.take(KEY, 0, half + 5, max_records=half + 5, max_bytes=1 << 40)
    assert taken is None  # cut at the bound: it no longer reaches the end
    assert ahead.take(other, 0, 1, max_records=1, max_bytes=BIG) is not None
    keep(ahead, 0, [])
    refill(ahead, 0, records(*range(half - 1), size=value), half - 1)
    fitted = ahead.take(KEY, 0, half - 1, max_records=half, max_bytes=1 << 40)
    assert fitted is not None
    assert len(fitted) == half - 1


def test_a_refills_records_expire_after_their_own_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(read_ahead, "time", SimpleNamespace(monotonic=lambda: now[0]))
    ahead = ReadAhead()
    keep(ahead, 0, records(*range(10)))
    assert ahead.take(KEY, 0, 1000, max_records=8, max_bytes=BIG) is not None
    now[0] += 1.5
    refill(ahead, 10, records(*range(10, 20)), 20)
    now[0] += 1.0  # the first fetch's records are past their time, the refill's are not
    assert ahead.take(KEY, 9, 20, max_records=5, max_bytes=BIG) is None
    keep(ahead, 0, records(*range(10)))
    assert ahead.take(KEY, 0, 1000, max_records=8, max_bytes=BIG) is not None
    now[0] += 1.5
    refill(ahead, 10, records(*range(10, 20)), 20)
    now[0] += 1.0
    fresh = ahead.take(KEY, 10, 20, max_records=5, max_bytes=BIG)
    assert fresh is not None
    assert [r.offset for r in fresh] == [10, 11, 12, 13, 14]


def _one_by_one(
    kept: list[Record], offset: int, end: int, max_records: int, max_bytes: int
) -> list[Record]:
    """What a read takes, by its rules alone, one record after the other."""
    taken: list[Record] = []
    size = 0
    for record in kept:
        if record.offset < offset:
            continue
        if record.offset >= end:
            break
        if taken and size + record.size() > max_bytes:
            break
        taken.append(record)
        size += record.size()
        if len(taken) >= max_records or size >= max_bytes or record.offset + 1 >= end:
            break
    return taken


def test_a_read_takes_what_counting_record_by_record_takes() -> None:
    # Offsets with gaps (markers), values and headers of varying sizes: every cut by
    # count, end and bytes lands where counting one record at a time put it.
    kept = [
        Record("t", 0, o, 0, b"k" if o % 3 else None, b"v" * (o % 7), (("h", b"x" * (o % 5)),))
        for o in (*range(40), *range(41, 60), *range(62, 80))
    ]
    for offset in (0, 5, 41, 62):
        for end in (30, 61, 80, 100):
            for max_records in (1, 7, 500):
                for max_bytes in (1, 9, 40, 200, BIG):
                    ahead = ReadAhead()
                    keep(ahead, 0, kept)
                    expected = _one_by_one(kept, offset, end, max_records, max_bytes)
                    taken = ahead.take(KEY, offset, end, max_records, max_bytes)
                    if taken is not None:
                        assert taken == expected, (offset, end, max_records, max_bytes)
                    else:
                        # Not answered: only when the records kept ran out first.
                        assert expected[-1] is kept[-1]
                        assert len(expected) < max_records
                        assert sum(r.size() for r in expected) < max_bytes
                        assert end > 80


def test_a_read_across_a_refill_and_an_append_is_cut_by_the_same_bytes() -> None:
    # Records of varied sizes; the entry's running sums continue through a refill (after
    # the last read's records were let go) and the node's own append.
    def varied(*offsets: int) -> list[Record]:
        return [
            Record("t", 0, o, 0, None, b"v" * (o % 11), (("h", b"x" * (o % 4)),) * (o % 3))
            for o in offsets
        ]

    first, refilled = varied(*range(100)), varied(*range(100, 110))
    record = NewRecord("t", 0, b"k", b"v" * 7, [("h", b"x" * 5)])
    appended = Record("t", 0, 110, 0, b"k", b"v" * 7, (("h", b"x" * 5),))
    everything = [*first, *refilled, appended]
    for max_bytes in (1, 13, 60, 200, 400, BIG):
        ahead = ReadAhead()
        keep(ahead, 0, first)
        assert ahead.take(KEY, 0, 1000, max_records=50, max_bytes=BIG) is not None
        assert ahead.take(KEY, 50, 1000, max_records=40, max_bytes=BIG) is not None
        refill(ahead, 100, refilled, 110)
        ahead.extend(KEY, 110, 0, record)
        taken = ahead.take(KEY, 60, 111, max_records=500, max_bytes=max_bytes)
        assert taken == _one_by_one(everything, 60, 111, 500, max_bytes), max_bytes
