"""Records v2 in-process: the body, every error, and what lands in the log."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluicegate.config import Settings
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import Record, TopicPartition
from tests.conftest import make_settings

URL = "/v2/topics/{}/records"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def produce(
    client: httpx.AsyncClient, body: Any, topic: str = "orders", **kwargs: Any
) -> httpx.Response:
    return await client.post(URL.format(topic), json=body, **kwargs)


async def stored(gateway: Gateway, topic: str, partition: int = 0) -> list[Record]:
    return await gateway.log.read(
        TopicPartition(topic, partition), 0, max_records=1000, max_bytes=1 << 20
    )


async def test_text_record_round_trip(client: httpx.AsyncClient, gateway: Gateway) -> None:
    body = {
        "headers": [
            {"name": "colour", "value": b64(b"black")},
            {"name": "colour", "value": b64(b"white")},
            {"name": "raw", "value": b64(bytes(range(256)))},
        ],
        "key": {"type": "text", "data": "Test Key"},
        "value": {"type": "text", "data": "Tëst Vâlue ✓"},
    }
    response = await produce(client, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["topic_name"] == "orders"
    assert answer["partition_id"] == 0
    assert answer["offset"] == 0
    assert TIMESTAMP.fullmatch(answer["timestamp"])
    assert set(answer) == {"partition_id", "topic_name", "offset", "timestamp"}
    [record] = await stored(gateway, "orders")
    assert record.key == b"Test Key"
    assert record.value == "Tëst Vâlue ✓".encode()
    assert list(record.headers) == [
        ("colour", b"black"),
        ("colour", b"white"),
        ("raw", bytes(range(256))),
    ]


async def test_offsets_count_up(client: httpx.AsyncClient) -> None:
    offsets = []
    for n in range(5):
        response = await produce(client, {"value": {"type": "text", "data": str(n)}})
        offsets.append(response.json()["offset"])
    assert offsets == [0, 1, 2, 3, 4]


async def test_null_key_and_tombstone(client: httpx.AsyncClient, gateway: Gateway) -> None:
    assert (await produce(client, {"value": {"type": "text", "data": "v"}})).status_code == 200
    assert (await produce(client, {"key": {"type": "text", "data": "k"}})).status_code == 200
    assert (await produce(client, {})).status_code == 200
    first, tombstone, empty = await stored(gateway, "orders")
    assert (first.key, first.value) == (None, b"v")
    assert (tombstone.key, tombstone.value) == (b"k", None)
    assert (empty.key, empty.value, list(empty.headers)) == (None, None, [])


async def test_binary_key_and_value(client: httpx.AsyncClient, gateway: Gateway) -> None:
    key, value = b"\x00\xff\x10binary", bytes(range(200))
    body = {
        "key": {"type": "binary", "data": b64(key)},
        "value": {"type": "binary", "data": b64(value)},
    }
    assert (await produce(client, body)).status_code == 200
    [record] = await stored(gateway, "orders")
    assert (record.key, record.value) == (key, value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"a": [1, 2, {"b": None}]}, b'{"a":[1,2,{"b":null}]}'),
        ([1, "two"], b'[1,"two"]'),
        (42, b"42"),
        ('{"a": 1}', b'{"a": 1}'),
        ('"hello"', b'"hello"'),
    ],
)
async def test_json_values(
    client: httpx.AsyncClient, gateway: Gateway, data: Any, expected: bytes
) -> None:
    response = await client.post(
        URL.format("orders"),
        content=json.dumps({"value": {"type": "json", "data": data}}, separators=(",", ":")),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    [record] = await stored(gateway, "orders")
    assert record.value == expected


async def test_keyed_records_follow_kafka_partitioner(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    from sluicegate.core.partitioner import partition_for_key
    from sluicegate.core.topics import TopicSpec

    await gateway.topics.create(TopicSpec(name="wide", partitions=6))
    for key in ("alpha", "beta", "gamma", "delta"):
        body = {"key": {"type": "text", "data": key}, "value": {"type": "text", "data": key}}
        response = await produce(client, body, topic="wide")
        assert response.json()["partition_id"] == partition_for_key(key.encode(), 6)


async def test_a_topic_deleted_behind_the_nodes_cache_is_looked_up_again(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    # Deleted, and made again with fewer partitions, through another node: this node's
    # catalog still holds the old topic for a few seconds. The record is stored, not a
    # 400 for a partition the topic no longer has, nor a 404 though auto-creation is on.
    from sluicegate.core.partitioner import partition_for_key
    from sluicegate.core.topics import TopicSpec

    key = next(k for k in ("a", "b", "c", "d", "e", "f") if partition_for_key(k.encode(), 6) > 0)
    body = {"key": {"type": "text", "data": key}, "value": {"type": "text", "data": "v"}}
    await gateway.topics.create(TopicSpec(name="moved", partitions=6))
    assert (await produce(client, body, topic="moved")).status_code == 200
    await gateway.log.delete_topic("moved")  # the catalog does not hear of it
    await gateway.log.create_topic(TopicSpec(name="moved", partitions=1))
    again = await produce(client, body, topic="moved")
    assert again.status_code == 200, again.text
    assert again.json()["partition_id"] == 0
    await gateway.log.delete_topic("moved")
    created = await produce(client, body, topic="moved")
    assert created.status_code == 200, created.text


# --- errors ---------------------------------------------------------------------------


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == status
    assert message in body["message"], body["message"]


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("x" * 201, "expected 1-200 characters"),
        ("bad%20name", "invalid topic_name 'bad name'"),
        ("tópico", "invalid topic_name"),
        ("%2E%2E", "'.' and '..' are not allowed"),
    ],
)
async def test_bad_topic_names(client: httpx.AsyncClient, topic: str, message: str) -> None:
    response = await produce(client, {"value": {"type": "text", "data": "v"}}, topic=topic)
    assert_error(response, 400, message)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"value": {"type": "xml", "data": "<a/>"}}, "Invalid enum value 'xml' - at `value.type`"),
        ({"value": {"data": "v"}}, "missing required field `type` - at `value`"),
        ({"value": {"type": "text"}}, "missing required field `data` - at `value`"),
        ({"value": {"type": "text", "data": 5}}, "value.data must be a string"),
        ({"key": {"type": "binary", "data": "not base64!"}}, "key.data is not valid base64"),
        ({"headers": [{"name": "h", "value": "%%%"}]}, "headers[0].value is not valid base64"),
        ({"headers": [{"name": "", "value": ""}]}, "headers[0].name must not be empty"),
        ({"headers": [{"name": "h"}]}, "missing required field `value` - at `headers[0]`"),
        ({"valu": {"type": "text", "data": "v"}}, "unknown field `valu`"),
        ({"value": {"type": "json", "data": "{not json"}}, "value.data is a string but not JSON"),
        ({"value": {"type": "text", "data": "v", "schema": "{}"}}, "value.schema applies only"),
        ({"value": {"type": "avro", "data": {}, "schema": "{}"}}, "serializer=confluent"),
        ([], "Expected `object`, got `array`"),
    ],
)
async def test_bad_bodies_name_the_field(
    client: httpx.AsyncClient, gateway: Gateway, body: Any, message: str
) -> None:
    assert_error(await produce(client, body, topic="refused"), 400, message)
    # A refused request leaves no topic behind (auto-creation is for records stored).
    assert [t.name for t in await gateway.log.list_topics()] == []


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL.format("orders"), content=b'{"value": ', headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "request body is not valid JSON")


async def test_unknown_serializer(client: httpx.AsyncClient) -> None:
    response = await produce(
        client, {"value": {"type": "text", "data": "v"}}, params={"serializer": "protobuf"}
    )
    assert_error(response, 400, "the only allowed value is 'confluent'")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_unsupported_media_type(client: httpx.AsyncClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(URL.format("orders"), content=b"{}", headers=headers)
    assert_error(response, 415, "expected application/json")


async def test_json_with_charset_is_fine(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL.format("orders"),
        content=b"{}",
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


async def test_body_over_64k(client: httpx.AsyncClient, gateway: Gateway) -> None:
    body = {"value": {"type": "text", "data": "x" * 70_000}}
    assert_error(await produce(client, body), 413, "exceeds the limit of 65536 bytes")
    with pytest.raises(Exception, match="does not exist"):
        await gateway.log.get_topic("orders")


async def test_body_over_64k_without_content_length(client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(100):
            yield b"x" * 1024

    response = await client.post(
        URL.format("orders"), content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "exceeds the limit of 65536 bytes")


async def test_wrong_method(client: httpx.AsyncClient) -> None:
    response = await client.get(URL.format("orders"))
    assert_error(response, 405, "method GET is not allowed")


async def test_internal_errors_carry_an_incident_id_only(
    client: httpx.AsyncClient, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(records: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(gateway.producer, "send", broken)
    response = await produce(client, {"value": {"type": "text", "data": "v"}})
    assert_error(response, 500, "incident id")
    body = response.json()
    assert re.fullmatch(r"[0-9a-f]{16}", body["incident_id"])
    assert "secret" not in response.text


async def test_shutting_down_is_503(client: httpx.AsyncClient, gateway: Gateway) -> None:
    assert (await produce(client, {"value": {"type": "text", "data": "v"}})).status_code == 200
    await gateway.log.close()
    response = await produce(client, {"value": {"type": "text", "data": "v"}})
    assert_error(response, 503, "")
    assert response.headers["retry-after"] == "1"


class TestNoAutoCreate:
    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        return make_settings(tmp_path, auth={"enabled": False}, topics={"auto_create": False})

    async def test_unknown_topic_is_404(self, client: httpx.AsyncClient) -> None:
        response = await produce(client, {"value": {"type": "text", "data": "v"}}, topic="nope")
        assert_error(response, 404, "nope")


class TestStorageTimeout:
    @pytest.fixture
    def backend(self) -> str:
        # A deadline shorter than any write is SQLite's to test: on Kafka it is librdkafka's
        # message.timeout.ms, which the topic registry's writes share, so the gateway could
        # not even start. Kafka's 408 is tested with a stalled broker (tests/storage/kafka).
        return "sqlite"

    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        return make_settings(
            tmp_path,
            auth={"enabled": False},
            storage={
                "data_dir": str(tmp_path),
                "append_timeout": 1e-9,
            },
        )

    async def test_slow_storage_is_408_and_all_or_nothing(
        self, client: httpx.AsyncClient, gateway: Gateway
    ) -> None:
        await gateway.topics.get("orders", auto_create=True)
        response = await produce(client, {"value": {"type": "text", "data": "v"}})
        assert_error(response, 408, "either all stored or none is")
        records = await stored(gateway, "orders")
        assert [r.value for r in records] in ([], [b"v"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # The reproduction of a 500: bytes that are not UTF-8 in a raw text value.
        (b'{"value": {"type": "text", "data": "\xff\xfe"}}', "`value.data` is not valid UTF-8"),
        (b'{"key": {"type": "json", "data": {"a": "\xc3"}}}', "`key.data.a` is not valid UTF-8"),
        (rb'{"value": {"type": "text", "data": "\udc00"}}', "`value.data` holds a lone UTF-16"),
        (rb'{"headers": [{"name": "\ud800", "value": ""}]}', "`headers[0].name` holds a lone"),
    ],
)
async def test_strings_that_are_not_text_are_400_naming_the_field(
    client: httpx.AsyncClient, gateway: Gateway, content: bytes, message: str
) -> None:
    response = await client.post(
        URL.format("orders"), content=content, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, message)
    with pytest.raises(Exception, match="does not exist"):
        await gateway.log.get_topic("orders")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"value": {"type": "json", "data": "1e400"}}, None),
        ({"value": {"type": "json", "data": "[" * 30_000}}, "value.data is a string but not JSON"),
        (
            {"value": {"type": "avro", "data": "1e400", "schema": '"double"'}},
            "value.data: Number out of range",
        ),
    ],
)
async def test_json_data_beyond_a_double_or_nested_without_end(
    client: httpx.AsyncClient, body: Any, message: str | None
) -> None:
    response = await produce(client, body, params={"serializer": "confluent"})
    if message is None:
        assert response.status_code == 200, response.text
    else:
        assert_error(response, 400, message)
