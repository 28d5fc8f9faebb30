"""CloudEvents consumers after a broker outage, on a broker of this module's own: once
``/readyz`` says the node is ready again, its consumers work again too.

A load balancer sends traffic as soon as ``/readyz`` answers 200, so a consumer API that
still answers 503 then is an outage of its own. Before, a node kept refusing its consumer
groups until its next heartbeat got through (seconds), then failed the first read of
their committed offsets at the request timeout (10 s): the group-offsets client that
lived through the outage waited for the coordinator it had cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from sluicegate.testing.kafka_broker import KafkaBroker
from tests.storage.kafka.conftest import free_port, serve_at

#: Seconds after ``/readyz`` answers 200 again within which consumers must work.
RECOVERED_WITHIN = 5.0
#: Seconds the broker is away: longer than the three quarters of the heartbeat timeout
#: (10 s) after which the node gives up its consumer groups.
OUTAGE = 10.0
STRUCTURED = {"content-type": "application/cloudevents+json"}


@pytest.fixture
async def http(broker: KafkaBroker, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``sluicegate serve`` (every housekeeping task running, the request
    timeout left at its default of 10 s) on ``broker``, once the node is ready."""
    port = free_port()
    env = {
        "SLUICEGATE_STORAGE__BACKEND": "kafka",
        "SLUICEGATE_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
    }
    process = serve_at(tmp_path / "data", port, tmp_path / "serve.log", env=env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await _until_ready(client, 60)
            yield client
    finally:
        process.terminate()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(process.wait, 30)
        process.kill()
        process.wait()


async def _until_ready(http: httpx.AsyncClient, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(httpx.TransportError):
            if (await http.get("/readyz")).status_code == 200:
                return
        assert time.monotonic() < deadline, "/readyz did not answer 200"
        await asyncio.sleep(0.1)


def _event(event_id: str) -> str:
    return json.dumps(
        {"specversion": "1.0", "id": event_id, "source": "/recovery", "type": "recovery.test"}
    )


async def _answered(
    deadline: float, request: httpx.Request, http: httpx.AsyncClient, status: int
) -> httpx.Response:
    """``request``'s answer ``status``, sent again after each 503 until ``deadline``."""
    while True:
        response = await http.send(request)
        if response.status_code == status:
            return response
        assert response.status_code == 503, response.text
        assert time.monotonic() < deadline, f"still 503 after /readyz said ready: {response.text}"
        await asyncio.sleep(0.1)


async def _produce(http: httpx.AsyncClient, event_id: str, deadline: float) -> None:
    request = http.build_request("POST", "/ce/produce/event", content=_event(event_id))
    request.headers.update(STRUCTURED)
    await _answered(deadline, request, http, 202)


async def _create(http: httpx.AsyncClient, deadline: float) -> str:
    request = http.build_request("POST", "/ce/consumers", params={"group": "recovery"})
    created = await _answered(deadline, request, http, 201)
    return urlsplit(created.headers["location"]).path


async def _poll_until(
    http: httpx.AsyncClient, instance: str, wanted: set[str], deadline: float
) -> set[str]:
    """The ids delivered to ``instance`` once it has had every one of ``wanted``."""
    got: set[str] = set()
    request = http.build_request("GET", f"{instance}/events", params={"timeout": "1"})
    while not wanted <= got:
        polled = await _answered(deadline, request, http, 200)
        got |= {event["id"] for event in polled.json()}
    return got


async def test_consumers_work_again_once_readyz_says_ready_after_an_outage(
    http: httpx.AsyncClient, broker: KafkaBroker
) -> None:
    # Before: an instance polls and confirms a first event; a second waits for the group.
    before = time.monotonic() + 30
    first = await _create(http, before)
    await _produce(http, "e1", before)
    assert await _poll_until(http, first, {"e1"}, before) == {"e1"}
    assert (await http.post(f"{first}/confirm")).status_code == 204
    await _produce(http, "e2", before)
    assert (await http.delete(first)).status_code == 204
    await asyncio.to_thread(broker.stop)
    try:
        await asyncio.sleep(OUTAGE)
        assert (await http.get("/readyz")).status_code == 503
    finally:
        await asyncio.to_thread(broker.start)
    await _until_ready(http, 60)
    # From the moment the node says it is ready: produce, create, poll and confirm.
    ready_at = time.monotonic()
    deadline = ready_at + RECOVERED_WITHIN
    await _produce(http, "e3", deadline)
    second = await _create(http, deadline)
    # The confirmed event is not delivered again; the one before and the one after are.
    assert await _poll_until(http, second, {"e2", "e3"}, deadline) == {"e2", "e3"}
    confirmed = await _answered(
        deadline, http.build_request("POST", f"{second}/confirm"), http, 204
    )
    assert confirmed.status_code == 204
    assert time.monotonic() - ready_at < RECOVERED_WITHIN
    # The confirmation was stored: the group's next instance has nothing to deliver.
    assert (await http.delete(second)).status_code == 204
    third = await _create(http, time.monotonic() + RECOVERED_WITHIN)
    polled = await http.get(f"{third}/events", params={"timeout": "1"})
    assert polled.status_code == 204, polled.text
