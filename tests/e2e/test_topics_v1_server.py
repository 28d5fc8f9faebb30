"""Topics v1 public API over real sockets: uvicorn on 127.0.0.1 and a real HTTP client.

Every endpoint and error; cursor walks that lose and repeat nothing (also while another
task publishes, and over 8 partitions written through records v2); long polls woken by
a publish, ended by their timeout, by a purge or a delete, and freed by a disconnect.
On Kafka, what a ``sluicegate serve`` process published is read straight from the broker
by a plain Kafka consumer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

from sluicegate.app import build_app
from sluicegate.config import Settings
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import TopicPartition
from sluicegate.core.schemas import wire
from sluicegate.core.topics import Topic, TopicSpec
from sluicegate.testing.process import serve_in_subprocess
from tests.conftest import make_settings
from tests.e2e.conftest import on_server
from tests.helpers import E2E_ADMIN_KEY, backend_env, serving
from tests.storage.kafka.conftest import consume_all

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name"],
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    limits = {
        "max_long_polls_per_client": 3,
        "dialect_rates": {"topics_v1_legacy": {"rate_per_second": 1, "burst": 5}},
    }
    return make_settings(tmp_path, limits=limits)


@dataclass
class World:
    http: httpx.AsyncClient
    gateway: Gateway
    topic: Topic
    #: Authorization headers: produce and consume on ``people*``, admin on everything.
    app: dict[str, str]
    outsider: dict[str, str]
    admin: dict[str, str]

    def url(self, action: str, topic_id: int | None = None, *, batch: bool = False) -> str:
        topic = self.topic.id if topic_id is None else topic_id
        prefix = "/api/v1/batch" if batch else "/api/v1"
        return f"{prefix}/topics/{topic}/{action}"

    async def publish(self, message: Any, topic_id: int | None = None) -> str:
        response = await self.http.post(
            self.url("publish", topic_id), json=message, headers=self.app
        )
        assert response.status_code == 200, response.text
        return str(response.json()["message_id"])

    async def consume(self, topic_id: int | None = None, **body: Any) -> httpx.Response:
        return await self.http.post(self.url("consume", topic_id), json=body, headers=self.app)


async def key_for(gateway: Gateway, name: str, permissions: Permissions) -> dict[str, str]:
    await gateway.clients.create_client(name, permissions)
    created = await gateway.clients.create_key(name)
    return {"authorization": f"Bearer {created.key}"}


@pytest.fixture
async def world(gateway: Gateway, settings: Settings, http_server: str) -> AsyncIterator[World]:
    topic = await gateway.topics.create(TopicSpec(name="people"))
    app = await key_for(gateway, "app", Permissions(produce=["people*"], consume=["people*"]))
    outsider = await key_for(gateway, "outsider", Permissions(consume=["other"]))
    admin = await key_for(gateway, "operator", Permissions(admin=["*"], produce=["*"]))
    async with serving(build_app(gateway), on_server(settings, http_server)) as port:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits
        ) as http:
            yield World(http, gateway, topic, app, outsider, admin)


# -- publish and consume ---------------------------------------------------------------


async def test_publish_then_consume_as_the_seed_shows(world: World) -> None:
    first = await world.publish({"Name": "Jane", "Surname": "Doe"})
    second = await world.publish({"Name": "John", "Surname": "Doe"})
    assert re.fullmatch(r"[A-Za-z0-9_-]{2,8}", first)
    response = await world.consume()
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    messages = response.json()["messages"]
    assert [m["message_id"] for m in messages] == [first, second]
    assert [m["payload"]["Name"] for m in messages] == ["Jane", "John"]
    assert all(TIME.fullmatch(m["time"]) for m in messages)
    after = await world.consume(after_message_id=first)
    assert [m["message_id"] for m in after.json()["messages"]] == [second]
    assert (await world.consume(after_message_id=second)).json() == {"messages": []}


async def test_the_seeds_curl_sample_without_a_content_type(world: World) -> None:
    # curl --data sends application/x-www-form-urlencoded; the body is JSON all the same.
    headers = {**world.app, "content-type": "application/x-www-form-urlencoded"}
    body = b'{"payload":[{"Name": "John", "Surname": "Doe"}, {"Name": "Jane", "Surname": "Doe"}]}'
    response = await world.http.post(
        world.url("publish", batch=True), content=body, headers=headers
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["is_partial_error"] is False
    assert [answer["message_ids"][i]["result"] for i in ("0", "1")] == ["success", "success"]
    consumed = await world.http.post(world.url("consume"), headers=world.app)  # no body at all
    assert [m["payload"]["Name"] for m in consumed.json()["messages"]] == ["John", "Jane"]


async def test_batch_publish_stores_the_valid_ones_together(world: World) -> None:
    await world.gateway.schemas.register("people-value", json.dumps(PERSON), "JSON")
    payloads = [{"name": "a"}, {"name": 1}, {"name": "c", "age": 3}, {"age": -1}]
    response = await world.http.post(
        world.url("publish", batch=True), json={"payloads": payloads}, headers=world.app
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["is_partial_error"] is True
    results = answer["message_ids"]
    assert list(results) == ["0", "1", "2", "3"]
    assert set(results["0"]) == {"message_id", "result"}
    assert results["1"] == {
        "result": "error",
        "error": "payloads[1] does not comply with the topic's schema: /name: 1 is not of "
        'type "string"',
    }
    assert results["3"]["error"].startswith("payloads[3] does not comply")
    consumed = (await world.consume()).json()["messages"]
    assert [m["message_id"] for m in consumed] == [
        results["0"]["message_id"],
        results["2"]["message_id"],
    ]
    # One atomic append: both records carry the timestamp of one commit.
    assert consumed[0]["time"] == consumed[1]["time"]


async def test_a_batch_that_complies_is_stored_as_sent_in_order(world: World) -> None:
    await world.gateway.schemas.register("people-value", json.dumps(PERSON), "JSON")
    sent = [b'{"name": "a" }', b'{"age":2,"name":"b"}', b'{ "name" : "c" }']
    response = await world.http.post(
        world.url("publish", batch=True),
        content=b'{"payloads": [' + b",".join(sent) + b"]}",
        headers=world.app,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["is_partial_error"] is False
    assert [r["result"] for r in answer["message_ids"].values()] == ["success"] * 3
    consumed = await world.consume()
    messages = consumed.json()["messages"]
    assert [m["message_id"] for m in messages] == [
        answer["message_ids"][i]["message_id"] for i in ("0", "1", "2")
    ]
    for value in sent:  # each payload exactly as it was sent, spaces and key order kept
        assert b'"payload":' + value + b',"time"' in consumed.content


async def test_since_time_starts_at_a_time_and_the_future_means_now(world: World) -> None:
    await world.publish({"n": 1})
    await asyncio.sleep(0.01)
    middle = time.time()
    await asyncio.sleep(0.01)
    await world.publish({"n": 2})
    since = (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(middle)) + f".{int(middle % 1 * 1e6):06d}Z"
    )
    response = await world.consume(since_time=since)
    assert [m["payload"] for m in response.json()["messages"]] == [{"n": 2}]
    assert (await world.consume(since_time="2999-01-01T00:00:00Z")).json() == {"messages": []}
    early = await world.consume(since_time="2000-01-01T00:00:00+02:00", batch_size=1)
    assert [m["payload"] for m in early.json()["messages"]] == [{"n": 1}]


async def test_since_time_a_messages_own_time_goes_on_after_that_message(world: World) -> None:
    # The seed's "Last message timestamp": the time a consume showed, to the millisecond.
    await world.publish({"n": 1})
    [first] = (await world.consume()).json()["messages"]
    await asyncio.sleep(0.002)  # the next message in a later millisecond
    await world.publish({"n": 2})
    response = await world.consume(since_time=first["time"])
    assert [m["payload"] for m in response.json()["messages"]] == [{"n": 2}]


async def test_a_lone_surrogate_or_a_huge_number_is_said_as_such(
    world: World,
) -> None:
    body = b'{"lone": "\\ud800"}'
    headers = {**world.app, "content-type": "application/json"}
    for _ in range(2):
        response = await world.http.post(world.url("publish"), content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["message"] == (
            "the message holds a lone UTF-16 surrogate escape (\\ud800-\\udfff) in "
            "`lone`, which is not Unicode text"
        )
        await world.gateway.schemas.register("people-value", json.dumps(PERSON), "JSON")
    # Valid JSON, stored as sent without a schema, but beyond what a schema can check.
    huge = await world.http.post(world.url("publish"), content=b'{"n": 1e400}', headers=headers)
    assert huge.status_code == 400
    assert "beyond a double's range" in huge.json()["message"]


async def test_schema_violations_are_each_listed(world: World) -> None:
    await world.gateway.schemas.register("people-value", json.dumps(PERSON), "JSON")
    response = await world.http.post(world.url("publish"), json={"age": -1}, headers=world.app)
    assert response.status_code == 400
    assert response.json() == {
        "message": 'the message does not comply with the topic\'s schema: /: "name" is a '
        "required property; /age: -1 is less than the minimum of 0",
        "code": "invalid_schema",
        "errors": [
            {"pointer": "", "reason": '"name" is a required property'},
            {"pointer": "/age", "reason": "-1 is less than the minimum of 0"},
        ],
    }


# -- errors ----------------------------------------------------------------------------


def _cases() -> list[Any]:
    json_type = {"content-type": "application/json"}
    return [
        ("publish", b"{not json", json_type, 400, "bad_request"),
        ("publish", b"x" * (1024 * 1024 + 1), json_type, 413, "payload_too_large"),
        ("publish", b"{}", {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        (
            "publish",
            b"{}",
            {**json_type, "content-encoding": "gzip"},
            415,
            "unsupported_media_type",
        ),
        (
            "consume",
            b'{"after_message_id": "BAE", "since_time": "2020-01-01T00:00:00Z"}',
            json_type,
            400,
            "bad_request",
        ),
        ("consume", b'{"batch_size": 0}', json_type, 400, "bad_request"),
        ("consume", b'{"batch_size": 51}', json_type, 400, "bad_request"),
        ("consume", b'{"timeout_secs": 61}', json_type, 400, "bad_request"),
        ("consume", b'{"timeout_secs": -1}', json_type, 400, "bad_request"),
        ("consume", b'{"since_time": "yesterday"}', json_type, 400, "bad_request"),
        ("consume", b'{"after_message_id": "A12x!"}', json_type, 400, "invalid_message_id"),
        ("consume", b'{"cursor": "x"}', json_type, 400, "bad_request"),
        ("consume", b"[]", json_type, 400, "bad_request"),
        ("batch", b'{"payloads": []}', json_type, 400, "bad_request"),
        ("batch", json.dumps({"payloads": [1] * 101}).encode(), json_type, 400, "bad_request"),
        ("batch", b'{"payloads": [1], "payload": [2]}', json_type, 400, "bad_request"),
        ("batch", b"{}", json_type, 400, "bad_request"),
    ]


@pytest.mark.parametrize(("action", "body", "headers", "status", "code"), _cases())
async def test_bad_requests_get_a_clear_error(
    world: World, action: str, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    url = world.url("publish", batch=True) if action == "batch" else world.url(action)
    response = await world.http.post(url, content=body, headers={**world.app, **headers})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["code"] == code
    assert answer["message"]
    assert set(answer) == {"message", "code"}


@pytest.mark.parametrize("action", ["publish", "consume", "batch"])
async def test_401_403_404(world: World, action: str) -> None:
    body: dict[str, Any] = {"payloads": [{}]} if action == "batch" else {}
    verb = "publish" if action == "batch" else action
    batch = action == "batch"
    anonymous = await world.http.post(world.url(verb, batch=batch), json=body)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    forbidden = await world.http.post(
        world.url(verb, batch=batch), json=body, headers=world.outsider
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "forbidden"
    missing = await world.http.post(
        world.url(verb, 9999, batch=batch), json=body, headers=world.app
    )
    assert missing.status_code == 404
    assert missing.json() == {"message": "no topic with id 9999", "code": "unknown_topic"}
    named = await world.http.post(f"/api/v1/topics/people/{verb}", json=body, headers=world.app)
    assert named.status_code in (400, 404)  # a name is not an id
    assert named.json()["message"]


async def test_ids_of_another_topic_never_issued_or_purged(world: World) -> None:
    other = await world.gateway.topics.create(TopicSpec(name="people-other"))
    theirs = await world.publish({"x": 1}, other.id)
    mine = await world.publish({"x": 2})
    wrong_topic = await world.consume(after_message_id=theirs)
    assert wrong_topic.status_code == 400
    assert wrong_topic.json()["code"] == "invalid_message_id"
    assert "belongs to topic" in wrong_topic.json()["message"]
    # The id of message 1 of this topic: there is only message 0.
    unissued = mine[:-1] + ("I" if mine[-1] != "I" else "M")
    beyond = await world.consume(after_message_id=unissued)
    assert beyond.status_code == 400, beyond.text
    unread = await world.publish({"x": 3})
    purged = await world.http.post(
        f"/admin/v1/topics/{world.topic.name}/purge", headers=world.admin
    )
    assert purged.status_code in (200, 204), purged.text
    # ``mine``'s reader had not read x=3, which is gone: an error, not a silent skip.
    gone = await world.consume(after_message_id=mine)
    assert gone.status_code == 404
    assert gone.json()["code"] == "message_purged"
    # Publishing goes on from the old high watermark; new ids work, and the reader that
    # had read everything goes on after the purge from its own id.
    fresh = await world.publish({"x": 4})
    assert (await world.consume()).json()["messages"][0]["message_id"] == fresh
    caught_up = await world.consume(after_message_id=unread)
    assert [m["message_id"] for m in caught_up.json()["messages"]] == [fresh]


# -- cursor walks ----------------------------------------------------------------------


async def walk(world: World, topic_id: int, total: int) -> list[Any]:
    """Consume ``total`` messages in batches of 50 along the cursor, long-polling for more."""
    seen: list[Any] = []
    cursor: str | None = None
    while len(seen) < total:
        body: dict[str, Any] = {"batch_size": 50, "timeout_secs": 10}
        if cursor is not None:
            body["after_message_id"] = cursor
        response = await world.consume(topic_id, **body)
        assert response.status_code == 200, response.text
        messages = response.json()["messages"]
        assert 1 <= len(messages) <= 50
        seen.extend(m["payload"] for m in messages)
        cursor = messages[-1]["message_id"]
    assert (await world.consume(topic_id, after_message_id=cursor)).json() == {"messages": []}
    return seen


async def test_a_walk_of_10000_while_another_task_publishes(world: World) -> None:
    total = 10_000

    async def publish_all() -> None:
        for start in range(0, total, 100):
            payloads = [{"n": n} for n in range(start, start + 100)]
            response = await world.http.post(
                world.url("publish", batch=True), json={"payloads": payloads}, headers=world.app
            )
            assert response.json()["is_partial_error"] is False

    publishing = asyncio.ensure_future(publish_all())
    seen = await walk(world, world.topic.id, total)
    await publishing
    assert [p["n"] for p in seen] == list(range(total))


async def test_a_walk_over_8_partitions_written_through_records_v2(world: World) -> None:
    wide = await world.gateway.topics.create(TopicSpec(name="people-wide", partitions=8))
    over_http, total = 400, 10_000
    producer = world.gateway.producer

    async def produce_over_http(n: int) -> None:
        record = {
            "key": {"type": "text", "data": f"k{n}"},
            "value": {"type": "json", "data": {"n": n}},
        }
        response = await world.http.post(
            f"/v2/topics/{wide.name}/records", json=record, headers=world.admin
        )
        assert response.status_code == 200, response.text

    async def produce() -> None:
        # A few records v2 requests at a time (the test's client is the bottleneck, not
        # the server); the rest as records v2 stores them: keyed, over all 8 partitions.
        for n in range(0, over_http, 8):
            await asyncio.gather(*(produce_over_http(m) for m in range(n, n + 8)))
        for start in range(over_http, total, 200):
            batch = [
                producer.record(wide, f"k{n}".encode(), json.dumps({"n": n}).encode())
                for n in range(start, start + 200)
            ]
            await producer.send(batch)

    producing = asyncio.ensure_future(produce())
    seen = await walk(world, wide.id, total)
    await producing
    assert sorted(p["n"] for p in seen) == list(range(total))
    # A publish on the wide topic gets the id consume would give it: it resumes after it.
    last = await world.publish({"n": "last"}, wide.id)
    assert (await world.consume(wide.id, after_message_id=last)).json() == {"messages": []}


# -- long polls ------------------------------------------------------------------------


async def test_a_long_poll_wakes_at_a_publish_and_ends_empty_at_its_timeout(world: World) -> None:
    last = await world.publish({"n": 0})
    started = time.monotonic()
    empty = await world.consume(after_message_id=last, timeout_secs=1)
    assert empty.json() == {"messages": []}
    assert time.monotonic() - started >= 0.9
    polling = asyncio.ensure_future(world.consume(after_message_id=last, timeout_secs=30))
    await asyncio.sleep(0.3)
    assert not polling.done()
    published = time.monotonic()
    await world.publish({"n": 1})
    response = await polling
    woke = time.monotonic() - published
    assert [m["payload"] for m in response.json()["messages"]] == [{"n": 1}]
    assert woke < 2, woke  # woken by the commit, far before the 30 s timeout


async def test_a_long_poll_through_a_purge_and_a_delete(world: World) -> None:
    last = await world.publish({"n": 0})
    polling = asyncio.ensure_future(world.consume(after_message_id=last, timeout_secs=30))
    await asyncio.sleep(0.2)
    await world.http.post(f"/admin/v1/topics/{world.topic.name}/purge", headers=world.admin)
    await asyncio.sleep(0.2)
    assert not polling.done()  # nothing was missed: it goes on waiting
    fresh = await world.publish({"n": 1})
    assert (await polling).json()["messages"][0]["message_id"] == fresh
    polling = asyncio.ensure_future(world.consume(after_message_id=fresh, timeout_secs=30))
    await asyncio.sleep(0.2)
    deleted = await world.http.delete(f"/admin/v1/topics/{world.topic.name}", headers=world.admin)
    assert deleted.status_code in (200, 204), deleted.text
    response = await asyncio.wait_for(polling, 5)
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_topic"


async def waiters(http: httpx.AsyncClient) -> int:
    metrics = (await http.get("/metrics")).text
    found = re.search(r"^sluicegate_storage_waiters (\S+)$", metrics, re.MULTILINE)
    assert found is not None
    return int(float(found.group(1)))


async def until_waiters(http: httpx.AsyncClient, expected: int) -> None:
    deadline = time.monotonic() + 5
    while (current := await waiters(http)) != expected:
        assert time.monotonic() < deadline, f"{current} waiters, expected {expected}"
        await asyncio.sleep(0.01)


async def test_a_disconnect_frees_the_waiter_at_once(world: World) -> None:
    last = await world.publish({"n": 0})
    before = await waiters(world.http)
    async with httpx.AsyncClient(base_url=str(world.http.base_url), timeout=60) as leaving:
        polling = asyncio.ensure_future(
            leaving.post(
                world.url("consume"),
                json={"after_message_id": last, "timeout_secs": 60},
                headers=world.app,
            )
        )
        await until_waiters(world.http, before + 1)
        polling.cancel()  # closes the connection mid-request
        await asyncio.gather(polling, return_exceptions=True)
    await until_waiters(world.http, before)


async def test_long_polls_beyond_the_client_cap_get_429(world: World) -> None:
    last = await world.publish({"n": 0})
    polls = [
        asyncio.ensure_future(world.consume(after_message_id=last, timeout_secs=2))
        for _ in range(3)
    ]
    await asyncio.sleep(0.3)
    refused = await world.consume(after_message_id=last, timeout_secs=2)
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    # Messages that are there are returned at once, without a slot.
    assert (await world.consume()).status_code == 200
    assert all(r.json() == {"messages": []} for r in await asyncio.gather(*polls))


# -- legacy paths, interop, documents --------------------------------------------------


async def test_legacy_paths_work_and_are_rate_limited(world: World) -> None:
    base = f"/api/pubsub/topics/{world.topic.id}"
    published = await world.http.post(f"{base}/publish", json={"n": 1}, headers=world.app)
    assert published.status_code == 200
    batch = await world.http.post(
        f"{base}/batch/publish", json={"payloads": [{"n": 2}]}, headers=world.app
    )
    assert batch.json()["is_partial_error"] is False
    consumed = await world.http.post(f"{base}/consume", json={}, headers=world.app)
    assert [m["payload"] for m in consumed.json()["messages"]] == [{"n": 1}, {"n": 2}]
    statuses = [
        (await world.http.post(f"{base}/consume", json={}, headers=world.app)).status_code
        for _ in range(5)
    ]
    assert statuses.count(429) >= 2, statuses
    limited = await world.http.post(f"{base}/consume", json={}, headers=world.app)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert "topics_v1_legacy" in limited.json()["message"]
    # The new paths are not limited.
    assert (await world.consume()).status_code == 200


async def test_records_of_records_v2_read_here_and_back(world: World) -> None:
    avro = {"type": "record", "name": "P", "fields": [{"name": "name", "type": "string"}]}
    values = [
        {"type": "json", "data": {"a": [1, 2]}},
        {"type": "text", "data": "plain words"},
        {"type": "binary", "data": base64.b64encode(b"\xff\x00\x01").decode()},
        {"type": "avro", "data": {"name": "Jane"}, "schema": json.dumps(avro)},
        None,
    ]
    for value in values:
        record: dict[str, Any] = {"key": {"type": "text", "data": "k"}}
        if value is not None:
            record["value"] = value
        response = await world.http.post(
            "/v2/topics/people/records?serializer=confluent", json=record, headers=world.admin
        )
        assert response.status_code == 200, response.text
    payloads = [m["payload"] for m in (await world.consume()).json()["messages"]]
    assert payloads == [
        {"a": [1, 2]},
        "plain words",
        {"data_base64": base64.b64encode(b"\xff\x00\x01").decode()},
        {"name": "Jane"},
        None,
    ]
    # The topic's value schema is now Avro: topics v1 publishes Avro for its consumers.
    published = await world.publish({"name": "John"})
    assert (await world.consume(after_message_id=published)).json() == {"messages": []}
    records = await world.gateway.log.read(
        TopicPartition("people", 0), 5, max_records=1, max_bytes=1024
    )
    value = records[0].value
    assert value is not None
    assert wire.unframe(value)[0] >= 1
    assert world.gateway.schemas.decode_confluent(value)[1] == {"name": "John"}
    wrong = await world.http.post(world.url("publish"), json={"name": 5}, headers=world.app)
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "invalid_schema"


# -- on Kafka: plain Kafka records --------------------------------------------------------


def test_a_plain_kafka_consumer_reads_what_was_published(
    request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Kafka only: a record read straight from the broker is what any Kafka client sees.
    env = {"SLUICEGATE_ADMIN_KEY": E2E_ADMIN_KEY, **backend_env(request, "kafka")}
    json_type = {"content-type": "application/json"}
    # Payloads with their own spacing and key order: each is stored as it was sent.
    single = b'{"sku": "a-1",  "qty": 1}'
    batch = [b'{"qty":2,"sku":"b-2"}', b'{ "sku" : "c-3", "qty": 3 }', b'{"sku":"d-4","qty":4}']
    partial = [b'{"sku": "e-5", "qty": 5}', b'{"qty": "six"}', b'{"sku":"g-7",  "qty":7}']
    with (
        serve_in_subprocess(tmp_path, args=(), env=env) as server,
        httpx.Client(
            base_url=server.url,
            headers={"authorization": f"Bearer {E2E_ADMIN_KEY}"},
            timeout=30,
        ) as http,
    ):
        schema = [{"name": "sku"}, {"name": "qty", "type": "integer"}]
        created = http.post(
            "/api/event_streams/topics", json={"name": "shop.orders", "schema": schema}
        )
        assert created.status_code == 200, created.text
        topic = created.json()["data"]
        published = http.post(
            f"/api/v1/topics/{topic['id']}/publish", content=single, headers=json_type
        )
        assert published.status_code == 200, published.text
        for payloads, errors in ((batch, [False] * 3), (partial, [False, True, False])):
            answer = http.post(
                f"/api/v1/batch/topics/{topic['id']}/publish",
                content=b'{"payloads": [' + b", ".join(payloads) + b"]}",
                headers=json_type,
            )
            assert answer.status_code == 200, answer.text
            results = answer.json()["message_ids"]
            assert [r["result"] == "error" for r in results.values()] == errors, results
    # Read from the broker alone, the server gone: the name is the prefix and the topic's.
    kafka_topic = env["SLUICEGATE_KAFKA__TOPIC_PREFIX"] + topic["name"]
    messages = consume_all(kafka_bootstrap, kafka_topic)
    # One record per message, its value the message's JSON text as sent: no key, no
    # headers. A batch is one transaction of its complying messages, in their order, and
    # its commit marker takes an offset (4, then 7): a read_committed reader skips them.
    assert [m.value() for m in messages] == [single, *batch, partial[0], partial[2]]
    assert [m.offset() for m in messages] == [0, 1, 2, 3, 5, 6]
    assert all(m.key() is None and m.headers() is None for m in messages)
    assert all(m.partition() == 0 for m in messages)
    assert all(m.timestamp()[0] == TIMESTAMP_LOG_APPEND_TIME for m in messages)


async def test_the_openapi_document_is_served(world: World) -> None:
    document = (await world.http.get("/openapi/topics-v1.json")).json()
    assert set(document["paths"]) == {
        "/api/v1/topics/{topic_id}/publish",
        "/api/v1/batch/topics/{topic_id}/publish",
        "/api/v1/topics/{topic_id}/consume",
        "/api/pubsub/topics/{topic_id}/publish",
        "/api/pubsub/topics/{topic_id}/batch/publish",
        "/api/pubsub/topics/{topic_id}/consume",
    }
