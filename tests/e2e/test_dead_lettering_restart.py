"""Dead-lettering after ``max_deliveries`` across a restart, on a real server process of
each backend: a consumer fails on one event, the server is killed (SIGKILL) between two
of its deliveries, and the count goes on where it was — the event is dead-lettered once,
after exactly ``max_deliveries`` deliveries, and every other event is confirmed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.helpers import E2E_ADMIN_KEY, backend_env

POISON = "e2"
ADMIN = {"authorization": f"Bearer {E2E_ADMIN_KEY}"}


@contextmanager
def server(data_dir: Path, env: dict[str, str]) -> Iterator[tuple[ServerProcess, httpx.Client]]:
    with (
        serve_in_subprocess(data_dir, args=(), env=env) as process,
        httpx.Client(base_url=process.url, timeout=30) as http,
    ):
        yield process, http


def client_key(http: httpx.Client, name: str, **permissions: Any) -> dict[str, str]:
    created = http.post("/admin/v1/clients", json={"name": name, **permissions}, headers=ADMIN)
    assert created.status_code == 201, created.text
    key = http.post(f"/admin/v1/clients/{name}/keys", headers=ADMIN)
    assert key.status_code == 201, key.text
    return {"authorization": f"Bearer {key.json()['key']}"}


def run_consumer(http: httpx.Client, auth: dict[str, str]) -> tuple[list[str], bool]:
    """A consumer that confirms each event it handles and gives up at the poison event."""
    created = http.post("/ce/consumers", params={"group": "g"}, headers=auth)
    assert created.status_code == 201, created.text
    instance = httpx.URL(created.headers["location"]).path
    handled: list[str] = []
    try:
        while True:
            response = http.get(f"{instance}/events", params={"timeout": "0.5"}, headers=auth)
            if response.status_code == 204:
                return handled, False
            assert response.status_code == 200, response.text
            for event in response.json():
                if event["id"] == POISON:
                    return handled, True
                handled.append(event["id"])
                confirmed = http.post(
                    f"{instance}/confirm", params={"offset": event["offset"]}, headers=auth
                )
                assert confirmed.status_code == 204, confirmed.text
    finally:
        http.delete(instance, headers=auth)


def test_a_restart_between_deliveries_changes_nothing(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    env = {"SLUICEGATE_ADMIN_KEY": E2E_ADMIN_KEY, **backend_env(request, backend)}
    handled: list[str] = []
    met = 0
    with server(tmp_path, env) as (process, http):
        producer = client_key(http, "shop", ce_sources=["urn:shop"], ce_produce_types=["Order.*"])
        consumer = client_key(http, "billing", ce_consume_types=["Order.*"], ce_max_deliveries=3)
        events = [
            {
                "specversion": "1.0",
                "id": f"e{i}",
                "source": "urn:shop",
                "type": "Order.Created",
                "partitionkey": "one-partition",
                "data": {"n": i},
            }
            for i in range(5)
        ]
        headers = {"content-type": "application/cloudevents-batch+json", **producer}
        produced = http.post("/ce/produce/events", json=events, headers=headers)
        assert produced.status_code == 202, produced.text
        for _ in range(2):
            ids, poisoned = run_consumer(http, consumer)
            handled += ids
            met += poisoned
        process.kill()  # no shutdown code runs
    with server(tmp_path, env) as (process, http):
        for _ in range(3):
            ids, poisoned = run_consumer(http, consumer)
            handled += ids
            met += poisoned
        assert met == 3, "delivered max_deliveries times in all, the restart included"
        assert handled == ["e0", "e1", "e3", "e4"]
        reader = http.post(
            "/ce/consumers",
            params={"group": "reader", "events": "false", "dead": "true"},
            headers=consumer,
        )
        instance = httpx.URL(reader.headers["location"]).path
        dead = http.get(f"{instance}/events", params={"timeout": "2"}, headers=consumer).json()
        assert [(d["id"], d["deadreason"], d["deliverycount"], d["deadgroup"]) for d in dead] == [
            (POISON, "maxdeliveries", 3, "g")
        ]
        metrics = http.get("/metrics").text
        assert 'sluicegate_consumer_group_dead_letters_total{group="ce/billing/g"} 1.0' in metrics
