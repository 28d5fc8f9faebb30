"""The clients and keys admin API, in-process, behind a real Authenticator and SQLite log."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sluicegate.config import AuthSettings, ClientSettings, Settings
from sluicegate.core.auth.authenticator import Authenticator
from sluicegate.core.auth.clients import ClientStore
from sluicegate.core.auth.principals import Permissions
from sluicegate.dialects.admin.routes import routes
from sluicegate.errors import SluicegateError
from sluicegate.http.request import Request
from sluicegate.http.router import Router
from sluicegate.http.types import ASGIApp, Receive, Scope, Send
from sluicegate.storage.base import running
from sluicegate.storage.factory import open_log


def make_app(store: ClientStore, authenticator: Authenticator) -> ASGIApp:
    """What the gateway app does around an authenticated route, reduced to the admin API."""
    router = Router(routes(store))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, {})
        try:
            route, request.path_params = router.match(scope["method"], scope["path"])
            request.principal = authenticator.authenticate(request.header("authorization"))
            response = await route.endpoint(request)
        except SluicegateError as exc:
            response = route.render_error(exc, request)
        await response(send)

    return app


class Env:
    def __init__(self, store: ClientStore, http: httpx.AsyncClient, admin_key: str) -> None:
        self.store = store
        self.http = http
        self.admin = {"authorization": f"Bearer {admin_key}"}


@pytest.fixture
async def env(stored_settings: Settings) -> AsyncIterator[Env]:
    async with running(open_log(stored_settings)) as log:
        configured = [ClientSettings(name="ops", admin=["*"])]
        store = ClientStore(log, configured)
        authenticator = Authenticator(AuthSettings(clients=configured), store)
        await authenticator.load()
        admin_key = (await store.create_key("ops")).key
        transport = httpx.ASGITransport(app=make_app(store, authenticator))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            yield Env(store, http, admin_key)


async def test_client_lifecycle(env: Env) -> None:
    body = {"name": "orders-app", "produce": ["orders.*"], "ce_sources": ["urn:shop"]}
    response = await env.http.post("/admin/v1/clients", json=body, headers=env.admin)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "orders-app"
    assert created["origin"] == "api"
    assert created["produce"] == ["orders.*"]
    assert created["consume"] == []
    assert created["created_at"].endswith("Z")
    assert created["active_keys"] == 0

    listed = (await env.http.get("/admin/v1/clients", headers=env.admin)).json()
    assert [c["name"] for c in listed] == ["ops", "orders-app"]
    assert listed[0]["origin"] == "config"
    assert listed[0]["created_at"] is None

    update = {"consume": ["orders.*"], "certificate_subjects": ["orders.example.com"]}
    response = await env.http.put("/admin/v1/clients/orders-app", json=update, headers=env.admin)
    assert response.status_code == 200
    shown = (await env.http.get("/admin/v1/clients/orders-app", headers=env.admin)).json()
    assert shown["produce"] == []
    assert shown["consume"] == ["orders.*"]
    assert shown["certificate_subjects"] == ["orders.example.com"]

    response = await env.http.delete("/admin/v1/clients/orders-app", headers=env.admin)
    assert response.status_code == 204
    assert response.content == b""
    response = await env.http.get("/admin/v1/clients/orders-app", headers=env.admin)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "no client named 'orders-app'"}


async def test_keys_are_shown_once_and_work_at_once(env: Env) -> None:
    await env.http.post("/admin/v1/clients", json={"name": "app"}, headers=env.admin)
    response = await env.http.post("/admin/v1/clients/app/keys", headers=env.admin)
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    assert created["key"].startswith("sg_")
    assert created["status"] == "active"
    assert created["prefix"] == created["key"][:9]
    assert created["expires_at"] is None

    as_app = {"authorization": f"Bearer {created['key']}"}
    response = await env.http.get("/admin/v1/clients", headers=as_app)
    assert response.status_code == 403
    assert response.json()["message"] == (
        "client 'app' needs the admin permission on '*' for this operation"
    )

    listed = (await env.http.get("/admin/v1/clients/app/keys", headers=env.admin)).json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert "hash" not in listed[0]
    assert created["key"] not in str(listed)

    response = await env.http.delete(
        f"/admin/v1/clients/app/keys/{created['id']}", headers=env.admin
    )
    assert response.status_code == 204
    response = await env.http.get("/admin/v1/clients", headers=as_app)
    assert response.status_code == 401
    listed = (await env.http.get("/admin/v1/clients/app/keys", headers=env.admin)).json()
    assert listed[0]["status"] == "revoked"
    assert listed[0]["revoked_at"] is not None
    shown = (await env.http.get("/admin/v1/clients/app", headers=env.admin)).json()
    assert shown["active_keys"] == 0


async def test_key_expiry(env: Env) -> None:
    await env.http.post("/admin/v1/clients", json={"name": "app"}, headers=env.admin)
    url = "/admin/v1/clients/app/keys"
    soon = (await env.http.post(url, json={"expires_in": 3600}, headers=env.admin)).json()
    expected = time.time() + 3600
    assert soon["expires_at"] is not None
    at = await env.http.post(url, json={"expires_at": "2999-01-01T00:00:00Z"}, headers=env.admin)
    assert at.json()["expires_at"] == "2999-01-01T00:00:00.000000Z"
    record = env.store.keys("app")[0]
    assert record.expires_at == pytest.approx(expected, abs=5)
    for bad, message in [
        ({"expires_in": 1, "expires_at": "2999-01-01T00:00:00Z"}, "not both"),
        ({"expires_in": -5}, "positive"),
        ({"expires_at": "tomorrow"}, "RFC 3339"),
        ({"expires_at": "2000-01-01T00:00:00Z"}, "future"),
        # Past what a timestamp can show: refused, never stored to fail every listing.
        ({"expires_in": 1e300}, "ending by 9999-12-31"),
        ({"expires_in": 18446744073709551616}, "ending by 9999-12-31"),
    ]:
        response = await env.http.post(url, json=bad, headers=env.admin)
        assert response.status_code == 400, bad
        assert message in response.json()["message"]
    assert (await env.http.get(url, headers=env.admin)).status_code == 200


async def test_another_clients_key_is_not_found(env: Env) -> None:
    for name in ("a", "b"):
        await env.http.post("/admin/v1/clients", json={"name": name}, headers=env.admin)
    key_of_a = (await env.http.post("/admin/v1/clients/a/keys", headers=env.admin)).json()
    response = await env.http.delete(
        f"/admin/v1/clients/b/keys/{key_of_a['id']}", headers=env.admin
    )
    assert response.status_code == 404
    assert response.json()["message"] == f"client 'b' has no key {key_of_a['id']!r}"


async def _walk(env: Env, path: str, limit: int) -> list[list[str]]:
    """The names (or key ids) on each page, following ``Link: rel="next"``."""
    pages: list[list[str]] = []
    url: str | None = f"{path}?limit={limit}"
    while url is not None:
        response = await env.http.get(url, headers=env.admin)
        assert response.status_code == 200, response.text
        pages.append([item.get("name", item.get("id")) for item in response.json()])
        url = response.links.get("next", {}).get("url")
    return pages


async def test_clients_are_listed_a_page_at_a_time(env: Env) -> None:
    for name in ("c", "a", "b", "d"):
        await env.store.create_client(name, Permissions())
    assert await _walk(env, "/admin/v1/clients", 2) == [["a", "b"], ["c", "d"], ["ops"]]


async def test_keys_are_listed_oldest_first_a_page_at_a_time(env: Env) -> None:
    await env.store.create_client("app", Permissions())
    created = [(await env.store.create_key("app")).record.id for _ in range(5)]
    # Revoked keys stay in the list, at their place.
    await env.store.revoke_key("app", created[1])
    pages = await _walk(env, "/admin/v1/clients/app/keys", 2)
    # Oldest first; keys made in the same clock tick are in id order.
    oldest_first = [key.id for key in env.store.keys("app")]
    assert sorted(oldest_first) == sorted(created)
    assert pages == [oldest_first[:2], oldest_first[2:4], oldest_first[4:]]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "cursor=bogus", "cursor=WyJhIl0"])
async def test_bad_page_parameters_are_400(env: Env, query: str) -> None:
    # WyJhIl0 is the cursor of a client list (["a"]): a key list needs [time, id].
    response = await env.http.get(f"/admin/v1/clients/ops/keys?{query}", headers=env.admin)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert f"query parameter {query.split('=')[0]}" in response.json()["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/admin/v1/clients", {"name": "x", "bogus": 1}, 400, "unknown field `bogus`"),
        ("POST", "/admin/v1/clients", {"produce": ["a"]}, 400, "missing required field `name`"),
        ("POST", "/admin/v1/clients", {"name": "bad name"}, 400, "invalid client name"),
        ("POST", "/admin/v1/clients", {"name": "x", "consume": [" "]}, 400, "consume: "),
        ("POST", "/admin/v1/clients", {"name": "ops"}, 409, "already exists"),
        ("PUT", "/admin/v1/clients/ops", {}, 409, "defined in the config file"),
        ("DELETE", "/admin/v1/clients/ops", None, 409, "defined in the config file"),
        ("PUT", "/admin/v1/clients/nobody", {}, 404, "no client named 'nobody'"),
        ("GET", "/admin/v1/clients/nobody/keys", None, 404, "no client named 'nobody'"),
        ("POST", "/admin/v1/clients/nobody/keys", {}, 404, "no client named 'nobody'"),
        ("DELETE", "/admin/v1/clients/ops/keys/k_123", None, 404, "has no key 'k_123'"),
    ],
)
async def test_errors(
    env: Env, method: str, path: str, body: Any, status: int, message: str
) -> None:
    response = await env.http.request(method, path, json=body, headers=env.admin)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]


async def test_invalid_json(env: Env) -> None:
    response = await env.http.post(
        "/admin/v1/clients", content=b"{not json", headers={**env.admin, "content-type": "x"}
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("request body is not valid JSON")


async def test_every_route_needs_admin_on_everything(env: Env) -> None:
    await env.store.create_client("narrow", Permissions(admin=["orders.*"], produce=["*"]))
    narrow = {"authorization": f"Bearer {(await env.store.create_key('narrow')).key}"}
    calls = [
        ("GET", "/admin/v1/clients"),
        ("POST", "/admin/v1/clients"),
        ("GET", "/admin/v1/clients/ops"),
        ("PUT", "/admin/v1/clients/ops"),
        ("DELETE", "/admin/v1/clients/ops"),
        ("GET", "/admin/v1/clients/ops/keys"),
        ("POST", "/admin/v1/clients/ops/keys"),
        ("DELETE", "/admin/v1/clients/ops/keys/k_1"),
    ]
    assert {(r.path, m) for r in routes(env.store) for m in r.methods} == {
        (
            path.replace("/ops/keys/k_1", "/{name}/keys/{key_id}")
            .replace("/ops/keys", "/{name}/keys")
            .replace("/ops", "/{name}"),
            method,
        )
        for method, path in calls
    }
    for method, path in calls:
        response = await env.http.request(method, path, json={}, headers=narrow)
        assert response.status_code == 403, (method, path)
        response = await env.http.request(method, path, json={})
        assert response.status_code == 401, (method, path)
