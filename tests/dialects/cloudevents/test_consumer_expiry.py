"""A long-polling consumer instance that goes idle, on both backends, through the HTTP API
with the gateway's own reaper running: it expires after ``consumer_idle_timeout``, its URL
answers 404 from then on, and the next instance of its group gets the events it read
without confirming — and only those."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sluicegate.config import Settings
from sluicegate.core.gateway import Gateway
from tests.conftest import make_settings
from tests.dialects.cloudevents.test_consumers import create, event, poll, produce
from tests.dialects.cloudevents.test_produce import error

#: Seconds without a request before an instance expires (a long poll must be shorter).
IDLE_TIMEOUT = 1.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        cloudevents={
            "consumer_idle_timeout": IDLE_TIMEOUT,
            "poll_timeout": 0.2,
            "max_poll_timeout": 0.5,
        },
    )


@pytest.fixture
async def housekeeping(gateway: Gateway) -> AsyncIterator[None]:
    """The gateway's housekeeping, as a server runs it beside HTTP: the reaper of idle
    consumer instances is in it."""
    task = asyncio.create_task(gateway.run())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def expired(gateway: Gateway) -> None:
    """Return once this node has no consumer instance left (the reaper closed them).

    Watched on the registry, not on the instance's URL: a request would keep it alive.
    """
    async with asyncio.timeout(IDLE_TIMEOUT * 10):
        while len(gateway.consumers):  # noqa: ASYNC110 (a gauge, nothing to await)
            await asyncio.sleep(0.02)


async def assert_gone(client: httpx.AsyncClient, instance: str, auth: dict[str, str]) -> None:
    """Every route of ``instance`` answers 404 saying it may have expired."""
    for response in [
        await poll(client, instance, auth),
        await poll(client, instance, auth, "event"),
        await poll(client, instance, auth, "raw"),
        await client.post(f"{instance}/confirm", headers=auth),
        await client.post(f"{instance}/confirm", params={"offset": "1"}, headers=auth),
        await client.delete(instance, headers=auth),
    ]:
        body = error(response, 404)
        assert body["error"] == "unknown_consumer_instance"
        assert f"it expired after {IDLE_TIMEOUT:g} s without requests" in body["message"]


async def read_all(client: httpx.AsyncClient, instance: str, auth: dict[str, str]) -> list[str]:
    """The ids of every event ``instance`` reads until none is left, in delivery order
    (their offsets are 1, 2, 3...)."""
    events: list[dict[str, str]] = []
    while (response := await poll(client, instance, auth)).status_code == 200:
        events += response.json()
    assert [e["offset"] for e in events] == [str(n) for n in range(1, len(events) + 1)]
    return [e["id"] for e in events]


@pytest.mark.usefixtures("housekeeping")
async def test_an_expired_instance_is_404_and_its_unconfirmed_events_come_back(
    client: httpx.AsyncClient,
    gateway: Gateway,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    # One partition key: one partition, read in order, so offsets 1..5 are e-0..e-4.
    await produce(client, producer, *(event(f"e-{n}", partitionkey="k") for n in range(5)))
    instance = await create(client, consumer)
    read = (await poll(client, instance, consumer)).json()
    assert [(e["id"], e["offset"]) for e in read] == [(f"e-{n}", str(n + 1)) for n in range(5)]
    confirmed = await client.post(f"{instance}/confirm", params={"offset": "2"}, headers=consumer)
    assert confirmed.status_code == 204, confirmed.text
    # No more requests: the instance expires.
    await expired(gateway)
    await assert_gone(client, instance, consumer)
    successor = await create(client, consumer)
    assert successor != instance
    again = (await poll(client, successor, consumer)).json()
    # Only what was not confirmed, numbered afresh for the new instance.
    assert [(e["id"], e["offset"]) for e in again] == [("e-2", "1"), ("e-3", "2"), ("e-4", "3")]
    assert (await poll(client, successor, consumer)).status_code == 204
    # The old URL stays gone while its group lives on.
    error(await poll(client, instance, consumer), 404)


@pytest.mark.usefixtures("housekeeping")
async def test_every_unconfirmed_event_of_every_partition_comes_back_once(
    client: httpx.AsyncClient,
    gateway: Gateway,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    keys = [f"customer-{k}" for k in range(6)]  # several partitions
    ids = [f"{key}/{r}" for key in keys for r in range(2)]
    await produce(client, producer, *(event(i, partitionkey=i.split("/")[0]) for i in ids))
    instance = await create(client, consumer)
    first = await read_all(client, instance, consumer)
    assert sorted(first) == sorted(ids)
    # Confirm the first four deliveries, whichever partitions they came from.
    confirmed = await client.post(f"{instance}/confirm", params={"offset": "4"}, headers=consumer)
    assert confirmed.status_code == 204, confirmed.text
    await expired(gateway)
    await assert_gone(client, instance, consumer)
    successor = await create(client, consumer)
    again = await read_all(client, successor, consumer)
    assert sorted(again) == sorted(first[4:])
    # Order per partition key holds on redelivery too.
    for key in keys:
        rounds = [int(i.rsplit("/", 1)[1]) for i in again if i.startswith(f"{key}/")]
        assert rounds == sorted(rounds)


@pytest.mark.usefixtures("housekeeping")
async def test_an_instance_in_use_does_not_expire(
    client: httpx.AsyncClient,
    gateway: Gateway,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    await produce(client, producer, event("e-0", partitionkey="k"))
    instance = await create(client, consumer)
    assert [e["id"] for e in (await poll(client, instance, consumer)).json()] == ["e-0"]
    # Requests more often than the idle timeout, for three times as long: still live.
    loop = asyncio.get_running_loop()
    until = loop.time() + IDLE_TIMEOUT * 3
    while loop.time() < until:
        await asyncio.sleep(IDLE_TIMEOUT / 4)
        assert (await poll(client, instance, consumer)).status_code == 204
    assert len(gateway.consumers) == 1
    # Then idle: it expires, and the unconfirmed e-0 comes back to the next one.
    await expired(gateway)
    error(await poll(client, instance, consumer), 404)
    successor = await create(client, consumer)
    assert [e["id"] for e in (await poll(client, successor, consumer)).json()] == ["e-0"]
