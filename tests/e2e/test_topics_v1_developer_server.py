"""Topics v1 developer API over a real socket: a real ``sluicegate serve`` process with
authentication on, and a real HTTP client."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.helpers import E2E_ADMIN_KEY

with warnings.catch_warnings():
    # authlib (imported by the registry client) deprecates plain httpx at import time.
    import authlib.deprecate

    warnings.filterwarnings("ignore", category=authlib.deprecate.AuthlibDeprecationWarning)
    from confluent_kafka.schema_registry import SchemaRegistryClient

AUTH = {"authorization": f"Bearer {E2E_ADMIN_KEY}"}
TOPICS = "/api/event_streams/topics"
SCHEMA = [
    {"name": "id", "type": "integer"},
    {"name": "placed", "type": "date_time", "label": "Placed at"},
    {
        "name": "lines",
        "type": "array",
        "of": "object",
        "properties": [{"name": "sku"}, {"name": "qty", "type": "number"}],
    },
]


@pytest.fixture
def http(admin_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=admin_server.url, headers=AUTH) as client:
        yield client


def data(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()["data"]


def test_a_topic_and_its_schema_through_their_whole_life(http: httpx.Client) -> None:
    topic = data(http.post(TOPICS, json={"name": "shop.orders", "schema": SCHEMA}))
    url = f"{TOPICS}/{topic['id']}"
    assert data(http.get(url)) == topic
    assert http.get("/subjects/shop.orders-value/versions").json() == [1]

    narrower = [*SCHEMA, {"name": "channel"}]
    changed = data(http.put(url, json={"schema": narrower, "description": "web shop"}))
    assert (changed["schema_version"], changed["description"]) == (2, "web shop")
    latest = http.get("/subjects/shop.orders-value/versions/latest").json()
    assert json.loads(latest["schema"])["required"] == ["id", "placed", "lines", "channel"]

    listed = http.get(TOPICS, params={"name": "shop.", "include_schema": "true"}).json()
    assert listed["count"] == 1
    assert listed["data"][0]["schema"] == narrower

    assert data(http.put(f"{url}/purge")) == {"success": True}
    assert data(http.delete(url)) == {"success": True}
    assert http.get(url).status_code == 404
    assert http.get("/subjects/shop.orders-value/versions").status_code == 404


def test_confluents_client_sees_each_version(
    http: httpx.Client, admin_server: ServerProcess
) -> None:
    topic = data(http.post(TOPICS, json={"name": "shop.carts", "schema": SCHEMA}))
    data(http.put(f"{TOPICS}/{topic['id']}", json={"schema": [{"name": "cart_id"}]}))
    registry = SchemaRegistryClient(
        {"url": admin_server.url, "basic.auth.user.info": f"admin:{E2E_ADMIN_KEY}"}
    )
    try:
        assert registry.get_versions("shop.carts-value") == [1, 2]
        latest = registry.get_latest_version("shop.carts-value")
        assert latest.schema.schema_type == "JSON"
        assert json.loads(latest.schema.schema_str)["required"] == ["cart_id"]
        first = registry.get_version("shop.carts-value", 1)
        assert first.schema_id == topic["schema_id"]
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("POST", TOPICS, {"json": {"name": "x", "schema": [{"type": "nope"}]}}, 400, None),
        ("POST", TOPICS, {"content": b"{}", "headers": {"content-type": "text/csv"}}, 415, None),
        (
            "POST",
            TOPICS,
            {"content": b"x" * (1024 * 1024 + 1), "headers": {"content-type": "application/json"}},
            413,
            "payload_too_large",
        ),
        ("GET", f"{TOPICS}/424242", {}, 404, "unknown_topic"),
        ("GET", f"{TOPICS}/x", {}, 400, "bad_request"),
        ("GET", TOPICS, {"params": {"per_page": "500"}}, 400, "bad_request"),
        ("GET", TOPICS, {"headers": {"authorization": "Bearer sg_not_a_key"}}, 401, None),
    ],
)
def test_errors_in_the_dialects_format(
    http: httpx.Client,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    response = http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message", "code"}
    assert body["message"]
    if code is not None:
        assert body["code"] == code


def test_a_taken_name_is_409(http: httpx.Client) -> None:
    data(http.post(TOPICS, json={"name": "taken", "schema": []}))
    response = http.post(TOPICS, json={"name": "taken", "schema": []})
    assert response.status_code == 409
    assert response.json()["code"] == "topic_exists"


def test_the_document_is_served(admin_server: ServerProcess) -> None:
    index = httpx.get(f"{admin_server.url}/openapi/").json()
    entry = next(entry for entry in index if entry["name"] == "topics-v1-developer")
    assert entry["url"] == "/openapi/topics-v1-developer.json"
    document = httpx.get(f"{admin_server.url}/openapi/topics-v1-developer.json").json()
    assert set(document["paths"]) == {
        TOPICS,
        f"{TOPICS}/{{topic_id}}",
        f"{TOPICS}/{{topic_id}}/purge",
    }


def test_topics_and_schemas_survive_a_restart(tmp_path: Path) -> None:
    env = {"SLUICEGATE_ADMIN_KEY": E2E_ADMIN_KEY}
    with serve_in_subprocess(tmp_path, args=(), env=env) as server:
        created = httpx.post(
            f"{server.url}{TOPICS}",
            json={"name": "kept", "schema": SCHEMA, "description": "d", "retention": 120},
            headers=AUTH,
        )
        topic = data(created)
        assert server.stop() == 0
    with serve_in_subprocess(tmp_path, args=(), env=env) as server:
        again = data(httpx.get(f"{server.url}{TOPICS}/{topic['id']}", headers=AUTH))
        assert again == topic
