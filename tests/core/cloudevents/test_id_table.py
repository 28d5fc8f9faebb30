"""IdTable: lookups across growth, exact expiry, reclaimed memory, the bound."""

from __future__ import annotations

import hashlib
import random
import tracemalloc

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sluicegate.core.cloudevents.id_table import IdTable

NOW = 1_700_000_000


def digest(n: int) -> bytes:
    return hashlib.blake2b(b"%d" % n, digest_size=16).digest()


def test_every_added_digest_is_found_and_no_other_across_splits() -> None:
    table = IdTable(max_ids=1_000_000, slot_seconds=60, first_shards=16)
    for n in range(50_000):
        table.add(digest(n), NOW + 3600, NOW)
    assert all(table.contains(digest(n), NOW) for n in range(50_000))
    assert not any(table.contains(digest(n), NOW) for n in range(50_000, 60_000))
    assert table.remembered(NOW) == 50_000


def test_a_digest_expires_on_its_second() -> None:
    table = IdTable(max_ids=10, slot_seconds=1)
    table.add(digest(1), NOW + 5, NOW)
    assert table.contains(digest(1), NOW + 4)
    assert not table.contains(digest(1), NOW + 5)
    assert table.remembered(NOW + 5) == 0
    # Added again after expiry: the newer entry is the one that counts.
    table.add(digest(1), NOW + 20, NOW + 5)
    assert table.contains(digest(1), NOW + 19)


def test_shorter_lifetimes_keep_each_shard_in_expiry_order() -> None:
    table = IdTable(max_ids=1000, slot_seconds=1)
    rng = random.Random(7)
    expiries = {n: NOW + rng.randrange(1, 100) for n in range(500)}
    for n, expiry in expiries.items():
        table.add(digest(n), expiry, NOW)
    for second in range(0, 101, 7):
        now = NOW + second
        assert {n for n in expiries if table.contains(digest(n), now)} == {
            n for n, expiry in expiries.items() if expiry > now
        }


def test_batches_with_later_and_earlier_expiries_keep_each_shard_in_order() -> None:
    """A batch whose expiry is the latest yet appends to its shards without looking at
    them; one with an earlier expiry is put in place: every shard stays in order."""
    table = IdTable(max_ids=100_000, slot_seconds=1, first_shards=16)
    rng = random.Random(11)
    expiries = {}
    for batch in range(200):
        expiry = NOW + (batch if batch % 3 else rng.randrange(1, 200))
        numbers = range(batch * 20, batch * 20 + 20)
        table.add_all([digest(n) for n in numbers], expiry, NOW)
        expiries.update(dict.fromkeys(numbers, expiry))
    for shard in table._shards:
        stamps = [shard[at + 16 : at + 20] for at in range(0, len(shard), 20)]
        assert stamps == sorted(stamps)
    for second in range(0, 201, 13):
        now = NOW + second
        assert {n for n in expiries if table.contains(digest(n), now)} == {
            n for n, expiry in expiries.items() if expiry > now
        }


def test_expired_entries_are_reclaimed_by_later_adds() -> None:
    table = IdTable(max_ids=1_000_000, slot_seconds=1, first_shards=16)
    for n in range(20_000):
        table.add(digest(n), NOW + 10, NOW)
    grown = table.memory_bytes()
    later = NOW + 10
    for n in range(20_000, 40_000):
        table.add(digest(n), later + 10, later)
    # The sweep went round: the first 20,000 are gone from memory, not only from lookups.
    assert table.memory_bytes() < grown * 1.3
    assert table.remembered(later) == 20_000


def test_the_bound_forgets_whole_slots_oldest_first() -> None:
    table = IdTable(max_ids=100, slot_seconds=10)
    for n in range(100):
        table.add(digest(n), NOW + 100 + n, NOW)  # slots of 10 seconds: 10 ids each
    table.add(digest(100), NOW + 300, NOW)
    assert table.evicted == 10
    assert table.floor == NOW + 110
    assert not any(table.contains(digest(n), NOW) for n in range(10))
    assert all(table.contains(digest(n), NOW) for n in range(10, 101))
    assert table.remembered(NOW) == 91
    assert table.effective_window(3600, NOW) == 3600 - 110


@pytest.mark.parametrize(("first_shards", "bytes_per_id"), [(16, 30), (1 << 16, 90)])
def test_the_memory_estimate_is_close_to_what_is_allocated(
    first_shards: int, bytes_per_id: int
) -> None:
    # Filled (grown from 16 shards: ~12 ids a shard) and sparse (the default first table).
    digests = [digest(n) for n in range(20_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        table = IdTable(max_ids=1_000_000, slot_seconds=60, first_shards=first_shards)
        table.add_all(digests, NOW + 3600, NOW)
        allocated = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert table.memory_bytes() == pytest.approx(allocated, rel=0.15)
    assert allocated / len(digests) < bytes_per_id


def test_a_digest_must_be_16_bytes() -> None:
    with pytest.raises(ValueError, match="16-byte digest"):
        IdTable(max_ids=1, slot_seconds=1).add(b"short", NOW + 1, NOW)


def test_a_sized_table_holds_what_a_grown_one_does() -> None:
    sized = IdTable(max_ids=100_000, slot_seconds=60, first_shards=16)
    grown = IdTable(max_ids=100_000, slot_seconds=60, first_shards=16)
    sized.reserve(20_000)
    digests = [digest(n) for n in range(20_000)]
    for table in (sized, grown):
        table.add_all(digests, NOW + 3600, NOW)
    assert sized.remembered_of(digests, NOW) == digests
    assert grown.remembered_of(digests, NOW) == digests
    assert sized.remembered_of([digest(n) for n in range(20_000, 21_000)], NOW) == []


class TableAgainstModel(RuleBasedStateMachine):
    """Random adds (mixed lifetimes, ids added again) and time passing, against a dict."""

    POOL = [digest(n) for n in range(1000)]

    def __init__(self) -> None:
        super().__init__()
        self.table = IdTable(max_ids=400, slot_seconds=5, first_shards=4)
        self.now = NOW
        #: digest -> the latest expiry it was added with
        self.model: dict[bytes, int] = {}

    @rule(
        picks=st.lists(st.integers(0, 999), min_size=1, max_size=60, unique=True),
        lifetime=st.sampled_from([3, 30, 120]),
    )
    def add(self, picks: list[int], lifetime: int) -> None:
        digests = [self.POOL[n] for n in picks]
        self.table.add_all(digests, self.now + lifetime, self.now)
        for each in digests:
            self.model[each] = max(self.model.get(each, 0), self.now + lifetime)

    @rule(seconds=st.integers(0, 40))
    def wait(self, seconds: int) -> None:
        self.now += seconds

    @invariant()
    def lookups_agree(self) -> None:
        found = set(self.table.remembered_of(self.POOL, self.now))
        for each in self.POOL:
            expiry = self.model.get(each, 0)
            # Forgotten only on time or by the bound (below the floor), never remembered late.
            assert (each in found) == (expiry > self.now and expiry >= self.table.floor)
        assert len(found) <= self.table.remembered(self.now) <= self.table.max_ids
        # The floor moves only to keep the bound.
        assert (self.table.floor == 0) == (self.table.evicted == 0)


TableAgainstModel.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
test_the_table_agrees_with_a_model = TableAgainstModel.TestCase


def _state(table: IdTable) -> tuple[object, ...]:
    return (
        table._shards,
        table._mask,
        table._split,
        table._entries,
        table._sweep_at,
        table._counts,
        sorted(table._slots),
        table._remembered,
        table.floor,
        table.evicted,
        table._latest,
    )


@pytest.mark.parametrize("seed", range(4))
def test_add_one_leaves_the_table_add_all_leaves(seed: int) -> None:
    # add_one's own insert of the usual id (latest expiry, slot counted, no split) and
    # its tests before _expire and _sweep, against add_all of the same ids: clocks that
    # move on, lifetimes shorter than earlier ones, new slots, splits, the bound reached.
    rng = random.Random(seed)
    one = IdTable(max_ids=40, slot_seconds=2, first_shards=2)
    alls = IdTable(max_ids=40, slot_seconds=2, first_shards=2)
    now = NOW
    for n in range(2_000):
        now += rng.choice((0, 0, 0, 1, 3))
        expiry = now + rng.choice((40, 40, 40, 10, 1, 0, 90))
        one.add_one(digest(n), expiry, now)
        alls.add_all([digest(n)], expiry, now)
        assert _state(one) == _state(alls)
    assert one.evicted > 0  # the bound was reached
    assert len(one._shards) > 2  # shards were split
