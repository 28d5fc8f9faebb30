"""The start's word on how the cluster keeps what the gateway acknowledges."""

from __future__ import annotations

import logging

import pytest

from sluicegate.config import KafkaSettings
from sluicegate.storage.kafka.durability import Replication, durability_warning
from tests.storage.kafka.conftest import OpenLog


@pytest.mark.parametrize(
    "replication",
    [
        Replication(brokers=1, replicas=1, min_insync=1),  # all a single broker can do
        Replication(brokers=2, replicas=2, min_insync=1),
        Replication(brokers=5, replicas=3, min_insync=2),  # the usual production setting
        Replication(brokers=3, replicas=3, min_insync=3),
    ],
)
def test_nothing_is_said_of_a_cluster_that_keeps_records_as_it_can(
    replication: Replication,
) -> None:
    assert durability_warning(replication) is None


def test_one_replica_on_a_cluster_of_several_is_said() -> None:
    said = durability_warning(Replication(brokers=6, replicas=1, min_insync=1))
    assert said is not None
    assert "1 replica(s) on a cluster of 6 brokers" in said
    assert "set kafka.replication_factor to 3" in said
    two = durability_warning(Replication(brokers=2, replicas=1, min_insync=1))
    assert two is not None
    assert "set kafka.replication_factor to 2" in two


def test_three_replicas_with_one_in_sync_enough_is_said() -> None:
    said = durability_warning(Replication(brokers=3, replicas=3, min_insync=1))
    assert said is not None
    assert "set min.insync.replicas to 2" in said


async def test_a_node_asks_its_cluster_and_says_nothing_of_one_broker(
    kafka_settings: KafkaSettings, open_kafka_log: OpenLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sluicegate.storage.kafka.node")
    async with open_kafka_log(kafka_settings) as log:
        asked = await log._node.admin.replication()
    assert asked == Replication(brokers=1, replicas=1, min_insync=1)
    said = [r.getMessage() for r in caplog.records if r.name == "sluicegate.storage.kafka.node"]
    assert not [m for m in said if "replica" in m], said
