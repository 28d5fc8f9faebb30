"""A graceful stop keeps the confirmations a server answered, on both backends: a poll's
``confirm=true`` is committed in the background (``ConsumerInstance.confirm``), and
``sluicegate serve`` waits for those commits before it closes its log, so the group's
next instance, after a restart, starts past them."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from sluicegate.testing.process import serve_in_subprocess

EVENTS = 40


@pytest.fixture(params=["sqlite", "kafka"])
def env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    return {
        "SLUICEGATE_STORAGE__BACKEND": "kafka",
        "SLUICEGATE_KAFKA__BOOTSTRAP_SERVERS": request.getfixturevalue("kafka_bootstrap"),
        "SLUICEGATE_KAFKA__TOPIC_PREFIX": f"s{uuid.uuid4().hex[:10]}.",
    }


def _events(first: int, count: int) -> list[dict[str, object]]:
    return [
        {
            "specversion": "1.0",
            "id": f"order-{n}",
            "source": "urn:shop",
            "type": "Order.Created",
            "partitionkey": f"customer-{n % 7}",
            "data": {"order": n},
        }
        for n in range(first, first + count)
    ]


def _ids(response: httpx.Response) -> list[str]:
    return [] if response.status_code == 204 else [e["id"] for e in response.json()]


def test_a_poll_confirmation_survives_a_graceful_stop(tmp_path: Path, env: dict[str, str]) -> None:
    batch = {"content-type": "application/cloudevents-batch+json"}
    with serve_in_subprocess(tmp_path, env=env) as server:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            response = http.post("/ce/produce/events", json=_events(0, EVENTS), headers=batch)
            assert response.status_code == 202, response.text
            instance = http.post("/ce/consumers", params={"group": "billing"})
            assert instance.status_code == 201, instance.text
            url = instance.headers["location"]
            delivered: list[str] = []
            while len(delivered) < EVENTS:
                polled = http.get(f"{url}/events", params={"timeout": "5"})
                assert polled.status_code == 200, polled.text
                delivered += _ids(polled)
            # Confirms all of them; the answer (nothing more yet) does not wait for the
            # commit, and the stop comes right after it.
            polled = http.get(f"{url}/events", params={"confirm": "true", "timeout": "0"})
            assert polled.status_code == 204, polled.text
        assert server.stop() == 0
    with (
        serve_in_subprocess(tmp_path, env=env) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        response = http.post("/ce/produce/events", json=_events(EVENTS, 1), headers=batch)
        assert response.status_code == 202, response.text
        instance = http.post("/ce/consumers", params={"group": "billing"})
        url = instance.headers["location"]
        again = _ids(http.get(f"{url}/events", params={"timeout": "5"}))
        assert again == [f"order-{EVENTS}"]  # only the new one: nothing confirmed again
