"""EventIds on both backends: a retried event is stored once, atomically with its marker."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluicegate.config import CloudEventSettings
from sluicegate.core.cloudevents import dedup
from sluicegate.core.cloudevents.dedup import (
    MARKER_TOPIC,
    EventIds,
    _digests,
    identity_digest,
)
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import NewRecord, Record, TopicPartition
from sluicegate.core.topics import TopicSpec
from sluicegate.errors import (
    InvalidPartition,
    PayloadTooLarge,
    StorageTimeout,
    StorageUnavailable,
)
from sluicegate.storage.base import Log, running
from sluicegate.storage.kafka import KafkaLog
from sluicegate.storage.sqlite import SqliteLog
from tests.conftest import BACKENDS
from tests.helpers import eventually
from tests.storage.conftest import ManualClock, kafka_test_settings

TOPIC = "ce.orders"
Item = tuple[bytes, Sequence[NewRecord]]


class Storage:
    """One backend's storage, opened as a new log as often as a test restarts."""

    def __init__(self, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.backend = backend
        self.clock = ManualClock()
        self._data_dir = tmp_path / "data"
        self._kafka = (
            kafka_test_settings(request.getfixturevalue("kafka_bootstrap"))
            if backend == "kafka"
            else None
        )
        # Unique: a transactional id shared with another test on the same broker fences it.
        self._node = f"dedup-{uuid.uuid4().hex[:8]}"

    def running(self) -> AbstractAsyncContextManager[Log]:
        if self._kafka is not None:
            return running(KafkaLog(self._kafka, node_id=self._node))
        return running(SqliteLog(self._data_dir, clock=self.clock, retention_interval=3600.0))

    def made(self, log: Log, **settings: Any) -> EventIds:
        """``EventIds`` on ``log`` with ``settings``, not loaded yet."""
        config = CloudEventSettings(**settings)
        # Log-append time and expiry on one clock where the gateway owns it (SQLite).
        if self.backend == "sqlite":
            return EventIds(log, config, clock=self.clock)
        return EventIds(log, config)

    async def loaded(self, log: Log, **settings: Any) -> EventIds:
        """``EventIds`` on ``log`` with ``settings``, loaded."""
        ids = self.made(log, **settings)
        await ids.load()
        return ids


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return Storage(request.param, tmp_path, request)


@pytest.fixture
def clocked(tmp_path: Path, request: pytest.FixtureRequest) -> Storage:
    """SQLite only: its log-append time is the test's clock."""
    return Storage("sqlite", tmp_path, request)


@pytest.fixture
async def log(storage: Storage) -> AsyncIterator[Log]:
    async with storage.running() as log:
        await log.create_topic(TopicSpec(name=TOPIC, partitions=3))
        yield log


@pytest.fixture
async def ids(log: Log, storage: Storage) -> EventIds:
    return await storage.loaded(log)


def event(n: int, source: str = "/orders") -> Item:
    """An event's identity key and the one record it writes."""
    record = NewRecord(TOPIC, n % 3, None, b"event %d" % n)
    return (source.encode() + b"\x00" + str(n).encode(), [record])


async def stored(log: Log, topic: str = TOPIC) -> list[Record]:
    records: list[Record] = []
    for partition in range((await log.get_topic(topic)).partitions):
        tp = TopicPartition(topic, partition)
        marks = await log.watermarks(tp)
        position = marks.low
        while position < marks.high:
            batch = await log.read(tp, position, max_records=10_000, max_bytes=1 << 26)
            if not batch:
                break
            records += batch
            position = batch[-1].offset + 1
    return records


async def values(log: Log) -> list[bytes]:
    return sorted(r.value or b"" for r in await stored(log))


def assert_marker_headers(marker: Record, lifetime_ms: bytes) -> None:
    """The documented headers: the lifetime, then the writing process's origin token."""
    (name, lifetime), (origin_name, origin) = marker.headers
    assert (name, lifetime) == ("lifetime_ms", lifetime_ms)
    assert origin_name == "origin"
    assert re.fullmatch(rb"[0-9a-f]{16}\.[1-9][0-9]*", origin)


@contextlib.asynccontextmanager
async def following(*nodes: EventIds) -> AsyncIterator[None]:
    """Each of ``nodes`` following the marker topic, as ``Gateway.run`` has it."""
    tasks = [asyncio.create_task(node.follow()) for node in nodes]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_retried_batch_is_stored_once(log: Log, ids: EventIds) -> None:
    batch = [event(n) for n in range(10)]
    await ids.append_once(batch)
    await ids.append_once(batch)
    assert await values(log) == sorted(b"event %d" % n for n in range(10))
    # Retried with one new event: only that one is stored, and the call still succeeds.
    await ids.append_once([*batch, event(10)])
    assert await values(log) == sorted(b"event %d" % n for n in range(11))
    stats = ids.stats()
    assert stats["remembered_ids"] == 11
    assert stats["duplicates_skipped_total"] == 20
    assert stats["appending_ids"] == 0


async def test_the_identity_is_source_and_id_together(log: Log, ids: EventIds) -> None:
    await ids.append_once([event(1, source="/a"), event(1, source="/b")])
    assert len(await stored(log)) == 2


async def test_the_same_identity_twice_in_one_call_is_stored_once(log: Log, ids: EventIds) -> None:
    key, records = event(1)
    await ids.append_once([(key, records), event(2), (key, [NewRecord(TOPIC, 0, None, b"x")])])
    assert await values(log) == [b"event 1", b"event 2"]
    assert ids.stats()["duplicates_skipped_total"] == 1


async def test_markers_are_in_the_events_append_in_the_documented_format(
    log: Log, storage: Storage
) -> None:
    ids = await storage.loaded(log, dedup_window=3600.0)
    batch = [event(n) for n in range(100)]
    await ids.append_once(batch)
    [marker] = await stored(log, MARKER_TOPIC)
    assert marker.key is None
    assert_marker_headers(marker, b"3600000")
    assert marker.value == b"".join(identity_digest(key) for key, _ in batch)
    topic = await log.get_topic(MARKER_TOPIC)
    assert (topic.partitions, topic.retention_ms) == (1, 3_600_000)
    if storage.backend == "sqlite":
        # One commit: the events and their marker share one log-append time.
        assert {r.timestamp for r in await stored(log)} == {marker.timestamp}


async def test_concurrent_duplicates_are_stored_exactly_once(log: Log, ids: EventIds) -> None:
    # 40 requests, each a batch of 25 events drawn from 60 identities, overlapping.
    batches = [[event((start * 7 + i) % 60) for i in range(25)] for start in range(40)]
    await asyncio.gather(*(ids.append_once(batch) for batch in batches))
    expected = {n for batch in range(40) for n in ((batch * 7 + i) % 60 for i in range(25))}
    assert await values(log) == sorted(b"event %d" % n for n in expected)
    assert ids.stats()["appending_ids"] == 0


async def test_a_failed_append_remembers_nothing_and_a_retry_stores(
    log: Log, ids: EventIds
) -> None:
    good = event(1)
    broken = (good[0], [*good[1], NewRecord(TOPIC, 9, None, b"no such partition")])
    with pytest.raises(InvalidPartition):
        await ids.append_once([broken, event(2)])
    assert await stored(log) == []
    assert ids.stats()["remembered_ids"] == 0
    assert ids.stats()["appending_ids"] == 0
    await ids.append_once([good, event(2)])
    assert await values(log) == [b"event 1", b"event 2"]


@pytest.mark.parametrize("storage", ["kafka"], indirect=True)
async def test_a_transaction_the_broker_refuses_stores_no_marker(log: Log, ids: EventIds) -> None:
    await ids.append_once([event(0)])
    huge = NewRecord(TOPIC, 0, None, b"x" * (2 * 1024 * 1024))  # above Kafka's 1 MB default
    with pytest.raises(PayloadTooLarge):
        await ids.append_once([event(1), (b"/orders\x00huge", [huge])])
    # The events and the marker were one transaction, aborted whole.
    assert len(await stored(log, MARKER_TOPIC)) == 1
    assert ids.stats()["remembered_ids"] == 1
    await ids.append_once([event(1)])
    assert await values(log) == [b"event 0", b"event 1"]


async def test_a_waiter_takes_over_an_identity_whose_append_failed(log: Log, ids: EventIds) -> None:
    await ids.append_once([event(0)])  # the marker topic exists from here on
    good = event(1)
    broken = (good[0], [NewRecord(TOPIC, 9, None, b"no such partition")])
    # The first claims the identity; the second finds it claimed and waits.
    first, second = await asyncio.gather(
        ids.append_once([broken]), ids.append_once([good]), return_exceptions=True
    )
    assert isinstance(first, InvalidPartition)
    assert second is None
    assert await values(log) == [b"event 0", b"event 1"]


async def test_a_waiter_answers_duplicate_once_the_other_append_succeeds(
    log: Log, ids: EventIds
) -> None:
    await ids.append_once([event(0)])  # the marker topic exists from here on
    first = asyncio.ensure_future(ids.append_once([event(1), event(2)]))
    await asyncio.sleep(0)  # the first request claims its identities and appends
    assert ids.stats()["appending_ids"] == 2
    await ids.append_once([event(2), event(3)])  # waits for event 2, stores event 3
    await first
    assert await values(log) == [b"event 0", b"event 1", b"event 2", b"event 3"]
    assert ids.stats()["duplicates_skipped_total"] == 1


async def test_a_cancelled_request_still_remembers_what_its_append_stored(
    log: Log, ids: EventIds
) -> None:
    await ids.append_once([event(0)])  # the marker topic exists from here on
    request = asyncio.ensure_future(ids.append_once([event(1)]))
    await asyncio.sleep(0)  # the request claims its identity and appends
    assert ids.stats()["appending_ids"] == 1
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    # The append was queued: the log commits it whole, and a retry is a duplicate.
    await ids.append_once([event(1)])
    assert await values(log) == [b"event 0", b"event 1"]


async def test_a_restart_remembers_what_was_stored(storage: Storage) -> None:
    batch = [event(n) for n in range(5000)] + [event(n, source="/b") for n in range(5000)]
    async with storage.running() as log:
        await log.create_topic(TopicSpec(name=TOPIC, partitions=3))
        ids = await storage.loaded(log)
        # More identities than one marker holds: the call writes three.
        await ids.append_once(batch)
        assert len(await stored(log, MARKER_TOPIC)) == 3
    async with storage.running() as log:
        restarted = await storage.loaded(log)
        assert restarted.stats()["remembered_ids"] == len(batch)
        await restarted.append_once([*batch[::100], event(10_000)])
        assert len(await stored(log)) == len(batch) + 1


async def test_an_identity_is_forgotten_after_the_window(clocked: Storage) -> None:
    async with clocked.running() as log:
        await log.create_topic(TopicSpec(name=TOPIC, partitions=3))
        ids = await clocked.loaded(log, dedup_window=600.0)
        await ids.append_once([event(1)])
        clocked.clock.advance(599)
        await ids.append_once([event(1)])
        assert await values(log) == [b"event 1"]
        clocked.clock.advance(1)
        await ids.append_once([event(1)])
        assert await values(log) == [b"event 1", b"event 1"]
        assert ids.stats()["remembered_ids"] == 1


async def test_a_restart_forgets_what_is_older_than_the_window(clocked: Storage) -> None:
    async with clocked.running() as log:
        await log.create_topic(TopicSpec(name=TOPIC, partitions=3))
        ids = await clocked.loaded(log, dedup_window=600.0)
        await ids.append_once([event(1)])
        clocked.clock.advance(300)
        await ids.append_once([event(2)])
    clocked.clock.advance(301)
    async with clocked.running() as log:
        ids = await clocked.loaded(log, dedup_window=600.0)
        assert ids.stats()["remembered_ids"] == 1
        await ids.append_once([event(1), event(2)])
        assert await values(log) == [b"event 1", b"event 1", b"event 2"]


async def test_never_remembered_beyond_the_topics_retention(clocked: Storage) -> None:
    async with clocked.running() as log:
        await log.create_topic(TopicSpec(name=TOPIC, partitions=3, retention_ms=60_000))
        await log.create_topic(TopicSpec(name="ce.kept", partitions=1))
        ids = await clocked.loaded(log, dedup_window=600.0)
        kept = (b"/k\x00" + b"1", [NewRecord("ce.kept", 0, None, b"kept")])
        await ids.append_once([event(1), kept])
        # Two lifetimes, two markers, in the one append.
        assert len(await stored(log, MARKER_TOPIC)) == 2
        clocked.clock.advance(60)
        await ids.append_once([event(1), kept])
        assert await values(log) == [b"event 1", b"event 1"]
        assert len(await stored(log, "ce.kept")) == 1
    async with clocked.running() as log:
        # The marker says how long: a restart keeps each identity's own lifetime.
        ids = await clocked.loaded(log, dedup_window=600.0)
        clocked.clock.advance(60)
        await ids.append_once([event(1), kept])
        assert len(await stored(log)) == 3
        assert len(await stored(log, "ce.kept")) == 1


async def test_the_bound_forgets_the_oldest_first(clocked: Storage) -> None:
    async with clocked.running() as log:
        await log.create_topic(TopicSpec(name=TOPIC, partitions=3))
        # A 4096 s window counts ids in 1 s slots: the bound forgets a second at a time.
        ids = await clocked.loaded(log, dedup_window=4096.0, dedup_max_ids=10)
        for second in range(3):
            await ids.append_once([event(second * 5 + i) for i in range(5)])
            clocked.clock.advance(10)
        stats = ids.stats()
        assert stats["remembered_ids"] == 10
        assert stats["evicted_ids_total"] == 5
        # Ids appended after the first second are remembered: those of the last 29 s.
        assert stats["effective_window_seconds"] == 29
        await ids.append_once([event(n) for n in range(15)])
        # The oldest five were stored again (and pushed the next five out); the rest not.
        assert len(await stored(log)) == 20


async def test_the_window_changes_the_marker_topics_retention(clocked: Storage) -> None:
    async with clocked.running() as log:
        await log.create_topic(TopicSpec(name=TOPIC, partitions=3))
        ids = await clocked.loaded(log, dedup_window=600.0)
        await ids.append_once([event(1)])
        longer = await clocked.loaded(log, dedup_window=7200.0)
        assert (await log.get_topic(MARKER_TOPIC)).retention_ms == 7_200_000
        assert longer.stats()["remembered_ids"] == 1


async def test_the_gateway_loads_event_ids_and_shows_them_on_metrics(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await gateway.log.create_topic(TopicSpec(name=TOPIC, partitions=3))
    await gateway.event_ids.append_once([event(1), event(1), event(2)])
    text = (await client.get("/metrics")).text
    assert "sluicegate_cloudevents_dedup_remembered_ids 2.0" in text
    assert "sluicegate_cloudevents_dedup_duplicates_skipped_total 1.0" in text
    assert "# TYPE sluicegate_cloudevents_dedup_duplicates_skipped_total counter" in text
    assert "sluicegate_cloudevents_dedup_effective_window_seconds 86400.0" in text
    assert "sluicegate_cloudevents_dedup_memory_bytes " in text


# -- the one-event lane: append_one, the same outcomes as append_once -----------------


async def one(ids: EventIds, n: int, retention_ms: int | None = None) -> None:
    key, (record,) = event(n)
    await ids.append_one(key, record, retention_ms)


async def test_alone_a_retried_event_is_stored_once(log: Log, ids: EventIds) -> None:
    await one(ids, 1)
    await one(ids, 1)
    await one(ids, 2)
    assert await values(log) == [b"event 1", b"event 2"]
    stats = ids.stats()
    assert (stats["remembered_ids"], stats["duplicates_skipped_total"]) == (2, 1)
    assert stats["appending_ids"] == 0


async def test_alone_the_marker_is_in_the_events_append_in_the_documented_format(
    log: Log, storage: Storage
) -> None:
    ids = await storage.loaded(log, dedup_window=3600.0)
    await one(ids, 1)
    [marker] = await stored(log, MARKER_TOPIC)
    assert marker.key is None
    assert_marker_headers(marker, b"3600000")
    assert marker.value == identity_digest(event(1)[0])
    if storage.backend == "sqlite":
        [record] = await stored(log)
        assert record.timestamp == marker.timestamp  # one commit
    # What append_once stored is a duplicate here, and the other way round.
    await ids.append_once([event(1), event(2)])
    await one(ids, 2)
    assert await values(log) == [b"event 1", b"event 2"]
    assert ids.stats()["duplicates_skipped_total"] == 2


async def test_alone_a_failed_append_remembers_nothing_and_a_retry_stores(
    log: Log, ids: EventIds
) -> None:
    key, _ = event(1)
    with pytest.raises(InvalidPartition):
        await ids.append_one(key, NewRecord(TOPIC, 9, None, b"no such partition"), None)
    assert await stored(log) == []
    assert (ids.stats()["remembered_ids"], ids.stats()["appending_ids"]) == (0, 0)
    await one(ids, 1)
    assert await values(log) == [b"event 1"]


async def test_alone_a_waiter_answers_duplicate_once_the_other_append_succeeds(
    log: Log, ids: EventIds
) -> None:
    await one(ids, 0)  # the marker topic exists from here on
    first = asyncio.ensure_future(one(ids, 1))
    await asyncio.sleep(0)  # the first request claims its identity and appends
    assert ids.stats()["appending_ids"] == 1
    await one(ids, 1)  # waits for the first, then finds it stored
    await first
    assert await values(log) == [b"event 0", b"event 1"]
    assert ids.stats()["duplicates_skipped_total"] == 1


async def test_alone_a_waiter_takes_over_an_identity_whose_append_failed(
    log: Log, ids: EventIds
) -> None:
    await one(ids, 0)  # the marker topic exists from here on
    key, _ = event(1)
    broken = ids.append_one(key, NewRecord(TOPIC, 9, None, b"no such partition"), None)
    first, second = await asyncio.gather(broken, one(ids, 1), return_exceptions=True)
    assert isinstance(first, InvalidPartition)
    assert second is None
    assert await values(log) == [b"event 0", b"event 1"]


async def test_alone_the_lanes_wait_for_each_others_claims(log: Log, ids: EventIds) -> None:
    await one(ids, 0)  # the marker topic exists from here on
    batch = asyncio.ensure_future(ids.append_once([event(1), event(2)]))
    await asyncio.sleep(0)  # the batch claims its identities and appends
    await one(ids, 2)  # waits for the batch's claim: a duplicate
    single = asyncio.ensure_future(one(ids, 3))
    await asyncio.sleep(0)  # the single event claims its identity and appends
    await ids.append_once([event(3), event(4)])  # waits for it: stores event 4 alone
    await asyncio.gather(batch, single)
    assert await values(log) == [b"event %d" % n for n in range(5)]
    assert ids.stats()["duplicates_skipped_total"] == 2
    assert ids.stats()["appending_ids"] == 0


async def test_alone_a_cancelled_request_still_remembers_what_its_append_stored(
    log: Log, ids: EventIds
) -> None:
    await one(ids, 0)  # the marker topic exists from here on
    request = asyncio.ensure_future(one(ids, 1))
    await asyncio.sleep(0)  # the request claims its identity and appends
    assert ids.stats()["appending_ids"] == 1
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    # The append was queued: the log commits it whole, and a retry is a duplicate.
    await one(ids, 1)
    assert await values(log) == [b"event 0", b"event 1"]
    assert ids.stats()["appending_ids"] == 0


async def test_alone_never_remembered_beyond_the_retention_it_is_given(clocked: Storage) -> None:
    async with clocked.running() as log:
        await log.create_topic(TopicSpec(name=TOPIC, partitions=3, retention_ms=60_000))
        ids = await clocked.loaded(log, dedup_window=600.0)
        await one(ids, 1, retention_ms=60_000)
        [marker] = await stored(log, MARKER_TOPIC)
        assert_marker_headers(marker, b"60000")
        await one(ids, 2)  # a topic without a retention: the window
        assert_marker_headers((await stored(log, MARKER_TOPIC))[1], b"600000")
        clocked.clock.advance(60)
        await one(ids, 1, retention_ms=60_000)  # forgotten with its topic's records
        await one(ids, 2)  # still remembered
        assert await values(log) == [b"event 1", b"event 1", b"event 2"]


def test_a_batch_s_digests_are_each_key_s_identity_digest() -> None:
    # Keys shorter and longer than BLAKE2b's 128-byte block, and the empty one; the
    # empty hash copied for each key is left as it was.
    keys = [b"", b"urn:shop\x00e-1", b"s" * 127 + b"\x00i", b"s" * 300 + b"\x00" + b"i" * 9]
    items = [(key, None) for key in keys]
    assert _digests(items) == [identity_digest(key) for key in keys]
    assert _digests(items) == [identity_digest(key) for key in keys]


# -- the one-event lane, grouped: the single events of one loop turn in one append -----


async def test_alone_events_of_one_loop_turn_share_an_append_and_one_marker(
    storage: Storage,
) -> None:
    async with storage.running() as log:
        await log.create_topic(TopicSpec(name=TOPIC, partitions=3))
        ids = await storage.loaded(log, dedup_window=3600.0)
        await one(ids, 0)  # the marker topic exists from here on
        # Started together, as the requests a server reads in one turn: one group.
        await asyncio.gather(*(one(ids, n) for n in range(1, 6)))
        markers = await stored(log, MARKER_TOPIC)
        assert len(markers) == 2
        assert markers[1].value == b"".join(identity_digest(event(n)[0]) for n in range(1, 6))
        assert_marker_headers(markers[1], b"3600000")
        if storage.backend == "sqlite":
            # One commit: the events and their marker.
            assert {r.timestamp for r in await stored(log) if r.value != b"event 0"} == {
                markers[1].timestamp
            }
        assert ids.stats()["appending_ids"] == 0
        await asyncio.gather(*(one(ids, n) for n in range(7)))  # 6 alone is new
        assert await values(log) == [b"event %d" % n for n in range(7)]
        assert ids.stats()["duplicates_skipped_total"] == 6
    async with storage.running() as log:
        # Remembered across a restart, from the group's marker.
        restarted = await storage.loaded(log, dedup_window=3600.0)
        assert restarted.stats()["remembered_ids"] == 7
        await asyncio.gather(*(one(restarted, n) for n in range(7)))
        assert await values(log) == [b"event %d" % n for n in range(7)]


async def test_alone_one_identity_twice_in_a_loop_turn_is_stored_once(
    log: Log, ids: EventIds
) -> None:
    await one(ids, 0)  # the marker topic exists from here on
    await asyncio.gather(one(ids, 1), one(ids, 2), one(ids, 1))
    assert await values(log) == [b"event 0", b"event 1", b"event 2"]
    assert ids.stats()["duplicates_skipped_total"] == 1
    assert ids.stats()["appending_ids"] == 0


async def test_alone_a_failed_group_answers_each_event_as_its_own_append(
    log: Log, ids: EventIds
) -> None:
    await one(ids, 0)  # the marker topic exists from here on
    key, _ = event(9)
    broken = ids.append_one(key, NewRecord(TOPIC, 9, None, b"no such partition"), None)
    answers = await asyncio.gather(one(ids, 1), broken, one(ids, 2), return_exceptions=True)
    # The group's append refused the partition, so nothing of it was stored; alone, the
    # other two are, and only the broken event fails.
    assert answers[0] is None
    assert answers[2] is None
    assert isinstance(answers[1], InvalidPartition)
    assert await values(log) == [b"event 0", b"event 1", b"event 2"]
    markers = await stored(log, MARKER_TOPIC)
    assert sorted(m.value or b"" for m in markers[1:]) == sorted(
        identity_digest(event(n)[0]) for n in (1, 2)
    )
    assert (ids.stats()["remembered_ids"], ids.stats()["appending_ids"]) == (3, 0)
    await one(ids, 9)  # the broken identity was never claimed for good
    assert b"event 9" in await values(log)


async def test_alone_a_timed_out_group_is_not_appended_again(tmp_path: Path) -> None:
    # A timed-out append is still committed or failed as a whole, later: its events are
    # not appended again one by one, which would store them twice if it commits.
    async with quick_timeouts(tmp_path) as (log, ids):
        # Another connection holds the write lock: the group's commit waits for it.
        blocker = sqlite3.connect(tmp_path / "sluicegate.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        group = asyncio.gather(*(one(ids, n) for n in (1, 2, 3)), return_exceptions=True)
        await asyncio.sleep(0.3)  # past the deadline, within SQLite's busy timeout (1 s)
        blocker.execute("ROLLBACK")  # the group's commit goes through now
        blocker.close()
        answers = await group
        assert [type(answer) for answer in answers] == [StorageTimeout] * 3
        # Held until the outcome is found out (``follow``, not running here).
        assert ids.stats()["appending_ids"] == ids.stats()["unknown_outcome_ids"] == 3
        await asyncio.sleep(0.2)  # anything appended after the timeout has committed
        stored_values = await values(log)
        # All of the group or none of it, and each event once.
        assert stored_values in (
            [b"event 0"],
            [b"event 0", b"event 1", b"event 2", b"event 3"],
        )


async def test_alone_a_cancelled_request_of_a_group_is_still_stored_and_remembered(
    log: Log, ids: EventIds
) -> None:
    await one(ids, 0)  # the marker topic exists from here on
    requests = [asyncio.ensure_future(one(ids, n)) for n in (1, 2)]
    await asyncio.sleep(0)  # both claim their identities in one group
    assert ids.stats()["appending_ids"] == 2
    requests[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await requests[0]
    await requests[1]
    await one(ids, 1)  # a duplicate: the group's append stored it
    assert await values(log) == [b"event 0", b"event 1", b"event 2"]
    assert ids.stats()["appending_ids"] == 0


async def test_alone_lifetimes_of_one_loop_turn_go_in_markers_of_their_own(
    clocked: Storage,
) -> None:
    async with clocked.running() as log:
        await log.create_topic(TopicSpec(name=TOPIC, partitions=3, retention_ms=60_000))
        ids = await clocked.loaded(log, dedup_window=600.0)
        await one(ids, 0)  # the marker topic exists from here on
        await asyncio.gather(
            one(ids, 1, retention_ms=60_000), one(ids, 2), one(ids, 3, retention_ms=60_000)
        )
        lifetimes = [(m.value, m.headers[0]) for m in (await stored(log, MARKER_TOPIC))[1:]]
        digest = [identity_digest(event(n)[0]) for n in range(4)]
        assert sorted(lifetimes) == sorted(
            [
                (digest[1], ("lifetime_ms", b"60000")),
                (digest[2], ("lifetime_ms", b"600000")),
                (digest[3], ("lifetime_ms", b"60000")),
            ]
        )
        clocked.clock.advance(60)
        await asyncio.gather(*(one(ids, n) for n in (1, 2, 3)))
        assert await values(log) == [
            b"event 0",
            b"event 1",
            b"event 1",
            b"event 2",
            b"event 3",
            b"event 3",
        ]


# -- several nodes: each follows the others' markers -----------------------------------


async def test_an_identity_stored_through_another_node_is_a_duplicate_on_this_one(
    log: Log, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sluicegate.core.cloudevents.dedup._TOPIC_LOOK_SECONDS", 0.05)
    # Two nodes on one log; neither has seen a marker topic yet when it starts.
    first, second = await storage.loaded(log), await storage.loaded(log)
    async with following(first, second):
        await first.append_once([event(n) for n in range(3)])  # creates the marker topic
        await one(first, 3)
        await eventually(
            lambda: second.stats()["followed_ids_total"] == 4,
            "the second node read them",
            timeout=20,
        )
        await second.append_once([event(1), event(4)])
        await one(second, 3)
        assert await values(log) == [b"event %d" % n for n in range(5)]
        assert second.stats()["duplicates_skipped_total"] == 2
        # And back: the first node learns what the second stored.
        await eventually(
            lambda: first.stats()["followed_ids_total"] == 1, "the first read it", timeout=20
        )
        await one(first, 4)
        assert await values(log) == [b"event %d" % n for n in range(5)]
    # Each node remembers every identity once: its own from its appends, the other's
    # from the other's markers, never its own twice.
    assert first.stats()["remembered_ids"] == second.stats()["remembered_ids"] == 5


async def test_a_node_started_later_loads_then_follows(log: Log, storage: Storage) -> None:
    first = await storage.loaded(log)
    await first.append_once([event(n) for n in range(2)])
    second = await storage.loaded(log)  # loads what is stored so far
    async with following(second):
        await first.append_once([event(n) for n in range(2, 4)])
        await eventually(
            lambda: second.stats()["followed_ids_total"] == 2, "the new ones read", timeout=20
        )
        await second.append_once([event(n) for n in range(5)])
    assert await values(log) == [b"event %d" % n for n in range(5)]
    assert second.stats()["duplicates_skipped_total"] == 4
    assert second.stats()["remembered_ids"] == 5


async def test_a_load_cut_short_loads_again_from_the_start(
    log: Log, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storage outage while a node starts fails its load; the next load remembers each
    identity once, not those the first read twice."""
    first = await storage.loaded(log)
    for n in range(6):
        await first.append_once([event(n)])
    monkeypatch.setattr(dedup, "_READ_RECORDS", 2)
    read = log.read
    # A load reads the markers twice: the first pass counts them, the second remembers
    # them. The second read of the second pass fails.
    passes, reads_in_pass, last = 0, 0, -1

    async def cut_in_the_second_pass(tp: TopicPartition, offset: int, **limits: Any) -> Any:
        nonlocal passes, reads_in_pass, last
        if tp.topic == MARKER_TOPIC:
            if offset <= last or passes == 0:
                passes, reads_in_pass = passes + 1, 0
            last, reads_in_pass = offset, reads_in_pass + 1
            if passes == 2 and reads_in_pass == 2:
                raise StorageUnavailable("every Kafka broker is unreachable")
        return await read(tp, offset, **limits)

    monkeypatch.setattr(log, "read", cut_in_the_second_pass)
    second = storage.made(log)
    with pytest.raises(StorageUnavailable):
        await second.load()
    assert 0 < second.stats()["remembered_ids"] < 6
    await second.load()
    assert second.stats()["remembered_ids"] == 6


def timed_out_attempt(ids: EventIds, lane: str) -> Awaitable[list[BaseException | None]]:
    """Events 1, 2 and 3 stored one by one or as a batch, their answers gathered."""
    requests = (
        [one(ids, n) for n in (1, 2, 3)]
        if lane == "alone"
        else [ids.append_once([event(n) for n in (1, 2, 3)])]
    )
    return asyncio.gather(*requests, return_exceptions=True)


@contextlib.asynccontextmanager
async def write_lock(tmp_path: Path) -> AsyncIterator[None]:
    """Another connection holding SQLite's write lock: commits wait for it (up to SQLite's
    busy timeout, 1 s, then fail)."""
    blocker = sqlite3.connect(tmp_path / "sluicegate.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


@contextlib.asynccontextmanager
async def quick_timeouts(tmp_path: Path) -> AsyncIterator[tuple[Log, EventIds]]:
    """A SQLite log whose appends time out after 0.2 s and its ``EventIds``, the marker
    topic made (by event 0).

    Set up with the default timeout, then opened again: on a busy machine the setup's
    first appends (two topics made, an exclusive write) may take longer than 0.2 s.
    """
    async with running(SqliteLog(tmp_path)) as log:
        await log.create_topic(TopicSpec(name=TOPIC, partitions=3))
        ids = EventIds(log, CloudEventSettings(dedup_window=3600.0))
        await ids.load()
        await one(ids, 0)
    async with running(SqliteLog(tmp_path, append_timeout=0.2)) as log:
        ids = EventIds(log, CloudEventSettings(dedup_window=3600.0))
        await ids.load()
        yield log, ids


async def timed_out_then_retried(ids: EventIds, lane: str) -> asyncio.Future[list[None]]:
    """Events 1, 2 and 3 answered StorageTimeout, then sent again: the retries, seen
    waiting for the first attempt's outcome."""
    answers = await timed_out_attempt(ids, lane)
    assert {type(answer) for answer in answers} == {StorageTimeout}
    assert ids.stats()["unknown_outcome_ids"] >= 3  # held (and whatever else timed out)
    retries = asyncio.gather(*(one(ids, n) for n in (1, 2, 3)))
    await asyncio.sleep(0.1)
    assert not retries.done()
    return retries


@pytest.mark.parametrize("lane", ["alone", "batch"])
async def test_a_retry_waits_for_a_timed_out_append_that_then_commits(
    tmp_path: Path, lane: str
) -> None:
    # The request is answered StorageTimeout while its append may still commit: a retry
    # waits for the outcome, here a commit, and is then a duplicate, not a second copy.
    async with quick_timeouts(tmp_path) as (log, ids), following(ids):
        async with write_lock(tmp_path):
            retries = await timed_out_then_retried(ids, lane)
        # Released within the busy timeout: the held commit goes through now.
        await retries
        assert await values(log) == [b"event %d" % n for n in range(4)]
        stats = ids.stats()
        assert (stats["duplicates_skipped_total"], stats["remembered_ids"]) == (3, 4)
        assert (stats["unknown_outcome_ids"], stats["appending_ids"]) == (0, 0)


@pytest.mark.parametrize("lane", ["alone", "batch"])
async def test_a_retry_stores_the_events_of_a_timed_out_append_that_was_never_written(
    tmp_path: Path, lane: str
) -> None:
    # The append waits in the writer's queue behind a commit held up by the lock, past its
    # deadline: it is answered StorageTimeout and skipped when its turn comes. The retry
    # learns that from a later marker of this process (a barrier) and stores the events.
    async with quick_timeouts(tmp_path) as (log, ids), following(ids):
        async with write_lock(tmp_path):
            ahead = asyncio.gather(one(ids, 9), return_exceptions=True)
            await asyncio.sleep(0.05)  # its commit is under way, waiting for the lock
            retries = await timed_out_then_retried(ids, lane)
        # Released within the busy timeout: the commit ahead goes through, the queued
        # append is skipped, a barrier after it is read, and the retries store.
        await retries
        assert [type(answer) for answer in await ahead] == [StorageTimeout]
        assert await values(log) == [b"event %d" % n for n in (0, 1, 2, 3, 9)]
        stats = ids.stats()
        assert stats["duplicates_skipped_total"] == 0
        assert (stats["unknown_outcome_ids"], stats["appending_ids"]) == (0, 0)
        await one(ids, 9)  # the commit ahead, remembered once its marker was read
        assert ids.stats()["duplicates_skipped_total"] == 1


async def test_identities_held_for_unknown_outcomes_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sluicegate.core.cloudevents.dedup._UNKNOWN_MAX_IDS", 2)
    async with quick_timeouts(tmp_path) as (_, ids), write_lock(tmp_path):
        answers = await timed_out_attempt(ids, "batch")
        assert {type(answer) for answer in answers} == {StorageTimeout}
        # Three would pass the bound of two: released at once, as a failed append's.
        assert (ids.stats()["unknown_outcome_ids"], ids.stats()["appending_ids"]) == (0, 0)
