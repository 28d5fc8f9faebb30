"""The producer API on both backends: requests built by the CloudEvents SDK, every status
of the seed, the Kafka binding in the log, all or nothing, once per source + id."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SdkEvent

from sluicegate.core.auth.principals import Permissions
from sluicegate.core.cloudevents.binding import structured_json
from sluicegate.core.gateway import Gateway
from sluicegate.core.partitioner import partition_for_key
from sluicegate.core.records import NewRecord
from sluicegate.errors import StorageForbidden
from tests.dialects.cloudevents.conftest import key_for, stored

TOPIC = "ce.Order.Created"
JSON = JSONFormat()


def sdk_event(event_id: str = "e-1", **attributes: Any) -> SdkEvent:
    data = attributes.pop("data", {"total": 12})
    base = {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:shop",
        "type": "Order.Created",
        "time": datetime(2025, 1, 31, 12, tzinfo=UTC),
        "datacontenttype": "application/json",
    }
    return SdkEvent({**base, **attributes}, data)


def batch_body(events: Sequence[SdkEvent]) -> bytes:
    return b"[" + b",".join(JSON.write(event) for event in events) + b"]"


async def post_binary(
    client: httpx.AsyncClient, event: SdkEvent, auth: dict[str, str], path: str = "/ce/produce/raw"
) -> httpx.Response:
    message = sdk_http.to_binary(event, JSON)
    return await client.post(path, content=message.body, headers={**message.headers, **auth})


async def post_batch(
    client: httpx.AsyncClient, body: bytes, auth: dict[str, str]
) -> httpx.Response:
    headers = {"content-type": "application/cloudevents-batch+json", **auth}
    return await client.post("/ce/produce/events", content=body, headers=headers)


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# -- 202 -----------------------------------------------------------------------------


async def test_binary_event_from_the_sdk_is_stored_with_the_kafka_binding(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str]
) -> None:
    event = sdk_event(subject="order/42", partitionkey="cust-7", tenant="eu west")
    response = await post_binary(client, event, producer)
    assert response.status_code == 202, response.text
    assert response.content == b""
    [record] = await stored(gateway, TOPIC)
    assert record.key == b"cust-7"
    assert record.partition == partition_for_key(b"cust-7", 12)
    headers = dict(record.headers)
    assert headers["ce_id"] == b"e-1"
    assert headers["ce_tenant"] == b"eu west"
    assert headers["content-type"] == b"application/json"
    assert msgspec.json.decode(record.value or b"") == {"total": 12}
    assert (await gateway.log.get_topic(TOPIC)).partitions == 12


async def test_structured_event_from_the_sdk_comes_back_whole(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str]
) -> None:
    event = sdk_event(dataschema="https://schemas.example/order", flag=True)
    message = sdk_http.to_structured(event, JSON)
    response = await client.post(
        "/ce/produce/event", content=message.body, headers={**message.headers, **producer}
    )
    assert response.status_code == 202, response.text
    [record] = await stored(gateway, TOPIC)
    rendered = msgspec.json.decode(structured_json(record, offset=1))
    assert rendered["dataschema"] == "https://schemas.example/order"
    assert rendered["flag"] is True
    assert rendered["offset"] == "1"
    assert rendered["data"] == {"total": 12}
    back = sdk_http.from_structured(
        sdk_http.HTTPMessage({"content-type": "application/cloudevents+json"}, message.body), JSON
    )
    assert back.get_attributes() == event.get_attributes()


async def test_time_defaults_to_now(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str]
) -> None:
    before = datetime.now(UTC)
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "no-time",
        "ce-source": "urn:shop",
        "ce-type": "Order.Created",
        "content-type": "text/plain",
        **producer,
    }
    response = await client.post("/ce/produce/raw", content=b"hello", headers=headers)
    assert response.status_code == 202, response.text
    [record] = await stored(gateway, TOPIC)
    stamped = datetime.fromisoformat(dict(record.headers)["ce_time"].decode())
    assert before - timedelta(seconds=1) <= stamped <= datetime.now(UTC)


async def test_batch_keeps_order_per_partitionkey_across_types_in_one_append(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str]
) -> None:
    types = ["Order.Paid", "Order.Created", "Order.Created"]
    events = [sdk_event(f"e-{n}", type=types[n % 3], partitionkey=f"k{n % 4}") for n in range(40)]
    response = await post_batch(client, batch_body(events), producer)
    assert response.status_code == 202, response.text
    records = await stored(gateway, TOPIC) + await stored(gateway, "ce.Order.Paid")
    assert len(records) == 40
    for key in ("k0", "k1", "k2", "k3"):
        per_key = sorted(
            (r for r in records if r.key == key.encode()), key=lambda r: (r.topic, r.offset)
        )
        for topic in (TOPIC, "ce.Order.Paid"):
            ids = [int(dict(r.headers)["ce_id"][2:]) for r in per_key if r.topic == topic]
            assert ids == sorted(ids)
    # One append: every record of the batch carries the same log-append time per partition.
    assert len({r.timestamp for r in records}) <= len({(r.topic, r.partition) for r in records})


async def test_an_empty_batch_stores_nothing(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str]
) -> None:
    assert (await post_batch(client, b"[]", producer)).status_code == 202
    assert await stored(gateway, TOPIC) == []


async def test_a_retried_batch_is_stored_once(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str]
) -> None:
    body = batch_body([sdk_event(f"r-{n}") for n in range(10)])
    responses = await asyncio.gather(*(post_batch(client, body, producer) for _ in range(3)))
    assert [r.status_code for r in responses] == [202, 202, 202]
    assert (await post_batch(client, body, producer)).status_code == 202
    assert len(await stored(gateway, TOPIC)) == 10


async def test_a_batch_of_plain_events_and_one_with_an_extension_is_stored_whole(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str]
) -> None:
    # Plain events are stored from their decoded form; one extension sends the whole
    # batch the CloudEvent way. Either way: the same records, all in one append.
    for batch, extra in (("p", {}), ("m", {"traceparent": "00-ab"})):
        events = [sdk_event(f"{batch}-{n}", partitionkey=f"k{n % 2}") for n in range(4)]
        events.append(sdk_event(f"{batch}-4", **extra))
        response = await post_batch(client, batch_body(events), producer)
        assert response.status_code == 202, response.text
    records = {dict(r.headers)["ce_id"]: r for r in await stored(gateway, TOPIC)}
    assert len(records) == 10
    for batch in ("p", "m"):
        for n in range(4):
            record = records[f"{batch}-{n}".encode()]
            assert record.key == f"k{n % 2}".encode()
            assert dict(record.headers)["ce_partitionkey"] == record.key
            assert msgspec.json.decode(record.value or b"") == {"total": 12}
    assert dict(records[b"m-4"].headers)["ce_traceparent"] == b"00-ab"
    assert "ce_traceparent" not in dict(records[b"p-4"].headers)


# -- 400 -----------------------------------------------------------------------------


async def test_bad_json_and_bad_attributes_are_400_naming_attribute_and_index(
    client: httpx.AsyncClient, producer: dict[str, str]
) -> None:
    structured = {"content-type": "application/cloudevents+json", **producer}
    body = error(await client.post("/ce/produce/event", content=b"{", headers=structured), 400)
    assert "not valid JSON" in body["message"]
    wrong_version = JSON.write(sdk_event()).replace(b'"1.0"', b'"0.3"', 1)
    body = error(
        await client.post("/ce/produce/event", content=wrong_version, headers=structured), 400
    )
    assert body["attribute"] == "specversion"
    events = [msgspec.json.decode(JSON.write(sdk_event(f"b-{n}"))) for n in range(3)]
    del events[2]["source"]
    body = error(await post_batch(client, msgspec.json.encode(events), producer), 400)
    assert body == {
        "status": 400,
        "error": "bad_request",
        "message": "events[2]: attribute source is required",
        "attribute": "source",
        "index": 2,
    }


async def test_a_source_or_dataschema_that_is_no_uri_is_400_in_every_form(
    client: httpx.AsyncClient, producer: dict[str, str]
) -> None:
    # The SDK's own HTTP binding percent-encodes the space; the gateway decodes it again.
    body = error(await post_binary(client, sdk_event(source="urn:shop orders"), producer), 400)
    assert body["attribute"] == "source"
    assert "URI-reference" in body["message"]
    raw = {"ce-specversion": "1.0", "ce-id": "r-1", "ce-source": "urn:shop", "ce-type": "T"}
    raw |= {"ce-dataschema": "order.json", "content-type": "application/json", **producer}
    body = error(await client.post("/ce/produce/raw", content=b"{}", headers=raw), 400)
    assert body["attribute"] == "dataschema"
    structured = {"content-type": "application/cloudevents+json", **producer}
    event = JSON.write(sdk_event(dataschema="https://schemas.example/order.json")).replace(
        b'"urn:shop"', b'"caf\xc3\xa9"', 1
    )
    body = error(await client.post("/ce/produce/event", content=event, headers=structured), 400)
    assert body["attribute"] == "source"
    events = [sdk_event("b-0"), sdk_event("b-1", dataschema="/schemas/order.json")]
    body = error(await post_batch(client, batch_body(events), producer), 400)
    assert (body["attribute"], body["index"]) == ("dataschema", 1)


async def test_a_time_in_the_future_is_400(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str]
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=2)
    assert (await post_binary(client, sdk_event("ok", time=soon), producer)).status_code == 202
    later = datetime.now(UTC) + timedelta(minutes=5)
    body = error(await post_binary(client, sdk_event("late", time=later), producer), 400)
    assert body["attribute"] == "time"
    assert "in the future" in body["message"]
    events = [sdk_event("b-0"), sdk_event("b-1", time=later)]
    body = error(await post_batch(client, batch_body(events), producer), 400)
    assert (body["attribute"], body["index"]) == ("time", 1)


async def test_offset_is_reserved_for_consumers(
    client: httpx.AsyncClient, producer: dict[str, str]
) -> None:
    body = error(await post_binary(client, sdk_event(offset="3"), producer), 400)
    assert body["attribute"] == "offset"


# -- 401 -----------------------------------------------------------------------------


async def test_every_authorization_failure_is_401_naming_what_was_refused(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str]
) -> None:
    body = error(await post_binary(client, sdk_event(), {}), 401)
    assert body["error"] == "unauthenticated"
    consumer = await key_for(gateway, "reader", Permissions(ce_consume_types=["*"]))
    body = error(await post_binary(client, sdk_event(), consumer), 401)
    assert "not registered as a CloudEvents producer" in body["message"]
    body = error(await post_binary(client, sdk_event(source="urn:other"), producer), 401)
    assert (body["error"], body["attribute"]) == ("unauthorized", "source")
    assert "urn:other" in body["message"]
    events = [sdk_event("a"), sdk_event("b", type="User.Created")]
    response = await post_batch(client, batch_body(events), producer)
    body = error(response, 401)
    assert (body["attribute"], body["index"]) == ("type", 1)
    assert "User.Created" in body["message"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert await stored(gateway, TOPIC) == []


# -- 413, 415 ------------------------------------------------------------------------


async def test_limits_per_request_and_per_event_are_413(
    client: httpx.AsyncClient, producer: dict[str, str]
) -> None:
    # The test settings allow 4 KiB per event; a request may hold 1 MiB.
    big = sdk_event(data={"blob": "x" * 5000})
    body = error(await post_binary(client, big, producer), 413)
    assert "per event" in body["message"]
    events = [sdk_event("small"), big]
    body = error(await post_batch(client, batch_body(events), producer), 413)
    assert body["index"] == 1
    huge = batch_body([sdk_event(f"h-{n}", data={"blob": "y" * 3000}) for n in range(400)])
    error(await post_batch(client, huge, producer), 413)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/ce/produce/raw", "application/xml"),
        ("/ce/produce/raw", "application/cloudevents+json"),
        ("/ce/produce/event", "application/json"),
        ("/ce/produce/events", "application/cloudevents+json"),
    ],
)
async def test_wrong_content_type_is_415(
    client: httpx.AsyncClient, producer: dict[str, str], path: str, content_type: str
) -> None:
    headers = {
        "content-type": content_type,
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "urn:shop",
        "ce-type": "Order.Created",
        **producer,
    }
    body = error(await client.post(path, content=b"{}", headers=headers), 415)
    assert content_type in body["message"]


# -- 422 -----------------------------------------------------------------------------


async def test_data_against_the_type_schema_is_422_listing_violations(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str]
) -> None:
    schema = {
        "type": "object",
        "properties": {"total": {"type": "number"}, "currency": {"type": "string"}},
        "required": ["total", "currency"],
    }
    await gateway.event_schemas.set("Order.Created", msgspec.json.encode(schema).decode())
    good = sdk_event("good", data={"total": 3, "currency": "EUR"})
    assert (await post_binary(client, good, producer)).status_code == 202
    events = [good, sdk_event("bad", data={"total": "3"})]
    body = error(await post_batch(client, batch_body(events), producer), 422)
    assert (body["attribute"], body["index"]) == ("data", 1)
    assert {(v["pointer"], "currency" in v["reason"]) for v in body["violations"]} == {
        ("/total", False),
        ("", True),
    }
    binary = sdk_event("bin", datacontenttype="application/octet-stream", data=b"\x00")
    body = error(await post_binary(client, binary, producer), 422)
    assert body["attribute"] == "datacontenttype"
    assert len(await stored(gateway, TOPIC)) == 1


# -- all or nothing ------------------------------------------------------------------


async def test_a_batch_is_stored_whole_or_not_at_all_under_a_storage_failure(
    client: httpx.AsyncClient,
    gateway: Gateway,
    producer: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = gateway.log
    real_append = log.append
    failing = True

    def append_then_fail(batch: Sequence[NewRecord]) -> asyncio.Future[Any]:
        if not (failing and any(record.topic == TOPIC for record in batch)):
            return real_append(batch)
        # The backend gets every event of the batch, then a record it cannot store last.
        return real_append([*batch, NewRecord(TOPIC, 99, None, b"unstorable")])

    body = batch_body([sdk_event(f"f-{n}", partitionkey=str(n)) for n in range(20)])
    monkeypatch.setattr(log, "append", append_then_fail)
    response = await post_batch(client, body, producer)
    assert error(response, 400)["error"] == "invalid_partition"
    assert await stored(gateway, TOPIC) == []
    failing = False
    assert (await post_batch(client, body, producer)).status_code == 202
    assert len(await stored(gateway, TOPIC)) == 20


async def test_one_bad_event_rejects_the_whole_batch(
    client: httpx.AsyncClient, gateway: Gateway, producer: dict[str, str]
) -> None:
    events = [sdk_event(f"w-{n}") for n in range(5)]
    events.append(sdk_event("w-5", source="urn:elsewhere"))
    assert (await post_batch(client, batch_body(events), producer)).status_code == 401
    assert await stored(gateway, TOPIC) == []


# -- 404, 500 ------------------------------------------------------------------------


async def test_an_unknown_path_is_404_in_this_dialect(
    client: httpx.AsyncClient, producer: dict[str, str]
) -> None:
    body = error(await client.post("/ce/produce/nothing", content=b"{}", headers=producer), 404)
    assert body["error"] == "not_found"


async def test_a_storage_failure_is_500_with_an_incident_id_the_log_has(
    client: httpx.AsyncClient,
    gateway: Gateway,
    producer: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 500 the gateway answers by design (its storage failed, or refused it) says what
    failed, and is logged under the incident id the body carries, as the seed's 500 is."""

    def failing(*args: object, **kwargs: object) -> None:
        raise StorageForbidden("Kafka's ACLs do not allow the gateway's principal this")

    monkeypatch.setattr(gateway.event_ids, "append_once", failing)
    monkeypatch.setattr(gateway.event_ids, "append_one", failing)
    body = error(await post_binary(client, sdk_event("refused"), producer), 500)
    assert body["error"] == "storage_forbidden"
    assert body["message"] == "Kafka's ACLs do not allow the gateway's principal this"
    [logged] = [r for r in caplog.records if getattr(r, "incident", None) == body["incident_id"]]
    assert logged.levelname == "ERROR"
    assert "/ce/produce/raw answered 500: Kafka's ACLs" in logged.getMessage()


async def test_an_unexpected_failure_is_500_with_an_incident_id_only(
    client: httpx.AsyncClient,
    gateway: Gateway,
    producer: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(gateway.event_ids, "append_once", broken)
    monkeypatch.setattr(gateway.event_ids, "append_one", broken)  # a single event's lane
    body = error(await post_binary(client, sdk_event("boom"), producer), 500)
    assert set(body) == {"status", "error", "message", "incident_id"}
    assert body["incident_id"] in body["message"]
    assert "secret" not in body["message"]
