"""Every authenticated route, every kind of credential → 401, 403, or through.

The routes come from the app itself (``build_app(...).router.routes``), so a new route
joins the matrix on its own — and fails until ``NEEDS`` says which permission it takes:
the rule is written down per route, never guessed from the answer.

Credentials, each for the client a route needs unless said otherwise:

- no credentials, an unknown key, a revoked key, an expired JWT, an ``alg: none`` JWT and
  a JWT for another audience → 401 with ``WWW-Authenticate`` (RFC 9110);
- a valid key of ``app-outsider``, who holds every permission on ``other.*`` only → 403,
  except where any valid client may (registry reads, the filtered topic list); the
  cloudevents dialect answers 401 instead, as its seed says of every authorization error;
- a valid key, and a valid JWT, of a client with exactly the permission → neither 401
  nor 403 (the filler data may still earn a 400 or 404: only authorization is judged).

One gateway serves the whole module (one event loop for the module): ~700 in-process
requests in a few seconds. The with-permission requests change its state (delete the
topic, the bystander client...), which never changes an authorization decision.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio

from sluicegate.app import build_app
from sluicegate.config import load_settings
from sluicegate.core.auth.apikeys import generate_key
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.gateway import Gateway
from sluicegate.core.topics import TopicSpec
from sluicegate.errors import UnknownTopic
from sluicegate.http.router import Route, WebSocketRoute
from sluicegate.http.types import ASGIApp
from sluicegate.storage.base import running
from sluicegate.storage.sqlite import SqliteLog
from tests.conftest import make_settings
from tests.helpers import jwt_claims, signed_jwt, unsigned_jwt

ISSUER = "https://idp.example.com"
AUDIENCE = "sluicegate"
SECRET = "matrix-shared-secret-of-at-least-32-bytes"

PUBLIC_ROUTES = {
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /openapi/",
    "GET /openapi/{name}.json",
    "GET /docs",
    # The console's page and scripts: the APIs they call are what is guarded.
    "GET /console",
    "GET /console/",
    "GET /console/{path:path}",
}


class Need(enum.Enum):
    """What a client must hold for a route to let it through."""

    ANY = "any valid client"
    PRODUCE = "produce on the topic"
    CONSUME = "consume on the topic"
    ADMIN = "admin on the topic"
    #: Any permission on the topic (Kafka's Describe, implied by Read, Write and Alter).
    DESCRIBE = "produce, consume or admin on the topic"
    ADMIN_ALL = "admin on '*'"
    #: Admin on the subject, or produce on the topic of a ``<topic>-key|value`` subject.
    SUBJECT = "write access to the subject"
    #: Admin on the subject: deleting it or its versions, its compatibility, its mode.
    SUBJECT_ADMIN = "admin on the subject"
    CE_PRODUCE = "CloudEvents sources and types to produce"
    CE_CONSUME = "CloudEvents types to consume"
    #: A CloudEvents producer or consumer (the seed's 401 for "not registered as either").
    CE_ANY = "CloudEvents sources and types to produce, or types to consume"


INSTANCE = "/{bridge}/ce/consumers/{group}/instances/{instance}"
INSTANCE_ROUTES = [
    ("GET", "/raw"),
    ("GET", "/event"),
    ("GET", "/events"),
    ("POST", "/confirm"),
    ("POST", "/dead"),
    ("DELETE", ""),
]

#: Route ("METHOD path", schema registry paths without the ``/registry`` mount) → need.
NEEDS: dict[str, Need] = {
    "POST /v2/topics/{topic_name}/records": Need.PRODUCE,
    # Topic admin. The list needs nothing: it shows only the topics the client administers.
    "GET /admin/v1/topics": Need.ANY,
    "POST /admin/v1/topics": Need.ADMIN,
    "GET /admin/v1/topics/{name}": Need.DESCRIBE,
    "PATCH /admin/v1/topics/{name}": Need.ADMIN,
    "DELETE /admin/v1/topics/{name}": Need.ADMIN,
    "POST /admin/v1/topics/{name}/purge": Need.ADMIN,
    "GET /admin/v1/topics/{name}/records": Need.CONSUME,
    "POST /admin/v1/topics/{name}/records": Need.PRODUCE,
    "GET /admin/v1/topics/{name}/tail": Need.CONSUME,
    "GET /admin/v1/topics/{name}/browse": Need.CONSUME,
    "GET /admin/v1/topics/{name}/rates": Need.CONSUME,
    # Topics v1 developer API. The list shows the topics the client holds any permission on.
    "GET /api/event_streams/topics": Need.ANY,
    "POST /api/event_streams/topics": Need.ADMIN,
    "GET /api/event_streams/topics/{topic_id}": Need.ADMIN,
    "PUT /api/event_streams/topics/{topic_id}": Need.ADMIN,
    "DELETE /api/event_streams/topics/{topic_id}": Need.ADMIN,
    "PUT /api/event_streams/topics/{topic_id}/purge": Need.ADMIN,
    # Topics v1 public API, and its legacy paths.
    "POST /api/v1/topics/{topic_id}/publish": Need.PRODUCE,
    "POST /api/v1/batch/topics/{topic_id}/publish": Need.PRODUCE,
    "POST /api/v1/topics/{topic_id}/consume": Need.CONSUME,
    "POST /api/pubsub/topics/{topic_id}/publish": Need.PRODUCE,
    "POST /api/pubsub/topics/{topic_id}/batch/publish": Need.PRODUCE,
    "POST /api/pubsub/topics/{topic_id}/consume": Need.CONSUME,
    # Clients and keys.
    "GET /admin/v1/clients": Need.ADMIN_ALL,
    "GET /admin/v1/nodes": Need.ADMIN_ALL,
    "POST /admin/v1/clients": Need.ADMIN_ALL,
    "GET /admin/v1/clients/{name}": Need.ADMIN_ALL,
    "PUT /admin/v1/clients/{name}": Need.ADMIN_ALL,
    "DELETE /admin/v1/clients/{name}": Need.ADMIN_ALL,
    "GET /admin/v1/clients/{name}/keys": Need.ADMIN_ALL,
    "POST /admin/v1/clients/{name}/keys": Need.ADMIN_ALL,
    "DELETE /admin/v1/clients/{name}/keys/{key_id}": Need.ADMIN_ALL,
    # Schema registry: reads (lookups and compatibility tests too) by any valid client.
    "GET /schemas": Need.ANY,
    "GET /schemas/types": Need.ANY,
    "GET /schemas/ids/{id}": Need.ANY,
    "GET /schemas/ids/{id}/schema": Need.ANY,
    "GET /schemas/ids/{id}/subjects": Need.ANY,
    "GET /schemas/ids/{id}/versions": Need.ANY,
    "GET /subjects": Need.ANY,
    "POST /subjects/{subject}": Need.ANY,
    "GET /subjects/{subject}/versions": Need.ANY,
    "GET /subjects/{subject}/versions/{version}": Need.ANY,
    "GET /subjects/{subject}/versions/{version}/schema": Need.ANY,
    "GET /subjects/{subject}/versions/{version}/referencedby": Need.ANY,
    "POST /compatibility/subjects/{subject}/versions": Need.ANY,
    "POST /compatibility/subjects/{subject}/versions/{version}": Need.ANY,
    "GET /config": Need.ANY,
    "GET /config/{subject}": Need.ANY,
    "GET /mode": Need.ANY,
    "GET /mode/{subject}": Need.ANY,
    "GET /contexts": Need.ANY,
    "GET /associations/resources/{namespace}/{name}": Need.ANY,
    # Schema registry writes.
    "DELETE /subjects/{subject}": Need.SUBJECT_ADMIN,
    "POST /subjects/{subject}/versions": Need.SUBJECT,
    "DELETE /subjects/{subject}/versions/{version}": Need.SUBJECT_ADMIN,
    "PUT /config/{subject}": Need.SUBJECT_ADMIN,
    "DELETE /config/{subject}": Need.SUBJECT_ADMIN,
    "PUT /mode/{subject}": Need.SUBJECT_ADMIN,
    "PUT /config": Need.ADMIN_ALL,
    "DELETE /config": Need.ADMIN_ALL,
    "PUT /mode": Need.ADMIN_ALL,
    # CloudEvents: producers, the tools, and event types' data schemas.
    "POST /ce/produce/raw": Need.CE_PRODUCE,
    "POST /ce/produce/event": Need.CE_PRODUCE,
    "POST /ce/produce/events": Need.CE_PRODUCE,
    "GET /ce/tools/my-settings": Need.CE_ANY,
    "POST /ce/tools/consumer/test": Need.CE_CONSUME,
    "PUT /admin/v1/cloudevents/types/{type:path}/schema": Need.ADMIN_ALL,
    "GET /admin/v1/cloudevents/types/{type:path}/schema": Need.ADMIN_ALL,
    "DELETE /admin/v1/cloudevents/types/{type:path}/schema": Need.ADMIN_ALL,
    # Consumer groups' lag and health.
    "GET /admin/v1/groups": Need.ADMIN_ALL,
    "GET /admin/v1/groups/{group:path}": Need.ADMIN_ALL,
    # CloudEvents consumer instances of the node, and its metrics history (the console).
    "GET /admin/v1/consumers": Need.ADMIN_ALL,
    "GET /admin/v1/metrics/history": Need.ADMIN_ALL,
    # CloudEvents consumer instances: a consumer's own (test_consumer_instances_are_private).
    "POST /ce/consumers": Need.CE_CONSUME,
    "GET /ce/sse": Need.CE_CONSUME,
    **{f"{method} {INSTANCE}{action}": Need.CE_CONSUME for method, action in INSTANCE_ROUTES},
}

TOPIC = "orders"
SUBJECT = f"{TOPIC}-value"
OUTSIDER = "app-outsider"
BYSTANDER = "app-bystander"  # the client the client-admin routes act on
#: The client holding exactly each need (the subject rule via produce on its topic).
PERMITTED = {
    Need.ANY: "app-consumer",
    Need.PRODUCE: "app-producer",
    Need.CONSUME: "app-consumer",
    Need.ADMIN: "app-owner",
    Need.DESCRIBE: "app-consumer",
    Need.ADMIN_ALL: "app-operator",
    Need.SUBJECT: "app-producer",
    Need.SUBJECT_ADMIN: "app-subject-owner",
    Need.CE_PRODUCE: "app-ce-producer",
    Need.CE_CONSUME: "app-ce-consumer",
    Need.CE_ANY: "app-ce-consumer",
}
CLIENTS = {
    OUTSIDER: Permissions(produce=["other.*"], consume=["other.*"], admin=["other.*"]),
    "app-producer": Permissions(produce=[TOPIC]),
    "app-consumer": Permissions(consume=[TOPIC]),
    "app-owner": Permissions(admin=[TOPIC]),
    "app-operator": Permissions(admin=["*"]),
    "app-subject-owner": Permissions(admin=[SUBJECT]),
    BYSTANDER: Permissions(),
    "app-ce-producer": Permissions(ce_sources=["urn:matrix"], ce_produce_types=["Matrix.*"]),
    "app-ce-consumer": Permissions(ce_consume_types=["Matrix.*"]),
    "app-ce-neighbour": Permissions(ce_consume_types=["Matrix.*"]),
}

UNAUTHENTICATED = [
    "no_credentials",
    "bad_key",
    "revoked_key",
    "expired_jwt",
    "alg_none_jwt",
    "wrong_audience_jwt",
]
CASES = [*UNAUTHENTICATED, "without_permission", "with_permission", "jwt_with_permission"]

_SR_TYPE = "application/vnd.schemaregistry.v1+json"
_SCHEMA = {"schema": json.dumps("string")}
_EVENT = {"specversion": "1.0", "id": "m-1", "source": "urn:matrix", "type": "Matrix.Done"}
#: (content type, body) for the routes that take one; just enough to pass their decoding.
BODIES: dict[str, tuple[str, Any]] = {
    "POST /v2/topics/{topic_name}/records": (
        "application/json",
        {"value": {"type": "text", "data": "x"}},
    ),
    "POST /admin/v1/topics": ("application/json", {"name": TOPIC}),
    "PATCH /admin/v1/topics/{name}": ("application/json", {"retention_ms": 60_000}),
    "POST /admin/v1/topics/{name}/records": ("application/json", {"records": [{"value": "x"}]}),
    "POST /api/event_streams/topics": ("application/json", {"name": TOPIC, "schema": []}),
    "PUT /api/event_streams/topics/{topic_id}": ("application/json", {"description": "x"}),
    "POST /api/v1/topics/{topic_id}/publish": ("application/json", {"n": 1}),
    "POST /api/v1/batch/topics/{topic_id}/publish": ("application/json", {"payloads": [{}]}),
    "POST /api/v1/topics/{topic_id}/consume": ("application/json", {}),
    "POST /api/pubsub/topics/{topic_id}/publish": ("application/json", {"n": 1}),
    "POST /api/pubsub/topics/{topic_id}/batch/publish": ("application/json", {"payloads": [{}]}),
    "POST /api/pubsub/topics/{topic_id}/consume": ("application/json", {}),
    "POST /admin/v1/clients": ("application/json", {"name": "app-new"}),
    "PUT /admin/v1/clients/{name}": ("application/json", {"consume": [TOPIC]}),
    "POST /admin/v1/clients/{name}/keys": ("application/json", {}),
    "POST /subjects/{subject}": (_SR_TYPE, _SCHEMA),
    "POST /subjects/{subject}/versions": (_SR_TYPE, _SCHEMA),
    "POST /compatibility/subjects/{subject}/versions": (_SR_TYPE, _SCHEMA),
    "POST /compatibility/subjects/{subject}/versions/{version}": (_SR_TYPE, _SCHEMA),
    "PUT /config": (_SR_TYPE, {"compatibility": "BACKWARD"}),
    "PUT /config/{subject}": (_SR_TYPE, {"compatibility": "BACKWARD"}),
    "PUT /mode": (_SR_TYPE, {"mode": "READWRITE"}),
    "PUT /mode/{subject}": (_SR_TYPE, {"mode": "READWRITE"}),
    "POST /ce/produce/raw": ("application/json", {"n": 1}),
    "POST /ce/produce/event": ("application/cloudevents+json", _EVENT),
    "POST /ce/produce/events": ("application/cloudevents-batch+json", [_EVENT]),
    "POST /ce/tools/consumer/test": ("application/json", {"n": 1}),
    "PUT /admin/v1/cloudevents/types/{type:path}/schema": ("application/json", {}),
    f"POST {INSTANCE}/dead": ("application/json", {"n": 1}),
}

#: Query strings some routes need here: a stream ends once nothing is left to send.
QUERIES = {"GET /ce/sse": "?timeout=0", "GET /admin/v1/topics/{name}/tail": "?timeout=0"}


def app_routes() -> list[Route]:
    """The app's routes. Building the app needs a gateway but no running storage."""
    settings = load_settings(environ={}, overrides={"storage": {"data_dir": "never-opened"}})
    return build_app(Gateway(settings, SqliteLog(settings.storage.data_dir))).router.routes


def rule_key(method: str, path: str) -> str:
    return f"{method} {path.removeprefix('/registry')}"


ROUTES = [(method, route) for route in app_routes() for method in sorted(route.methods)]
MATRIX = [
    pytest.param(method, route, case, id=f"{method} {route.path}-{case}")
    for method, route in ROUTES
    if route.authenticated
    for case in CASES
]


@dataclass
class World:
    http: httpx.AsyncClient
    #: Client name → (a working key, a revoked key).
    keys: dict[str, tuple[str, str]]
    bystander_key_id: str
    gateway: Gateway
    #: The path of a consumer instance of ``app-ce-consumer``.
    instance: str

    async def topic_id(self) -> int:
        """The id of the topic, made again if a request deleted it: an id is looked up
        before permissions are checked, so a deleted topic would answer 404, not 403."""
        try:
            return (await self.gateway.topics.get(TOPIC)).id
        except UnknownTopic:
            return (await self.gateway.topics.create(TopicSpec(name=TOPIC))).id


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    jwt = {
        "algorithms": ["HS256"],
        "secret": SECRET,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "client_claim": "sub",
    }
    settings = make_settings(
        tmp_path_factory.mktemp("matrix"), auth={"jwt": jwt}, cloudevents={"poll_timeout": 0}
    )
    async with running(SqliteLog(settings.storage.data_dir)) as log:
        gateway = Gateway(settings, log)
        await gateway.start()
        # Something for the reads to find (until a with-permission request deletes it).
        await gateway.topics.create(TopicSpec(name=TOPIC))
        await gateway.schemas.get_or_register(SUBJECT, json.dumps("string"))
        store = gateway.clients
        keys: dict[str, tuple[str, str]] = {}
        for name, permissions in CLIENTS.items():
            await store.create_client(name, permissions)
            active = await store.create_key(name)
            revoked = await store.create_key(name)
            # The revoked key worked until it was revoked.
            assert gateway.auth.authenticate(f"Bearer {revoked.key}").name == name
            await store.revoke_key(name, revoked.record.id)
            keys[name] = (active.key, revoked.key)
        bystander_key_id = store.keys(BYSTANDER)[0].id
        transport = httpx.ASGITransport(app=build_app(gateway))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://sluicegate.test"
        ) as http:
            consumer = {"authorization": f"Bearer {keys['app-ce-consumer'][0]}"}
            created = await http.post("/ce/consumers", headers=consumer)
            instance = urlsplit(created.headers["location"]).path
            yield World(http, keys, bystander_key_id, gateway, instance)


def fill(path: str, key_id: str, topic_id: int, instance: str) -> str:
    """The path with its parameters filled in with names the clients' permissions mention."""
    if path.startswith(INSTANCE):
        return instance + path.removeprefix(INSTANCE)
    values = {
        "topic_name": TOPIC,
        "name": BYSTANDER if path.startswith("/admin/v1/clients/") else TOPIC,
        "key_id": key_id,
        "subject": SUBJECT,
        "version": "1",
        "id": "1",
        "namespace": "default",
        "topic_id": str(topic_id),
        "type": "Matrix.Done",
        "group": "ce/app-outsider/~default",
    }
    return re.sub(r"\{(\w+)(?::path)?\}", lambda match: values[match.group(1)], path)


def credentials(world: World, case: str, client: str) -> str | None:
    """The Authorization header of ``case``; the JWTs name ``client``, who may do it."""

    def claims(**changes: Any) -> dict[str, Any]:
        values = {"issuer": ISSUER, "audience": AUDIENCE, "subject": client, **changes}
        return jwt_claims(**values)

    active, revoked = world.keys[client]
    token: str | None = {
        "no_credentials": None,
        "bad_key": generate_key(),
        "revoked_key": revoked,
        "expired_jwt": signed_jwt(claims(lifetime=-3600), SECRET),
        "alg_none_jwt": unsigned_jwt(claims()),
        "wrong_audience_jwt": signed_jwt(claims(audience="another-service"), SECRET),
        "without_permission": world.keys[OUTSIDER][0],
        "with_permission": active,
        "jwt_with_permission": signed_jwt(claims(), SECRET),
    }[case]
    return None if token is None else f"Bearer {token}"


def test_public_routes_are_exactly_the_known_set() -> None:
    public = {f"{method} {route.path}" for method, route in ROUTES if not route.authenticated}
    assert public == PUBLIC_ROUTES


def test_every_rule_names_a_route() -> None:
    keys = {rule_key(method, route.path) for method, route in ROUTES if route.authenticated}
    assert set(NEEDS) - keys == set()
    assert set(BODIES) - keys == set()
    assert set(QUERIES) - keys == set()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("method", "route", "case"), MATRIX)
async def test_route_answers_credentials(
    world: World, method: str, route: Route, case: str
) -> None:
    key = rule_key(method, route.path)
    need = NEEDS.get(key)
    if need is None:
        pytest.fail(f"{key} has no entry in NEEDS: say which permission it takes")
    client = PERMITTED[need]
    authorization = credentials(world, case, client)
    headers = {} if authorization is None else {"authorization": authorization}
    content: bytes | None = None
    if key in BODIES:
        content_type, body = BODIES[key]
        headers["content-type"] = content_type
        content = json.dumps(body).encode()
    path = fill(route.path, world.bystander_key_id, await world.topic_id(), world.instance)
    path += QUERIES.get(key, "")
    response = await world.http.request(method, path, content=content, headers=headers)
    status, text = response.status_code, response.text

    if case in UNAUTHENTICATED:
        assert status == 401, text
        assert response.headers["www-authenticate"].startswith("Bearer")
    elif case == "without_permission" and need is not Need.ANY:
        assert status == (401 if route.dialect == "cloudevents" else 403), text
    else:
        assert status not in (401, 403), text
        assert status < 500, text
    if status in (401, 403):
        # Neither the credential presented nor any client but the caller is named.
        assert authorization is None or authorization.removeprefix("Bearer ") not in text
        caller = OUTSIDER if case == "without_permission" else None
        named = [name for name in CLIENTS if name != caller and name in text]
        assert named == [], text


@pytest.mark.asyncio(loop_scope="module")
async def test_a_producer_may_register_its_topics_schemas_but_not_loosen_or_delete_them(
    world: World,
) -> None:
    """A serializer's auto-registration is the producer's; the subject's compatibility,
    mode and versions, which its topic's consumers rely on, are the subject's admin's."""
    producer = {
        "authorization": f"Bearer {world.keys['app-producer'][0]}",
        "content-type": _SR_TYPE,
    }
    subject = f"/subjects/{SUBJECT}"
    registered = await world.http.post(
        f"{subject}/versions", json={"schema": json.dumps("string")}, headers=producer
    )
    assert registered.status_code == 200, registered.text
    for method, path, body in [
        ("PUT", f"/config/{SUBJECT}", {"compatibility": "NONE"}),
        ("DELETE", f"/config/{SUBJECT}", None),
        ("PUT", f"/mode/{SUBJECT}", {"mode": "READWRITE"}),
        ("DELETE", f"{subject}/versions/latest", None),
        ("DELETE", subject, None),
        ("DELETE", f"{subject}?permanent=true", None),
    ]:
        content = None if body is None else json.dumps(body).encode()
        answer = await world.http.request(method, path, content=content, headers=producer)
        assert answer.status_code == 403, (method, path, answer.text)
        assert "needs admin on the subject" in answer.text
    assert world.gateway.schemas.versions(SUBJECT)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_producers_inline_schema_goes_only_where_the_registry_would_let_it(
    world: World,
) -> None:
    """Records v2 registers a schema given inline under the subject its strategy names.
    ``record`` and ``topicrecord`` subjects may be spelled as another topic's: producing
    to this topic does not let a client change them, as the registry's API would not."""
    producer = {"authorization": f"Bearer {world.keys['app-producer'][0]}"}
    url = f"/v2/topics/{TOPIC}/records?serializer=confluent"

    def body(name: str, strategy: str) -> dict[str, object]:
        schema = {"type": "record", "name": name, "fields": [{"name": "n", "type": "long"}]}
        value = {"type": "avro", "schema": json.dumps(schema), "data": {"n": 1}}
        return {"value": {**value, "schema_name_strategy": strategy}}

    plain = {"value": {"type": "avro", "schema": json.dumps("string"), "data": '"s"'}}
    own = await world.http.post(url, json=plain, headers=producer)  # the topic's subject
    assert own.status_code == 200, own.text
    before = world.gateway.schemas.versions(SUBJECT)
    # "orders" + record "x": orders-x-value, the subject of a topic "orders-x".
    for name, strategy, subject in [
        ("x", "topicrecord", f"{TOPIC}-x-value"),
        ("payments", "record", "payments-value"),  # topic "payments"' subject, by name
        ("com.acme.Audit", "record", "com.acme.Audit-value"),
    ]:
        refused = await world.http.post(url, json=body(name, strategy), headers=producer)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error_code"] == 403
        assert f"may not register a schema under subject {subject!r}" in refused.text
    assert world.gateway.schemas.versions(SUBJECT) == before
    assert f"{TOPIC}-x-value" not in world.gateway.schemas.subjects()
    # Registered there by the subject's admin first: the producer's records use it.
    admin = {"authorization": f"Bearer {world.keys['app-operator'][0]}"}
    schema = body("x", "topicrecord")["value"]["schema"]  # type: ignore[index]
    registered = await world.http.post(
        f"/subjects/{TOPIC}-x-value/versions",
        json={"schema": schema},
        headers={**admin, "content-type": _SR_TYPE},
    )
    assert registered.status_code == 200, registered.text
    found = await world.http.post(url, json=body("x", "topicrecord"), headers=producer)
    assert found.status_code == 200, found.text
    assert found.json()["value"]["schema_id"] == registered.json()["id"]


@pytest.mark.asyncio(loop_scope="module")
async def test_consumer_instances_are_private(world: World) -> None:
    """Another consumer, however entitled, finds no instance of someone else's: 404, the
    answer for an instance that does not exist, so that ids cannot be probed."""
    response = await world.http.post(
        "/ce/consumers", headers={"authorization": f"Bearer {world.keys['app-ce-consumer'][0]}"}
    )
    mine = urlsplit(response.headers["location"]).path
    neighbour = {"authorization": f"Bearer {world.keys['app-ce-neighbour'][0]}"}
    for method, action in INSTANCE_ROUTES:
        answer = await world.http.request(method, mine + action, headers=neighbour)
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"] == "unknown_consumer_instance"
        assert "app-ce-consumer" not in answer.text
    owner = {"authorization": f"Bearer {world.keys['app-ce-consumer'][0]}"}
    assert (await world.http.delete(mine, headers=owner)).status_code == 204


@pytest.mark.asyncio(loop_scope="module")
async def test_the_topic_list_shows_each_client_the_topics_it_may_describe(
    world: World,
) -> None:
    """Any permission on a topic lists it (a consumer finds what it reads); none hides it."""
    await world.topic_id()
    for client, listed in [
        ("app-producer", True),
        ("app-consumer", True),
        ("app-owner", True),
        ("app-operator", True),
        (OUTSIDER, False),
    ]:
        headers = {"authorization": f"Bearer {world.keys[client][0]}"}
        response = await world.http.get("/admin/v1/topics", headers=headers)
        assert response.status_code == 200, response.text
        assert (TOPIC in [t["name"] for t in response.json()]) is listed, client


# -- WebSocket routes: the handshake, driven in-process as an ASGI websocket scope -------


def app_websockets() -> list[WebSocketRoute]:
    settings = load_settings(environ={}, overrides={"storage": {"data_dir": "never-opened"}})
    app = build_app(Gateway(settings, SqliteLog(settings.storage.data_dir)))
    return list(app.router.websockets.values())


#: What each WebSocket route needs; a new one fails until it is named here.
WEBSOCKET_NEEDS = dict.fromkeys(("/ce/ws", "/ce/", "/ce"), Need.CE_CONSUME)
WEBSOCKET_MATRIX = [
    pytest.param(route, case, id=f"WEBSOCKET {route.path}-{case}")
    for route in app_websockets()
    for case in CASES
]


async def handshake(app: ASGIApp, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """The answer to a WebSocket handshake: 101 if accepted (then the client leaves at
    once), else the HTTP status and body the app refused it with."""
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "subprotocols": ["cloudevents.json"],
        "extensions": {"websocket.http.response": {}},
    }
    incoming = [{"type": "websocket.connect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop() if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["type"] == "websocket.accept":
        return 101, b""
    assert sent[0]["type"] == "websocket.http.response.start", sent
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("route", "case"), WEBSOCKET_MATRIX)
async def test_websocket_route_answers_credentials(
    world: World, route: WebSocketRoute, case: str
) -> None:
    need = WEBSOCKET_NEEDS.get(route.path)
    if need is None:
        pytest.fail(f"WebSocket {route.path} has no entry in WEBSOCKET_NEEDS")
    authorization = credentials(world, case, PERMITTED[need])
    headers = {"host": "sluicegate.test"}
    if authorization is not None:
        headers["authorization"] = authorization
    status, body = await handshake(build_app(world.gateway), route.path, headers)
    if case in UNAUTHENTICATED or case == "without_permission":
        # Refused before the upgrade, as this dialect refuses: 401 for every failure.
        assert status == 401, body
        text = body.decode()
        assert authorization is None or authorization.removeprefix("Bearer ") not in text
        caller = OUTSIDER if case == "without_permission" else None
        assert [name for name in CLIENTS if name != caller and name in text] == [], text
    else:
        assert status == 101, body
