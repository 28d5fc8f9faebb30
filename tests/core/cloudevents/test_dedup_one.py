"""EventIds.append_one, the lane of a request of one event, on both backends: the same
outcomes as ``append_once`` (stored once, with its marker in the same append, in-flight
identities waited for and taken over), and it sees the batches' claims and they its."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sluicegate.core.cloudevents.dedup import MARKER_TOPIC, EventIds, identity_digest
from sluicegate.core.records import NewRecord
from sluicegate.core.topics import TopicSpec
from sluicegate.errors import InvalidPartition
from sluicegate.storage.base import Log
from tests.conftest import BACKENDS
from tests.core.cloudevents.test_dedup import TOPIC, Storage, event, stored, values


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


async def one(ids: EventIds, n: int, retention_ms: int | None = None) -> None:
    key, (record,) = event(n)
    await ids.append_one(key, record, retention_ms)


async def test_a_retried_event_is_stored_once(log: Log, ids: EventIds) -> None:
    await one(ids, 1)
    await one(ids, 1)
    await one(ids, 2)
    assert await values(log) == [b"event 1", b"event 2"]
    stats = ids.stats()
    assert (stats["remembered_ids"], stats["duplicates_skipped_total"]) == (2, 1)
    assert stats["appending_ids"] == 0


async def test_the_marker_is_in_the_events_append_in_the_documented_format(
    log: Log, storage: Storage
) -> None:
    ids = await storage.loaded(log, dedup_window=3600.0)
    await one(ids, 1)
    [marker] = await stored(log, MARKER_TOPIC)
    assert marker.key is None
    assert list(marker.headers) == [("lifetime_ms", b"3600000")]
    assert marker.value == identity_digest(event(1)[0])
    if storage.backend == "sqlite":
        [record] = await stored(log)
        assert record.timestamp == marker.timestamp  # one commit
    # What append_once stored is a duplicate here, and the other way round.
    await ids.append_once([event(1), event(2)])
    await one(ids, 2)
    assert await values(log) == [b"event 1", b"event 2"]
    assert ids.stats()["duplicates_skipped_total"] == 2


async def test_a_failed_append_remembers_nothing_and_a_retry_stores(
    log: Log, ids: EventIds
) -> None:
    key, _ = event(1)
    with pytest.raises(InvalidPartition):
        await ids.append_one(key, NewRecord(TOPIC, 9, None, b"no such partition"), None)
    assert await stored(log) == []
    assert (ids.stats()["remembered_ids"], ids.stats()["appending_ids"]) == (0, 0)
    await one(ids, 1)
    assert await values(log) == [b"event 1"]


async def test_a_waiter_answers_duplicate_once_the_other_append_succeeds(
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


async def test_a_waiter_takes_over_an_identity_whose_append_failed(log: Log, ids: EventIds) -> None:
    await one(ids, 0)  # the marker topic exists from here on
    key, _ = event(1)
    broken = ids.append_one(key, NewRecord(TOPIC, 9, None, b"no such partition"), None)
    first, second = await asyncio.gather(broken, one(ids, 1), return_exceptions=True)
    assert isinstance(first, InvalidPartition)
    assert second is None
    assert await values(log) == [b"event 0", b"event 1"]


async def test_the_lanes_wait_for_each_others_claims(log: Log, ids: EventIds) -> None:
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


async def test_a_cancelled_request_still_remembers_what_its_append_stored(
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


async def test_never_remembered_beyond_the_retention_it_is_given(clocked: Storage) -> None:
    async with clocked.running() as log:
        await log.create_topic(TopicSpec(name=TOPIC, partitions=3, retention_ms=60_000))
        ids = await clocked.loaded(log, dedup_window=600.0)
        await one(ids, 1, retention_ms=60_000)
        [marker] = await stored(log, MARKER_TOPIC)
        assert list(marker.headers) == [("lifetime_ms", b"60000")]
        await one(ids, 2)  # a topic without a retention: the window
        assert list((await stored(log, MARKER_TOPIC))[1].headers) == [("lifetime_ms", b"600000")]
        clocked.clock.advance(60)
        await one(ids, 1, retention_ms=60_000)  # forgotten with its topic's records
        await one(ids, 2)  # still remembered
        assert await values(log) == [b"event 1", b"event 1", b"event 2"]
