"""Automatic dead-lettering after ``max_deliveries`` on both backends: a consumer that
fails on one event and comes back again and again, over long polls and over the
WebSocket; the group's setting, the client's default, and what /metrics and the admin
API then say."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from sluicegate.config import Settings
from sluicegate.core.auth.patterns import PatternSet
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.cloudevents.binding import from_record
from sluicegate.core.cloudevents.consumers import storage_group
from sluicegate.core.cloudevents.streams import dead_topic
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import TopicPartition
from sluicegate.core.topics import TopicSpec
from sluicegate.dialects.cloudevents.websocket import SUBPROTOCOL
from tests.conftest import commit_markers, make_settings
from tests.dialects.cloudevents.conftest import PRODUCER, key_for, stored
from tests.dialects.cloudevents.test_consumers import create, event, poll, produce
from tests.dialects.cloudevents.ws_support import GatewayServer

POISON = "e2"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path, cloudevents={"max_event_bytes": 4096, "batch_size": 10, "poll_timeout": 0.2}
    )


@pytest.fixture
async def producer(gateway: Gateway) -> dict[str, str]:
    return await key_for(gateway, "shop", PRODUCER)


@pytest.fixture
async def admin(gateway: Gateway) -> dict[str, str]:
    return await key_for(gateway, "ops", Permissions(admin=["*"]))


async def dead_events(gateway: Gateway) -> list[Any]:
    return [from_record(record) for record in await stored(gateway, dead_topic("billing"))]


async def committed_all(gateway: Gateway, group: str) -> bool:
    """Whether the group committed past the last event of every partition of the
    Order.* topics (on Kafka a commit marker may follow it, uncommitted)."""
    for name in gateway.type_registry.topics_matching(PatternSet(["Order.*"])):
        positions = await gateway.log.committed_offsets(storage_group("billing", group), name)
        for partition in range((await gateway.log.get_topic(name)).partitions):
            tp = TopicPartition(name, partition)
            records = await gateway.log.read(tp, 0, max_records=10_000, max_bytes=1 << 26)
            if records and positions.get(partition, 0) <= records[-1].offset:
                return False
    return True


async def fail_on_poison_long_poll(
    client: httpx.AsyncClient, consumer: dict[str, str], query: dict[str, str]
) -> tuple[list[str], bool]:
    """One run of a consumer that confirms each event it handles and gives up (deletes its
    instance) at the poison event; the ids it handled, and whether it met the poison."""
    instance = await create(client, consumer, **query)
    handled: list[str] = []
    try:
        while True:
            response = await poll(client, instance, consumer)
            if response.status_code == 204:
                return handled, False
            for got in response.json():
                if got["id"] == POISON:
                    return handled, True
                handled.append(got["id"])
                confirmed = await client.post(
                    f"{instance}/confirm", params={"offset": got["offset"]}, headers=consumer
                )
                assert confirmed.status_code == 204, confirmed.text
    finally:
        await client.delete(instance, headers=consumer)


async def test_long_polls_dead_letter_the_poison_event_once_after_max_deliveries(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    await produce(client, producer, *[event(f"e{i}", partitionkey="k") for i in range(5)])
    handled: list[str] = []
    met = 0
    for _ in range(6):
        ids, poisoned = await fail_on_poison_long_poll(
            client, consumer, {"group": "g", "max_deliveries": "3"}
        )
        handled += ids
        met += poisoned
    assert met == 3  # delivered three times, then never again
    assert handled == ["e0", "e1", "e3", "e4"]
    (dead,) = await dead_events(gateway)
    assert (dead.id, dead.source, dead.type) == (POISON, "urn:shop", "Order.Created")
    assert dead.extensions["deadreason"] == "maxdeliveries"
    assert dead.extensions["deliverycount"] == "3"
    assert dead.extensions["deadgroup"] == "g"
    assert "deliverycount" in dead.literal
    assert json.loads(dead.data or b"") == {"n": POISON}
    assert await committed_all(gateway, "g")


async def test_the_dead_event_reaches_a_consumer_of_the_dead_stream_with_its_reason(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    await produce(client, producer, event(POISON))
    for _ in range(3):
        await fail_on_poison_long_poll(client, consumer, {"group": "g", "max_deliveries": "2"})
    instance = await create(client, consumer, group="reader", events="false", dead="true")
    (got,) = (await poll(client, instance, consumer)).json()
    assert got["id"] == POISON
    assert (got["deadreason"], got["deliverycount"], got["deadgroup"]) == ("maxdeliveries", 2, "g")


@pytest.mark.parametrize(
    ("extensions", "omitted"),
    [
        # The data alone puts it over: it goes without its data.
        ({"region": "eu"}, "data"),
        # Its extensions too: it goes with its id, source, type and why it is dead.
        ({f"x{i}": "v" * 150 for i in range(10)}, "data extensions"),
    ],
)
async def test_an_event_too_large_for_the_dead_stream_goes_without_what_does_not_fit(
    client: httpx.AsyncClient,
    gateway: Gateway,
    producer: dict[str, str],
    consumer: dict[str, str],
    extensions: dict[str, str],
    omitted: str,
) -> None:
    # Another Kafka client may write an event close to its topic's limit; here the dead
    # stream's limit is made small instead. Refused there for good, the event used to
    # answer every later poll of the group with a 413, and the group never passed it.
    await gateway.log.create_topic(
        TopicSpec(name=dead_topic("billing"), partitions=1, config={"max.message.bytes": "1200"})
    )
    poison = event(POISON, partitionkey="k", **extensions) | {"data": {"n": "x" * 1500}}
    await produce(client, producer, poison, event("e3", partitionkey="k"))
    handled: list[str] = []
    for _ in range(4):
        ids, _ = await fail_on_poison_long_poll(
            client, consumer, {"group": "g", "max_deliveries": "2"}
        )
        handled += ids
    assert handled == ["e3"]
    (dead,) = await dead_events(gateway)
    assert (dead.id, dead.source, dead.type, dead.data) == (
        POISON,
        "urn:shop",
        "Order.Created",
        None,
    )
    assert dead.extensions["deadomitted"] == omitted
    assert dead.extensions["deadreason"] == "maxdeliveries"
    assert dead.extensions["deadgroup"] == "g"
    kept = {k: v for k, v in dead.extensions.items() if k in extensions}
    assert kept == ({} if "extensions" in omitted else extensions)
    assert await committed_all(gateway, "g")


async def test_without_max_deliveries_the_poison_event_comes_back_forever(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    await produce(client, producer, event(POISON))
    for _ in range(5):
        _, poisoned = await fail_on_poison_long_poll(client, consumer, {"group": "g"})
        assert poisoned
    assert await dead_events(gateway) == []


async def test_the_clients_ce_max_deliveries_is_the_default_and_a_group_may_change_it(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str]
) -> None:
    permissions = Permissions(ce_consume_types=["Order.*"], ce_max_deliveries=2)
    consumer = await key_for(gateway, "billing", permissions)
    await produce(client, producer, event(POISON))
    met = [(await fail_on_poison_long_poll(client, consumer, {"group": "a"}))[1] for _ in range(4)]
    assert met == [True, True, False, False]
    met = [
        (await fail_on_poison_long_poll(client, consumer, {"group": "b", "max_deliveries": "0"}))[1]
        for _ in range(4)
    ]
    assert met == [True] * 4
    # Each group that gave up leaves its own dead record.
    assert [d.extensions["deadgroup"] for d in await dead_events(gateway)] == ["a"]


async def test_instances_of_one_group_must_agree_on_max_deliveries(
    client: httpx.AsyncClient, consumer: dict[str, str]
) -> None:
    await create(client, consumer, group="g", max_deliveries="3")
    response = await client.post(
        "/ce/consumers", params={"group": "g", "max_deliveries": "4"}, headers=consumer
    )
    assert response.status_code == 409, response.text
    assert "max_deliveries" in response.text
    await create(client, consumer, group="g", max_deliveries="3")


@pytest.mark.parametrize("value", ["-1", "x", "1001", ""])
async def test_a_bad_max_deliveries_is_a_400(
    client: httpx.AsyncClient, consumer: dict[str, str], value: str
) -> None:
    response = await client.post(
        "/ce/consumers", params={"max_deliveries": value}, headers=consumer
    )
    assert response.status_code == 400, response.text
    assert "max_deliveries" in response.text


async def test_the_admin_api_sets_and_shows_a_clients_max_deliveries(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    body = {"name": "app", "ce_consume_types": ["Order.*"], "ce_max_deliveries": 5}
    created = await client.post("/admin/v1/clients", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["ce_max_deliveries"] == 5
    refused = await client.put(
        "/admin/v1/clients/app", json={"ce_max_deliveries": -1}, headers=admin
    )
    assert refused.status_code == 400


# -- figures ---------------------------------------------------------------------------


def scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_and_the_admin_api_show_lag_deliveries_and_dead_letters(
    backend: str,
    client: httpx.AsyncClient,
    gateway: Gateway,
    producer: dict[str, str],
    consumer: dict[str, str],
    admin: dict[str, str],
) -> None:
    await produce(client, producer, *[event(f"e{i}", partitionkey="k") for i in range(5)])
    for _ in range(4):
        await fail_on_poison_long_poll(client, consumer, {"group": "g", "max_deliveries": "2"})
    # A second group reads nothing yet: its lag is every event.
    idle = await create(client, consumer, group="idle")
    response = await poll(client, idle, consumer, form="event")
    first = response.json()
    gateway.consumer_lag.ttl = 0  # no snapshot kept between the scrapes of this test
    group = storage_group("billing", "g")
    (topic,) = gateway.type_registry.topics_matching(PatternSet(["Order.*"]))
    metrics = scraped((await client.get("/metrics")).text)
    assert metrics[("sluicegate_consumer_group_lag", (("group", group), ("topic", topic)))] == 0
    assert metrics[("sluicegate_consumer_group_dead_letters_total", (("group", group),))] == 1
    # All five; e2 e3 e4 again (redeliveries); e3 e4 once more, e2 being dead by then (their
    # counts start again: they were only ever delivered behind it).
    assert metrics[("sluicegate_consumer_group_deliveries_total", (("group", group),))] == 10
    assert metrics[("sluicegate_consumer_group_redeliveries_total", (("group", group),))] == 3
    idle_group = storage_group("billing", "idle")
    # On Kafka the batch's commit marker, after its last event, counts as one.
    lag = 5 + commit_markers(backend)
    assert (
        metrics[("sluicegate_consumer_group_lag", (("group", idle_group), ("topic", topic)))] == lag
    )
    age = metrics[
        ("sluicegate_consumer_group_oldest_unconfirmed_age_seconds", (("group", idle_group),))
    ]
    assert 0 < age < 600
    assert metrics[("sluicegate_consumer_group_instances", (("group", idle_group),))] == 1
    open_kinds = {
        labels: value
        for (name, labels), value in metrics.items()
        if name == "sluicegate_consumers_open"
    }
    assert set(open_kinds) == {
        (("dialect", "cloudevents"), ("kind", kind)) for kind in ("long_poll", "sse", "websocket")
    }
    listed = await client.get("/admin/v1/groups", headers=admin)
    assert listed.status_code == 200
    by_name = {g["group"]: g for g in listed.json()}
    assert by_name[group]["dead_letters"] == 1
    assert by_name[group]["lag"] == 0
    assert by_name[group]["max_deliveries"] == 2
    assert by_name[idle_group]["lag"] == lag
    assert by_name[idle_group]["lag_by_topic"][topic] == lag
    detail = (await client.get(f"/admin/v1/groups/{idle_group}", headers=admin)).json()
    assert sum(p["lag"] for p in detail["partitions"]) == lag
    assert all(p["committed"] + p["lag"] == p["high_watermark"] for p in detail["partitions"])
    # The idle group confirms its one event: its lag goes down by one.
    await client.post(f"{idle}/confirm", params={"offset": first["offset"]}, headers=consumer)
    listed = await client.get("/admin/v1/groups", params={"limit": "1"}, headers=admin)
    assert len(listed.json()) == 1
    assert "link" in listed.headers
    detail = (await client.get(f"/admin/v1/groups/{idle_group}", headers=admin)).json()
    assert detail["lag"] == lag - 1
    missing = await client.get("/admin/v1/groups/ce/billing/nothing", headers=admin)
    assert missing.status_code == 404


async def test_past_the_label_cap_groups_are_summed_as_other(
    tmp_path: Path,
    client: httpx.AsyncClient,
    gateway: Gateway,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    from sluicegate.observability.metrics import Metrics

    await produce(client, producer, event("e1"))
    for name in ("a", "b", "c"):
        instance = await create(client, consumer, group=name)
        assert (await poll(client, instance, consumer)).status_code == 200
    metrics = Metrics()
    metrics.watch_groups(lambda: gateway.consumer_lag.snapshot.values(), max_groups=2)
    await gateway.consumer_lag.refresh()
    scrape = scraped(metrics.render().decode())
    labels = {
        dict(labels)["group"]
        for (name, labels) in scrape
        if name == "sluicegate_consumer_group_deliveries_total"
    }
    assert len(labels) == 3
    assert "other" in labels
    assert (
        sum(v for (n, _), v in scrape.items() if n == "sluicegate_consumer_group_deliveries_total")
        == 3
    )


# -- WebSocket -------------------------------------------------------------------------


async def fail_on_poison_websocket(
    served: GatewayServer, consumer: dict[str, str], query: str
) -> tuple[list[str], bool]:
    """A WebSocket consumer that confirms each event it handles and disconnects at the
    poison event; the ids handled, and whether it met the poison."""
    url = f"ws://127.0.0.1:{served.port}/ce/ws?{query}"
    handled: list[str] = []
    async with connect(url, subprotocols=[SUBPROTOCOL], additional_headers=consumer) as ws:
        while True:
            try:
                async with asyncio.timeout(0.5):
                    got = json.loads(await ws.recv())
            except TimeoutError:
                return handled, False
            if got["id"] == POISON:
                break
            handled.append(got["id"])
            await ws.send(f"confirm:{got['offset']}")
    # The server ends the instance once it sees the close: wait for that, as a real
    # consumer's restart would take longer anyway.
    async with asyncio.timeout(10):
        while served.gateway.streams.open_by_kind.get("websocket"):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return handled, True


async def test_websockets_dead_letter_the_poison_event_once_after_max_deliveries(
    served: GatewayServer, gateway: Gateway, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=served.http) as client:
        await produce(client, producer, *[event(f"e{i}", partitionkey="k") for i in range(5)])
    handled: list[str] = []
    met = 0
    for _ in range(5):
        ids, poisoned = await fail_on_poison_websocket(served, consumer, "group=w&max_deliveries=2")
        handled += ids
        met += poisoned
    assert met == 2
    assert sorted(handled) == ["e0", "e1", "e3", "e4"]
    (dead,) = await dead_events(gateway)
    assert (dead.id, dead.extensions["deliverycount"], dead.extensions["deadgroup"]) == (
        POISON,
        "2",
        "w",
    )
    assert await committed_all(gateway, "w")
