"""Topics v1 developer API in-process: every endpoint, its errors, and the schema registry
seen through the Confluent-compatible API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from sluicegate.core.gateway import Gateway
from sluicegate.core.records import TopicPartition
from sluicegate.core.topics import TopicSpec
from tests.conftest import commit_markers

TOPICS = "/api/event_streams/topics"
ORDER = [
    {"name": "id", "type": "integer", "label": "Order id"},
    {"name": "note", "optional": True, "control_type": "text-area"},
]


async def create(client: httpx.AsyncClient, name: str = "orders", **body: Any) -> dict[str, Any]:
    response = await client.post(TOPICS, json={"name": name, "schema": ORDER, **body})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def versions(client: httpx.AsyncClient, subject: str) -> httpx.Response:
    return await client.get(f"/subjects/{subject}/versions")


def error(response: httpx.Response, status: int, code: str) -> str:
    """The message of a topics v1 error with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message", "code"}, body
    assert body["code"] == code, body
    message: str = body["message"]
    return message


# -- create and get ------------------------------------------------------------------


async def test_create_registers_the_schema_as_version_1_of_the_value_subject(
    client: httpx.AsyncClient,
) -> None:
    topic = await create(client, description="Orders from the shop")
    assert topic["name"] == "orders"
    assert topic["description"] == "Orders from the shop"
    assert topic["retention"] == 604_800
    assert topic["partitions"] == 1
    assert topic["schema"] == ORDER  # as given, UI attributes and all
    assert topic["schema_subject"] == "orders-value"
    assert topic["schema_version"] == 1
    assert (await versions(client, "orders-value")).json() == [1]
    registered = (await client.get("/subjects/orders-value/versions/1")).json()
    assert registered["id"] == topic["schema_id"]
    assert registered["schemaType"] == "JSON"
    assert json.loads(registered["schema"])["required"] == ["id"]
    level = await client.get("/config/orders-value")
    assert level.json() == {"compatibilityLevel": "NONE"}
    fetched = await client.get(f"{TOPICS}/{topic['id']}")
    assert fetched.json() == {"data": topic}


async def test_create_takes_a_json_schema_retention_and_partitions(
    client: httpx.AsyncClient,
) -> None:
    document = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    topic = await create(client, "counts", schema=document, retention=90.5, partitions=3)
    assert topic["schema"] == document
    assert topic["retention"] == 90.5
    assert topic["partitions"] == 3
    registered = (await client.get("/subjects/counts-value/versions/latest")).json()
    assert json.loads(registered["schema"]) == document
    forever = await create(client, "forever", retention=None, description=None)
    assert (forever["retention"], forever["description"]) == (None, "")


async def test_create_ignores_unknown_fields(client: httpx.AsyncClient) -> None:
    # Clients written for Workato's API send folder_id.
    topic = await create(client, folder_id=12)
    assert "folder_id" not in topic


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"schema": ORDER}, None, "missing required field `name`"),
        ({"name": "orders"}, None, "missing required field `schema`"),
        ({"name": 5, "schema": ORDER}, "name", "Expected `str`, got `int`"),
        ({"name": "has space", "schema": ORDER}, None, "invalid topic name 'has space'"),
        ({"name": "orders", "schema": "id:int"}, "schema", "expected a list of Workato field"),
        ({"name": "o", "schema": [{"name": "a", "type": "int"}]}, "schema[0].type", "'int'"),
        ({"name": "o", "schema": ORDER, "retention": 0}, "retention", "between 1 and"),
        ({"name": "o", "schema": ORDER, "retention": "1d"}, "retention", "Expected `float"),
        ({"name": "o", "schema": ORDER, "description": "x" * 1025}, "description", "1024"),
        ({"name": "o", "schema": ORDER, "partitions": 0}, "partitions", "between 1 and"),
    ],
)
async def test_create_refuses_bad_bodies_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str | None, says: str
) -> None:
    response = await client.post(TOPICS, json=body)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert says in message
    if field is not None:
        assert field in message
    assert (await client.get(TOPICS)).json()["count"] == 0  # nothing half-made


async def test_create_refuses_what_is_not_json(client: httpx.AsyncClient) -> None:
    message = error(await client.post(TOPICS, content=b"{nope"), 400, "bad_request")
    assert "not valid JSON" in message
    form = await client.post(TOPICS, data={"name": "orders"})
    assert "application/x-www-form-urlencoded" in error(form, 415, "unsupported_media_type")


async def test_a_body_over_1_mb_is_413(client: httpx.AsyncClient) -> None:
    big = json.dumps({"name": "o", "schema": ORDER, "description": "x" * (1024 * 1024)})
    response = await client.post(TOPICS, content=big, headers={"content-type": "application/json"})
    assert "1048576" in error(response, 413, "payload_too_large")


async def test_a_taken_name_is_409(client: httpx.AsyncClient) -> None:
    await create(client)
    response = await client.post(TOPICS, json={"name": "orders", "schema": []})
    assert "already exists" in error(response, 409, "topic_exists")
    # The losing request registered nothing.
    assert (await versions(client, "orders-value")).json() == [1]


async def test_unknown_and_malformed_ids(client: httpx.AsyncClient) -> None:
    assert "no topic with id 99" in error(await client.get(f"{TOPICS}/99"), 404, "unknown_topic")
    for bad in ("abc", "0", "-1", "1.5", "9" * 20):
        response = await client.get(f"{TOPICS}/{bad}")
        assert "topic_id" in error(response, 400, "bad_request")


async def test_internal_topics_have_no_id_here(client: httpx.AsyncClient, gateway: Gateway) -> None:
    internal = await gateway.log.list_topics(include_internal=True)
    assert internal, "the gateway keeps its state in internal topics"
    for topic in internal:
        assert (await client.get(f"{TOPICS}/{topic.id}")).status_code == 404
    assert (await client.get(TOPICS)).json()["data"] == []


# -- update --------------------------------------------------------------------------


async def test_a_narrowing_schema_change_is_a_new_version(client: httpx.AsyncClient) -> None:
    topic = await create(client)
    narrower = [{"name": "id", "type": "integer"}, {"name": "note"}]  # note now required
    response = await client.put(f"{TOPICS}/{topic['id']}", json={"schema": narrower})
    assert response.status_code == 200, response.text
    changed = response.json()["data"]
    assert changed["schema"] == narrower
    assert changed["schema_version"] == 2
    assert changed["schema_id"] != topic["schema_id"]
    assert (await versions(client, "orders-value")).json() == [1, 2]
    # The old version stays readable: messages written under it still resolve.
    old = (await client.get("/subjects/orders-value/versions/1")).json()
    assert old["id"] == topic["schema_id"]


async def test_an_unchanged_schema_makes_no_version(client: httpx.AsyncClient) -> None:
    topic = await create(client)
    relabelled = [{**ORDER[0], "label": "Number"}, ORDER[1]]
    response = await client.put(f"{TOPICS}/{topic['id']}", json={"schema": relabelled})
    changed = response.json()["data"]
    assert changed["schema"] == relabelled  # the labels as given now
    assert changed["schema_version"] == 1  # but the same constraints
    assert (await versions(client, "orders-value")).json() == [1]


async def test_going_back_to_an_earlier_schema_makes_it_the_topics_again(
    client: httpx.AsyncClient,
) -> None:
    first = [{"name": "a", "type": "integer"}]
    second = [{"name": "b", "type": "string"}]
    topic = await create(client, "revert", schema=first)
    url = f"{TOPICS}/{topic['id']}"
    assert (await client.put(url, json={"schema": second})).json()["data"]["schema_version"] == 2
    back = (await client.put(url, json={"schema": first})).json()["data"]
    assert (back["schema"], back["schema_version"]) == (first, 3)
    assert back["schema_id"] == topic["schema_id"]  # the same schema, as a new version
    assert (await versions(client, "revert-value")).json() == [1, 2, 3]
    publish = f"/api/v1/topics/{topic['id']}/publish"
    assert (await client.post(publish, json={"a": 1})).status_code == 200
    assert (await client.post(publish, json={"b": "x"})).status_code == 400
    # The same schema again changes nothing.
    again = (await client.put(url, json={"schema": first})).json()["data"]
    assert again["schema_version"] == 3


async def test_a_refused_update_leaves_the_schema_as_it_was(client: httpx.AsyncClient) -> None:
    topic = await create(client, partitions=3)
    url = f"{TOPICS}/{topic['id']}"
    other = [{"name": "zz"}]
    fewer = await client.put(url, json={"schema": other, "partitions": 2})
    assert "only grow" in error(fewer, 400, "bad_request")
    bad_retention = await client.put(url, json={"schema": other, "retention": -5})
    assert bad_retention.status_code == 400
    assert (await versions(client, "orders-value")).json() == [1]
    assert (await client.get(url)).json() == {"data": topic}
    publish = f"/api/v1/topics/{topic['id']}/publish"
    assert (await client.post(publish, json={"id": 1})).status_code == 200


async def test_update_description_and_retention_only(client: httpx.AsyncClient) -> None:
    topic = await create(client)
    response = await client.put(
        f"{TOPICS}/{topic['id']}", json={"description": "now", "retention": 3600, "name": "orders"}
    )
    changed = response.json()["data"]
    assert changed["description"] == "now"
    assert changed["retention"] == 3600
    assert changed["schema"] == ORDER
    assert changed["updated_at"] > topic["updated_at"]
    assert changed["created_at"] == topic["created_at"]
    forever = await client.put(f"{TOPICS}/{topic['id']}", json={"retention": None})
    assert forever.json()["data"]["retention"] is None
    unchanged = await client.put(f"{TOPICS}/{topic['id']}", json={})
    assert unchanged.json()["data"]["description"] == "now"
    cleared = await client.put(f"{TOPICS}/{topic['id']}", json={"description": None})
    assert cleared.json()["data"]["description"] == ""


async def test_update_grows_partitions_as_create_sets_them(client: httpx.AsyncClient) -> None:
    topic = await create(client)
    url = f"{TOPICS}/{topic['id']}"
    grown = await client.put(url, json={"partitions": 3})
    assert grown.json()["data"]["partitions"] == 3
    assert (await client.get(url)).json()["data"]["partitions"] == 3
    fewer = await client.put(url, json={"partitions": 2})
    assert "only grow" in error(fewer, 400, "bad_request")
    assert (await client.put(url, json={"partitions": "4"})).status_code == 400
    assert (await client.get(url)).json()["data"]["partitions"] == 3


async def test_update_errors(client: httpx.AsyncClient) -> None:
    topic = await create(client)
    url = f"{TOPICS}/{topic['id']}"
    renamed = await client.put(url, json={"name": "purchases"})
    assert "cannot be renamed" in error(renamed, 400, "bad_request")
    bad_schema = await client.put(url, json={"schema": [{"name": "a", "optional": 1}]})
    assert "schema[0].optional" in error(bad_schema, 400, "invalid_schema")
    assert (await client.put(url, json={"retention": -5})).status_code == 400
    assert (await client.put(url, content=b"[1")).status_code == 400
    text = await client.put(url, content=b"{}", headers={"content-type": "text/plain"})
    assert text.status_code == 415
    assert (await client.put(f"{TOPICS}/12345", json={})).status_code == 404
    # Nothing of the refused requests stuck.
    assert (await client.get(url)).json() == {"data": topic}


async def test_a_stricter_level_set_by_an_operator_is_honoured(client: httpx.AsyncClient) -> None:
    topic = await create(client)
    await client.put("/config/orders-value", json={"compatibility": "BACKWARD"})
    narrower = [{"name": "id", "type": "integer"}, {"name": "note"}]
    response = await client.put(f"{TOPICS}/{topic['id']}", json={"schema": narrower})
    assert "incompatible" in error(response, 409, "incompatible_schema")
    assert (await client.get(f"{TOPICS}/{topic['id']}")).json()["data"]["schema"] == ORDER


async def test_a_schema_changed_through_the_registry_shows_as_json_schema(
    client: httpx.AsyncClient,
) -> None:
    topic = await create(client)
    document = {"type": "object", "properties": {"id": {"type": "string"}}}
    registered = await client.post(
        "/subjects/orders-value/versions",
        json={"schema": json.dumps(document), "schemaType": "JSON"},
    )
    assert registered.status_code == 200, registered.text
    shown = (await client.get(f"{TOPICS}/{topic['id']}")).json()["data"]
    assert shown["schema"] == document
    assert shown["schema_version"] == 2
    await client.delete("/subjects/orders-value")
    gone = (await client.get(f"{TOPICS}/{topic['id']}")).json()["data"]
    assert gone["schema"] is None
    assert gone["schema_id"] is None


# -- purge and delete ----------------------------------------------------------------


async def produce(gateway: Gateway, topic: str, count: int) -> None:
    producer = gateway.producer
    target = await producer.topic(topic)
    await producer.send([producer.record(target, None, b'{"id": 1}') for _ in range(count)])


async def test_purge_removes_every_message_and_keeps_topic_and_schema(
    client: httpx.AsyncClient, gateway: Gateway, backend: str
) -> None:
    topic = await create(client)
    await produce(gateway, "orders", 5)
    response = await client.put(f"{TOPICS}/{topic['id']}/purge")
    assert response.json() == {"data": {"success": True}}
    marks = await gateway.log.watermarks(TopicPartition("orders", 0))
    end = 5 + commit_markers(backend)
    assert (marks.low, marks.high) == (end, end)  # nothing left; offsets go on counting
    assert (await client.get(f"{TOPICS}/{topic['id']}")).json() == {"data": topic}
    assert (await versions(client, "orders-value")).json() == [1]
    assert (await client.put(f"{TOPICS}/77/purge")).status_code == 404


async def test_delete_removes_topic_messages_and_subject(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    topic = await create(client)
    await produce(gateway, "orders", 3)
    response = await client.delete(f"{TOPICS}/{topic['id']}")
    assert response.json() == {"data": {"success": True}}
    assert (await client.get(f"{TOPICS}/{topic['id']}")).status_code == 404
    assert (await versions(client, "orders-value")).status_code == 404
    assert (await client.get("/subjects", params={"deleted": "true"})).json() == []
    assert (await client.get("/config/orders-value")).status_code == 404
    # The schema id went with the subject, as after any permanent delete.
    assert (await client.get(f"/schemas/ids/{topic['schema_id']}")).status_code == 404
    again = await create(client)
    assert again["id"] != topic["id"]  # ids are never reused
    assert again["schema_version"] == 1
    assert again["schema_id"] == topic["schema_id"]  # the same schema, its id again
    assert (await gateway.log.watermarks(TopicPartition("orders", 0))).high == 0
    assert (await client.delete(f"{TOPICS}/{topic['id']}")).status_code == 404


async def test_delete_refuses_a_schema_other_schemas_reference(client: httpx.AsyncClient) -> None:
    topic = await create(client)
    referencing = {"type": "object", "properties": {"order": {"$ref": "order.json"}}}
    registered = await client.post(
        "/subjects/invoices-value/versions",
        json={
            "schema": json.dumps(referencing),
            "schemaType": "JSON",
            "references": [{"name": "order.json", "subject": "orders-value", "version": 1}],
        },
    )
    assert registered.status_code == 200, registered.text
    response = await client.delete(f"{TOPICS}/{topic['id']}")
    assert "referenced by schema ids" in error(response, 409, "conflict")
    assert (await client.get(f"{TOPICS}/{topic['id']}")).status_code == 200
    assert (await versions(client, "orders-value")).json() == [1]


async def test_topics_made_elsewhere_are_managed_here_too(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    made = await gateway.topics.create(TopicSpec(name="legacy", partitions=8))
    shown = (await client.get(f"{TOPICS}/{made.id}")).json()["data"]
    assert shown["schema"] is None
    assert shown["description"] == ""
    assert shown["partitions"] == 8
    assert shown["retention"] is None
    response = await client.put(f"{TOPICS}/{made.id}", json={"schema": ORDER})
    assert response.json()["data"]["schema"] == ORDER
    assert (await client.delete(f"{TOPICS}/{made.id}")).status_code == 200


async def test_a_topic_made_elsewhere_keeps_its_subjects_level(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    made = await gateway.topics.create(TopicSpec(name="payments"))
    await gateway.schemas.register("payments-value", json.dumps("string"), "AVRO")
    response = await client.put(f"{TOPICS}/{made.id}", json={"schema": ORDER})
    assert "SCHEMA_TYPE_CHANGED" in error(response, 409, "incompatible_schema")
    assert (await versions(client, "payments-value")).json() == [1]


async def test_a_failed_registration_leaves_no_topic(
    client: httpx.AsyncClient, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("registry broke")

    monkeypatch.setattr(gateway.schemas, "register", refuse)
    response = await client.post(TOPICS, json={"name": "orders", "schema": ORDER})
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error"
    assert len(body["incident_id"]) == 16
    assert "registry broke" not in response.text
    assert await gateway.log.list_topics() == []
    assert "orders-value" not in gateway.schemas.subjects(deleted=True)


async def test_storage_unavailable_is_503(client: httpx.AsyncClient, gateway: Gateway) -> None:
    topic = await create(client)
    await gateway.log.close()
    response = await client.put(f"{TOPICS}/{topic['id']}/purge")
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]
    assert response.json()["code"] in ("shutting_down", "storage_unavailable")


# -- the list ------------------------------------------------------------------------


async def test_list_filters_sorts_and_pages(client: httpx.AsyncClient) -> None:
    names = ["orders.eu", "orders.us", "invoices", "orders.asia", "refunds"]
    made = {name: await create(client, name) for name in names}
    await client.put(f"{TOPICS}/{made['invoices']['id']}", json={"description": "touched"})

    async def listed(**params: Any) -> dict[str, Any]:
        response = await client.get(TOPICS, params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    default = await listed()
    assert [t["name"] for t in default["data"]] == names  # by id
    assert default["count"] == 5
    assert "schema" not in default["data"][0]
    assert [t["name"] for t in (await listed(sort="-id"))["data"]] == names[::-1]
    assert [t["name"] for t in (await listed(sort="name"))["data"]] == sorted(names)
    assert [t["name"] for t in (await listed(sort="-name"))["data"]] == sorted(names)[::-1]
    assert (await listed(sort="activity"))["data"][0]["name"] == "invoices"
    assert (await listed(sort="-activity"))["data"][0]["name"] == "orders.eu"
    assert (await listed(sort="updated_at"))["data"][-1]["name"] == "invoices"
    assert [t["name"] for t in (await listed(sort="created_at"))["data"]] == names

    filtered = await listed(name="orders.", sort="name", per_page=2, page=2)
    assert filtered["count"] == 3
    assert [t["name"] for t in filtered["data"]] == ["orders.us"]
    assert (await listed(name="Orders"))["count"] == 0  # case-sensitive
    assert (await listed(page=9))["data"] == []
    with_schema = await listed(include_schema="true", name="refunds")
    assert with_schema["data"][0]["schema"] == ORDER


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "size"}, "sort"),
        ({"sort": "--id"}, "sort"),
        ({"sort": ""}, "sort"),
        ({"include_schema": "yes"}, "include_schema"),
        ({"page": "0"}, "page"),
        ({"page": "one"}, "page"),
        ({"per_page": "101"}, "per_page"),
        ({"per_page": "-1"}, "per_page"),
    ],
)
async def test_list_refuses_bad_parameters(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    message = error(await client.get(TOPICS, params=params), 400, "bad_request")
    assert message.startswith(f"{field}: ")


async def test_only_listed_methods_are_routed(client: httpx.AsyncClient) -> None:
    response = await client.patch(f"{TOPICS}/1")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
