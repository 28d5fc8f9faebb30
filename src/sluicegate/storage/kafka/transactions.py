"""All-or-nothing batches: Kafka transactions, group-committed.

A multi-record append must be stored whole or not at all, across partitions and topics:
that is a Kafka transaction. A transaction costs a few round trips to the transaction
coordinator whatever its size, so, like SQLite's writer, the committer takes every batch
queued while the previous transaction committed and puts them all in the next one.

A committed transaction is visible to ``read_committed`` readers only once the coordinator
has written its commit markers, a moment after ``commit_transaction`` returns; a batch's
future resolves only then, so whoever appended reads its own write.

If the transaction fails because of one batch (a record too large for the broker), the
others must not fail with it: the committer aborts, then commits each batch on its own.
Readers use ``read_committed``, so records of an aborted transaction are never seen.

Per record, the committer does as little Python as it can: one positional ``produce``
call and no delivery report. A transaction holds at most one record batch's worth of each
partition (``clients.ONE_BATCH_RECORDS`` and ``ONE_BATCH_BYTES``) and its records wait for
the commit (a long ``linger.ms``), so librdkafka sends each partition's records as one
record batch, whose records Kafka stores at consecutive offsets. Only the first and the
last record of each partition ask for a report: if their offsets are as far apart as the
partition's records are many, the records in between took the offsets in between, in the
order they were produced (checked, never assumed: any other writer's records in the range
would widen it). A partition whose records of one batch alone exceed a record batch gets a
report per record. A batch's outcome is kept per partition (``Placement``: first offset,
count, timestamps), not as a placement per record. While a committed transaction waits
for its markers to become visible, the next one is already committing.

Every batch has a deadline, set when it was appended (``storage.append_timeout`` later),
and every step of the committer uses up what is left of it rather than a timeout of its
own: finishing or aborting the transaction before (``_ready``), the commit, the abort
after a failure, committing it again, waiting for it to become visible. Those steps once
each took a full timeout, and a request waited for their sum. The appender answers a
batch at its deadline whatever the committer still does (``Appends._expire``):
``withdraw`` takes a batch still queued out of the queue, so nothing of it is ever stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import operator
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sluicegate.core.records import Appended, NewRecord
from sluicegate.core.topic_batch import TopicBatch
from sluicegate.errors import (
    ClientError,
    SluicegateError,
    StorageForbidden,
    StorageTimeout,
    StorageUnavailable,
)
from sluicegate.storage.kafka.clients import ONE_BATCH_BYTES, ONE_BATCH_RECORDS
from sluicegate.storage.kafka.errors import STALE_METADATA, kafka_error, reported, translate

__all__ = ["TransactionalProducer"]

logger = logging.getLogger(__name__)

#: Seconds to keep asking a transaction coordinator that answers "retriable".
_COORDINATOR_PATIENCE = 30.0

_Key = tuple[str, int]


#: Bytes a record takes in a record batch beyond its key, value and headers (an upper
#: bound: lengths, attributes, offset and timestamp deltas as varints).
_RECORD_OVERHEAD = 32
#: What a transaction may hold of one partition so librdkafka sends it as one record
#: batch: the limits, with room for the batch's own header.
_SHARE_RECORDS = ONE_BATCH_RECORDS
_SHARE_BYTES = ONE_BATCH_BYTES - 4096


_headers = operator.attrgetter("headers")


def _bytes(records: Sequence[NewRecord]) -> int:
    """What ``records`` take in a record batch, at most.

    One pass, with a call per record only for those with headers: the passes of ``map``
    in C this replaces (values, keys, headers) measured twice as long on Python 3.11.
    """
    return sum(
        record.size() if record.headers else len(record.value or b"") + len(record.key or b"")
        for record in records
    ) + _RECORD_OVERHEAD * len(records)


class Batch:
    """One append's records and, for each, its (Kafka topic, partition)."""

    __slots__ = ("_shares", "keys", "records")

    def __init__(self, keys: Sequence[_Key], records: Sequence[NewRecord]) -> None:
        self.keys = keys
        self.records = records
        self._shares: dict[_Key, tuple[int, int]] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def shares(self) -> dict[_Key, tuple[int, int]]:
        """Per partition: how many of the records go there, and their bytes in a batch."""
        shares = self._shares
        if shares is None:
            keys, records = self.keys, self.records
            # By identity first (one key object repeated), where a set would hash each.
            if keys.count(keys[0]) == len(keys):
                if isinstance(records, TopicBatch):
                    size = records.size() + _RECORD_OVERHEAD * len(records)
                else:
                    size = _bytes(records)
                shares = {keys[0]: (len(keys), size)}
            elif isinstance(records, TopicBatch):
                shares = {}
                for key, record_key, value in zip(keys, records.keys, records.values, strict=True):
                    count, size = shares.get(key, (0, 0))
                    size += len(record_key or b"") + len(value or b"") + _RECORD_OVERHEAD
                    shares[key] = (count + 1, size)
            else:
                shares = {}
                for key, record in zip(keys, self.records, strict=True):
                    count, size = shares.get(key, (0, 0))
                    shares[key] = (count + 1, size + record.size() + _RECORD_OVERHEAD)
            self._shares = shares
        return shares


#: Where a record landed: (offset, log-append timestamp in ms).
Placed = tuple[int, int]
#: Where a batch's records of one partition landed: consecutive offsets as (first offset,
#: count, the first record's timestamp, the others' timestamp); or, when the partition
#: reported every record, each record's placement.
_Run = tuple[int, int, int, int] | list[Placed]


def _each_placed(run: _Run) -> Iterator[Placed]:
    if isinstance(run, list):
        return iter(run)
    first, count, head, rest = run
    return itertools.chain(
        ((first, head),), zip(range(first + 1, first + count), itertools.repeat(rest))
    )


class Placement:
    """Where a committed batch's records landed, per partition: a batch of 100 records
    to one partition is one run, not 100 placements (iterate for each record's)."""

    __slots__ = ("keys", "runs")

    def __init__(self, keys: Sequence[_Key], runs: dict[_Key, _Run]) -> None:
        self.keys = keys
        self.runs = runs

    def __iter__(self) -> Iterator[Placed]:
        """Each record's placement, in batch order."""
        runs = self.runs
        if len(runs) == 1:
            [run] = runs.values()
            return _each_placed(run)
        cursors = {key: _each_placed(run) for key, run in runs.items()}
        return map(next, map(cursors.__getitem__, self.keys))

    def ends(self) -> dict[_Key, int]:
        """Per partition, the offset after the batch's last record there."""
        return {
            key: run[-1][0] + 1 if isinstance(run, list) else run[0] + run[1]
            for key, run in self.runs.items()
        }

    def offsets(self) -> list[tuple[int, int]]:
        """Each record's (partition, offset), in batch order."""
        runs = self.runs
        if len(runs) == 1:
            [((_, partition), run)] = runs.items()
            if isinstance(run, tuple):
                # One partition, consecutive offsets: the pairs zipped from a range, in C.
                first, count, _, _ = run
                pairs = zip(itertools.repeat(partition), range(first, first + count), strict=False)
                return list(pairs)
        return [(key[1], offset) for key, (offset, _) in zip(self.keys, self, strict=True)]

    def appended(self, records: Sequence[NewRecord]) -> list[Appended]:
        """The results of ``records`` (the batch's, in its order): timestamps in µs."""
        runs = self.runs
        if len(runs) == 1:
            [run] = runs.values()
            if isinstance(run, tuple):
                # One partition, consecutive offsets: no placement per record to unpack.
                first, count, head, rest = run
                record = records[0]
                return list(
                    map(
                        Appended,
                        itertools.repeat(record.topic, count),
                        itertools.repeat(record.partition),
                        range(first, first + count),
                        itertools.chain((head * 1000,), itertools.repeat(rest * 1000)),
                    )
                )
        return [
            Appended(record.topic, record.partition, offset, timestamp * 1000)
            for record, (offset, timestamp) in zip(records, self, strict=True)
        ]


#: A batch's placement, or why none of it was stored.
Outcome = Placement | SluicegateError
#: The shortest wait the committer gives librdkafka: a deadline already passed still lets
#: a call answer what it knows at once (0 may mean "no timeout" to some of its calls).
_LEAST_WAIT = 0.01


class Entry:
    """A batch submitted, the callback that gets its outcome, and its deadline
    (``time.monotonic()``). ``taken``: a transaction holds it, so it can no longer be
    withdrawn; ``decided``: that transaction's outcome is known (it settles)."""

    __slots__ = ("batch", "deadline", "decided", "done", "taken")

    def __init__(self, batch: Batch, done: Callable[[Outcome], None], deadline: float) -> None:
        self.batch = batch
        self.done = done
        self.deadline = deadline
        self.taken = False
        self.decided = False


def _wait(deadline: float, longest: float) -> float:
    """Seconds a blocking call may take: at most ``longest``, and no later than
    ``deadline`` (but ``_LEAST_WAIT``)."""
    return max(min(longest, deadline - time.monotonic()), _LEAST_WAIT)


#: Waits until ``read_committed`` readers see each partition up to its offset.
Visible = Callable[[Mapping[_Key, int]], Awaitable[None]]


class TransactionalProducer:
    """Commits queued batches in transactions on one thread of its own.

    Resource handling: ``start`` initialises the transactional id (fencing a previous
    incarnation of this node); ``run`` commits until ``close``; blocking librdkafka calls
    run on the committer thread only, never on the loop.
    """

    def __init__(
        self,
        config: dict[str, Any],
        *,
        append_timeout: float,
        request_timeout: float,
        on_error: Callable[[KafkaError], None],
        visible: Visible,
    ) -> None:
        self._config = config
        self._visible = visible
        self._append_timeout = append_timeout
        self._request_timeout = request_timeout
        self._on_error = on_error
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer: Producer | None = None
        self._must_abort = False
        #: A commit that timed out may still complete: it is resumed before the next one.
        self._must_resume = False
        #: How the last transaction, aborted with nothing of it stored, may be committed
        #: again; None: it may not (committer thread only).
        self._retry: _Retry | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="kafka-transactions")
        self._queue: list[Entry] = []
        #: The current transaction's delivery reports (committer thread only).
        self._reports: list[Message] = []
        self._wake = asyncio.Event()
        self._closing = False
        #: Records of the batches queued or being committed (for /metrics).
        self.queued_records = 0

    async def start(self) -> None:
        """Create the producer and register its transactional id with the coordinator."""
        self._loop = asyncio.get_running_loop()
        await self._loop.run_in_executor(self._executor, self._open)

    def _open(self, deadline: float | None = None) -> None:
        """Make the producer and init its transactions, by ``deadline`` if one is given
        (a producer made again for a transaction's batches), else with the patience a
        start needs."""
        # No producer-wide on_delivery: only the records given one are reported (_commit).
        producer = Producer({**self._config, "error_cb": self._error})
        # A new cluster creates its transaction log on first use, and a coordinator that
        # just moved is loading: both answer "retriable" for a while, so keep asking.
        patience = time.monotonic() + max(_COORDINATOR_PATIENCE, self._request_timeout)
        deadline = patience if deadline is None else min(deadline, patience)
        while True:
            try:
                producer.init_transactions(_wait(deadline, self._request_timeout))
                break
            except KafkaException as exc:
                error = kafka_error(exc)
                if error is not None and error.retriable() and time.monotonic() < deadline:
                    continue
                failure = translate(error) if error is not None else StorageUnavailable(str(exc))
                if isinstance(failure, StorageForbidden):  # librdkafka's text names no id
                    identity = self._config["transactional.id"]
                    failure = StorageForbidden(f"{failure.message}; transactional id {identity!r}")
                raise failure from exc
        self._producer = producer
        self._must_abort = False
        self._must_resume = False

    def _delivered(self, _error: KafkaError | None, message: Message) -> None:
        # On the committer thread, inside commit, abort or flush: keep, decode later.
        self._reports.append(message)

    def _take(self) -> list[Entry]:
        """The queued batches the next transaction holds, oldest first.

        As many as fit one record batch per partition (at least one), so that each
        partition's offsets can be told from its first and last record's (``_commit``).
        """
        queue = self._queue
        held: dict[_Key, tuple[int, int]] = {}
        taken = 0
        for entry in queue:
            shares = entry.batch.shares()
            merged = {}
            for key, (count, size) in shares.items():
                had_count, had_size = held.get(key, (0, 0))
                count, size = had_count + count, had_size + size
                if taken and (count > _SHARE_RECORDS or size > _SHARE_BYTES):
                    break
                merged[key] = (count, size)
            else:
                held.update(merged)
                taken += 1
                continue
            break
        waiting, self._queue = queue[:taken], queue[taken:]
        for entry in waiting:
            entry.taken = True
        if self._queue:
            self._wake.set()  # the rest go in the next transaction
        return waiting

    def _error(self, error: KafkaError) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_error, error)

    def submit(self, batch: Batch, done: Callable[[Outcome], None], deadline: float) -> Entry:
        """Queue ``batch``, due by ``deadline`` (``time.monotonic()``); ``done`` gets its
        outcome on the loop, unless it is withdrawn first."""
        entry = Entry(batch, done, deadline)
        self._queue.append(entry)
        self.queued_records += len(batch)
        self._wake.set()
        return entry

    def withdraw(self, entry: Entry) -> bool:
        """Take ``entry`` out of the queue if no transaction holds it yet: then nothing
        of it is ever stored, and its ``done`` is never called. Whether it was."""
        if entry.taken or entry not in self._queue:  # taken, or withdrawn already
            return False
        self._queue.remove(entry)
        self.queued_records -= len(entry.batch)
        return True

    async def run(self) -> None:
        """Commit queued batches until ``close()`` and the queue is empty."""
        loop = asyncio.get_running_loop()
        settling: asyncio.Task[None] | None = None
        async with asyncio.TaskGroup() as tg:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if not self._queue:
                    if self._closing:
                        return
                    continue
                waiting = self._take()
                outcomes = await loop.run_in_executor(self._executor, self._commit_all, waiting)
                for entry in waiting:
                    entry.decided = True
                # The next transaction commits while this one's markers become visible.
                settling = tg.create_task(
                    self._settle(waiting, outcomes, settling), name="kafka-transaction-settle"
                )
                if self._closing:
                    self._wake.set()

    async def _settle(
        self,
        waiting: list[Entry],
        outcomes: list[Outcome],
        previous: asyncio.Task[None] | None,
    ) -> None:
        """Wait until the committed batches are visible, then resolve them in commit order.

        The wait ends by the first deadline still ahead: the outcome is decided, and a
        reader seeing it a moment later is no reason to answer a caller late. (A caller
        whose deadline came while the transaction committed was answered then.)"""
        ends: dict[_Key, int] = {}
        for outcome in outcomes:
            if not isinstance(outcome, SluicegateError):
                # Offsets grow per partition in commit order: the last batch's end is it.
                ends.update(outcome.ends())
        now = time.monotonic()
        ahead = [entry.deadline - now for entry in waiting if entry.deadline > now]
        if ends and ahead:
            try:
                async with asyncio.timeout(min(ahead)):
                    await self._visible(ends)
            except (SluicegateError, TimeoutError) as exc:
                # Committed, but not yet seen: the outcome is decided, the wait was not.
                why = exc.message if isinstance(exc, SluicegateError) else "the deadline came"
                logger.warning("committed records are not visible yet: %s", why)
        if previous is not None:
            await previous
        for entry, outcome in zip(waiting, outcomes, strict=True):
            self.queued_records -= len(entry.batch)
            entry.done(outcome)

    def close(self) -> None:
        """Commit what is queued, then make ``run`` return."""
        self._closing = True
        self._wake.set()

    async def shutdown(self) -> None:
        """Release the producer and the committer thread (after ``run`` returned)."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._release)
        self._executor.shutdown()

    def _release(self) -> None:
        if self._producer is not None:
            if self._must_abort:
                self._abort()
            self._producer.flush(self._request_timeout)
            self._producer = None

    # -- the committer thread --------------------------------------------------------

    def _commit_all(self, entries: list[Entry]) -> list[Outcome]:
        """Commit the batches of ``entries`` in one transaction, by the latest of their
        deadlines (a caller whose own came first is answered then, by the appender)."""
        batches = [entry.batch for entry in entries]
        deadline = max(entry.deadline for entry in entries)
        outcomes = self._commit(batches, deadline)
        if self._retry is _Retry.RELEARN and self._producer is not None:
            # librdkafka refused a record at once: it remembers the topic missing (deleted,
            # and made again under its name since) or with fewer partitions (grown since)
            # until its next metadata refresh, minutes away. Aborted, nothing of it
            # stored: ask now and commit again, once.
            topics = {topic for batch in batches for topic, _ in batch.shares()}
            logger.info("librdkafka took a topic of %s for missing: asking again", sorted(topics))
            for topic in topics:
                with contextlib.suppress(KafkaException):
                    self._producer.list_topics(
                        topic=topic, timeout=_wait(deadline, self._request_timeout)
                    )
            outcomes = self._commit(batches, deadline)
        elif self._retry is not None and deadline - time.monotonic() > self._append_timeout / 2:
            # Kafka made us abort it (records failed while a broker went away, an epoch
            # a restarted broker fenced): nothing of it is stored, so committing it again,
            # once, is safe, and done before any later batch it keeps each partition's
            # order. A client would retry the 503 itself, later and out of order.
            logger.info("a transaction Kafka aborted is committed again: %s", outcomes[0])
            outcomes = self._commit(batches, deadline)
        if len(batches) > 1 and all(isinstance(o, SluicegateError) for o in outcomes):
            failure = outcomes[0]
            assert isinstance(failure, SluicegateError)
            if not failure.retriable:
                # Perhaps one batch spoiled it for all: give each its own transaction,
                # while its caller still waits for it.
                return [
                    self._commit([entry.batch], entry.deadline)[0]
                    if entry.deadline > time.monotonic()
                    else failure
                    for entry in entries
                ]
        return outcomes

    def _commit(self, batches: list[Batch], deadline: float) -> list[Outcome]:
        """One transaction holding every batch, by ``deadline``; each batch's outcome
        (all the same)."""
        self._retry = None
        try:
            self._ready(deadline)
        except SluicegateError as exc:
            return [exc] * len(batches)
        producer = self._producer
        assert producer is not None
        produce = producer.produce
        delivered = self._delivered
        reports = self._reports
        reports.clear()
        plan = _ReportPlan(batches)
        committing = False
        try:
            producer.begin_transaction()
            for batch, reported in zip(batches, plan.reported, strict=True):
                if isinstance(batch.records, TopicBatch):
                    _produce_columns(produce, batch, reported, delivered)
                    continue
                if not any(map(_headers, batch.records)):
                    _produce_headerless(produce, batch, reported, delivered)
                    continue
                for index, ((topic, _), record) in enumerate(
                    zip(batch.keys, batch.records, strict=True)
                ):
                    # Positional, as in IdempotentProducer.send: (on_delivery, its alias,
                    # timestamp 0 for "now", headers), no keyword to look up.
                    produce(
                        topic,
                        record.value,
                        record.key,
                        record.partition,
                        delivered if index in reported else None,
                        None,
                        0,
                        list(record.headers) if record.headers else None,
                    )
            committing = True
            producer.commit_transaction(_wait(deadline, self._append_timeout))
        except (KafkaException, BufferError) as exc:
            failure = self._failed(exc, deadline, committing=committing)
            return [failure] * len(batches)
        # commit_transaction flushed, which served the delivery reports asked for.
        outcomes = plan.placements(reports)
        reports.clear()
        return outcomes

    def _ready(self, deadline: float) -> None:
        """End the last transaction (finish its commit, or abort it) by ``deadline``."""
        if self._producer is None:
            self._open(deadline)
        if self._must_resume:
            self._resume(deadline)
        if self._must_abort and not self._abort(deadline):
            raise StorageUnavailable("Kafka's transaction coordinator is unreachable")
        if self._producer is None:
            # The abort found the producer failed for good (fenced, its epoch to bump):
            # a new one takes over, fencing it, as after a fatal error anywhere else.
            self._open(deadline)

    def _resume(self, deadline: float) -> None:
        """Finish the commit that timed out: librdkafka resumes it where it stopped (and
        again before the next transaction, if this one times out too)."""
        producer = self._producer
        assert producer is not None
        try:
            producer.commit_transaction(_wait(deadline, self._request_timeout))
        except KafkaException as exc:
            error = kafka_error(exc)
            if error is not None and error.fatal():
                self._producer = None
                self._open(deadline)
            elif error is not None and error.txn_requires_abort():
                self._must_resume, self._must_abort = False, True
            else:
                raise StorageUnavailable(f"Kafka has not finished a commit: {exc}") from exc
            return
        self._must_resume = False

    def _abort(self, deadline: float | None = None) -> bool:
        """Abort the transaction, by ``deadline`` if given; whether it is over (if not,
        the next transaction aborts it first)."""
        producer = self._producer
        assert producer is not None
        timeout = self._request_timeout
        try:
            producer.abort_transaction(timeout if deadline is None else _wait(deadline, timeout))
        except KafkaException as exc:
            error = kafka_error(exc)
            if error is not None and error.fatal():
                self._producer = None  # _ready makes a new one, fencing this one
                return True
            self._must_abort = True
            return False
        self._must_abort = False
        return True

    def _failed(self, exc: BaseException, deadline: float, *, committing: bool) -> SluicegateError:
        # The most telling cause: a record's own error (413) over the transaction's.
        cause = next(
            (
                error
                for message in self._reports
                if (error := message.error()) is not None and error.code() not in _PURGED
            ),
            None,
        )
        self._reports.clear()
        error = kafka_error(exc)
        # Whether the batches may be stored yet: the caller must hear 408 ("all or none,
        # not known which"), never 503, which says nothing was stored and invites a
        # retry that would store them twice.
        unknown = error is not None and error.code() == KafkaError._TIMED_OUT
        aborted = False
        if error is not None and error.fatal():
            logger.error("the transactional producer failed fatally (%s); making a new one", exc)
            self._producer = None
        elif committing and error is not None and error.retriable():
            # The commit may complete yet (or have completed): abort is no longer ours to
            # choose. The next transaction first resumes it.
            self._must_resume = True
            unknown = True
        else:
            # The transaction is over only once aborted; if that fails now, the next
            # commit tries again first.
            aborted = self._abort(deadline)
            if aborted and error is not None and error.code() in STALE_METADATA:
                self._retry = _Retry.RELEARN
        if cause is not None:
            return translate(reported(cause))
        if isinstance(exc, BufferError):
            return StorageUnavailable("the producer's queue is full")
        if unknown:
            return StorageTimeout(
                f"Kafka did not confirm the transaction's commit: {exc}; the records are "
                "either all stored or none is"
            )
        if error is not None and error.txn_requires_abort():
            # Aborted above, or by the next transaction first: never committed, so 503, as
            # for any write nothing of which is stored (a broker that went away while
            # records were in flight leaves "skipped sequence numbers" here), unless an
            # ACL refused a partition of it, which a retry would meet again.
            refused = translate(error)
            if isinstance(refused, StorageForbidden):
                return refused
            # Committed again unless what Kafka refused would be refused again: a topic
            # it does not have (say) is 503 at once, not after another try's timeout.
            if not aborted or isinstance(refused, ClientError):
                self._retry = None
            elif self._retry is None:
                self._retry = _Retry.AGAIN
            return StorageUnavailable(
                f"Kafka aborted the transaction: {error.str()}; nothing of it is stored"
            )
        return translate(error) if error is not None else StorageUnavailable(str(exc))


class _Retry(enum.Enum):
    """How a transaction aborted with nothing of it stored is committed again, once."""

    #: librdkafka refused a record's topic as unknown at once: its metadata asked first.
    RELEARN = enum.auto()
    #: Kafka told the producer to abort it: committed again as it was.
    AGAIN = enum.auto()


#: Reports of records dropped because their transaction ended: never the cause.
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})


def _produce_headerless(
    produce: Callable[..., None],
    batch: Batch,
    reported: frozenset[int],
    delivered: Callable[[KafkaError | None, Message], None],
) -> None:
    """Produce a batch of records without headers; those in ``reported`` ask for a report.

    The records between two reported ones go by a loop of their own, with no test per
    record. (Neither ``map`` nor ``Producer.produce_batch`` costs less: the first calls
    ``produce`` just as often, and the second takes a dict per record, read back key by
    key in C.)
    """
    keys, records = batch.keys, batch.records
    start = 0
    for index in sorted(reported):
        if start < index:
            _produce_run(produce, keys[start:index], records[start:index])
        (topic, partition), record = keys[index], records[index]
        produce(topic, record.value, record.key, partition, delivered)
        start = index + 1
    if start < len(records):
        _produce_run(produce, keys[start:], records[start:])


def _produce_columns(
    produce: Callable[..., None],
    batch: Batch,
    reported: frozenset[int],
    delivered: Callable[[KafkaError | None, Message], None],
) -> None:
    """Produce a ``TopicBatch`` from its columns; the records in ``reported`` ask for a
    report. No record object is made; a batch of one key and partition (a keyed batch)
    goes by a loop over its values alone."""
    records = batch.records
    assert isinstance(records, TopicBatch)
    topic = batch.keys[0][0]
    values, keys, partitions = records.values, records.keys, records.partitions
    one_key = keys.count(keys[0]) == len(keys) and partitions.count(partitions[0]) == len(keys)
    start = 0
    for index in (*sorted(reported), len(values)):
        if start < index:
            if one_key:
                key, partition = keys[0], partitions[0]
                for value in values[start:index]:
                    produce(topic, value, key, partition)
            else:
                for value, key, partition in zip(
                    values[start:index], keys[start:index], partitions[start:index], strict=True
                ):
                    produce(topic, value, key, partition)
        if index < len(values):
            produce(topic, values[index], keys[index], partitions[index], delivered)
        start = index + 1


def _produce_run(
    produce: Callable[..., None], keys: Sequence[_Key], records: Sequence[NewRecord]
) -> None:
    for (topic, partition), record in zip(keys, records, strict=True):
        produce(topic, record.value, record.key, partition)


class _ReportPlan:
    """Which records of a transaction ask for a delivery report, and what the reports say.

    Per partition, the first and the last record of the transaction ask for one, unless
    the partition's records exceed one record batch: then each record does. librdkafka
    reports a partition's records in the order they were produced.
    """

    def __init__(self, batches: list[Batch]) -> None:
        self._batches = batches
        held: dict[_Key, tuple[int, int]] = {}
        for batch in batches:
            for key, (count, size) in batch.shares().items():
                had_count, had_size = held.get(key, (0, 0))
                held[key] = (had_count + count, had_size + size)
        #: Partitions whose every record is reported (too many for one record batch).
        self._each = {
            key
            for key, (count, size) in held.items()
            if count > _SHARE_RECORDS or size > _SHARE_BYTES
        }
        self._counts = {key: count for key, (count, _) in held.items()}
        #: Per batch, the indexes of its records that ask for a report.
        self.reported: list[frozenset[int]] = []
        each = self._each
        first_seen: set[_Key] = set()
        last_at: dict[_Key, tuple[int, int]] = {}
        for number, batch in enumerate(batches):
            keys = batch.keys
            for key in batch.shares():
                last_at[key] = (number, len(keys) - 1 - keys[::-1].index(key))
        for number, batch in enumerate(batches):
            keys = batch.keys
            indexes: set[int] = set()
            for key in batch.shares():
                if key in each:
                    indexes.update(i for i, k in enumerate(keys) if k == key)
                    continue
                if key not in first_seen:
                    first_seen.add(key)
                    indexes.add(keys.index(key))
                where, index = last_at[key]
                if where == number:
                    indexes.add(index)
            self.reported.append(frozenset(indexes))

    def placements(self, reports: list[Message]) -> list[Outcome]:
        """Each batch's placement, from a committed transaction's delivery reports."""
        by_partition: dict[_Key, list[Placed]] = {}
        for message in reports:
            key = (message.topic() or "", message.partition() or 0)
            placed = by_partition.get(key)
            if placed is None:
                placed = by_partition[key] = []
            offset = message.offset()
            placed.append((-1 if offset is None else offset, message.timestamp()[1]))
        runs: dict[_Key, _Run] = {}
        unknown: set[_Key] = set()
        for key, count in self._counts.items():
            run = self._run(key, count, by_partition.get(key, []))
            if run is None:
                unknown.add(key)
            else:
                runs[key] = run
        #: Per partition, how many of its records the batches before took.
        taken = dict.fromkeys(runs, 0)
        outcomes: list[Outcome] = []
        for batch in self._batches:
            shares = batch.shares()
            if unknown.intersection(shares):
                outcomes.append(
                    StorageTimeout(
                        "Kafka committed the batch, but where its records landed is unknown"
                    )
                )
                continue
            mine: dict[_Key, _Run] = {}
            for key, (count, _) in shares.items():
                run, before = runs[key], taken[key]
                taken[key] = before + count
                if isinstance(run, list):
                    mine[key] = run[before : before + count]
                else:
                    first, _, head, rest = run
                    mine[key] = (first + before, count, rest if before else head, rest)
            outcomes.append(Placement(batch.keys, mine))
        return outcomes

    def _run(self, key: _Key, count: int, placed: list[Placed]) -> _Run | None:
        """The placements of ``key``'s records, or None if the reports cannot say."""
        if len(placed) == count:
            return placed  # one report per record (or a single record)
        if key in self._each or len(placed) != 2:
            return None  # cannot happen after a successful commit; never guess
        (first, first_time), (last, last_time) = placed
        if last - first + 1 != count:
            # Another writer's records landed between this transaction's: offsets unknown.
            logger.error(
                "records of one transaction in %s[%d] are not at consecutive offsets", *key
            )
            return None
        # One record batch: one log-append time. Should the broker have split it, the
        # records after the first are given the last one's (the latest they can have).
        return (first, count, first_time, last_time)
