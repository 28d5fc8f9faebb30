"""Writes that must be decided once, made by two nodes at the same moment on one Kafka
cluster: two ``sluicegate serve`` processes started together on an empty cluster make one
admin key; then, a hundred times, both register the same new schema (one id), create the
same topic through the topic admin API and through the topics v1 developer API (one
topic: one answer "created", the other the API's own 409 ``topic_exists``), and produce a
first CloudEvent of a new type on each (its topic created on demand by both, no error)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.helpers import eventually

ADMIN_KEY = "sg_race_admin_key_0123456789abcdef0123456789"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
SECRET = "race-test-cluster-secret-0123456789abcdef0123"
ROUNDS = 100
#: Seconds one round may take at most: a round that hangs fails instead of the whole run.
ROUND_TIMEOUT = 60.0
SCHEMA_REGISTRY = {"content-type": "application/vnd.schemaregistry.v1+json"}


def _env(kafka_bootstrap: str, prefix: str, node_id: str) -> dict[str, str]:
    return {
        "SLUICEGATE_ADMIN_KEY": ADMIN_KEY,
        "SLUICEGATE_STORAGE__BACKEND": "kafka",
        "SLUICEGATE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SLUICEGATE_KAFKA__TOPIC_PREFIX": prefix,
        "SLUICEGATE_CLUSTER__NODE_ID": node_id,
        "SLUICEGATE_CLUSTER__SECRET": SECRET,
    }


@pytest.fixture
def nodes(kafka_bootstrap: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Two nodes on a new topic prefix (an empty cluster to them), started together."""
    prefix = f"r{int(time.time() * 1000) % 10**9}."
    starts: list[AbstractContextManager[ServerProcess]] = [
        serve_in_subprocess(tmp_path / node_id, args=(), env=_env(kafka_bootstrap, prefix, node_id))
        for node_id in ("node-a", "node-b")
    ]
    with ExitStack() as stack, ThreadPoolExecutor(len(starts)) as pool:
        entered = [pool.submit(start.__enter__) for start in starts]
        for start, future in zip(starts, entered, strict=True):
            stack.push(start.__exit__)
            future.result()
        yield [future.result() for future in entered]


@pytest.fixture
async def http(nodes: list[ServerProcess]) -> AsyncIterator[list[httpx.AsyncClient]]:
    # Idle connections are dropped well before the server's keep-alive timeout (5 s):
    # at exactly that age a request can leave on a connection the server is closing.
    limits = httpx.Limits(keepalive_expiry=1.0)
    clients = [
        httpx.AsyncClient(base_url=node.url, headers=ADMIN, timeout=ROUND_TIMEOUT, limits=limits)
        for node in nodes
    ]
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()


async def _both(
    clients: list[httpx.AsyncClient], method: str, url: str, **kwargs: Any
) -> list[httpx.Response]:
    """The same request sent to every node at the same moment (after a barrier)."""
    barrier = asyncio.Barrier(len(clients))

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        request = client.build_request(method, url, **kwargs)
        await barrier.wait()
        return await client.send(request)

    return list(await asyncio.gather(*(send(client) for client in clients)))


async def _shows(client: httpx.AsyncClient, topic_id: int, expected: Any) -> bool:
    shown = await client.get(f"/api/event_streams/topics/{topic_id}")
    assert shown.status_code == 200, shown.text
    return bool(shown.json()["data"] == expected)


def _one_created(responses: list[httpx.Response], created: int, code_field: str) -> None:
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [created, 409], [r.text for r in responses]
    [taken] = [r for r in responses if r.status_code == 409]
    assert taken.json()[code_field] == "topic_exists"


async def test_nodes_started_together_make_one_admin_key(
    http: list[httpx.AsyncClient],
) -> None:
    for client in http:
        keys = await client.get("/admin/v1/clients/admin/keys")
        assert keys.status_code == 200, keys.text
        assert len(keys.json()) == 1


async def test_the_same_schema_and_topic_created_on_two_nodes_at_once(
    http: list[httpx.AsyncClient],
) -> None:
    for round_ in range(ROUNDS):
        async with asyncio.timeout(ROUND_TIMEOUT):
            await _race_round(http, round_)


async def _race_round(http: list[httpx.AsyncClient], round_: int) -> None:
    schema = json.dumps(
        {"type": "record", "name": f"Race{round_}", "fields": [{"name": "id", "type": "long"}]}
    )
    registered = await _both(
        http,
        "POST",
        f"/subjects/race-{round_}-value/versions",
        content=json.dumps({"schema": schema}),
        headers=SCHEMA_REGISTRY,
    )
    assert [r.status_code for r in registered] == [200, 200], [r.text for r in registered]
    assert len({r.json()["id"] for r in registered}) == 1

    admin_topic = f"race.admin.{round_}"
    _one_created(
        await _both(http, "POST", "/admin/v1/topics", json={"name": admin_topic, "partitions": 2}),
        201,
        "error",
    )
    described = [await client.get(f"/admin/v1/topics/{admin_topic}") for client in http]
    assert [r.status_code for r in described] == [200, 200]
    assert described[0].json()["id"] == described[1].json()["id"]

    developer = await _both(
        http,
        "POST",
        "/api/event_streams/topics",
        json={"name": f"race.developer.{round_}", "schema": [{"name": "id", "type": "integer"}]},
    )
    _one_created(developer, 200, "code")
    [created] = [r for r in developer if r.status_code == 200]
    topic_id = created.json()["data"]["id"]
    for client in http:
        # The other node learns of the schema set after creation as it follows the log.
        await eventually(
            lambda client=client: _shows(client, topic_id, created.json()["data"]),
            f"topic {topic_id} as created, on {client.base_url}",
            interval=0.1,
        )

    # A first event of a new type from each node: each creates the type's topic on
    # demand, and the one that finds it just created uses it as if it had made it.
    event_type = f"Race.Happened{round_}"
    barrier = asyncio.Barrier(len(http))

    async def produce(client: httpx.AsyncClient, node: int) -> httpx.Response:
        event = {
            "specversion": "1.0",
            "id": f"race-{round_}-{node}",
            "source": "urn:race",
            "type": event_type,
            "partitionkey": "race",
            "data": {"round": round_},
        }
        request = client.build_request(
            "POST",
            "/ce/produce/events",
            json=[event],
            headers={"content-type": "application/cloudevents-batch+json"},
        )
        await barrier.wait()
        return await client.send(request)

    produced = await asyncio.gather(*(produce(c, n) for n, c in enumerate(http)))
    assert [r.status_code for r in produced] == [202, 202], [r.text for r in produced]
