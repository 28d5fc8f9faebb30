"""The admin API of event types' data schemas (``/admin/v1/cloudevents/types/{type}/schema``)
on both backends, through the whole app: what ``PUT`` registers is what ``GET`` shows and
what every produce form (raw, structured, batch) is checked against (422 listing each
violation) until ``DELETE``; a document that is no usable JSON Schema is refused; only an
admin on ``*`` may use it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings import http as sdk_http

from sluicegate.core.auth.principals import Permissions
from sluicegate.core.cloudevents.schemas import DRAFT7, DRAFT2020
from sluicegate.core.gateway import Gateway
from tests.dialects.cloudevents.conftest import key_for, stored
from tests.dialects.cloudevents.test_produce import (
    JSON,
    TOPIC,
    batch_body,
    error,
    post_batch,
    post_binary,
    sdk_event,
)

URL = "/admin/v1/cloudevents/types/Order.Created/schema"

ORDER = {
    "type": "object",
    "properties": {"total": {"type": "number"}, "currency": {"type": "string"}},
    "required": ["total", "currency"],
}
GOOD = {"total": 3, "currency": "EUR"}
#: Breaks ORDER twice: ``total`` is no number, ``currency`` is missing.
BAD = {"total": "3"}
BAD_VIOLATIONS = [
    {"pointer": "/total", "reason": '"3" is not of type "number"'},
    {"pointer": "", "reason": '"currency" is a required property'},
]


@pytest.fixture
async def operator(gateway: Gateway) -> dict[str, str]:
    return await key_for(gateway, "ops", Permissions(admin=["*"]))


async def put_schema(
    client: httpx.AsyncClient, auth: dict[str, str], schema: Any, url: str = URL
) -> httpx.Response:
    body = schema if isinstance(schema, bytes) else json.dumps(schema).encode()
    return await client.put(url, content=body, headers={"content-type": "application/json", **auth})


async def post_structured(
    client: httpx.AsyncClient, event_id: str, data: Any, auth: dict[str, str]
) -> httpx.Response:
    message = sdk_http.to_structured(sdk_event(event_id, data=data), JSON)
    return await client.post(
        "/ce/produce/event", content=message.body, headers={**message.headers, **auth}
    )


def plain(response: httpx.Response, status: int) -> dict[str, Any]:
    """The admin API's error body, ``{"error", "message"}``, of a ``status`` answer."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message"}, body
    return body


def unprocessable(response: httpx.Response, index: int | None = None) -> dict[str, Any]:
    """The 422 of BAD, asserted whole but for the order of the violations."""
    body = error(response, 422)
    listed = sorted(BAD_VIOLATIONS, key=lambda v: v["pointer"])
    assert sorted(body.pop("violations"), key=lambda v: v["pointer"]) == listed
    prefix = "" if index is None else f"events[{index}]: "
    message = body.pop("message")
    assert message.startswith(
        f"{prefix}the data does not satisfy the schema of type 'Order.Created': "
    )
    for violation in BAD_VIOLATIONS:
        assert f"{violation['pointer'] or '/'}: {violation['reason']}" in message
    expected: dict[str, Any] = {"status": 422, "error": "unprocessable", "attribute": "data"}
    if index is not None:
        expected["index"] = index
    assert body == expected
    return body


async def stored_ids(gateway: Gateway) -> list[str]:
    return sorted(dict(r.headers)["ce_id"].decode() for r in await stored(gateway, TOPIC))


async def test_put_get_and_every_produce_form_checked_until_delete(
    client: httpx.AsyncClient,
    gateway: Gateway,
    operator: dict[str, str],
    producer: dict[str, str],
) -> None:
    # Before any schema: GET is 404, and the invalid data of later is accepted.
    body = plain(await client.get(URL, headers=operator), 404)
    assert body == {
        "error": "not_found",
        "message": "event type 'Order.Created' has no data schema",
    }
    assert (await post_binary(client, sdk_event("before", data=BAD), producer)).status_code == 202

    response = await put_schema(client, operator, ORDER)
    assert response.status_code == 200, response.text
    registered = response.json()
    assert registered["type"] == "Order.Created"
    assert registered["subject"] == "ce.type.Order.Created"
    assert registered["version"] == 1
    assert isinstance(registered["id"], int)
    # Without $schema, the draft its keywords belong to is written in (Draft 7 here).
    assert registered["schema"] == {"$schema": DRAFT7, **ORDER}
    shown = await client.get(URL, headers=operator)
    assert shown.status_code == 200, shown.text
    assert shown.json() == registered

    # Raw, structured and batch: invalid data is 422 listing each violation.
    unprocessable(await post_binary(client, sdk_event("raw-bad", data=BAD), producer))
    unprocessable(await post_structured(client, "structured-bad", BAD, producer))
    events = [sdk_event("batch-good", data=GOOD), sdk_event("batch-bad", data=BAD)]
    unprocessable(await post_batch(client, batch_body(events), producer), index=1)
    # All or nothing: the batch's valid event was not stored either.
    assert await stored_ids(gateway) == ["before"]

    # Valid data: 202 in every form.
    assert (await post_binary(client, sdk_event("raw-ok", data=GOOD), producer)).status_code == 202
    assert (await post_structured(client, "structured-ok", GOOD, producer)).status_code == 202
    events = [sdk_event(f"batch-ok-{n}", data=GOOD) for n in range(2)]
    assert (await post_batch(client, batch_body(events), producer)).status_code == 202
    assert await stored_ids(gateway) == [
        "batch-ok-0",
        "batch-ok-1",
        "before",
        "raw-ok",
        "structured-ok",
    ]

    deleted = await client.delete(URL, headers=operator)
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    plain(await client.get(URL, headers=operator), 404)
    body = plain(await client.delete(URL, headers=operator), 404)
    assert body["message"] == "event type 'Order.Created' has no data schema"

    # The data refused before is accepted now, in every form, and stored (the refused
    # events' ids were not remembered: the same ids are stored, not answered as retries).
    assert (await post_binary(client, sdk_event("raw-bad", data=BAD), producer)).status_code == 202
    assert (await post_structured(client, "structured-bad", BAD, producer)).status_code == 202
    events = [sdk_event("batch-good", data=GOOD), sdk_event("batch-bad", data=BAD)]
    assert (await post_batch(client, batch_body(events), producer)).status_code == 202
    assert await stored_ids(gateway) == [
        "batch-bad",
        "batch-good",
        "batch-ok-0",
        "batch-ok-1",
        "before",
        "raw-bad",
        "raw-ok",
        "structured-bad",
        "structured-ok",
    ]


async def test_a_new_schema_is_a_new_version_and_applies_at_once(
    client: httpx.AsyncClient, operator: dict[str, str], producer: dict[str, str]
) -> None:
    first = (await put_schema(client, operator, ORDER)).json()
    again = await put_schema(client, operator, ORDER)
    assert again.status_code == 200, again.text
    assert again.json() == first  # the same schema: no new version
    # 2020-12 by its keywords: dependentRequired applies.
    loose = {"type": "object", "dependentRequired": {"total": ["currency"]}}
    second = (await put_schema(client, operator, loose)).json()
    assert second["version"] == 2
    assert second["id"] != first["id"]
    assert second["schema"] == {"$schema": DRAFT2020, **loose}
    assert (await client.get(URL, headers=operator)).json() == second
    # {"total": "3"} breaks only dependentRequired now; {} breaks nothing.
    body = error(await post_binary(client, sdk_event("b", data=BAD), producer), 422)
    assert [v["pointer"] for v in body["violations"]] == [""]
    assert "currency" in body["violations"][0]["reason"]
    assert (await post_binary(client, sdk_event("ok", data={}), producer)).status_code == 202
    # DELETE removes every version.
    assert (await client.delete(URL, headers=operator)).status_code == 204
    plain(await client.get(URL, headers=operator), 404)
    assert (await post_binary(client, sdk_event("b", data=BAD), producer)).status_code == 202


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"{", "Invalid JSON Schema: not valid JSON"),
        (b"[1]", "Invalid JSON Schema: expected an object or a boolean"),
        ({"type": 12}, "Invalid JSON Schema: 12 is not valid under any of the given schemas"),
        ({"required": "total"}, "Invalid JSON Schema: 'total' is not of type 'array'"),
        (
            {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"},
            "Invalid JSON Schema: $schema 'http://json-schema.org/draft-04/schema#' is not "
            "one of the drafts event data schemas may use",
        ),
        (
            # The array form of items is 2019-09's; 2020-12 has prefixItems instead.
            {"$schema": DRAFT2020, "items": [{"type": "integer"}]},
            "Invalid JSON Schema: [{'type': 'integer'}] is not of type 'object', 'boolean'",
        ),
        (
            {"properties": {"a": {"$ref": "#/definitions/missing"}}},
            "Invalid JSON Schema: unresolvable $ref '#/definitions/missing'",
        ),
    ],
    ids=["not-json", "an-array", "bad-type", "bad-required", "draft-04", "2020-array-items", "ref"],
)
async def test_an_invalid_schema_is_400_saying_why_and_changes_nothing(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    producer: dict[str, str],
    document: Any,
    reason: str,
) -> None:
    first = (await put_schema(client, operator, ORDER)).json()
    body = plain(await put_schema(client, operator, document), 400)
    assert body["error"] == "invalid_schema"
    assert body["message"].startswith(reason), body["message"]
    # Nothing registered: the schema in force is the first one, still checked.
    assert (await client.get(URL, headers=operator)).json() == first
    unprocessable(await post_binary(client, sdk_event("bad", data=BAD), producer))
    # And for a type without a schema, still none.
    other = "/admin/v1/cloudevents/types/Order.Paid/schema"
    plain(await put_schema(client, operator, document, url=other), 400)
    plain(await client.get(other, headers=operator), 404)


async def test_only_an_admin_on_everything_may_use_it(
    client: httpx.AsyncClient,
    gateway: Gateway,
    operator: dict[str, str],
    producer: dict[str, str],
) -> None:
    assert (await put_schema(client, operator, ORDER)).status_code == 200
    narrow = await key_for(gateway, "narrow", Permissions(admin=["ce.*"], produce=["*"]))
    for name, auth in (("shop", producer), ("narrow", narrow)):
        for response in (
            await put_schema(client, auth, {"type": "string"}),
            await client.get(URL, headers=auth),
            await client.delete(URL, headers=auth),
        ):
            body = plain(response, 403)
            assert body == {
                "error": "forbidden",
                "message": f"client {name!r} needs the admin permission on '*' for this operation",
            }
    for response in (
        await put_schema(client, {}, {"type": "string"}),
        await client.get(URL),
        await client.delete(URL),
    ):
        assert plain(response, 401)["error"] == "unauthenticated"
    # Nothing changed.
    shown = (await client.get(URL, headers=operator)).json()
    assert (shown["version"], shown["schema"]) == (1, {"$schema": DRAFT7, **ORDER})


async def test_a_type_holding_slashes_is_one_path_parameter(
    client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    url = "/admin/v1/cloudevents/types/com.example/orders/v2/schema"
    response = await put_schema(client, operator, {"type": "string"}, url=url)
    assert response.status_code == 200, response.text
    assert (response.json()["type"], response.json()["subject"]) == (
        "com.example/orders/v2",
        "ce.type.com.example/orders/v2",
    )
    assert (await client.get(url, headers=operator)).json() == response.json()
    plain(await client.get(URL, headers=operator), 404)
    assert (await client.delete(url, headers=operator)).status_code == 204


@pytest.mark.parametrize(
    ("draft", "accepted"),
    [
        ("http://json-schema.org/draft-06/schema#", True),  # if/then are no Draft 6 keywords
        ("http://json-schema.org/draft-07/schema#", False),
        (None, False),  # told by its keywords: Draft 7
    ],
)
async def test_the_draft_put_decides_what_produce_accepts(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    producer: dict[str, str],
    draft: str | None,
    accepted: bool,
) -> None:
    schema: dict[str, Any] = {"if": {"required": ["total"]}, "then": {"required": ["currency"]}}
    if draft is not None:
        schema = {"$schema": draft, **schema}
    response = await put_schema(client, operator, schema)
    assert response.status_code == 200, response.text
    assert response.json()["schema"]["$schema"] == (draft or DRAFT7)
    produced = await post_binary(client, sdk_event("e", data={"total": 3}), producer)
    if accepted:
        assert produced.status_code == 202, produced.text
    else:
        body = error(produced, 422)
        assert body["violations"] == [
            {"pointer": "", "reason": '"currency" is a required property'}
        ]
