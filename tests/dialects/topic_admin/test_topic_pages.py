"""``GET /admin/v1/topics`` a page at a time, over many topics in a real log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from sluicegate.config import Settings
from sluicegate.core.auth.principals import Permissions
from sluicegate.core.gateway import Gateway
from sluicegate.core.topics import TopicSpec
from sluicegate.http.pagination import DEFAULT_LIMIT, MAX_LIMIT
from tests.conftest import make_settings

TOPICS = "/admin/v1/topics"
#: Enough for several pages at the largest limit; each create is its own commit.
MANY = 1_200


async def _create(gateway: Gateway, names: list[str]) -> None:
    await asyncio.gather(*(gateway.log.create_topic(TopicSpec(name=name)) for name in names))


async def _walk(client: httpx.AsyncClient, **params: int) -> list[httpx.Response]:
    """Every page, following each ``Link: rel="next"`` as a client would."""
    pages = [await client.get(TOPICS, params=params)]
    while "next" in pages[-1].links:
        pages.append(await client.get(pages[-1].links["next"]["url"]))
    return pages


class TestManyTopics:
    # The walk is the dialect's and the same on every backend; 1,200 topic creations on a
    # broker take minutes, so this one runs on the embedded log (the others on both).
    @pytest.fixture
    def backend(self) -> str:
        return "sqlite"

    async def test_many_topics_are_walked_in_bounded_pages(
        self, client: httpx.AsyncClient, gateway: Gateway
    ) -> None:
        names = [f"orders-{i:05d}" for i in range(MANY)]
        await _create(gateway, names)
        pages = await _walk(client, limit=MAX_LIMIT)
        assert [len(page.json()) for page in pages] == [1000, 200]
        assert [t["name"] for page in pages for t in page.json()] == names
        # A full page of topics stays far below the 1.9 MB a single answer for 10,000 took.
        assert max(len(page.content) for page in pages) < 250_000
        assert "next" not in pages[-1].links

        first = await client.get(TOPICS)
        assert len(first.json()) == DEFAULT_LIMIT
        assert first.links["next"]["url"].startswith(f"{TOPICS}?limit={DEFAULT_LIMIT}&cursor=")


async def test_creates_and_deletes_during_a_walk(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    await _create(gateway, ["b", "d", "f", "h"])
    first = await client.get(TOPICS, params={"limit": 2})
    assert [t["name"] for t in first.json()] == ["b", "d"]
    # Behind the cursor ("a"), at it ("d") and ahead of it ("e", "f").
    await _create(gateway, ["a", "e"])
    await gateway.topics.delete("d")
    await gateway.topics.delete("f")
    second = await client.get(first.links["next"]["url"])
    assert [t["name"] for t in second.json()] == ["e", "h"]
    assert "next" not in second.links


async def test_bad_limit_and_cursor_are_400(client: httpx.AsyncClient) -> None:
    for params in ({"limit": 0}, {"limit": MAX_LIMIT + 1}, {"limit": "all"}, {"cursor": "x"}):
        response = await client.get(TOPICS, params=params)
        assert response.status_code == 400, params
        assert response.json()["error"] == "bad_request"
        assert f"query parameter {next(iter(params))}" in response.json()["message"]


class TestOnlyTopicsThePrincipalAdministers:
    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        return make_settings(tmp_path)

    async def test_pages_count_visible_topics_only(
        self, client: httpx.AsyncClient, gateway: Gateway
    ) -> None:
        await _create(gateway, [f"{team}-{i}" for i in range(5) for team in ("billing", "ops")])
        await gateway.clients.create_client("billing-admin", Permissions(admin=["billing-*"]), [])
        key = (await gateway.clients.create_key("billing-admin")).key
        client.headers["authorization"] = f"Bearer {key}"
        pages = await _walk(client, limit=2)
        assert [[t["name"] for t in page.json()] for page in pages] == [
            ["billing-0", "billing-1"],
            ["billing-2", "billing-3"],
            ["billing-4"],
        ]
