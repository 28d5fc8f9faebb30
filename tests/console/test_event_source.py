"""``GET /ce/sse`` read by the browser's own ``EventSource``, in Chromium.

An ``EventSource`` cannot send an ``Authorization`` header, so the server here runs with
authentication off (a loopback-only mode) and the stream is opened from a page of the same
origin. What only a browser shows: it reconnects by itself when a stream ends, sending
``Last-Event-ID``, and that confirms what it had received — the next stream brings only the
events produced after, none of the first again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page

from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.conftest import BACKENDS
from tests.helpers import backend_env

#: Opens a stream (each ends after 1 s without an event; the browser comes back after
#: 200 ms) and keeps every message in ``window.sse``.
OPEN = """
(url) => {
  window.sse = { events: [], instances: [] };
  const source = new EventSource(url);
  source.addEventListener("instance", (e) => window.sse.instances.push(JSON.parse(e.data)));
  source.onmessage = (e) =>
    window.sse.events.push({ id: e.lastEventId, event: JSON.parse(e.data) });
  window.sseSource = source;
}
"""


@pytest.fixture(scope="module", params=BACKENDS)
def open_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {
        "SLUICEGATE_CLOUDEVENTS__SSE_RETRY_MS": "200",
        "SLUICEGATE_CLOUDEVENTS__SSE_RECONNECT_GRACE": "10",
        **backend_env(request, request.param),
    }
    data = tmp_path_factory.mktemp("data")
    with serve_in_subprocess(data, args=("--no-auth",), env=env) as server:
        yield server


def _wait_for(page: Page, count: str, at_least: int) -> None:
    """Until ``window.sse[count]`` holds ``at_least`` entries (polled: the page's policy
    forbids the string evaluation that ``wait_for_function`` uses)."""
    deadline = time.monotonic() + 20
    while page.evaluate(f"() => window.sse.{count}.length") < at_least:
        assert time.monotonic() < deadline, page.evaluate("() => window.sse")
        page.wait_for_timeout(50)


def _produce(server: ServerProcess, *ids: str) -> None:
    events = [
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "urn:shop",
            "type": "Order.Created",
            "partitionkey": "one-key",
            "data": {"id": event_id},
        }
        for event_id in ids
    ]
    response = httpx.post(
        f"{server.url}/ce/produce/events",
        content=json.dumps(events),
        headers={"content-type": "application/cloudevents-batch+json"},
        timeout=30,
    )
    assert response.status_code == 202, response.text


def test_event_source_reconnects_with_last_event_id_and_gets_only_what_is_new(
    browser_context: BrowserContext, open_server: ServerProcess
) -> None:
    page = browser_context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        page.goto(f"{open_server.url}/console")
        _produce(open_server, "e1", "e2", "e3")
        page.evaluate(OPEN, "/ce/sse?group=browser&timeout=1")
        _wait_for(page, "events", 3)
        # The stream ends after a second without events; the browser reconnects on its
        # own, with the last id it received, which confirms e1 to e3 for the group.
        _wait_for(page, "instances", 2)
        _produce(open_server, "e4", "e5")
        _wait_for(page, "events", 5)
        page.wait_for_timeout(1500)  # room for a redelivery, were there one
        seen: dict[str, Any] = page.evaluate("() => window.sse")
        page.evaluate("() => window.sseSource.close()")
    finally:
        page.close()
    assert not problems, problems
    assert [m["event"]["id"] for m in seen["events"]] == ["e1", "e2", "e3", "e4", "e5"]
    first, second = seen["instances"][0], seen["instances"][1]
    assert first["last_event_id"] is None
    last_of_first = seen["events"][2]["id"]
    assert last_of_first.endswith("@" + first["instance"].rsplit("/", 1)[-1])
    # The browser sent the id of the last event it had, and the server confirmed it.
    assert second["last_event_id"] == last_of_first
    assert second["confirmed"] is True
    assert all(m["event"]["offset"] == m["id"].split("@")[0] for m in seen["events"])
