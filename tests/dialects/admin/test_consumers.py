"""``GET /admin/v1/consumers`` in-process on both backends: every live CloudEvents consumer
instance of the node, with its kind, age, deliveries and idle time, a page at a time."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from sluicegate.config import Settings
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.consumers.subscription import RecordFilter
from sluicegate.core.gateway import Gateway
from tests.conftest import make_settings
from tests.dialects.cloudevents.conftest import CONSUMER, PRODUCER, key_for


class NoTopics:
    """A subscription to nothing: the stream only has to exist."""

    def version(self) -> int:
        return 0

    async def topics(self) -> frozenset[str]:
        return frozenset()

    def filter(self, topic: str) -> RecordFilter | None:
        return None

    def every_instance(self, topic: str) -> bool:
        return False


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, cluster={"node_id": "gw-1"})


@pytest.fixture
async def operator(gateway: Gateway) -> dict[str, str]:
    return await key_for(gateway, "ops", Permissions(admin=["*"]))


@pytest.fixture
async def consumer(gateway: Gateway) -> dict[str, str]:
    return await key_for(gateway, "billing", CONSUMER)


async def create(client: httpx.AsyncClient, auth: dict[str, str], group: str) -> str:
    response = await client.post("/ce/consumers", params={"group": group}, headers=auth)
    assert response.status_code == 201, response.text
    return urlsplit(response.headers["location"]).path


async def listed(client: httpx.AsyncClient, auth: dict[str, str], **query: str) -> Any:
    response = await client.get("/admin/v1/consumers", params=query, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def test_lists_each_instance_with_its_client_group_node_and_kind(
    client: httpx.AsyncClient, gateway: Gateway, operator: dict[str, str], consumer: dict[str, str]
) -> None:
    first = await create(client, consumer, "invoices")
    await create(client, consumer, "audit")
    rows = await listed(client, operator)
    assert [(r["client"], r["group"]) for r in rows] == [
        ("billing", "ce/billing/audit"),
        ("billing", "ce/billing/invoices"),
    ]
    invoices = rows[1]
    assert invoices["id"] == first.rsplit("/", 1)[1]
    assert invoices["node"] == "gw-1"
    assert invoices["kind"] == "long_poll"
    assert invoices["age"] >= 0
    assert invoices["idle"] >= 0
    assert (invoices["delivered"], invoices["unconfirmed"]) == (0, 0)


async def test_a_stream_shows_its_kind_and_is_never_idle(
    client: httpx.AsyncClient, gateway: Gateway, operator: dict[str, str]
) -> None:
    async with gateway.streams.open(
        "billing", "ce/billing/live", NoTopics(), window=10, batch_size=10, kind="sse"
    ):
        (row,) = await listed(client, operator)
        assert (row["kind"], row["group"], row["idle"]) == ("sse", "ce/billing/live", 0)
    assert await listed(client, operator) == []


async def test_unconfirmed_deliveries_are_counted_until_confirmed(
    client: httpx.AsyncClient, gateway: Gateway, operator: dict[str, str], consumer: dict[str, str]
) -> None:
    producer = await key_for(gateway, "shop", PRODUCER)
    instance = await create(client, consumer, "invoices")
    events = [
        {
            "specversion": "1.0",
            "id": f"e{n}",
            "source": "urn:shop",
            "type": "Order.Created",
            "data": {"n": n},
        }
        for n in range(3)
    ]
    produced = await client.post(
        "/ce/produce/events",
        json=events,
        headers={"content-type": "application/cloudevents-batch+json", **producer},
    )
    assert produced.status_code == 202, produced.text
    read = await client.get(f"{instance}/events", params={"timeout": "1"}, headers=consumer)
    assert read.status_code == 200, read.text
    (row,) = await listed(client, operator)
    assert (row["delivered"], row["unconfirmed"]) == (3, 3)
    assert row["partitions"] >= 1
    confirmed = await client.post(f"{instance}/confirm", headers=consumer)
    assert confirmed.status_code in (200, 204), confirmed.text
    (row,) = await listed(client, operator)
    assert (row["delivered"], row["unconfirmed"]) == (3, 0)


async def test_pages_walk_every_instance_once(
    client: httpx.AsyncClient, gateway: Gateway, operator: dict[str, str], consumer: dict[str, str]
) -> None:
    for group in ("a", "b", "c", "d", "e"):
        await create(client, consumer, group)
    seen: list[str] = []
    url: str | None = "/admin/v1/consumers?limit=2"
    while url is not None:
        response = await client.get(url, headers=operator)
        assert response.status_code == 200, response.text
        seen += [row["group"] for row in response.json()]
        link = response.headers.get("link")
        url = None if link is None else re.match(r"<([^>]+)>", link).group(1)  # type: ignore[union-attr]
    assert seen == [f"ce/billing/{group}" for group in "abcde"]


async def test_one_groups_instances(
    client: httpx.AsyncClient, operator: dict[str, str], consumer: dict[str, str]
) -> None:
    for group in ("a", "b", "a"):
        await create(client, consumer, group)
    rows = await listed(client, operator, group="ce/billing/a")
    assert [row["group"] for row in rows] == ["ce/billing/a", "ce/billing/a"]
    assert await listed(client, operator, group="ce/billing/none") == []


async def test_a_deleted_instance_is_gone_from_the_list(
    client: httpx.AsyncClient, operator: dict[str, str], consumer: dict[str, str]
) -> None:
    instance = await create(client, consumer, "invoices")
    assert (await client.delete(instance, headers=consumer)).status_code == 204
    assert await listed(client, operator) == []


async def test_needs_admin_on_everything(
    client: httpx.AsyncClient, consumer: dict[str, str]
) -> None:
    response = await client.get("/admin/v1/consumers", headers=consumer)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


async def test_a_cursor_it_did_not_give_out_is_400(
    client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    for query in ({"cursor": "nonsense!"}, {"limit": "0"}):
        response = await client.get("/admin/v1/consumers", params=query, headers=operator)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "bad_request"
