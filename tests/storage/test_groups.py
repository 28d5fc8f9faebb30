"""The group coordinator's session deadlines: one heap entry per member, whatever the
number of heartbeats, and expiry still on time; its assignments' partitions and its
members' topic sets are shared between groups, not made for each."""

from __future__ import annotations

from sluicegate.core.records import TopicPartition
from sluicegate.core.topic_sets import shared_topics
from sluicegate.storage.groups import GroupCoordinator


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_heartbeats_do_not_grow_the_deadline_heap() -> None:
    clock = Clock()
    groups = GroupCoordinator(lambda topic: 4, clock)
    for n in range(100):
        groups.join(f"g{n}", "m", ["t"], session_timeout=60.0)
    for _ in range(50):
        clock.now += 1.0
        for n in range(100):
            groups.heartbeat(f"g{n}", "m")
        groups.expire_due()
    # One entry per member (50 heartbeats each would have left 5,100 before).
    assert len(groups._deadlines) == 100


def test_a_member_that_heartbeats_outlives_its_first_deadline_and_then_expires() -> None:
    clock = Clock()
    groups = GroupCoordinator(lambda topic: 2, clock)
    groups.join("g", "live", ["t"], session_timeout=10.0)
    groups.join("g", "quiet", ["t"], session_timeout=10.0)
    for _ in range(5):  # 20 s: twice the session
        clock.now += 4.0
        groups.heartbeat("g", "live")
        groups.expire_due()
    assert len(groups.heartbeat("g", "live").partitions) == 2  # "quiet" expired
    assert len(groups._deadlines) == 1
    clock.now += 10.0
    groups.expire_due()
    assert "g" not in groups._groups
    assert groups._deadlines == []


def test_rejoining_with_a_shorter_session_expires_at_the_shorter_deadline() -> None:
    clock = Clock()
    groups = GroupCoordinator(lambda topic: 1, clock)
    groups.join("g", "m", ["t"], session_timeout=100.0)
    groups.join("g", "m", ["t"], session_timeout=5.0)
    clock.now += 6.0
    groups.expire_due()
    assert "g" not in groups._groups
    # The entry of the longer session is dropped when it comes due, not pushed again.
    clock.now += 100.0
    groups.expire_due()
    assert groups._deadlines == []


def test_groups_share_each_topics_partitions_and_subscription() -> None:
    counts = {"t": 3}
    groups = GroupCoordinator(lambda topic: counts.get(topic, 0), Clock())
    first = groups.join("g1", "m", ["t"], session_timeout=60.0).partitions
    second = groups.join("g2", "m", ["t"], session_timeout=60.0).partitions
    assert (
        first == second == (TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2))
    )
    assert all(a is b for a, b in zip(first, second, strict=True))
    assert groups._groups["g1"].members["m"].topics is groups._groups["g2"].members["m"].topics
    # A topic that grows is dealt its new partitions too, and one deleted, none.
    counts["t"] = 4
    groups.topics_changed(["t"])
    assert groups.heartbeat("g1", "m").partitions[-1] == TopicPartition("t", 3)
    del counts["t"]
    groups.topics_changed(["t"])
    assert groups.heartbeat("g2", "m").partitions == ()


def test_a_topic_set_is_shared_while_it_is_used() -> None:
    first = shared_topics(["a", "b"])
    assert shared_topics(frozenset({"b", "a"})) is first
    assert shared_topics({"a"}) is not first
