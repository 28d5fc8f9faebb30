"""The topic list with 10,000 topics: totals and pages are right, and a page costs one
call to the log whatever the number of topics.

Creating 10,000 topics one durable write at a time would take minutes, so the data
directory is made by the log once and the topics are then written into its database in
one transaction; the gateway under test loads them as it loads any data directory.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluicegate.app import build_app
from sluicegate.config import Settings
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import format_timestamp
from sluicegate.storage.base import Log, running
from sluicegate.storage.factory import open_log
from sluicegate.storage.sqlite.directory import DATABASE_FILE

TOPICS = "/api/event_streams/topics"
COUNT = 10_000


async def write_topics(settings: Settings, count: int) -> None:
    async with running(open_log(settings)):
        pass  # the database and its tables now exist
    database = Path(settings.storage.data_dir) / DATABASE_FILE
    with sqlite3.connect(database) as conn:
        # Created a second apart, in an order unlike their names or ids.
        conn.executemany(
            "INSERT INTO topics (name, partitions, retention_ms, retention_bytes, config,"
            " created_at, updated_at) VALUES (?, 1, 604800000, NULL, ?, ?, ?)",
            [
                (
                    f"topic-{(i * 7919) % count:05d}",
                    json.dumps({"description": f"number {i}"}),
                    (1_700_000_000 + (i * 31) % count) * 1_000_000,
                    (1_700_000_000 + (i * 31) % count) * 1_000_000,
                )
                for i in range(count)
            ],
        )
        conn.execute(
            "INSERT INTO partitions (topic_id, partition, log_start_offset)"
            " SELECT id, 0, 0 FROM topics"
        )


class Counting:
    """Counts the calls made to a real log's methods, and lets them through."""

    def __init__(self, log: Log, names: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        for name in names:
            method = getattr(log, name)

            async def counted(*args: Any, _name: str = name, _method: Any = method) -> Any:
                self.calls[_name] += 1
                return await _method(*args)

            monkeypatch.setattr(log, name, counted)


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    await write_topics(settings, COUNT)
    async with running(open_log(settings)) as log:
        gateway = Gateway(settings, log)
        await gateway.start()
        yield gateway


async def test_listing_10000_topics(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = Counting(
        gateway.log,
        ["list_topics", "get_topic", "get_topic_by_id", "watermarks", "read"],
        monkeypatch,
    )
    transport = httpx.ASGITransport(app=build_app(gateway))
    async with httpx.AsyncClient(transport=transport, base_url="http://sluicegate.test") as http:

        async def page(**params: Any) -> dict[str, Any]:
            response = await http.get(TOPICS, params=params)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        first = await page()
        assert first["count"] == COUNT
        assert len(first["data"]) == 100
        assert [t["id"] for t in first["data"]] == sorted(t["id"] for t in first["data"])

        seen: list[int] = []
        for number in range(1, COUNT // 100 + 2):
            body = await page(page=number, sort="name", include_schema="true")
            assert body["count"] == COUNT
            seen.extend(t["id"] for t in body["data"])
        assert len(seen) == COUNT
        assert len(set(seen)) == COUNT  # every topic once, none twice

        by_name = await page(sort="-name", per_page=3)
        assert [t["name"] for t in by_name["data"]] == ["topic-09999", "topic-09998", "topic-09997"]
        newest = await page(sort="activity", per_page=1)
        latest = (1_700_000_000 + COUNT - 1) * 1_000_000
        assert newest["data"][0]["updated_at"] == format_timestamp(latest)
        filtered = await page(name="topic-0999")
        assert filtered["count"] == 10
        assert {t["description"] for t in filtered["data"]} <= {f"number {i}" for i in range(COUNT)}
    # One call to the log per page; no per-topic call.
    assert storage.calls == Counter({"list_topics": COUNT // 100 + 5})
