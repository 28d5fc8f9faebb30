"""The SQLite log against a model: a dict of lists that obviously does the right thing.

Hypothesis drives random sequences of topic changes, appends (valid, invalid, and several
at once so they share a group commit), reads, offset commits and restarts; after every
step the log must look exactly like the model.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from sluicegate.core.records import Appended, Header, NewRecord, TopicPartition, Watermarks
from sluicegate.core.topics import TopicSpec, TopicUpdate
from sluicegate.errors import (
    BadRequest,
    InvalidPartition,
    OffsetOutOfRange,
    TopicExists,
    UnknownTopic,
)
from sluicegate.storage.sqlite import SqliteLog
from sluicegate.storage.sqlite.recent import CHUNK_OVERHEAD, PARTITION_OVERHEAD
from tests.storage.conftest import ManualClock

T = TypeVar("T")

TOPICS = ["a", "b", "c"]
GROUPS = ["g1", "g2"]
MAX_PARTITIONS = 4

Stored = tuple[bytes | None, bytes | None, tuple[Header, ...]]


@dataclass
class ModelPartition:
    low: int = 0
    records: list[Stored] = field(default_factory=list)

    @property
    def high(self) -> int:
        return self.low + len(self.records)


@dataclass
class ModelTopic:
    id: int
    partitions: list[ModelPartition]


payloads = st.none() | st.binary(max_size=24)
headers = st.lists(st.tuples(st.text(max_size=3), st.binary(max_size=6)), max_size=3).map(tuple)
#: Anything at all: mostly records no topic can take.
wild_records = st.builds(
    NewRecord,
    topic=st.sampled_from([*TOPICS, "missing"]),
    partition=st.integers(-1, MAX_PARTITIONS),
    key=payloads,
    value=payloads,
    headers=headers,
)


def records_for(targets: list[TopicPartition]) -> st.SearchStrategy[NewRecord]:
    """Records to partitions that exist."""
    return st.builds(
        lambda tp, key, value, hdrs: NewRecord(tp.topic, tp.partition, key, value, hdrs),
        st.sampled_from(targets),
        payloads,
        payloads,
        headers,
    )


def expected_page(
    partition: ModelPartition, offset: int, max_records: int, max_bytes: int
) -> list[Stored]:
    """What a read from ``offset`` must return: the first record always, then what fits."""
    page: list[Stored] = []
    total = 0
    for key, value, hdrs in partition.records[offset - partition.low :][:max_records]:
        size = NewRecord("t", 0, key, value, hdrs).size()
        if page and total + size > max_bytes:
            break
        total += size
        page.append((key, value, hdrs))
    return page


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.data_dir = Path(tempfile.mkdtemp(prefix="sluicegate-model-"))
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        self.topics: dict[str, ModelTopic] = {}
        self.offsets: dict[tuple[str, str], dict[int, int]] = {}
        self.last_id = 0
        #: Whether anything was written since the last restart (else a restart proves nothing).
        self.dirty = False
        self._start()

    # -- harness ---------------------------------------------------------------------

    def do(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def _start(self) -> None:
        # A few hundred bytes of recent chunks (beyond what a chunk and its partition
        # cost to keep): reads start in memory, on disk, or at the edge between them,
        # and chunks are evicted as records are appended.
        self.log = SqliteLog(
            self.data_dir,
            clock=self.clock,
            retention_interval=3600.0,
            recent_bytes=400 + 2 * CHUNK_OVERHEAD + PARTITION_OVERHEAD,
        )
        ready: asyncio.Future[None] = self.loop.create_future()
        self.runner = self.loop.create_task(self.log.run(ready))
        self.do(asyncio.wait((ready, self.runner), return_when=asyncio.FIRST_COMPLETED))
        if self.runner.done():
            self.runner.result()

    def _stop(self) -> None:
        self.do(self.log.close())
        self.do(self.runner)

    def teardown(self) -> None:
        try:
            self._stop()
        finally:
            self.loop.close()
            shutil.rmtree(self.data_dir)

    def _targets(self) -> list[TopicPartition]:
        return [
            TopicPartition(name, p)
            for name, topic in self.topics.items()
            for p in range(len(topic.partitions))
        ]

    def _draw_batch(self, data: st.DataObject) -> list[NewRecord]:
        """Mostly valid batches; now and then one with a record that poisons it."""
        targets = self._targets()
        if not targets:
            return data.draw(st.lists(wild_records, max_size=3))
        batch = data.draw(st.lists(records_for(targets), min_size=1, max_size=6))
        if data.draw(st.sampled_from([False, False, False, True])):
            poison = data.draw(wild_records)
            batch.insert(data.draw(st.integers(0, len(batch))), poison)
        return batch

    def _draw_partition(self, data: st.DataObject) -> TopicPartition:
        """Mostly an existing partition (with records if any has some), now and then any."""
        targets = self._targets()
        filled = [tp for tp in targets if self._partition(tp).records]
        options = st.sampled_from(filled or targets) if targets else st.nothing()
        anything = st.builds(
            TopicPartition, st.sampled_from(TOPICS), st.integers(0, MAX_PARTITIONS - 1)
        )
        return data.draw(options | options | anything)

    def _draw_topic(self, data: st.DataObject) -> str:
        """Mostly an existing topic, now and then any name."""
        existing = st.sampled_from(sorted(self.topics)) if self.topics else st.nothing()
        return data.draw(existing | existing | st.sampled_from(TOPICS))

    def _partition(self, tp: TopicPartition) -> ModelPartition:
        return self.topics[tp.topic].partitions[tp.partition]

    def _valid(self, batch: list[NewRecord]) -> bool:
        return all(
            r.topic in self.topics and 0 <= r.partition < len(self.topics[r.topic].partitions)
            for r in batch
        )

    def _expect_append(self, batch: list[NewRecord], result: object) -> None:
        if not self._valid(batch):
            assert isinstance(result, UnknownTopic | InvalidPartition), result
            return
        assert isinstance(result, list), result
        for record, appended in zip(batch, result, strict=True):
            partition = self.topics[record.topic].partitions[record.partition]
            assert (appended.topic, appended.partition) == (record.topic, record.partition)
            assert appended.offset == partition.high
            partition.records.append((record.key, record.value, tuple(record.headers)))
            self.dirty = True

    # -- rules -----------------------------------------------------------------------

    @initialize(partitions=st.integers(1, 3))
    def first_topic(self, partitions: int) -> None:
        self.create_topic(TOPICS[0], partitions)

    @rule(name=st.sampled_from(TOPICS), partitions=st.integers(1, 3))
    def create_topic(self, name: str, partitions: int) -> None:
        if name in self.topics:
            with pytest.raises(TopicExists):
                self.do(self.log.create_topic(TopicSpec(name=name, partitions=partitions)))
            return
        topic = self.do(self.log.create_topic(TopicSpec(name=name, partitions=partitions)))
        assert topic.id > self.last_id
        self.last_id = topic.id
        self.topics[name] = ModelTopic(topic.id, [ModelPartition() for _ in range(partitions)])
        self.dirty = True

    @rule(data=st.data(), tick=st.sampled_from([0, 0, 1, -1]))
    def append(self, data: st.DataObject, tick: int) -> None:
        batch = self._draw_batch(data)
        self.clock.advance(tick)

        async def alone() -> list[Appended]:
            return await self.log.append(batch)  # called on the loop, as the contract says

        try:
            result: object = self.do(alone())
        except (UnknownTopic, InvalidPartition) as exc:
            result = exc
        self._expect_append(batch, result)

    @rule(data=st.data(), count=st.integers(2, 5))
    def append_concurrently(self, data: st.DataObject, count: int) -> None:
        many = [self._draw_batch(data) for _ in range(count)]

        async def together() -> list[Any]:
            return await asyncio.gather(
                *(self.log.append(batch) for batch in many), return_exceptions=True
            )

        # Each append is queued as it is called, so the model applies them in that order.
        for batch, result in zip(many, self.do(together()), strict=True):
            self._expect_append(batch, result)

    @rule(
        data=st.data(),
        delta=st.integers(-1, 4),
        max_records=st.integers(1, 5),
        max_bytes=st.integers(1, 80),
    )
    def read(self, data: st.DataObject, delta: int, max_records: int, max_bytes: int) -> None:
        tp = self._draw_partition(data)
        name, partition = tp.topic, tp.partition
        topic = self.topics.get(name)
        if topic is None or partition >= len(topic.partitions):
            with pytest.raises(UnknownTopic if topic is None else InvalidPartition):
                self.do(self.log.read(tp, 0, max_records=max_records, max_bytes=max_bytes))
            return
        model = topic.partitions[partition]
        offset = model.low + delta
        if not model.low <= offset <= model.high:
            with pytest.raises(OffsetOutOfRange):
                self.do(self.log.read(tp, offset, max_records=max_records, max_bytes=max_bytes))
            return
        got = self.do(self.log.read(tp, offset, max_records=max_records, max_bytes=max_bytes))
        expected = expected_page(model, offset, max_records, max_bytes)
        assert [(r.key, r.value, tuple(r.headers)) for r in got] == expected
        assert [r.offset for r in got] == list(range(offset, offset + len(got)))

    @rule(data=st.data())
    def purge(self, data: st.DataObject) -> None:
        name = self._draw_topic(data)
        topic = self.topics.get(name)
        if topic is None:
            with pytest.raises(UnknownTopic):
                self.do(self.log.purge_topic(name))
            return
        self.do(self.log.purge_topic(name))
        for partition in topic.partitions:
            partition.low = partition.high
            partition.records.clear()
        self.dirty = True

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        name = self._draw_topic(data)
        if name not in self.topics:
            with pytest.raises(UnknownTopic):
                self.do(self.log.delete_topic(name))
            return
        self.do(self.log.delete_topic(name))
        del self.topics[name]
        for group in GROUPS:
            self.offsets.pop((group, name), None)
        self.dirty = True

    @rule(data=st.data(), partitions=st.integers(1, MAX_PARTITIONS))
    def alter_partitions(self, data: st.DataObject, partitions: int) -> None:
        name = self._draw_topic(data)
        topic = self.topics.get(name)
        update = TopicUpdate(partitions=partitions)
        if topic is None:
            with pytest.raises(UnknownTopic):
                self.do(self.log.alter_topic(name, update))
        elif partitions < len(topic.partitions):
            with pytest.raises(BadRequest):
                self.do(self.log.alter_topic(name, update))
        else:
            self.do(self.log.alter_topic(name, update))
            topic.partitions += [
                ModelPartition() for _ in range(partitions - len(topic.partitions))
            ]
            self.dirty = True

    @rule(data=st.data(), group=st.sampled_from(GROUPS), offset=st.integers(0, 50))
    def commit_offset(self, data: st.DataObject, group: str, offset: int) -> None:
        tp = self._draw_partition(data)
        name, partition = tp.topic, tp.partition
        commit = self.log.commit_offsets(group, {tp: offset})
        topic = self.topics.get(name)
        if topic is None or partition >= len(topic.partitions):
            with pytest.raises(UnknownTopic if topic is None else InvalidPartition):
                self.do(commit)
            return
        self.do(commit)
        self.offsets.setdefault((group, name), {})[partition] = offset
        self.dirty = True

    @precondition(lambda self: self.dirty)
    @rule()
    def restart(self) -> None:
        self._stop()
        self._start()
        self.dirty = False

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def log_matches_model(self) -> None:
        listed = self.do(self.log.list_topics())
        assert [t.name for t in listed] == sorted(self.topics)
        for topic in listed:
            model = self.topics[topic.name]
            assert (topic.id, topic.partitions) == (model.id, len(model.partitions))
            for index, partition in enumerate(model.partitions):
                tp = TopicPartition(topic.name, index)
                marks = self.do(self.log.watermarks(tp))
                assert marks == Watermarks(low=partition.low, high=partition.high)
                # Page through with small bounds, so every step checks them on all data.
                offset, stamps = partition.low, []
                while offset < partition.high:
                    got = self.do(self.log.read(tp, offset, max_records=4, max_bytes=16))
                    stored = [(r.key, r.value, tuple(r.headers)) for r in got]
                    assert stored == expected_page(partition, offset, 4, 16)
                    assert [r.offset for r in got] == list(range(offset, offset + len(got)))
                    stamps += [r.timestamp for r in got]
                    offset += len(got)
                assert stamps == sorted(stamps)
            for group in GROUPS:
                committed = self.do(self.log.committed_offsets(group, topic.name))
                assert committed == self.offsets.get((group, topic.name), {})


# Shrinking a failure replays many examples, each with fsyncs and restarts: give it room
# so that a failure is reported as the minimal example, not as a timeout.
@pytest.mark.timeout(900)
def test_log_behaves_like_the_model() -> None:
    run_state_machine_as_test(
        LogMachine,
        settings=settings(max_examples=30, stateful_step_count=30, deadline=None),
    )
