"""Watching a topic: ``/browse`` and ``/rates`` in-process, ``/tail`` over a real socket
(an event stream never ends, and the in-process transport waits for the end)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from sluicegate.app import GatewayApp
from sluicegate.config import Settings
from tests.helpers import serving

TOPICS = "/admin/v1/topics"
AVRO = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"}],
    }
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def _produce(
    client: httpx.AsyncClient, topic: str, body: dict[str, Any], **query: str
) -> None:
    response = await client.post(f"/v2/topics/{topic}/records", json=body, params=query)
    assert response.status_code == 200, response.text


async def _every_kind(client: httpx.AsyncClient, topic: str) -> None:
    """One record of each kind the console decodes, in this order."""
    created = await client.post(TOPICS, json={"name": topic, "partitions": 1})
    assert created.status_code == 201, created.text
    await _produce(
        client,
        topic,
        {"key": {"type": "text", "data": "k1"}, "value": {"type": "text", "data": "plain words"}},
    )
    await _produce(client, topic, {"value": {"type": "json", "data": {"order": 7, "items": ["a"]}}})
    await _produce(
        client,
        topic,
        {"value": {"type": "avro", "schema": AVRO, "data": {"id": 3, "item": "tea"}}},
        serializer="confluent",
    )
    await _produce(client, topic, {"value": {"type": "binary", "data": "/wABAg=="}})
    await _produce(
        client,
        topic,
        {
            "headers": [
                {"name": "ce_specversion", "value": _b64("1.0")},
                {"name": "ce_type", "value": _b64("com.example.order.created")},
                {"name": "ce_source", "value": _b64("/shop")},
                {"name": "ce_id", "value": _b64("e-1")},
                {"name": "content-type", "value": _b64("application/json")},
            ],
            "value": {"type": "json", "data": {"order": 8}},
        },
    )


async def test_browse_decodes_text_json_avro_binary_and_cloudevents(
    client: httpx.AsyncClient,
) -> None:
    await _every_kind(client, "shop")
    page = (await client.get(f"{TOPICS}/shop/browse")).json()
    records = page["records"]
    assert [r["value"]["encoding"] for r in records] == ["text", "json", "avro", "base64", "json"]
    text, as_json, avro, binary, event = records
    assert text["key"] == {"encoding": "text", "text": "k1"}
    assert text["value"]["text"] == "plain words"
    assert as_json["key"] == {"encoding": "null"}
    assert as_json["value"]["data"] == {"order": 7, "items": ["a"]}
    assert avro["value"]["data"] == {"id": 3, "item": "tea"}
    assert isinstance(avro["value"]["schema_id"], int)
    assert binary["value"] == {"encoding": "base64", "text": "/wABAg=="}
    assert event["cloudevent"] == {
        "specversion": "1.0",
        "type": "com.example.order.created",
        "source": "/shop",
        "id": "e-1",
        "datacontenttype": "application/json",
    }
    assert "cloudevent" not in text
    assert page["positions"] == {"0": records[-1]["offset"] + 1}


async def test_browse_from_an_offset_a_time_and_a_partition(client: httpx.AsyncClient) -> None:
    await client.post(TOPICS, json={"name": "many", "partitions": 2})
    for i in range(6):
        await _produce(client, "many", {"value": {"type": "text", "data": f"r{i}"}})
    whole = (await client.get(f"{TOPICS}/many/browse", params={"limit": 500})).json()
    assert sorted(r["value"]["text"] for r in whole["records"]) == [f"r{i}" for i in range(6)]
    stamps = [r["timestamp"] for r in whole["records"]]
    assert stamps == sorted(stamps)
    third = whole["records"][3]
    since = (await client.get(f"{TOPICS}/many/browse", params={"from": third["timestamp"]})).json()
    assert third["value"]["text"] in [r["value"]["text"] for r in since["records"]]
    assert len(since["records"]) <= 3 + 2  # records stamped alike may share the instant
    p = third["partition"]
    one = await client.get(
        f"{TOPICS}/many/browse", params={"partition": p, "from": third["offset"], "limit": 1}
    )
    assert [r["offset"] for r in one.json()["records"]] == [third["offset"]]
    assert one.json()["positions"] == {str(p): third["offset"] + 1}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"partition": "9"}, "partition"),
        ({"partition": "x"}, "partition"),
    ],
)
async def test_browse_refuses_bad_input_in_the_admin_format(
    client: httpx.AsyncClient, query: dict[str, str], field: str
) -> None:
    await client.post(TOPICS, json={"name": "bad", "partitions": 1})
    response = await client.get(f"{TOPICS}/bad/browse", params=query)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "bad_request"
    assert field in body["message"]


async def test_watching_an_unknown_topic_is_404(client: httpx.AsyncClient) -> None:
    for suffix in ("browse", "rates", "tail"):
        response = await client.get(f"{TOPICS}/nope/{suffix}")
        assert response.status_code == 404, suffix
        assert response.json()["error"] == "unknown_topic"


async def test_rates_count_the_records_of_each_minute(client: httpx.AsyncClient) -> None:
    await client.post(TOPICS, json={"name": "busy", "partitions": 3})
    for i in range(9):
        await _produce(client, "busy", {"value": {"type": "text", "data": str(i)}})
    rates = (await client.get(f"{TOPICS}/busy/rates", params={"minutes": 5})).json()
    assert rates["step_seconds"] == 60
    assert len(rates["points"]) == 5
    # Every record is from the last minute or the one before (if it just turned).
    assert sum(p["records"] for p in rates["points"][-2:]) == 9
    assert rates["points"][-1]["per_second"] >= rates["points"][-1]["records"] / 60
    bad = await client.get(f"{TOPICS}/busy/rates", params={"minutes": 61})
    assert bad.status_code == 400


async def test_browse_pages_go_on_from_the_positions_whatever_the_timestamps(
    client: httpx.AsyncClient,
) -> None:
    """120 records in one request share a timestamp: a page's positions give the next
    page, each record once, and the pages end."""
    await client.post(TOPICS, json={"name": "stamped", "partitions": 3})
    records = [{"value": f"r{i}"} for i in range(120)]
    sent = await client.post(f"{TOPICS}/stamped/records", json={"records": records})
    assert sent.status_code == 200, sent.text
    seen: list[tuple[int, int]] = []
    query: dict[str, str] = {"limit": "50"}
    for _ in range(10):
        page = (await client.get(f"{TOPICS}/stamped/browse", params=query)).json()
        if not page["records"]:
            break
        seen.extend((r["partition"], r["offset"]) for r in page["records"])
        query["positions"] = ",".join(f"{p}:{o}" for p, o in page["positions"].items())
    assert len(seen) == 120
    assert len(set(seen)) == 120
    bad = await client.get(f"{TOPICS}/stamped/browse", params={"positions": "0:x"})
    assert bad.status_code == 400
    assert "positions" in bad.json()["message"]


async def test_rates_say_how_many_seconds_they_cover(client: httpx.AsyncClient) -> None:
    await client.post(TOPICS, json={"name": "spanned", "partitions": 1})
    rates = (await client.get(f"{TOPICS}/spanned/rates", params={"minutes": 5})).json()
    # Four whole minutes and the current one so far: not 300 s.
    assert 240 <= rates["seconds"] <= 300
    one = (await client.get(f"{TOPICS}/spanned/rates", params={"minutes": 1})).json()
    assert 1 <= one["seconds"] <= 60


async def test_the_topic_list_filters_by_name_and_its_link_keeps_the_filter(
    client: httpx.AsyncClient,
) -> None:
    for name in ("orders-eu", "orders-us", "ORDERS-asia", "payments"):
        await client.post(TOPICS, json={"name": name, "partitions": 1})
    first = await client.get(TOPICS, params={"name": "orders", "limit": 2})
    assert [t["name"] for t in first.json()] == ["ORDERS-asia", "orders-eu"]
    link = first.headers["link"]
    assert "name=orders" in link
    url = link[link.index("<") + 1 : link.index(">")]
    rest = await client.get(url)
    assert [t["name"] for t in rest.json()] == ["orders-us"]
    assert "link" not in rest.headers
    too_long = await client.get(TOPICS, params={"name": "x" * 250})
    assert too_long.status_code == 400


# -- the live tail, over a real socket ---------------------------------------------------


@pytest.fixture
async def http(app: GatewayApp, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serving(app, settings) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        yield client


class Events:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[ServerSentEvent | None] = asyncio.Queue()

    async def next(self, seconds: float = 10) -> ServerSentEvent | None:
        async with asyncio.timeout(seconds):
            return await self.queue.get()


async def _read(http: httpx.AsyncClient, path: str, events: Events, **query: str) -> None:
    async with aconnect_sse(http, "GET", path, params=query) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"] == "text/event-stream"
        try:
            async for sse in source.aiter_sse():
                await events.queue.put(sse)
        finally:
            await events.queue.put(None)


async def _records(events: Events, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        sse = await events.next()
        assert sse is not None
        if sse.event == "records":
            got.extend(json.loads(sse.data)["records"])
    return got


async def test_tail_starts_at_the_end_and_streams_what_is_appended(
    http: httpx.AsyncClient,
) -> None:
    await http.post(TOPICS, json={"name": "live", "partitions": 2})
    await _produce(http, "live", {"value": {"type": "text", "data": "before"}})
    events = Events()
    reader = asyncio.create_task(_read(http, f"{TOPICS}/live/tail", events))
    try:
        start = await events.next()
        assert start is not None
        assert start.event == "start"
        assert start.retry == 3000
        assert json.loads(start.data)["topic"] == "live"
        for i in range(5):
            await _produce(http, "live", {"value": {"type": "json", "data": {"n": i}}})
        got = await _records(events, 5)
        assert sorted(r["value"]["data"]["n"] for r in got) == list(range(5))
        assert all(r["value"]["encoding"] == "json" for r in got)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def test_tail_from_an_offset_replays_then_follows(http: httpx.AsyncClient) -> None:
    await http.post(TOPICS, json={"name": "replay", "partitions": 1})
    for i in range(3):
        await _produce(http, "replay", {"value": {"type": "text", "data": f"old{i}"}})
    events = Events()
    reader = asyncio.create_task(_read(http, f"{TOPICS}/replay/tail", events, **{"from": "1"}))
    try:
        old = await _records(events, 2)
        assert [r["value"]["text"] for r in old] == ["old1", "old2"]
        await _produce(http, "replay", {"value": {"type": "text", "data": "new"}})
        new = await _records(events, 1)
        assert new[0]["value"]["text"] == "new"
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def test_tail_with_a_timeout_ends_once_nothing_is_left(http: httpx.AsyncClient) -> None:
    await http.post(TOPICS, json={"name": "ends", "partitions": 1})
    await _produce(http, "ends", {"value": {"type": "text", "data": "only"}})
    events = Events()
    await _read(http, f"{TOPICS}/ends/tail", events, **{"from": "0", "timeout": "0"})
    start = await events.next()
    assert start is not None
    assert start.event == "start"
    got = await _records(events, 1)
    assert got[0]["value"]["text"] == "only"
    assert await events.next() is None


async def test_tail_refusals_come_before_the_stream(http: httpx.AsyncClient) -> None:
    await http.post(TOPICS, json={"name": "refused", "partitions": 1})
    accept = await http.get(f"{TOPICS}/refused/tail", headers={"Accept": "application/json"})
    assert accept.status_code == 406
    assert accept.json()["error"] == "not_acceptable"
    for query in ({"max_rate": "0"}, {"max_rate": "10001"}, {"from": "soon"}, {"timeout": "-1"}):
        bad = await http.get(f"{TOPICS}/refused/tail", params=query)
        assert bad.status_code == 400, query
        assert bad.json()["error"] == "bad_request"


async def test_tail_resumes_each_partition_at_its_position_and_names_the_topic(
    http: httpx.AsyncClient,
) -> None:
    await http.post(TOPICS, json={"name": "resumed", "partitions": 2})
    for i in range(8):
        key = {"type": "text", "data": f"k{i}"}
        await _produce(http, "resumed", {"key": key, "value": {"type": "text", "data": f"r{i}"}})
    topic = (await http.get(f"{TOPICS}/resumed")).json()
    highs = {p["partition"]: p["high"] for p in topic["partition_offsets"]}
    assert all(highs.values()), highs
    events = Events()
    # Partition 0 read up to its last record but one; partition 1 not named: all of it.
    query = {"positions": f"0:{highs[0] - 1}", "timeout": "0"}
    await _read(http, f"{TOPICS}/resumed/tail", events, **query)
    start = await events.next()
    assert start is not None
    head = json.loads(start.data)
    assert head["topic_id"] == topic["id"]
    assert head["positions"] == {"0": highs[0] - 1, "1": 0}
    got = await _records(events, 1 + highs[1])
    assert sorted((r["partition"], r["offset"]) for r in got) == [(0, highs[0] - 1)] + [
        (1, o) for o in range(highs[1])
    ]
