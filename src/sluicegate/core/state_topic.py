"""Gateway state (schemas, clients, keys) kept in internal topics of the log itself.

This is Confluent Schema Registry's design (its ``_schemas`` topic): each kind of state
is a single-partition topic whose records are ``key → JSON value`` and whose tombstones
(``value = None``) delete a key. Every node replays the topic into memory on start and
follows it afterwards, so the same code works on the embedded SQLite log and on a Kafka
cluster shared by several gateway nodes, and a backup of the log is a backup of the state.

Writes go through the log and are applied only when read back (``put`` appends, then
catches up to the high watermark), so every node applies the same changes in the same
order and a writer reads its own write.

Some writes must be decided once when two nodes make them at the same moment: a schema
id, a subject's next version, the first admin client. ``claim`` decides them by the
log's order, which every node reads alike. A claim is a record under a key of its own
(the logical key behind a random token), so two claims never overwrite each other, not
even under compaction; applying them, every node lets the first claim of a key that is
not set win and ignores the others. The winner then writes the value under the plain
key — the lasting record, which later changes and tombstones replace as any other — and
each claimant tombstones its claim, so that compaction removes claims once decided. A
node that dies between its winning claim and the plain record leaves the claim, which
still holds on every replay, and one that dies before tombstoning a lost claim leaves it
behind the plain record; ``delete`` of the key removes such claims too.

On Kafka the topic may be deleted behind the gateway's back (``kafka-topics.sh
--delete``). Until the log has taken the deletion (``storage.kafka.topics``), reading and
writing the topic is ``StorageUnavailable``: the node serves on with what it knows, and
its follower asks again. Once the log no longer has the topic, the follower makes it
again and starts over from the new, empty topic, dropping what it knew: what the topic
held is lost, and a node that knew it keeps no more of it than one started afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

import msgspec

from sluicegate.core.records import NewRecord, Record, TopicPartition, Watermarks
from sluicegate.core.topics import INTERNAL_PREFIX, TopicSpec
from sluicegate.errors import ShuttingDown, StorageUnavailable, TopicExists, UnknownTopic
from sluicegate.storage.base import Log
from sluicegate.storage.outages import until_available

__all__ = ["StateTopic"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_READ_BATCH = 1000
_READ_BYTES = 4 * 1024 * 1024
#: Seconds a follower waits for a record before it asks whether the log still answers.
_FOLLOW_WAIT = 30.0
#: Keys of claim records start with this; ``put`` keys never do (no caller writes NUL).
_CLAIM = "\x00claim\x00"


class StateTopic(Generic[T]):
    """A durable ``str → T`` map backed by the internal topic ``__sluicegate_<name>``."""

    def __init__(
        self,
        log: Log,
        name: str,
        value_type: type[T],
        *,
        on_change: Callable[[str, T | None], None] | None = None,
    ) -> None:
        self._log = log
        self.topic = f"{INTERNAL_PREFIX}_{name}"
        self._tp = TopicPartition(self.topic, 0)
        #: The id of the topic read so far: another one under the name is a new topic.
        self._topic_id: int | None = None
        self._decoder = msgspec.json.Decoder(value_type)
        self._encoder = msgspec.json.Encoder()
        self._items: dict[str, T] = {}
        self._position = 0
        self._catch_up_lock = asyncio.Lock()
        self._on_change = on_change
        #: Logical key -> the claim record's key that set it, until that claim's tombstone.
        self._claims: dict[str, str] = {}
        #: Logical key -> its claim records not tombstoned yet, won or lost: left by nodes
        #: that died before tombstoning them, and removed by ``delete``.
        self._open_claims: dict[str, set[str]] = {}

    async def load(self) -> None:
        """Create the topic if needed and replay it into memory.

        Called again after a failure (a storage outage while starting), the replay takes
        up where it stopped: every record is applied once.
        """
        async with self._catch_up_lock:
            await self._create()
        await self.catch_up()

    async def _create(self) -> None:
        """Create the topic unless the log has it."""
        with contextlib.suppress(TopicExists):
            await self._log.create_topic(
                TopicSpec(name=self.topic, partitions=1, config={"cleanup.policy": "compact"})
            )

    async def _same_topic(self) -> None:
        """Start over if the log's topic of the name is not the one read so far: deleted
        outside the gateway and made again, by this node or another. Asked before every
        read, since a node may not look while both happen (its registry can take the
        deletion and the new topic in one read) and would read the new topic from the old
        one's position."""
        with self._gone_if_unknown():  # made in Kafka by another node, not yet in the registry
            topic_id = (await self._log.get_topic(self.topic)).id
        if self._topic_id is not None and topic_id != self._topic_id:
            self._start_over()
        self._topic_id = topic_id

    def _start_over(self) -> None:
        logger.error(
            "the gateway's internal topic %s was deleted outside the gateway: what it held "
            "is lost (entries this node knew: %d); the gateway made it again, empty",
            self.topic,
            len(self._items),
        )
        dropped = list(self._items)
        self._items.clear()
        self._claims.clear()
        self._open_claims.clear()
        self._position = 0
        if self._on_change is not None:
            for key in dropped:
                self._on_change(key, None)

    async def _watermarks(self) -> Watermarks:
        with self._gone_if_unknown():
            return await self._log.watermarks(self._tp)

    @contextlib.contextmanager
    def _gone_if_unknown(self) -> Iterator[None]:
        """The log's ``UnknownTopic`` for this topic, raised as ``_TopicGone``: the
        storage lost it, and the follower makes it again (``_follow_anew``)."""
        try:
            yield
        except UnknownTopic as exc:
            raise _gone(self.topic) from exc

    async def catch_up(self) -> None:
        """Apply every record up to the current high watermark."""
        async with self._catch_up_lock:
            await self._same_topic()
            marks = await self._watermarks()
            high = marks.high
            # Below the first record kept (a new topic's start, or records dropped from
            # the log's start) there is nothing to read.
            self._position = max(self._position, marks.low)
            while self._position < high:
                with self._gone_if_unknown():
                    records = await self._log.read(
                        self._tp, self._position, max_records=_READ_BATCH, max_bytes=_READ_BYTES
                    )
                if not records:
                    break
                for record in records:
                    self._apply(record)
                self._position = records[-1].offset + 1

    async def follow(self) -> None:
        """Apply changes written by other nodes as they arrive.

        Runs until cancelled, or returns when the log shuts down. A storage outage does
        not end it (the node goes on serving, its requests answered 503): it asks again,
        further apart, and takes up from where it stopped.
        """
        await until_available(self._follow, f"following {self._tp.topic} failed")

    async def _follow(self) -> None:
        while True:
            try:
                if not await self._log.wait({self._tp: self._position}, timeout=_FOLLOW_WAIT):
                    # No data: the wait timed out, or close() woke us. A closed log answers
                    # every wait at once, so looping on would spin without ever yielding.
                    try:
                        await self._log.check()
                    except ShuttingDown:
                        return
                await self.catch_up()
            except (UnknownTopic, _TopicGone):
                await self._follow_anew()

    async def _follow_anew(self) -> None:
        """The topic is gone: follow the one made again under its name, or raise
        ``_TopicGone`` while the log still lists the one deleted (asked again later)."""
        async with self._catch_up_lock:
            before = self._topic_id
            await self._create()
            await self._same_topic()
            if self._topic_id == before:
                raise _gone(self.topic)

    def _apply(self, record: Record) -> None:
        if record.key is None:
            return
        try:
            key = record.key.decode()
            value = None if record.value is None else self._decoder.decode(record.value)
        except (UnicodeDecodeError, msgspec.DecodeError) as exc:
            _skip_unreadable(record, exc)
            self._log.skip_unreadable()
            return
        if key.startswith(_CLAIM):
            self._apply_claim(key, value)
            return
        if value is None:
            self._items.pop(key, None)
        else:
            self._items[key] = value
        if self._on_change is not None:
            self._on_change(key, value)

    def _apply_claim(self, claim_key: str, value: T | None) -> None:
        logical = claim_key[len(_CLAIM) :].partition("\x00")[2]
        if value is None:
            if self._claims.get(logical) == claim_key:
                del self._claims[logical]
            open_claims = self._open_claims.get(logical)
            if open_claims is not None:
                open_claims.discard(claim_key)
                if not open_claims:
                    del self._open_claims[logical]
            return
        self._open_claims.setdefault(logical, set()).add(claim_key)
        if logical in self._items:
            return  # set already (by an earlier claim or a plain write): this claim lost
        self._items[logical] = value
        self._claims[logical] = claim_key
        if self._on_change is not None:
            self._on_change(logical, value)

    async def claim(self, key: str, value: T) -> tuple[T, bool]:
        """Set ``key`` to ``value`` unless it is set, decided once across nodes.

        Returns the value that holds and whether it is this call's. Two nodes claiming one
        key at the same moment both learn the same winner.
        """
        encoded = self._encoder.encode(value)
        while True:
            await self.catch_up()
            held = self._items.get(key)
            if held is not None:
                return held, False
            claim_key = f"{_CLAIM}{secrets.token_hex(8)}\x00{key}"
            await self._write(claim_key, encoded)
            won = self._claims.get(key) == claim_key
            if won:
                await self._write(key, encoded)
            await self._write(claim_key, None)
            if won:
                return value, True
            # Lost: the next turn reads the winner's value (or, deleted since, claims again).

    async def put(self, key: str, value: T) -> None:
        """Durably set ``key``; visible here when this returns."""
        await self._write(key, self._encoder.encode(value))

    async def put_many(self, items: Sequence[tuple[str, T]]) -> None:
        """Durably set several keys in one append: all of them or none."""
        encode = self._encoder.encode
        await self._append([NewRecord(self.topic, 0, k.encode(), encode(v)) for k, v in items])
        await self.catch_up()

    async def delete(self, key: str) -> None:
        """Durably remove ``key`` (a tombstone)."""
        for claim_key in sorted(self._open_claims.get(key, ())):
            # Left by a node that died before tombstoning it: once the tombstone below is
            # compacted away, a replay would apply the claim again.
            await self._write(claim_key, None)
        await self._write(key, None)

    async def _write(self, key: str, value: bytes | None) -> None:
        await self._append([NewRecord(self.topic, 0, key.encode(), value)])
        await self.catch_up()

    async def _append(self, records: list[NewRecord]) -> None:
        with self._gone_if_unknown():
            await self._log.append(records)

    def get(self, key: str) -> T | None:
        return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._items.items()))

    def values(self) -> Iterator[T]:
        return iter(list(self._items.values()))


class _TopicGone(StorageUnavailable):
    """The log lists the topic, but its storage no longer has it (deleted outside)."""


def _gone(topic: str) -> _TopicGone:
    return _TopicGone(
        f"the gateway's internal topic {topic} is gone from the storage (deleted outside "
        "the gateway?): its state is read and written again once the gateway has made it "
        "anew"
    )


def _skip_unreadable(record: Record, error: Exception) -> None:
    """Say that a record of an internal topic is skipped, being none the gateway can read.

    On Kafka anything with write access may append to the gateway's topics (a client
    that names one by mistake, a mirror, a newer gateway whose records an older one does
    not know). Such a record changes nothing: raising would stop the node that follows
    the topic, and every node at its next start, until the record is gone.
    """
    logger.error(
        "skipping the record at %s/%d@%d: the gateway cannot read it (%s); it was written "
        "by something else, or by a newer version",
        record.topic,
        record.partition,
        record.offset,
        error,
    )
