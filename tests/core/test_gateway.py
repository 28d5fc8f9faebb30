"""``Gateway.start``: the state kept in the log, read again after a storage outage cuts
the reading short, each record applied once (on both backends)."""

from __future__ import annotations

import logging
from typing import Any, cast

import httpx
import msgspec
import pytest

from sluicegate.core import state_topic
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import Record, TopicPartition
from sluicegate.core.topics import INTERNAL_PREFIX
from sluicegate.errors import StorageUnavailable
from sluicegate.storage import outages
from sluicegate.storage.base import Log
from tests.conftest import BACKENDS

AVRO = '{"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}'


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class ReadsCutOnce:
    """``log``, but each read of the gateway's state as it stood fails once, as if the
    cluster went away in the middle of the replay. (What the start itself writes, a
    heartbeat, is read as it is: cut too, each attempt would write and cut anew.)"""

    def __init__(self, log: Log) -> None:
        self._log = log
        self._cut: set[tuple[TopicPartition, int]] = set()
        #: Each partition's end when first read: the state to replay.
        self._ends: dict[TopicPartition, int] = {}

    @property
    def cuts(self) -> int:
        return len(self._cut)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    async def read(self, tp: TopicPartition, offset: int, **limits: Any) -> list[Record]:
        if tp.topic.startswith(INTERNAL_PREFIX):
            if tp not in self._ends:
                self._ends[tp] = (await self._log.watermarks(tp)).high
            if offset < self._ends[tp] and (tp, offset) not in self._cut:
                self._cut.add((tp, offset))
                raise StorageUnavailable("every Kafka broker is unreachable")
        return await self._log.read(tp, offset, **limits)


async def _write_state(gateway: Gateway, client: httpx.AsyncClient) -> None:
    """Clients and keys, schemas, CloudEvents types and identities, in several records
    each."""
    for n in range(5):
        await gateway.clients.create_client(f"client-{n}", Permissions(produce=["*"]))
        await gateway.clients.create_key(f"client-{n}")
        await gateway.schemas.register(f"subject-{n}", AVRO.replace('"R"', f'"R{n}"'), "AVRO")
    for n in range(12):
        produced = await client.post(
            "/ce/produce/event",
            json={
                "specversion": "1.0",
                "id": f"event-{n}",
                "source": "/restart",
                "type": f"com.example.restart.{n % 3}",
                "data": {"n": n},
            },
            headers={"content-type": "application/cloudevents+json"},
        )
        assert produced.status_code == 202, produced.text


def _state(gateway: Gateway) -> dict[str, object]:
    """What the gateway knows, and how many changes it applied to know it."""
    return {
        "clients": sorted(c.name for c in gateway.clients.clients()),
        "keys": sorted(len(gateway.clients.keys(c.name)) for c in gateway.clients.clients()),
        "subjects": gateway.schemas.subjects(),
        "schema_changes": gateway.schemas.changes,
        "types": len(gateway.type_registry),
        "type_changes": gateway.type_registry.version,
        "remembered_ids": gateway.event_ids.stats()["remembered_ids"],
        "nodes": [node.node_id for node in gateway.cluster.nodes()],
    }


async def test_a_replay_cut_short_by_an_outage_is_taken_up_where_it_stopped(
    backend: str,
    gateway: Gateway,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _write_state(gateway, client)
    # On Kafka, nodes announce themselves: the first one's heartbeat is state to read too.
    gateway.cluster.advertise("http://127.0.0.1:9")
    await gateway.cluster.start()
    # Several reads per state topic, so that each replay is cut in its middle.
    monkeypatch.setattr(state_topic, "_READ_BATCH", 2)
    monkeypatch.setattr(outages, "RETRY_DELAYS", (0.01, 0.02))
    cut = ReadsCutOnce(gateway.log)
    # A second node on the same log, started while reads keep failing once each.
    settings = gateway.settings
    second = msgspec.structs.replace(
        settings, cluster=msgspec.structs.replace(settings.cluster, node_id="second")
    )
    restarted = Gateway(second, cast(Log, cut))
    restarted.cluster.advertise("http://127.0.0.1:10")
    with caplog.at_level(logging.WARNING, logger="sluicegate.storage.outages"):
        await restarted.start()
    assert cut.cuts > 10
    assert caplog.text.count("reading the gateway's state failed") == cut.cuts
    assert "every Kafka broker is unreachable" in caplog.text
    # The same node started again without failures: the same state, as many changes.
    fresh = Gateway(second, gateway.log)
    fresh.cluster.advertise("http://127.0.0.1:10")
    await fresh.start()
    assert _state(restarted) == _state(fresh)
    assert _state(restarted)["remembered_ids"] == 12
    assert _state(restarted)["types"] == 3
    if backend == "kafka":
        assert _state(restarted)["nodes"] == ["second", gateway.settings.cluster.node_id]
