"""Topics v1 public API in process: what storage failures and bugs look like to a client."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from sluicegate.core.gateway import Gateway
from sluicegate.core.topics import TopicSpec
from sluicegate.errors import StorageUnavailable


async def test_storage_unavailable_is_a_503_with_retry_after(
    client: httpx.AsyncClient, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = await gateway.topics.create(TopicSpec(name="people"))

    def unavailable(records: Any) -> Any:
        raise StorageUnavailable("the log is not running", retry_after=2)

    monkeypatch.setattr(gateway.producer, "send", unavailable)
    response = await client.post(f"/api/v1/topics/{topic.id}/publish", json={"n": 1})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json() == {"message": "the log is not running", "code": "storage_unavailable"}


async def test_a_bug_is_a_500_with_only_an_incident_id(
    client: httpx.AsyncClient, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = await gateway.topics.create(TopicSpec(name="people"))

    def broken(records: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(gateway.producer, "send", broken)
    response = await client.post(f"/api/v1/batch/topics/{topic.id}/publish", json={"payloads": [1]})
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"message", "code", "incident_id"}
    assert re.fullmatch(r"[0-9a-f]{16}", body["incident_id"])
    assert "secret" not in response.text


async def test_internal_topics_have_no_id_here(client: httpx.AsyncClient, gateway: Gateway) -> None:
    internal = await gateway.log.list_topics(include_internal=True)
    assert internal, "the gateway keeps its state in internal topics"
    for topic in internal:
        response = await client.post(f"/api/v1/topics/{topic.id}/consume", json={})
        assert response.status_code == 404, topic.name


async def test_the_violations_listed_are_bounded(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    topic = await gateway.topics.create(TopicSpec(name="numbers"))
    schema = {"type": "array", "items": {"type": "integer"}}
    await gateway.schemas.register("numbers-value", json.dumps(schema), "JSON")
    response = await client.post(f"/api/v1/topics/{topic.id}/publish", json=["x"] * 150)
    assert response.status_code == 400
    body = response.json()
    assert len(body["errors"]) == 100
    assert body["errors"][0] == {"pointer": "/0", "reason": '"x" is not of type "integer"'}
    assert body["message"].endswith("; and 50 more")


async def test_content_types_accepted_are_remembered_within_a_bound(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    from sluicegate.dialects.topics_v1 import public

    topic = await gateway.topics.create(TopicSpec(name="people"))
    url = f"/api/v1/topics/{topic.id}/publish"
    for index in range(2 * public._ACCEPTED_KEPT):
        for _ in range(2):  # the second time from the set, the answer the same
            headers = {"content-type": f"application/x-{index}+json; charset=utf-8"}
            response = await client.post(url, content=b"{}", headers=headers)
            assert response.status_code == 200
    assert len(public._ACCEPTED) <= public._ACCEPTED_KEPT
    for _ in range(2):  # refused every time, never remembered
        response = await client.post(url, content=b"{}", headers={"content-type": "text/plain"})
        assert response.status_code == 415
    assert b"text/plain" not in public._ACCEPTED
