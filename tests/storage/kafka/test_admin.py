"""The admin's group-offsets client: replaced when a request of it fails unavailable.

librdkafka caches a group's coordinator, and a request whose cached coordinator is dead
waits for it; the failover tests show the gateway confirming on through a coordinator
killed. Here, the mechanism itself, on a real client with no broker to answer it.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from sluicegate.config import KafkaSettings
from sluicegate.errors import StorageUnavailable
from sluicegate.storage.kafka.admin import KafkaAdmin
from sluicegate.storage.kafka.clients import admin_config
from tests.storage.kafka.conftest import free_port


async def test_a_group_offsets_client_that_failed_is_replaced_and_dropped_later() -> None:
    settings = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")  # nobody there
    admin = KafkaAdmin(
        admin_config(settings, "replaced"),
        timeout=0.5,
        replication_factor=-1,
        topic="registry",
        on_error=lambda error: None,
    )
    first = admin._coordinated
    with pytest.raises(StorageUnavailable, match=r"did not answer within 0\.5s"):
        await admin.commit("group", {("topic", 0): 1})
    second = admin._coordinated
    assert second is not first
    with pytest.raises(StorageUnavailable):
        await admin.committed("group", "topic", 1)
    assert admin._coordinated is not second
    # Each kept until its requests have timed out in librdkafka too, then dropped.
    assert admin._replaced == [first, second]
    admin.poll()  # the replaced ones are polled as well
    deadline = time.monotonic() + 10
    while admin._replaced:
        assert time.monotonic() < deadline, admin._replaced
        await asyncio.sleep(0.1)
