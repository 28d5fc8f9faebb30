"""``source`` + ``id`` de-duplication: an event is stored once however often it is sent.

CloudEvents makes ``source`` + ``id`` unique per distinct event, so a producer that
retries a batch after a timeout sends the same identities again; the gateway acknowledges
them without storing them twice, for ``cloudevents.dedup_window`` seconds (and never
longer than the retention of the topic the event went to).

The memory lives in the log, like the rest of the gateway's state: each ``append_once``
(and ``append_one``, its lane for a request of one event) writes, in the **same**
``Log.append`` as the events (one SQLite transaction, one Kafka
transaction), marker records in the internal topic ``__sluicegate_ce_ids`` that list the
digests of the identities it stored. So an acknowledged event is always remembered, and a
remembered identity always belongs to a stored event: a crash between the two is
impossible because there is no "between". ``load`` rebuilds memory from the markers of the
last window at start.

Marker record format (version 1): key null; value the 16-byte BLAKE2b digests of the
identity keys (``source`` UTF-8, a NUL byte, ``id`` UTF-8) back to back, at most
``MAX_DIGESTS_PER_MARKER`` per record; header ``lifetime_ms`` = how long these identities
are remembered after the record's timestamp (ASCII decimal), and header ``origin`` =
``<token>.<n>``: a random token of the process that wrote it and the marker's number in
that process, counted up in the order its markers are appended (readers ignore other
headers; a marker without ``origin`` is anyone's). One marker per append and lifetime, not
one per event: a batch of 100 events costs one more record, not 100, and the single events
``append_one`` takes in one turn of the event loop are appended together with one marker
of their digests. A marker may list no identity (``_append_barrier``). The topic's
retention is the window, so its disk use is bounded too.

Every node follows the marker topic while it runs (``follow``), so an identity stored
through one node is a duplicate on every other as soon as its marker is read there: a
producer retrying through a load balancer is answered alike by every node. A node skips
its own markers, whose appends remembered their identities already, but for appends whose
outcome it does not know (``StorageTimeout``: the caller was answered while the append may
still commit). Their identities stay claimed until ``follow`` finds the outcome out: their
marker read means committed (remembered, so a retry is a duplicate), a later marker of
this process read without theirs means failed (released, so a retry stores the events).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from functools import partial
from itertools import chain
from operator import itemgetter
from typing import Any

from sluicegate.config import CloudEventSettings
from sluicegate.core.cloudevents.id_table import DIGEST_BYTES, IdTable
from sluicegate.core.records import Appended, Header, NewRecord, Record, TopicPartition
from sluicegate.core.topics import INTERNAL_PREFIX, TopicSpec, TopicUpdate
from sluicegate.errors import (
    OffsetOutOfRange,
    ShuttingDown,
    SluicegateError,
    StorageTimeout,
    TopicExists,
    UnknownTopic,
)
from sluicegate.storage.base import Log

__all__ = ["MARKER_TOPIC", "MAX_DIGESTS_PER_MARKER", "EventIds", "identity_digest"]

logger = logging.getLogger(__name__)

MARKER_TOPIC = f"{INTERNAL_PREFIX}_ce_ids"
#: 64 KiB of digests per marker record: far below any broker's record size limit.
MAX_DIGESTS_PER_MARKER = 4096
_LIFETIME_HEADER = "lifetime_ms"
_ORIGIN_HEADER = "origin"
#: How often ``follow`` looks for a marker topic that another node may have created.
_TOPIC_LOOK_SECONDS = 2.0
#: How often ``follow`` reads the markers that came since it last did. A timer, not a
#: wait on the log: the markers come with nearly every produce, and on one node nearly
#: all are its own, so waking for each commit would cost more than it brings; a parked
#: wait would also count among the consumers' waits on the log (its ``waiters`` gauge).
_FOLLOW_INTERVAL = 0.25
#: How long the identities of an append with an unknown outcome stay claimed at most when
#: ``follow`` cannot find the outcome out (storage still unavailable): then a retry waiting
#: for them stores its events, as it would have without the claim.
_UNKNOWN_SECONDS = 60.0
#: At most this many identities held that way (about 100 MB): past it, an append's
#: identities are released at once, as before holds existed, rather than kept without
#: bound while storage stalls under load.
_UNKNOWN_MAX_IDS = 1_000_000
#: Single events appended together at most (``append_one``): one marker's digests.
_GROUPED_MAX = MAX_DIGESTS_PER_MARKER
#: An item's records (``append_once``), taken by a C loop.
_SECOND = itemgetter(1)
#: Expiry slots per window: the granularity at which the bound forgets ids.
_SLOTS_PER_WINDOW = 4096
_READ_RECORDS = 1000
_READ_BYTES = 8 * 1024 * 1024


#: BLAKE2b-128 with nothing hashed yet, copied for each key: a copy given the key costs
#: less than a new hash, whose digest size is a keyword to parse (timeit: 0.46 against
#: 0.60 us per key).
_BLAKE2B_128 = hashlib.blake2b(digest_size=DIGEST_BYTES)


def identity_digest(key: bytes) -> bytes:
    """The 128-bit digest an identity key is remembered by."""
    hashed = _BLAKE2B_128.copy()
    hashed.update(key)
    return hashed.digest()


def _digests(items: Iterable[tuple[bytes, object]]) -> list[bytes]:
    """``identity_digest`` of each item's key, its steps in one loop: no call per key."""
    start = _BLAKE2B_128.copy
    digests: list[bytes] = []
    append = digests.append
    for key, _ in items:
        hashed = start()
        hashed.update(key)
        append(hashed.digest())
    return digests


def _wall_clock_us() -> int:
    return time.time_ns() // 1000


class EventIds:
    """The identities of the events stored in the last window, and the one way to store.

    ``load()`` must have returned before the first ``append_once``. Every method runs on
    the log's event loop.
    """

    def __init__(
        self,
        log: Log,
        settings: CloudEventSettings,
        *,
        clock: Callable[[], int] = _wall_clock_us,
    ) -> None:
        self._log = log
        #: Microseconds since the epoch; the log's own clock in tests.
        self._clock = clock
        self._window_us = round(settings.dedup_window * 1_000_000)
        self._new_table = partial(
            IdTable,
            settings.dedup_max_ids,
            slot_seconds=max(1, int(settings.dedup_window) // _SLOTS_PER_WINDOW),
        )
        self._table = self._new_table()
        #: Identities whose append is in flight -> a future done when it ends either way
        #: (a claim of ``_append_claimed``, or the log's own future for ``append_one``).
        self._appending: dict[bytes, asyncio.Future[Any]] = {}
        #: This process's mark on the markers it writes (``<token>.``, then the marker's
        #: number), which ``follow`` tells its own markers by.
        self._origin = secrets.token_hex(8).encode() + b"."
        self._markers_made = 0
        #: The lifetime header last made, and its bytes with the origin header's name: the
        #: same for every event whose topic keeps events at least as long as the window.
        self._lifetime_header: tuple[int, Header, int] = (-1, (_LIFETIME_HEADER, b""), 0)
        #: Where ``follow`` reads next in each marker partition (from where ``load`` ended).
        self._follow_from: dict[TopicPartition, int] = {}
        self._marker_topic_made = asyncio.Event()
        #: Appends with an unknown outcome, by the number of each of their markers.
        self._unknown: dict[int, _Unknown] = {}
        #: The empty marker appended for them (``_append_barrier``), while in flight.
        self._barrier: asyncio.Future[list[Appended]] | None = None
        self._followed = 0
        #: The single events of this loop turn (``append_one``), appended together.
        self._group: _Group | None = None
        self._duplicates = 0
        self._marker_topic_exists = False
        self._creating_marker_topic = asyncio.Lock()

    # -- start -----------------------------------------------------------------------

    async def load(self) -> None:
        """Remember the markers of the last window (the marker topic is made on first use)."""
        try:
            topic = await self._log.get_topic(MARKER_TOPIC)
        except UnknownTopic:
            return
        if topic.retention_ms != self._window_us // 1000:
            # The window changed: the markers must outlive it, and no longer.
            topic = await self._log.alter_topic(
                MARKER_TOPIC, TopicUpdate(retention_ms=self._window_us // 1000)
            )
        self._marker_topic_exists = True
        # Called again after a failure (a storage outage while starting): read afresh.
        self._table = self._new_table()
        now = self._clock()
        starts = {
            tp: await self._log.offset_for_time(tp, now - self._window_us)
            for tp in (TopicPartition(MARKER_TOPIC, p) for p in range(topic.partitions))
        }
        # Two passes: counting first sizes the table once, and filling a sized table is
        # 1.3-1.7 times as fast as growing it shard by shard; reading is ~50 times faster
        # than either, so the second read costs little.
        count = 0
        for tp, start in starts.items():
            async for records in self._markers_from(tp, start):
                count += sum(len(r.value or b"") for r in records) // DIGEST_BYTES
        self._table.reserve(count)
        ends = dict(starts)
        for tp, start in starts.items():
            async for records in self._markers_from(tp, start, ends):
                for record in records:
                    self._remember_marker(record, now)
        self._follow_from = ends

    async def _create_marker_topic(self) -> None:
        """Create the marker topic once, however many first requests ask at once."""
        async with self._creating_marker_topic:
            if not self._marker_topic_exists:
                with contextlib.suppress(TopicExists):
                    await self._log.create_topic(
                        TopicSpec(
                            name=MARKER_TOPIC, partitions=1, retention_ms=self._window_us // 1000
                        )
                    )
                self._marker_topic_exists = True
        self._marker_topic_made.set()

    async def _markers_from(
        self,
        tp: TopicPartition,
        position: int,
        reached: dict[TopicPartition, int] | None = None,
    ) -> AsyncIterator[list[Record]]:
        """The marker records from ``position`` to the high watermark, in bounded reads;
        ``reached[tp]`` is then where the next read starts."""
        high = (await self._log.watermarks(tp)).high
        while position < high:
            try:
                records = await self._log.read(
                    tp, position, max_records=_READ_RECORDS, max_bytes=_READ_BYTES
                )
            except OffsetOutOfRange:
                # Retention removed what we were about to read: those markers expired.
                position = (await self._log.watermarks(tp)).low
                continue
            if not records:
                # Nothing but a Kafka transaction's commit marker below the watermark.
                position = high
                break
            yield records
            position = records[-1].offset + 1
        if reached is not None:
            reached[tp] = position

    def _remember_marker(self, record: Record, now: int) -> int:
        """Remember the identities of the marker ``record`` at ``now`` (µs); how many."""
        lifetime = next((v for name, v in record.headers if name == _LIFETIME_HEADER), None)
        value = record.value or b""
        if lifetime is None or not lifetime.isdigit() or len(value) % DIGEST_BYTES:
            logger.warning(
                "skipping marker %s/%d@%d: not a version 1 marker",
                record.topic,
                record.partition,
                record.offset,
            )
            return 0
        lifetime_us = min(int(lifetime) * 1000, self._window_us)
        digests = [value[at : at + DIGEST_BYTES] for at in range(0, len(value), DIGEST_BYTES)]
        self._table.add_all(
            digests, (record.timestamp + lifetime_us) // 1_000_000, now // 1_000_000
        )
        return len(digests)

    # -- following other nodes -------------------------------------------------------

    async def follow(self) -> None:
        """Remember the identities other nodes store, from their markers as they come, and
        find out the outcome of this node's appends whose callers got ``StorageTimeout``.

        Runs until cancelled, or until a read finds the log shutting down.
        """
        while True:
            try:
                while not self._follow_from:
                    if await self._find_marker_topic():
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._marker_topic_made.wait(), _TOPIC_LOOK_SECONDS)
                if self._unknown and self._barrier is None:
                    self._append_barrier()  # the last one failed: once more
                await asyncio.sleep(_FOLLOW_INTERVAL)
                await self._catch_up()
            except ShuttingDown:
                return
            except UnknownTopic:
                # Deleted by an operator: look for it again, as before it first existed.
                self._follow_from = {}
                self._marker_topic_exists = False
                self._marker_topic_made.clear()
            except SluicegateError as exc:
                # Storage unavailable for now: this node answers what it knows meanwhile.
                logger.warning("following the CloudEvents identity markers: %s", exc.message)
                await asyncio.sleep(1.0)

    async def _find_marker_topic(self) -> bool:
        """Whether the marker topic exists now; if so, follow it from its start."""
        try:
            topic = await self._log.get_topic(MARKER_TOPIC)
        except UnknownTopic:
            return False
        self._marker_topic_exists = True
        self._follow_from = {TopicPartition(MARKER_TOPIC, p): 0 for p in range(topic.partitions)}
        return True

    async def _catch_up(self) -> None:
        """Read the markers written since the last call."""
        now = self._clock()
        own = self._origin
        for tp, position in list(self._follow_from.items()):
            async for records in self._markers_from(tp, position, self._follow_from):
                for record in records:
                    origin = next((v for n, v in record.headers if n == _ORIGIN_HEADER), b"")
                    if not origin.startswith(own):
                        self._followed += self._remember_marker(record, now)
                    elif self._unknown:
                        # Own: its append remembered it, unless its outcome was unknown.
                        self._found_out(int(origin[len(own) :]), record, now)

    def _hold_unknown(self, markers: dict[int, list[bytes]]) -> None:
        """Keep claimed the identities of an append whose caller got ``StorageTimeout``
        (``markers``: each of its markers' number and identities) until ``follow`` finds
        out whether it committed."""
        appending = self._appending
        if sum(map(len, markers.values())) + self._held() > _UNKNOWN_MAX_IDS:
            for digests in markers.values():
                for digest in digests:
                    appending.pop(digest, None)
            return
        loop = asyncio.get_running_loop()
        unknown = _Unknown(markers, loop.create_future())
        unknown.timer = loop.call_later(_UNKNOWN_SECONDS, self._settle_unknown, unknown)
        for number, digests in markers.items():
            self._unknown[number] = unknown
            for digest in digests:
                appending[digest] = unknown.hold
        if self._barrier is None:
            self._append_barrier()

    def _found_out(self, number: int, record: Record, now: int) -> None:
        """This process's marker ``number`` was read (``record``): settle what it tells."""
        unknown = self._unknown.pop(number, None)
        if unknown is not None:
            # Its append committed: remembered now, as its caller's settling would have.
            self._remember_marker(record, now)
            self._unhold(unknown, unknown.markers.pop(number))
            if not unknown.markers:
                self._settle_unknown(unknown)
        # Markers are appended in the order of their numbers, and one is read only once
        # every append before it has committed or failed: an earlier one not read failed.
        for earlier in [n for n in self._unknown if n < number]:
            failed = self._unknown.get(earlier)
            if failed is not None:
                self._settle_unknown(failed)

    def _settle_unknown(self, unknown: _Unknown) -> None:
        """Release every identity ``unknown`` still holds, and wake who waits for them."""
        unknown.timer.cancel()
        for number, digests in unknown.markers.items():
            del self._unknown[number]
            self._unhold(unknown, digests)
        unknown.markers.clear()
        if not unknown.hold.done():
            unknown.hold.set_result(None)  # waiters look again: remembered, or theirs

    def _unhold(self, unknown: _Unknown, digests: list[bytes]) -> None:
        appending = self._appending
        for digest in digests:
            if appending.get(digest) is unknown.hold:
                del appending[digest]

    def _held(self) -> int:
        """Identities held for appends with an unknown outcome."""
        # By marker: an append of several markers is listed once per marker.
        return sum(len(unknown.markers[n]) for n, unknown in self._unknown.items())

    def _append_barrier(self) -> None:
        """Append a marker of no identity: once ``follow`` reads it, every append of this
        process before it has committed or failed, and those it did not read failed."""
        # Two records, as every marker append has at least: a multi-record append is a
        # Kafka transaction, ordered after this node's earlier ones however they end (one
        # record would take the idempotent producer, which does not wait for them).
        batch = [
            NewRecord(MARKER_TOPIC, 0, None, b"", headers, size)
            for headers, size, _ in (self._marker_headers(self._window_us) for _ in range(2))
        ]
        try:
            barrier = self._log.append(batch)
        except SluicegateError:
            return  # tried again by ``follow``
        self._barrier = barrier

        def done(result: asyncio.Future[list[Appended]]) -> None:
            self._barrier = None
            if not result.cancelled():
                result.exception()  # read: a failed barrier is tried again by ``follow``

        barrier.add_done_callback(done)

    # -- storing ---------------------------------------------------------------------

    async def append_once(
        self,
        items: Sequence[tuple[bytes, Sequence[NewRecord]]],
        topics: set[str] | None = None,
    ) -> None:
        """Durably store each item's records unless its identity key is already stored.

        Each item is (identity key, the records that event writes); ``topics`` are the
        topics of those records when the caller knows them (else they are collected).
        Items already stored in the window are skipped; an identity another request is
        appending is waited for (and taken over if that append fails); an identity twice
        in ``items`` is stored once. What remains is one ``Log.append`` with the markers,
        awaited until durable.
        Raises what ``Log.append`` raises; then nothing of this call was stored.
        """
        if len(items) == 1:
            # One event (a raw or structured request): no comprehension to build.
            key, records = items[0]
            pending = {identity_digest(key): records}
            topics = {records[0].topic} if len(records) == 1 else {r.topic for r in records}
        else:
            digests = _digests(items)
            pending = dict(zip(digests, map(_SECOND, items), strict=True))
            if len(pending) < len(items):
                # An identity twice in the call: dict() kept the last records, store the
                # first.
                pending = {}
                for digest, (_, records) in zip(digests, items, strict=True):
                    pending.setdefault(digest, records)
                self._duplicates += len(items) - len(pending)
            if topics is None:
                topics = {record.topic for records in pending.values() for record in records}
        lifetimes = await self._lifetimes(topics)
        if not self._marker_topic_exists:
            await self._create_marker_topic()
        while True:
            stored = self._table.remembered_of(pending, self._clock() // 1_000_000)
            for digest in stored:
                del pending[digest]
            self._duplicates += len(stored)
            appending = self._appending
            # The common case, no overlap, in one C-level intersection of the key views.
            overlap = appending.keys() & pending.keys() if appending else None
            others = {appending[d] for d in overlap} if overlap else None
            if not others:
                break
            # Never wait while holding claims of our own: two requests with overlapping
            # batches would wait for each other.
            await asyncio.wait(others)
        if pending:
            await self._append_claimed(pending, lifetimes)

    async def append_one(self, key: bytes, record: NewRecord, retention_ms: int | None) -> None:
        """``append_once`` of one event (identity ``key``) that writes ``record``, to a
        topic keeping events ``retention_ms`` (as the caller's metadata says): the same
        outcome, in the lane a raw or structured request takes, without the dicts, sets
        and futures that share the work between the identities of a batch.

        The single events claimed in one turn of the event loop (the requests a server
        reads at once) are stored by one ``Log.append`` with one marker listing their
        digests (``_flush``): one marker record per group, not per event. An append is
        all or nothing, so a marker still never names an event that was not stored. If a
        group's append fails, each of its events is appended alone, as it would have been
        on its own, and gets the answer of its own append.
        """
        digest = identity_digest(key)
        window = self._window_us
        lifetime = window if retention_ms is None else min(window, retention_ms * 1000)
        if not self._marker_topic_exists:
            await self._create_marker_topic()
        appending = self._appending
        while True:
            # Read once (while nothing is awaited) for the lookup and for the table's
            # expiry when the group settles: a commit later, at most that late.
            now = self._clock() // 1_000_000
            if self._table.remembers(digest, now):
                self._duplicates += 1
                return
            other = appending.get(digest)
            if other is None:
                break
            # In flight in another request: wait for its end (never cancelling it), then
            # look again: remembered now (a duplicate), or ours to take over.
            await asyncio.wait((other,))
        # The request's own future, which the group's settling ends: a cancelled request
        # cancels only it, never the append, which ends one way or the other and whose
        # outcome is still recorded.
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        group = self._group
        if group is None or group.lifetime != lifetime or len(group.digests) >= _GROUPED_MAX:
            group = self._group = _Group(lifetime, now, loop)
            loop.call_soon(self._flush, group)
        # From the lookup to the claim there is no await: no other request can slip in.
        group.digests.append(digest)
        group.records.append(record)
        group.done.append(done)
        appending[digest] = group.claim
        await done  # raises what the append raised

    def _flush(self, group: _Group) -> None:
        """Append the events ``append_one`` grouped in one loop turn, with their marker."""
        if self._group is group:
            self._group = None
        if len(group.digests) == 1:
            self._append_alone(group.digests[0], group.records[0], group.lifetime, group.done[0])
            group.claim.set_result(None)  # a waiter looks again: the append's future now
            return
        headers, size, group.number = self._marker_headers(group.lifetime)
        value = b"".join(group.digests)
        batch = group.records
        batch.append(NewRecord(MARKER_TOPIC, 0, None, value, headers, len(value) + size))
        try:
            appended = self._log.append(batch)
        except Exception:  # noqa: BLE001 - each event then gets its own append's answer
            self._settle_group(group, None)
            return
        appended.add_done_callback(partial(self._settle_group, group))

    def _settle_group(self, group: _Group, result: asyncio.Future[list[Appended]] | None) -> None:
        # Runs before any waiter's callback (the claim is set last), so a waiter wakes to
        # a settled identity.
        error = None if result is None or result.cancelled() else result.exception()
        if result is not None and not result.cancelled() and error is None:
            expiry = (result.result()[-1].timestamp + group.lifetime) // 1_000_000
            appending = self._appending
            for digest in group.digests:
                del appending[digest]
            self._table.add_all(group.digests, expiry, group.now)
            for done in group.done:
                if not done.done():
                    done.set_result(None)
        elif isinstance(error, StorageTimeout):
            # The outcome is unknown: the group is still committed or failed as a whole,
            # later. Appended again alone, its events could be stored twice; each request
            # is told what a single event's append would have told it.
            self._hold_unknown({group.number: group.digests})
            for done in group.done:
                if not done.done():
                    done.set_exception(error)
        else:
            # Nothing of the group was stored. One event's record may be what failed (a
            # partition its topic no longer has): alone, each gets its own answer, and
            # keeps its claim (now its own append's) until then.
            for digest, record, done in zip(group.digests, group.records, group.done, strict=False):
                self._append_alone(digest, record, group.lifetime, done)
        group.claim.set_result(None)

    def _append_alone(
        self, digest: bytes, record: NewRecord, lifetime: int, done: asyncio.Future[None]
    ) -> None:
        """Append ``record`` with the marker of ``digest`` alone; settle ``done``."""
        headers, size, number = self._marker_headers(lifetime)
        marker = NewRecord(MARKER_TOPIC, 0, None, digest, headers, DIGEST_BYTES + size)
        appending = self._appending
        try:
            appended = self._log.append((record, marker))
        except Exception as exc:  # noqa: BLE001 - the request's answer
            del appending[digest]
            if not done.done():
                done.set_exception(exc)
            return
        # The claim is the log's future itself, which nobody awaits directly (so nobody
        # cancels it): waiters use asyncio.wait, the request its own future.
        appending[digest] = appended

        def settle(result: asyncio.Future[list[Appended]]) -> None:
            del appending[digest]
            failed = result.cancelled() or result.exception() is not None
            if not failed:
                expiry = (result.result()[1].timestamp + lifetime) // 1_000_000
                self._table.add_one(digest, expiry, self._clock() // 1_000_000)
            elif not result.cancelled() and isinstance(result.exception(), StorageTimeout):
                self._hold_unknown({number: [digest]})
            if not done.done():
                if failed:
                    try:
                        result.result()
                    except BaseException as exc:  # noqa: BLE001 - the request's answer
                        done.set_exception(exc)
                else:
                    done.set_result(None)

        appended.add_done_callback(settle)

    def _marker_headers(self, lifetime: int) -> tuple[tuple[Header, ...], int, int]:
        """A new marker's headers for ``lifetime`` (µs), their bytes and its number."""
        made, header, size = self._lifetime_header
        if made != lifetime:
            header = (_LIFETIME_HEADER, b"%d" % (lifetime // 1000))
            size = len(_LIFETIME_HEADER) + len(header[1]) + len(_ORIGIN_HEADER)
            self._lifetime_header = (lifetime, header, size)
        number = self._markers_made = self._markers_made + 1
        origin = self._origin + b"%d" % number
        return (header, (_ORIGIN_HEADER, origin)), size + len(origin), number

    def _markers(self, by_lifetime: dict[int, list[bytes]]) -> list[_Marker]:
        """(digests, lifetime µs, marker record, its number) for each chunk of digests of
        one lifetime."""
        markers = []
        for lifetime, digests in by_lifetime.items():
            for start in range(0, len(digests), MAX_DIGESTS_PER_MARKER):
                headers, size, number = self._marker_headers(lifetime)
                chunk = digests[start : start + MAX_DIGESTS_PER_MARKER]
                value = b"".join(chunk)
                record = NewRecord(MARKER_TOPIC, 0, None, value, headers, len(value) + size)
                markers.append((chunk, lifetime, record, number))
        return markers

    async def _lifetimes(self, topics: Iterable[str]) -> dict[str, int]:
        """How long an event is remembered, in µs, by each of ``topics``."""
        lifetimes: dict[str, int] = {}
        for topic in topics:
            retention_ms = (await self._log.get_topic(topic)).retention_ms
            lifetimes[topic] = (
                self._window_us
                if retention_ms is None
                else min(self._window_us, retention_ms * 1000)
            )
        return lifetimes

    async def _append_claimed(
        self, pending: dict[bytes, Sequence[NewRecord]], lifetimes: dict[str, int]
    ) -> None:
        # From the claim to the append there is no await: no other request can slip in.
        claim: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._appending.update(dict.fromkeys(pending, claim))
        # Flattened in C: no Python code per event.
        batch = list(chain.from_iterable(pending.values()))
        by_lifetime: dict[int, list[bytes]] = {}
        if len(set(lifetimes.values())) <= 1:
            # One lifetime for every topic of this call (the usual case: none keeps events
            # for less than the window), so no event needs looking at.
            by_lifetime[next(iter(lifetimes.values()), self._window_us)] = list(pending)
        else:
            for digest, records in pending.items():
                lifetime = min((lifetimes[r.topic] for r in records), default=self._window_us)
                by_lifetime.setdefault(lifetime, []).append(digest)
        markers = self._markers(by_lifetime)
        batch.extend(marker for _, _, marker, _ in markers)
        try:
            appended = self._log.append(batch)
        except BaseException:
            self._release(pending, claim)
            raise

        # A callback, not only code after the await: if this request is cancelled, the
        # append still ends one way or the other, and its outcome must still be recorded.
        def settle(done: asyncio.Future[list[Appended]]) -> None:
            self._settle(done, pending, markers, claim)

        appended.add_done_callback(settle)
        try:
            await asyncio.shield(appended)
        finally:
            if appended.done():
                # Settled now, not a loop turn later: the caller's next call sees it.
                settle(appended)

    def _settle(
        self,
        done: asyncio.Future[list[Appended]],
        pending: dict[bytes, Sequence[NewRecord]],
        markers: list[_Marker],
        claim: asyncio.Future[None],
    ) -> None:
        if claim.done():
            return  # settled already (the callback and the awaiting request both call)
        if not done.cancelled() and done.exception() is None:
            results = done.result()
            now = self._clock() // 1_000_000
            first_marker = len(results) - len(markers)
            for (digests, lifetime, _, _), stored in zip(
                markers, results[first_marker:], strict=True
            ):
                self._table.add_all(digests, (stored.timestamp + lifetime) // 1_000_000, now)
        elif not done.cancelled() and isinstance(done.exception(), StorageTimeout):
            # Held, not released: a retry waits for the outcome (``follow``).
            self._hold_unknown({number: digests for digests, _, _, number in markers})
            claim.set_result(None)  # waiters look again and wait for the hold
            return
        self._release(pending, claim)

    def _release(
        self, pending: dict[bytes, Sequence[NewRecord]], claim: asyncio.Future[None]
    ) -> None:
        # A claimed identity is this call's alone until released: nobody else claims it.
        appending = self._appending
        for digest in pending:
            del appending[digest]
        # Waiters look again: remembered now (a duplicate), or theirs to take over.
        claim.set_result(None)

    # -- observing -------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        """Gauges and counters for /metrics."""
        now = self._clock() // 1_000_000
        window = self._window_us // 1_000_000
        return {
            "remembered_ids": self._table.remembered(now),
            "memory_bytes": self._table.memory_bytes(),
            "effective_window_seconds": self._table.effective_window(window, now),
            "appending_ids": len(self._appending),
            "duplicates_skipped_total": self._duplicates,
            "evicted_ids_total": self._table.evicted,
            "followed_ids_total": self._followed,
            "unknown_outcome_ids": self._held(),
        }


#: A marker of an append: its identities, their lifetime (µs), the record, its number.
_Marker = tuple[list[bytes], int, NewRecord, int]


class _Unknown:
    """An append whose caller got ``StorageTimeout``: committed or not, ``follow`` finds
    out. ``hold`` claims its identities until then (``EventIds._appending``)."""

    __slots__ = ("hold", "markers", "timer")

    def __init__(self, markers: dict[int, list[bytes]], hold: asyncio.Future[None]) -> None:
        #: The number and identities of each of its markers not read yet.
        self.markers = markers
        self.hold = hold
        self.timer: asyncio.TimerHandle


class _Group:
    """Single events claimed in one loop turn, for one ``Log.append`` with one marker."""

    __slots__ = ("claim", "digests", "done", "lifetime", "now", "number", "records")

    def __init__(self, lifetime: int, now: int, loop: asyncio.AbstractEventLoop) -> None:
        self.lifetime = lifetime
        #: Seconds: the clock of the group's first lookup, for the table when it settles.
        self.now = now
        self.digests: list[bytes] = []
        self.records: list[NewRecord] = []
        #: Each request's own future, ended when the group (or its own append) settles.
        self.done: list[asyncio.Future[None]] = []
        #: The claim of every identity in the group: done once the group has settled.
        self.claim: asyncio.Future[None] = loop.create_future()
        #: Its marker's number (``EventIds._marker_headers``), once made.
        self.number = 0
