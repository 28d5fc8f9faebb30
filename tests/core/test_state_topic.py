"""``StateTopic.claim``: writes decided once when several nodes make them at once.

Two ``StateTopic`` objects on one log are two nodes' views of one internal topic (the
records and their replay are the same through the ``Log`` contract on either backend).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from sluicegate.core.records import NewRecord, TopicPartition
from sluicegate.core.state_topic import StateTopic
from sluicegate.storage.base import Log, running
from sluicegate.storage.sqlite import SqliteLog


class Owner(msgspec.Struct, frozen=True):
    node: str


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[Log]:
    async with running(SqliteLog(tmp_path)) as log:
        yield log


async def _loaded(log: Log) -> StateTopic[Owner]:
    topic = StateTopic(log, "claims_test", Owner)
    await topic.load()
    return topic


async def _keys(log: Log, topic: StateTopic[Owner]) -> list[tuple[bytes | None, bool]]:
    """Every record of the topic: its key and whether it is a tombstone."""
    tp = TopicPartition(topic.topic, 0)
    records = await log.read(tp, 0, max_records=1000, max_bytes=1 << 20)
    return [(r.key, r.value is None) for r in records]


async def test_two_nodes_claiming_one_key_learn_the_same_winner(log: Log) -> None:
    a, b = await _loaded(log), await _loaded(log)
    for round_ in range(20):
        key = f"k{round_}"
        (held_a, won_a), (held_b, won_b) = await asyncio.gather(
            a.claim(key, Owner("a")), b.claim(key, Owner("b"))
        )
        assert held_a == held_b
        assert [won_a, won_b].count(True) == 1
        assert held_a == (Owner("a") if won_a else Owner("b"))
        await b.catch_up()
        assert a.get(key) == b.get(key) == held_a


async def test_a_claim_of_a_key_that_is_set_returns_it_and_writes_nothing(log: Log) -> None:
    a = await _loaded(log)
    await a.put("k", Owner("first"))
    before = await _keys(log, a)
    assert await a.claim("k", Owner("second")) == (Owner("first"), False)
    assert await _keys(log, a) == before


async def test_a_decided_claim_leaves_the_plain_record_and_tombstones_for_its_claims(
    log: Log,
) -> None:
    a, b = await _loaded(log), await _loaded(log)
    await asyncio.gather(a.claim("k", Owner("a")), b.claim("k", Owner("b")))
    records = await _keys(log, a)
    plain = [tombstone for key, tombstone in records if key == b"k"]
    assert plain == [False]  # one lasting record, under the plain key
    claims: dict[bytes, list[bool]] = {}
    for key, tombstone in records:
        if key is not None and key != b"k":
            claims.setdefault(key, []).append(tombstone)
    # Each claim record is followed by its tombstone: compaction removes both.
    assert claims  # one claim each, or one if the second node saw the first decided
    assert all(states == [False, True] for states in claims.values())
    replayed = await _loaded(log)
    assert replayed.get("k") == a.get("k")


async def test_a_winning_claim_whose_writer_died_holds_on_replay_until_deleted(
    log: Log,
) -> None:
    a = await _loaded(log)
    # What a node leaves if it dies right after its claim was written: the claim only.
    claim_key = b"\x00claim\x00dead\x00k"
    late_key = b"\x00claim\x00late\x00k"
    encode = msgspec.json.encode
    await log.append(
        [
            NewRecord(topic=a.topic, partition=0, key=claim_key, value=encode(Owner("dead"))),
            NewRecord(topic=a.topic, partition=0, key=late_key, value=encode(Owner("late"))),
        ]
    )
    replayed = await _loaded(log)
    assert replayed.get("k") == Owner("dead")  # first claim wins, on every replay
    await replayed.delete("k")
    records = await _keys(log, a)
    assert (claim_key, True) in records
    assert (late_key, True) in records  # or, compacted, the late claim would win
    assert (await _loaded(log)).get("k") is None


async def test_a_key_deleted_can_be_claimed_again(log: Log) -> None:
    a = await _loaded(log)
    assert await a.claim("k", Owner("one")) == (Owner("one"), True)
    await a.delete("k")
    assert await a.claim("k", Owner("two")) == (Owner("two"), True)
    assert (await _loaded(log)).get("k") == Owner("two")


#: Records no gateway writes, which any Kafka producer with the right may: a key that is
#: no UTF-8, a value that is no JSON, JSON of another shape, and a claim holding either.
_UNREADABLE = [
    (b"\xff\xfe", b'{"node": "x"}'),
    (b"k", b"{not json"),
    (b"k", b'{"unexpected": 1}'),
    (b"k", b"[]"),
    (b"\x00claim\x00token\x00k", b"{"),
]


async def test_records_it_cannot_read_are_skipped_on_replay_and_when_followed(
    log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    writer = await _loaded(log)
    await writer.put("before", Owner("a"))
    garbage = [NewRecord(writer.topic, 0, key, value) for key, value in _UNREADABLE]
    await log.append(garbage)
    await writer.put("after", Owner("b"))
    # A node starting now replays them all; one running, that follows the topic, too.
    starting = await _loaded(log)
    await writer.catch_up()
    for node in (starting, writer):
        assert dict(node.items()) == {"before": Owner("a"), "after": Owner("b")}
    skipped = [r for r in caplog.records if "the gateway cannot read it" in r.getMessage()]
    assert len(skipped) == 2 * len(_UNREADABLE)
    assert all(r.levelname == "ERROR" for r in skipped)
    # Counted on the log, which /metrics reads.
    assert log.stats()["unreadable_records_skipped_total"] == 2 * len(_UNREADABLE)
    # A claim decided after them is decided as before.
    assert await starting.claim("k", Owner("c")) == (Owner("c"), True)


async def test_a_topic_deleted_and_made_again_while_a_node_did_not_look_is_read_anew(
    log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    changed: list[tuple[str, Owner | None]] = []
    node = StateTopic(log, "claims_test", Owner, on_change=lambda k, v: changed.append((k, v)))
    await node.load()
    for key in ("a", "b", "c"):
        await node.put(key, Owner("old"))
    # Deleted (on Kafka: outside the gateway) and made again by another node, which writes
    # to it, all between two reads of this node: it sees only a topic further behind.
    await log.delete_topic(node.topic)
    other = await _loaded(log)
    await other.put("new", Owner("other"))
    changed.clear()
    await node.catch_up()
    assert dict(node.items()) == {"new": Owner("other")}
    assert changed == [("a", None), ("b", None), ("c", None), ("new", Owner("other"))]
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"the gateway's internal topic {node.topic} was deleted outside the gateway: what it "
        "held is lost (entries this node knew: 3); the gateway made it again, empty"
    ]
    # Its own writes to the new topic are read back, as any other's.
    await node.put("mine", Owner("node"))
    await other.catch_up()
    assert (
        dict(other.items())
        == dict(node.items())
        == {
            "new": Owner("other"),
            "mine": Owner("node"),
        }
    )
