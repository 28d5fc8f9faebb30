"""The app around the dialects: health, readiness, metrics, documents, unmatched routes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from sluicegate.app import GatewayApp
from sluicegate.config import Settings
from sluicegate.core.gateway import Gateway
from sluicegate.errors import HeadersTooLarge, RequestTimeout, UnknownTopic
from sluicegate.http.servers import STOPPED
from tests.conftest import make_settings


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_follows_storage(client: httpx.AsyncClient, gateway: Gateway) -> None:
    assert (await client.get("/readyz")).status_code == 200
    await gateway.log.close()
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"] in {"storage_unavailable", "shutting_down"}


async def test_while_starting_only_healthz_is_served_each_dialect_says_503(
    client: httpx.AsyncClient, app: GatewayApp, gateway: Gateway
) -> None:
    app.starting = "its storage is not ready yet"
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"] == "starting"
    assert "the gateway is starting: its storage is not ready yet" in ready.json()["message"]
    assert ready.headers["retry-after"] == "5"
    record = {"value": {"type": "text", "data": "x"}}
    produced = await client.post("/v2/topics/early/records", json=record)
    assert produced.status_code == 503
    assert produced.json()["error_code"] == 503  # records v2's own error body
    event = {"specversion": "1.0", "id": "1", "source": "urn:s", "type": "T", "data": {}}
    headers = {"content-type": "application/cloudevents+json"}
    ce = await client.post("/ce/produce/event", json=event, headers=headers)
    assert (ce.status_code, ce.json()["status"]) == (503, 503)  # CloudEvents' own
    with pytest.raises(UnknownTopic):
        await gateway.log.get_topic("early")  # nothing reached the storage
    app.starting = None
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.post("/v2/topics/early/records", json=record)).status_code == 200


async def test_metrics_label_routes_by_template(client: httpx.AsyncClient) -> None:
    for topic in ("a", "b", "c"):
        await client.post(
            f"/v2/topics/{topic}/records", json={"value": {"type": "text", "data": "x"}}
        )
    await client.get("/no/such/path/with/user/input")
    text = (await client.get("/metrics")).text
    assert (
        'sluicegate_http_requests_total{dialect="records_v2",method="POST",'
        'route="/v2/topics/{topic_name}/records",status="200"} 3.0'
    ) in text
    assert "user/input" not in text
    assert 'route="unmatched"' in text
    assert "sluicegate_records_appended_total 3.0" in text
    assert "sluicegate_commit_duration_seconds_count" in text
    assert "sluicegate_storage_waiters 0.0" in text
    assert "sluicegate_storage_queued_records 0.0" in text


async def test_dispatch_is_remembered_per_path_and_bounded(
    client: httpx.AsyncClient, app: GatewayApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sluicegate.app._DISPATCH_CACHE_SIZE", 4)
    for topic in ("a", "b", "a", "c", "d", "e", "a"):
        response = await client.post(
            f"/v2/topics/{topic}/records", json={"value": {"type": "text", "data": topic}}
        )
        # A remembered dispatch carries the parameters of its own path, not another's.
        assert response.json()["topic_name"] == topic
    assert len(app._dispatch) <= 4
    # Paths that match nothing are answered without being remembered.
    for attempt in range(10):
        assert (await client.get(f"/scan/{attempt}")).status_code == 404
    assert all(path.startswith("/v2/") for _, path in app._dispatch)


async def test_unmatched_route_is_plain_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "no route for GET /nope"}


async def test_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.request("TRACE", "/admin/v1/topics")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert response.json()["error"] == "method_not_allowed"


async def test_openapi_index_and_documents(client: httpx.AsyncClient) -> None:
    index = (await client.get("/openapi/")).json()
    assert {
        "name": "records-v2",
        "title": index[0]["title"],
        "url": "/openapi/records-v2.json",
    } in index
    for entry in index:
        document = (await client.get(entry["url"])).json()
        assert document["openapi"].startswith("3.")
        assert document["paths"]
    assert (await client.get("/openapi/nope.json")).status_code == 404


async def test_docs_page_is_self_contained(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/v2/topics/{topic_name}/records" in response.text
    assert "/admin/v1/topics/{name}/records" in response.text
    assert "/admin/v1/clients/{name}/keys/{key_id}" in response.text
    assert "<script" not in response.text
    assert "http" not in response.text.split("<body>")[1].replace("/openapi/", "")


class TestPerDialectLimits:
    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        return make_settings(
            tmp_path,
            auth={"enabled": False},
            limits={"max_body_bytes": {"topic_admin": 200}, "max_json_depth": 3},
        )

    async def test_body_limit_follows_the_dialect(self, client: httpx.AsyncClient) -> None:
        big = {"records": [{"value": "x" * 300}]}
        response = await client.post("/admin/v1/topics/t/records", json=big)
        assert response.status_code == 413
        assert "limit of 200 bytes" in response.json()["message"]
        # records v2 keeps its own setting (64 kB): the same size is fine there.
        ok = await client.post(
            "/v2/topics/t/records", json={"value": {"type": "text", "data": "x" * 300}}
        )
        assert ok.status_code == 200

    async def test_json_shape_limits_apply_to_every_dialect(
        self, client: httpx.AsyncClient
    ) -> None:
        deep = b'{"name": "t", "config": {"a": {"b": {"c": 1}}}}'
        response = await client.post(
            "/admin/v1/topics", content=deep, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert "nests deeper than the limit of 3 levels" in response.json()["message"]


async def test_405_says_which_methods_are_allowed(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/topics/t/records")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    response = await client.request("PATCH", "/admin/v1/topics")
    assert response.headers["allow"] == "GET, HEAD, POST"


async def test_a_path_that_is_not_utf8_is_400_naming_the_parameter(
    client: httpx.AsyncClient, app: GatewayApp
) -> None:
    body = {"value": {"type": "text", "data": "v"}}
    for _ in range(2):  # never remembered: the second request is checked again
        response = await client.post("/v2/topics/a%FFb/records", json=body)
        assert response.status_code == 400
        assert response.json() == {
            "error_code": 400,
            "message": "path parameter topic_name is not valid UTF-8 once percent-decoded",
        }
    assert not any("\ufffd" in path for _, path in app._dispatch)
    # U+FFFD itself, sent as UTF-8, is a character like any other.
    response = await client.get("/subjects/a%EF%BF%BDb/versions")
    assert response.status_code == 404, response.text
    assert response.json()["message"] == "Subject 'a\ufffdb' not found."


async def test_a_query_that_is_not_utf8_is_400_naming_the_parameter(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/subjects?offset=%FF")
    assert response.status_code == 400
    assert response.json() == {
        "error_code": 400,
        "message": "query parameter 'offset' is not valid UTF-8 once percent-decoded",
    }


async def _call_cancelled(app: GatewayApp, path: str, message: str) -> list[dict[str, object]]:
    """Serve ``GET path`` (a long poll) directly, cancel it with ``message`` once it waits;
    the messages the app sent."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
    }
    sent: list[dict[str, object]] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, object]:
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # then nothing: the client stays
        raise AssertionError("unreachable")

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    task = asyncio.ensure_future(app(scope, receive, send))
    await asyncio.sleep(0.1)
    assert not task.done()  # waiting on the log
    task.cancel(msg=message)
    await asyncio.wait([task])
    if task.cancelled():
        raise asyncio.CancelledError
    task.result()
    return sent


async def test_a_request_the_graceful_shutdown_cuts_short_is_answered_in_its_dialect(
    client: httpx.AsyncClient, app: GatewayApp
) -> None:
    instance = await client.post("/ce/consumers", params={"group": "g"})
    assert instance.status_code == 201
    path = httpx.URL(instance.headers["location"]).path + "/events"
    start, body = await _call_cancelled(app, path, STOPPED)
    assert start["status"] == 408
    assert isinstance(body["body"], bytes)
    error = json.loads(body["body"])
    assert (error["status"], error["error"]) == (408, "stopped_mid_request")
    # Any other cancellation goes on: the server (or the client leaving) cancelled it.
    with pytest.raises(asyncio.CancelledError):
        await _call_cancelled(app, path, "something else")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v2/topics/t/records", {"error_code": 408, "message": "late"}),
        ("/ce/produce/event", {"status": 408, "error": "request_timeout", "message": "late"}),
        ("/v2/top", {"error_code": 408, "message": "late"}),  # as much as has arrived
        ("/nowhere", {"error": "request_timeout", "message": "late"}),
        (None, {"error": "request_timeout", "message": "late"}),
    ],
)
def test_the_servers_own_answers_are_in_the_paths_dialect(
    app: GatewayApp, path: str | None, body: dict[str, object]
) -> None:
    status, headers, content = app.error_answer(path, RequestTimeout("late"))
    assert (status, json.loads(content)) == (408, body)
    assert (b"content-type", b"application/json") in headers


def test_the_servers_own_answers_keep_the_dialects_headers(app: GatewayApp) -> None:
    _, headers, _ = app.error_answer("/console/app.js", HeadersTooLarge("too large"))
    assert (b"x-content-type-options", b"nosniff") in headers  # the console's own
