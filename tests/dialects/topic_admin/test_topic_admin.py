"""The gateway's own topic admin API, in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from sluicegate.config import Settings
from sluicegate.core.partitioner import partition_for_key
from tests.conftest import commit_markers, make_settings

TOPICS = "/admin/v1/topics"


async def test_lifecycle(client: httpx.AsyncClient, backend: str) -> None:
    created = await client.post(
        TOPICS, json={"name": "orders", "partitions": 2, "retention_ms": 60_000}
    )
    assert created.status_code == 201, created.text
    assert created.json()["partitions"] == 2
    assert (await client.post(TOPICS, json={"name": "orders"})).status_code == 409
    assert [t["name"] for t in (await client.get(TOPICS)).json()] == ["orders"]
    altered = await client.patch(f"{TOPICS}/orders", json={"partitions": 4, "retention_ms": None})
    assert altered.json()["partitions"] == 4
    assert altered.json()["retention_ms"] is None
    shrink = await client.patch(f"{TOPICS}/orders", json={"partitions": 1})
    assert shrink.status_code == 400
    produced = await client.post(
        f"{TOPICS}/orders/records",
        json={"records": [{"value": "a", "partition": 3}, {"value": "b", "partition": 3}]},
    )
    assert produced.json() == {"offsets": [[3, 0], [3, 1]]}
    described = (await client.get(f"{TOPICS}/orders")).json()
    high = 2 + commit_markers(backend)
    assert described["partition_offsets"][3] == {"partition": 3, "low": 0, "high": high}
    assert (await client.post(f"{TOPICS}/orders/purge")).status_code == 204
    described = (await client.get(f"{TOPICS}/orders")).json()
    assert described["partition_offsets"][3] == {"partition": 3, "low": high, "high": high}
    assert (await client.delete(f"{TOPICS}/orders")).status_code == 204
    assert (await client.get(f"{TOPICS}/orders")).status_code == 404


async def test_internal_topics_are_hidden_and_reserved(client: httpx.AsyncClient) -> None:
    # The gateway's own state topics exist (schemas, clients) but are not shown or usable.
    assert (await client.get(TOPICS)).json() == []
    assert (await client.post(TOPICS, json={"name": "__sluicegate_x"})).status_code == 409
    assert (await client.get(f"{TOPICS}/__sluicegate_schemas")).status_code == 404
    # So are Kafka's own (``__consumer_offsets``…): every name starting with "__".
    refused = await client.post(TOPICS, json={"name": "__consumer_offsets"})
    assert refused.status_code == 409
    assert "reserved for internal topics" in refused.json()["message"]
    produced = await client.post(
        "/v2/topics/__anything/records", json={"value": {"type": "text", "data": "x"}}
    )
    assert produced.status_code == 404
    assert (await client.get(f"{TOPICS}/__anything")).status_code == 404
    assert (await client.get(TOPICS)).json() == []


async def test_read_bounds_and_errors(client: httpx.AsyncClient, backend: str) -> None:
    await client.post(
        f"{TOPICS}/t/records", json={"records": [{"key": "k", "value": str(i)} for i in range(10)]}
    )
    page = (await client.get(f"{TOPICS}/t/records", params={"offset": 2, "max_records": 3})).json()
    assert [r["value"] for r in page["records"]] == ["2", "3", "4"]
    assert page["next_offset"] == 5
    high = 10 + commit_markers(backend)
    assert page["high_watermark"] == high
    past = await client.get(f"{TOPICS}/t/records", params={"offset": high + 1})
    assert past.status_code == 400
    assert "offset" in past.json()["message"]
    bad = await client.get(f"{TOPICS}/t/records", params={"max_records": "many"})
    assert bad.status_code == 400
    assert bad.json()["message"] == "query parameter max_records must be an integer, got 'many'"
    assert (await client.get(f"{TOPICS}/t/records", params={"partition": 1})).status_code == 400
    assert (
        await client.post(TOPICS, content=b"{", headers={"content-type": "application/json"})
    ).status_code == 400


async def test_long_poll_wakes_on_new_data(client: httpx.AsyncClient) -> None:
    await client.post(TOPICS, json={"name": "live"})
    poll = asyncio.create_task(
        client.get(f"{TOPICS}/live/records", params={"offset": 0, "timeout": 10})
    )
    await asyncio.sleep(0.05)
    assert not poll.done()
    await client.post(f"{TOPICS}/live/records", json={"records": [{"value": "hello"}]})
    response = await asyncio.wait_for(poll, 5)
    assert [r["value"] for r in response.json()["records"]] == ["hello"]


class TestLongPollCap:
    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        return make_settings(tmp_path, auth={"enabled": False}, limits={"max_long_polls": 1})

    async def test_second_long_poll_is_refused(self, client: httpx.AsyncClient) -> None:
        await client.post(TOPICS, json={"name": "quiet"})
        url, params = f"{TOPICS}/quiet/records", {"offset": 0, "timeout": 1}
        first = asyncio.create_task(client.get(url, params=params))
        await asyncio.sleep(0.05)
        second = await client.get(url, params=params)
        assert second.status_code == 503
        assert second.headers["retry-after"]
        assert (await first).status_code == 200
        assert (await client.get(url, params=params)).status_code == 200


async def test_a_batch_partitions_each_record_by_its_key_or_its_partition(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(TOPICS, json={"name": "keyed", "partitions": 5})
    assert created.status_code == 201, created.text
    rows = [
        {"key": "customer-7", "value": "a"},
        {"key": "customer-9", "value": "b"},
        {"key": "customer-7", "value": "c", "partition": 4},  # explicit wins over the key
        {"key": "customer-7", "value": None},
        {"value": "d", "partition": 2},
    ]
    produced = await client.post(f"{TOPICS}/keyed/records", json={"records": rows})
    assert produced.status_code == 200, produced.text
    partitions = [partition for partition, _ in produced.json()["offsets"]]
    seven = partition_for_key(b"customer-7", 5)
    assert partitions == [seven, partition_for_key(b"customer-9", 5), 4, seven, 2]
    bad = await client.post(
        f"{TOPICS}/keyed/records", json={"records": [{"key": "k", "value": "x", "partition": 5}]}
    )
    assert bad.status_code == 400


async def test_a_batch_of_keyed_records_lands_by_key_and_reads_back_as_sent(
    client: httpx.AsyncClient,
) -> None:
    # Every row keyed and none with a partition: each key encoded and hashed once.
    created = await client.post(TOPICS, json={"name": "by-key", "partitions": 3})
    assert created.status_code == 201, created.text
    rows = [{"key": f"customer-{i % 4}", "value": f"order-{i}-é"} for i in range(12)]
    produced = await client.post(f"{TOPICS}/by-key/records", json={"records": rows})
    assert produced.status_code == 200, produced.text
    offsets = produced.json()["offsets"]
    assert [partition for partition, _ in offsets] == [
        partition_for_key(row["key"].encode(), 3) for row in rows
    ]
    for (partition, offset), row in zip(offsets, rows, strict=True):
        params = {"partition": partition, "offset": offset, "max_records": 1}
        [record] = (await client.get(f"{TOPICS}/by-key/records", params=params)).json()["records"]
        assert (record["offset"], record["key"], record["value"]) == (
            offset,
            row["key"],
            row["value"],
        )


async def test_a_batch_of_one_key_lands_on_its_partition_and_reads_back_as_sent(
    client: httpx.AsyncClient,
) -> None:
    # One key for every row: the key and its partition are made once, for all of them.
    created = await client.post(TOPICS, json={"name": "one-key", "partitions": 4})
    assert created.status_code == 201, created.text
    rows = [{"key": "device-3", "value": None if i == 2 else f"reading-{i}"} for i in range(9)]
    produced = await client.post(f"{TOPICS}/one-key/records", json={"records": rows})
    assert produced.status_code == 200, produced.text
    partition = partition_for_key(b"device-3", 4)
    offsets = produced.json()["offsets"]
    assert [p for p, _ in offsets] == [partition] * len(rows)
    params = {"partition": partition, "offset": offsets[0][1], "max_records": 100}
    records = (await client.get(f"{TOPICS}/one-key/records", params=params)).json()["records"]
    assert [(r["offset"], r["key"], r["value"]) for r in records] == [
        (offset, row["key"], row["value"]) for (_, offset), row in zip(offsets, rows, strict=True)
    ]


async def test_a_row_with_its_own_partition_keeps_it_in_a_batch_of_one_key(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(TOPICS, json={"name": "one-key-but", "partitions": 4})
    assert created.status_code == 201, created.text
    by_key = partition_for_key(b"device-3", 4)
    own = (by_key + 1) % 4
    rows = [{"key": "device-3", "value": f"{i}"} for i in range(5)]
    rows[3]["partition"] = own
    produced = await client.post(f"{TOPICS}/one-key-but/records", json={"records": rows})
    assert produced.status_code == 200, produced.text
    assert [p for p, _ in produced.json()["offsets"]] == [by_key, by_key, by_key, own, by_key]


async def test_a_config_patch_changes_the_keys_it_names(client: httpx.AsyncClient) -> None:
    # A merge patch: other APIs keep their settings in the same map (topics v1 its
    # description and schema), which setting one Kafka config must not wipe.
    created = await client.post(
        TOPICS, json={"name": "orders", "config": {"description": "Orders", "segment.ms": 60_000}}
    )
    assert created.status_code == 201, created.text
    patched = await client.patch(
        f"{TOPICS}/orders", json={"config": {"cleanup.policy": "delete", "segment.ms": None}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"] == {"description": "Orders", "cleanup.policy": "delete"}
    refused = await client.patch(f"{TOPICS}/orders", json={"config": {"segment.ms": "soon"}})
    assert refused.status_code == 400
    assert "'segment.ms' must be a whole number" in refused.json()["message"]
