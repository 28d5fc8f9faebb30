"""The app around the dialects: health, readiness, metrics, documents, unmatched routes."""

from __future__ import annotations

import httpx

from sluicegate.core.gateway import Gateway


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


async def test_unmatched_route_is_plain_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "no route for GET /nope"}


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
    assert "<script" not in response.text
    assert "http" not in response.text.split("<body>")[1].replace("/openapi/", "")
