"""The long-polling consumer API on both backends: every status of the seed for its routes,
complete events in all three forms, confirm, dead events, groups, ownership and bridges."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from sluicegate.config import Settings
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.cloudevents.streams import test_topic
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import NewRecord
from tests.conftest import make_settings
from tests.dialects.cloudevents.conftest import CONSUMER, key_for
from tests.dialects.cloudevents.test_produce import error

BASE = "http://sluicegate.test"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        cloudevents={"max_event_bytes": 4096, "batch_size": 3, "poll_timeout": 0.2},
        limits={"max_long_polls_per_client": 4},
    )


@pytest.fixture
async def consumer(gateway: Gateway) -> dict[str, str]:
    return await key_for(gateway, "billing", CONSUMER)


def event(event_id: str, **attributes: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:shop",
        "type": "Order.Created",
        "time": "2025-01-31T12:00:00Z",
        "data": {"n": event_id},
        **attributes,
    }


async def produce(client: httpx.AsyncClient, auth: dict[str, str], *events: dict[str, Any]) -> None:
    headers = {"content-type": "application/cloudevents-batch+json", **auth}
    response = await client.post("/ce/produce/events", json=list(events), headers=headers)
    assert response.status_code == 202, response.text


async def create(client: httpx.AsyncClient, auth: dict[str, str], **query: str) -> str:
    """A new instance's path (its Location without the base URL)."""
    response = await client.post("/ce/consumers", params=query, headers=auth)
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert location.startswith(BASE + "/node-1/ce/consumers/")
    return urlsplit(location).path


async def poll(
    client: httpx.AsyncClient, instance: str, auth: dict[str, str], form: str = "events", **q: str
) -> httpx.Response:
    return await client.get(f"{instance}/{form}", params={"timeout": "0", **q}, headers=auth)


# -- create ----------------------------------------------------------------------------


async def test_create_answers_201_with_the_instance_url(
    client: httpx.AsyncClient, consumer: dict[str, str]
) -> None:
    response = await client.post("/ce/consumers", headers=consumer)
    assert response.status_code == 201
    assert response.content == b""
    location = urlsplit(response.headers["location"])
    bridge, ce, consumers, group, instances, instance = location.path.split("/")[1:]
    assert (bridge, ce, consumers, group, instances) == (
        "node-1",
        "ce",
        "consumers",
        "~default",
        "instances",
    )
    assert len(instance) >= 22
    path = await create(client, consumer, group="audit.v2", events="false", dead="true")
    assert "/ce/consumers/audit.v2/instances/" in path


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"group": "a/b"}, "group"),
        ({"group": ".x"}, "group"),
        ({"group": "x" * 129}, "group"),
        ({"events": "yes"}, "events"),
        ({"test": "2"}, "test"),
        ({"dead": ""}, "dead"),
    ],
)
async def test_create_refuses_bad_options(
    client: httpx.AsyncClient, consumer: dict[str, str], query: dict[str, str], field: str
) -> None:
    body = error(await client.post("/ce/consumers", params=query, headers=consumer), 400)
    assert field in body["message"]


async def test_every_authorization_failure_is_401(
    client: httpx.AsyncClient, gateway: Gateway, consumer: dict[str, str]
) -> None:
    assert error(await client.post("/ce/consumers"), 401)["error"] == "unauthenticated"
    producer_only = await key_for(
        gateway, "shop", Permissions(ce_sources=["urn:shop"], ce_produce_types=["Order.*"])
    )
    body = error(await client.post("/ce/consumers", headers=producer_only), 401)
    assert "not a consumer" in body["message"]
    instance = await create(client, consumer)
    body = error(await poll(client, instance, producer_only), 401)
    assert "not a consumer" in body["message"]
    wrong = {"authorization": "Bearer sg_not_a_key_at_all_0000000000000000"}
    error(await poll(client, instance, wrong), 401)


# -- consume ---------------------------------------------------------------------------


async def test_events_are_complete_with_increasing_offsets(
    client: httpx.AsyncClient, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    instance = await create(client, consumer)
    full = event(
        "e-1",
        subject="order/1",
        dataschema="https://schemas.example.com/order",
        partitionkey="customer-9",
        tenant="eu",
        priority=3,
        urgent=True,
    )
    binary = event("e-2", datacontenttype="application/octet-stream")
    del binary["data"]
    binary["data_base64"] = base64.b64encode(b"\x00\xffbin").decode()
    text = event("e-3", datacontenttype="text/plain", data="hello")
    await produce(client, producer, full, binary, text)
    response = await poll(client, instance, consumer)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/cloudevents-batch+json"
    got = {e["id"]: e for e in response.json()}
    assert sorted(e["offset"] for e in response.json()) == ["1", "2", "3"]
    first = got["e-1"]
    assert {k: first[k] for k in full} == full | {"datacontenttype": "application/json"} or {
        k: first[k] for k in full
    } == full
    assert first["datacontenttype"] == "application/json"
    assert got["e-2"]["data_base64"] == binary["data_base64"]
    assert "data" not in got["e-2"]
    assert got["e-3"]["data"] == "hello"
    # Nothing more: 204, then a new event continues the sequence.
    assert (await poll(client, instance, consumer)).status_code == 204
    await produce(client, producer, event("e-4"))
    [fourth] = (await poll(client, instance, consumer)).json()
    assert (fourth["id"], fourth["offset"]) == ("e-4", "4")


async def test_a_record_another_producer_wrote_with_data_that_is_not_json_is_readable(
    client: httpx.AsyncClient,
    gateway: Gateway,
    producer: dict[str, str],
    consumer: dict[str, str],
) -> None:
    """Any Kafka producer may write to an event topic: data its content type calls JSON
    that is not went into the batch as it was, and made the whole batch unreadable."""
    instance = await create(client, consumer)
    await produce(client, producer, event("e-1"))
    foreign = NewRecord(
        "ce.Order.Created",
        0,
        b"k",
        b"{not json",
        (
            ("ce_specversion", b"1.0"),
            ("ce_id", b"foreign-1"),
            ("ce_source", b"urn:elsewhere"),
            ("ce_type", b"Order.Created"),
            ("content-type", b"application/json"),
        ),
    )
    await gateway.log.append([foreign])
    await produce(client, producer, event("e-2"))
    received: dict[str, dict[str, Any]] = {}
    while (response := await poll(client, instance, consumer)).status_code == 200:
        received.update((e["id"], e) for e in response.json())
    assert sorted(received) == ["e-1", "e-2", "foreign-1"]
    assert base64.b64decode(received["foreign-1"]["data_base64"]) == b"{not json"
    assert received["e-2"]["data"] == {"n": "e-2"}


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, "application/cloudevents-batch+json"),
        ("*/*", "application/cloudevents-batch+json"),
        ("application/cloudevents+json", "application/cloudevents+json"),
        ("Application/CloudEvents+JSON; charset=utf-8, */*;q=0.1", "application/cloudevents+json"),
        (
            "application/cloudevents+json, application/cloudevents-batch+json",
            "application/cloudevents-batch+json",
        ),
    ],
)
async def test_a_batch_is_the_batch_type_or_the_type_mconnect_documents_when_asked(
    client: httpx.AsyncClient,
    producer: dict[str, str],
    consumer: dict[str, str],
    accept: str | None,
    media_type: str,
) -> None:
    instance = await create(client, consumer)
    await produce(client, producer, event("e-1"))
    headers = consumer if accept is None else {**consumer, "accept": accept}
    response = await client.get(f"{instance}/events", params={"timeout": "0"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    assert [e["id"] for e in response.json()] == ["e-1"]


async def test_a_batch_holds_batch_size_events_at_most(
    client: httpx.AsyncClient, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    instance = await create(client, consumer)
    await produce(client, producer, *(event(f"e-{i}", partitionkey="k") for i in range(5)))
    first = (await poll(client, instance, consumer)).json()
    second = (await poll(client, instance, consumer)).json()
    assert [e["id"] for e in first] == ["e-0", "e-1", "e-2"]
    assert [e["id"] for e in second] == ["e-3", "e-4"]
    assert [e["offset"] for e in first + second] == ["1", "2", "3", "4", "5"]


async def test_event_and_raw_forms(
    client: httpx.AsyncClient, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    instance = await create(client, consumer)
    await produce(
        client,
        producer,
        event("e-1", subject="order 1/ü", partitionkey="p"),
        event("e-2", partitionkey="p"),
    )
    one = await poll(client, instance, consumer, "event")
    assert one.status_code == 200
    assert one.headers["content-type"] == "application/cloudevents+json"
    assert (one.json()["id"], one.json()["offset"]) == ("e-1", "1")
    raw = await poll(client, instance, consumer, "raw")
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["ce-id"] == "e-2"
    assert raw.headers["ce-offset"] == "2"
    assert raw.headers["ce-specversion"] == "1.0"
    assert raw.headers["ce-partitionkey"] == "p"
    assert raw.json() == {"n": "e-2"}
    assert (await poll(client, instance, consumer, "raw")).status_code == 204
    assert (await poll(client, instance, consumer, "event")).status_code == 204


async def test_a_percent_encoded_attribute_comes_back_in_raw_form(
    client: httpx.AsyncClient, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    instance = await create(client, consumer)
    await produce(client, producer, event("e-1", subject='order "1" ü'))
    raw = await poll(client, instance, consumer, "raw")
    assert raw.headers["ce-subject"] == "order%20%221%22%20%C3%BC"


async def test_order_is_kept_per_partitionkey(
    client: httpx.AsyncClient, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    instance = await create(client, consumer)
    keys = [f"customer-{k}" for k in range(6)]
    for round_ in range(4):
        await produce(
            client, producer, *(event(f"{key}/{round_}", partitionkey=key) for key in keys)
        )
    seen: dict[str, list[int]] = {}
    while (response := await poll(client, instance, consumer)).status_code == 200:
        for item in response.json():
            key, round_ = item["id"].split("/")
            seen.setdefault(key, []).append(int(round_))
    assert seen == {key: [0, 1, 2, 3] for key in keys}


async def test_no_event_within_the_timeout_is_204(
    client: httpx.AsyncClient, consumer: dict[str, str]
) -> None:
    instance = await create(client, consumer)
    waited = await client.get(f"{instance}/events", headers=consumer)  # poll_timeout: 0.2 s
    assert waited.status_code == 204
    assert waited.content == b""
    for bad in ["-1", "61", "soon", "nan"]:
        body = error(await poll(client, instance, consumer, timeout=bad), 400)
        assert "timeout" in body["message"]


# -- confirm, redelivery ---------------------------------------------------------------


async def test_confirm_and_redelivery_to_the_next_instance(
    client: httpx.AsyncClient, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    instance = await create(client, consumer)
    await produce(client, producer, *(event(f"e-{i}", partitionkey="k") for i in range(3)))
    assert len((await poll(client, instance, consumer)).json()) == 3
    confirmed = await client.post(f"{instance}/confirm", params={"offset": "1"}, headers=consumer)
    assert confirmed.status_code == 204
    for bad, message in [
        ("4", "never delivered"),
        ("x", "offset"),
        ("0", ">= 1"),
        ("9223372036854775807", "never delivered"),
    ]:
        response = await client.post(
            f"{instance}/confirm", params={"offset": bad}, headers=consumer
        )
        assert message in error(response, 400)["message"]
    assert (await client.delete(instance, headers=consumer)).status_code == 204
    successor = await create(client, consumer)
    again = (await poll(client, successor, consumer)).json()
    assert [(e["id"], e["offset"]) for e in again] == [("e-1", "1"), ("e-2", "2")]


async def test_confirm_true_confirms_what_was_read_before(
    client: httpx.AsyncClient, producer: dict[str, str], consumer: dict[str, str]
) -> None:
    instance = await create(client, consumer)
    await produce(client, producer, *(event(f"e-{i}", partitionkey="k") for i in range(2)))
    assert (await poll(client, instance, consumer, "event")).json()["id"] == "e-0"
    assert (await poll(client, instance, consumer, "event", confirm="true")).json()["id"] == "e-1"
    assert (await poll(client, instance, consumer, "event", confirm="true")).status_code == 204
    # e-0 and e-1 were confirmed by the polls: nothing comes back to the next instance.
    await client.delete(instance, headers=consumer)
    successor = await create(client, consumer)
    assert (await poll(client, successor, consumer)).status_code == 204
    bad = await poll(client, successor, consumer, confirm="maybe")
    assert "confirm" in error(bad, 400)["message"]


# -- test and dead streams -------------------------------------------------------------


def dead_headers(
    auth: dict[str, str], event_id: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The headers of a JSON event of ``Order.Created`` reported dead in binary mode."""
    return {
        **auth,
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "urn:shop",
        "ce-type": "Order.Created",
        **(extra or {}),
    }


async def test_dead_events_reach_every_dead_instance_whatever_its_group(
    client: httpx.AsyncClient, gateway: Gateway, consumer: dict[str, str]
) -> None:
    reporter = await create(client, consumer)
    workers = await create(client, consumer, group="workers", dead="true", test="false")
    # Two instances of one group: each of them gets it, unlike the group's normal events.
    auditors = [
        await create(client, consumer, group="audit", dead="true", events="false") for _ in range(2)
    ]
    headers = dead_headers(
        consumer,
        "e-9",
        # Copied from the raw form it was received in: dropped.
        {"ce-offset": "7", "ce-reason": "cannot%20parse"},
    )
    stored = await client.post(f"{reporter}/dead", content=b'{"n": 9}', headers=headers)
    assert stored.status_code == 202, stored.text
    for instance in (workers, *auditors):
        [dead] = (await poll(client, instance, consumer)).json()
        assert (dead["id"], dead["reason"], dead["data"], dead["offset"]) == (
            "e-9",
            "cannot parse",
            {"n": 9},
            "1",
        )
    assert (await poll(client, reporter, consumer)).status_code == 204  # dead=false
    bad = await client.post(f"{reporter}/dead", content=b"{}", headers={**consumer})
    assert bad.status_code in {400, 415}


async def test_a_dead_event_is_stored_whatever_the_schema_says_of_its_data(
    client: httpx.AsyncClient, gateway: Gateway, consumer: dict[str, str]
) -> None:
    # The data a type's schema refuses is often why an event is dead: reported through
    # POST .../dead it is stored all the same (a produced event is still held to it).
    await gateway.event_schemas.set("Order.Created", '{"type": "object", "required": ["n"]}')
    reporter = await create(client, consumer)
    auditors = await create(client, consumer, group="audit", dead="true", events="false")
    headers = dead_headers(consumer, "e-10")
    stored = await client.post(f"{reporter}/dead", content=b'{"edited": 1}', headers=headers)
    assert stored.status_code == 202, stored.text
    [dead] = (await poll(client, auditors, consumer)).json()
    assert (dead["id"], dead["data"]) == ("e-10", {"edited": 1})


async def test_test_events_reach_every_test_instance_whatever_its_group(
    client: httpx.AsyncClient, gateway: Gateway, consumer: dict[str, str]
) -> None:
    from sluicegate.core.cloudevents.event import CloudEvent

    testers = [await create(client, consumer) for _ in range(2)]
    testers.append(await create(client, consumer, group="other"))
    quiet = await create(client, consumer, group="quiet", test="false")
    sample = CloudEvent(id="t-1", source="urn:me", type="Anything.At.All", data=b"{}")
    await gateway.event_producer.produce_to_stream(test_topic("billing"), [sample])
    for tester in testers:
        [got] = (await poll(client, tester, consumer)).json()
        assert (got["id"], got["type"], got["offset"]) == ("t-1", "Anything.At.All", "1")
    assert (await poll(client, quiet, consumer)).status_code == 204
    # One of the group confirms it: the other still has it unconfirmed, and an instance
    # of the group created afterwards does not get it again.
    confirmed = await client.post(f"{testers[0]}/confirm", headers=consumer)
    assert confirmed.status_code == 204
    late = await create(client, consumer)
    assert (await poll(client, late, consumer)).status_code == 204
    # Deleting the instance that did not confirm sends it to nobody else.
    assert (await client.delete(testers[1], headers=consumer)).status_code == 204
    assert (await poll(client, late, consumer)).status_code == 204


# -- 404 -------------------------------------------------------------------------------


async def test_a_deleted_foreign_or_elsewhere_instance_is_404(
    client: httpx.AsyncClient, gateway: Gateway, consumer: dict[str, str]
) -> None:
    instance = await create(client, consumer)
    other = await key_for(gateway, "other", CONSUMER)
    for auth in (other,):
        body = error(await poll(client, instance, auth), 404)
        assert body["error"] == "unknown_consumer_instance"
        error(await client.delete(instance, headers=auth), 404)
    elsewhere = instance.replace("/node-1/", "/node-2/", 1)
    body = error(await poll(client, elsewhere, consumer), 404)
    assert "not on this bridge" in body["message"]
    wrong_group = instance.replace("/~default/", "/other/", 1)
    error(await poll(client, wrong_group, consumer), 404)
    assert (await client.delete(instance, headers=consumer)).status_code == 204
    for response in [
        await poll(client, instance, consumer),
        await poll(client, instance, consumer, "raw"),
        await client.post(f"{instance}/confirm", headers=consumer),
        await client.delete(instance, headers=consumer),
    ]:
        assert "deleted" in error(response, 404)["message"]
    # A path near an instance's that no route has: the dialect's 404, ``status`` and all.
    for near in (f"{instance}/", f"{instance}/nope", instance.rsplit("/", 1)[0]):
        body = error(await client.get(near, headers=consumer), 404)
        assert body["status"] == 404
