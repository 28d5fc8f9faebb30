"""SIGTERM with requests in flight (``sluicegate serve``, real processes and sockets).

Long polls of every dialect answer at once with their usual empty answer when the stop
begins, on both backends: consumers are not held until the graceful shutdown runs out.
A request that cannot finish (here a write whose commit process is stopped) is answered
when the graceful shutdown runs out, in its dialect's format, under uvicorn and under
Hypercorn (``conftest.http_server``), not with the server's bare 500 or a connection cut
off.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.e2e.test_commit_process import children
from tests.helpers import backend_env

#: The graceful shutdown the servers here are given: far longer than a stop takes when
#: nothing holds it, so that a long poll it waited for would show.
GRACEFUL = 20.0
POLL_SECONDS = 50


@pytest.fixture
def env(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    return {"SLUICEGATE_SERVER__GRACEFUL_SHUTDOWN": str(GRACEFUL), **backend_env(request, backend)}


def _event(event_id: str) -> dict[str, str]:
    """The headers of a raw CloudEvent ``event_id`` (its body: ``{}``)."""
    return {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "urn:shop",
        "ce-type": "Order.Created",
        "content-type": "application/json",
    }


def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _gauge(http: httpx.Client, line: str) -> float:
    for text in http.get("/metrics").text.splitlines():
        if text.startswith(line + " "):
            return float(text.rsplit(" ", 1)[1])
    raise AssertionError(f"no {line} in /metrics")


def _stop(server: ServerProcess) -> float:
    """SIGTERM ``server``; seconds until it exited (with status 0)."""
    started = time.monotonic()
    assert server.stop(timeout=2 * GRACEFUL) == 0
    return time.monotonic() - started


def test_long_polls_answer_at_once_when_the_stop_begins(
    tmp_path: Path, env: dict[str, str]
) -> None:
    with (
        serve_in_subprocess(tmp_path, env=env) as server,
        httpx.Client(base_url=server.url, timeout=2 * POLL_SECONDS) as http,
        ThreadPoolExecutor(3) as pool,
    ):
        # A CloudEvents consumer that has read everything there is.
        assert http.post("/ce/produce/raw", content=b"{}", headers=_event("1")).status_code == 202
        instance = http.post("/ce/consumers", params={"group": "billing"})
        assert instance.status_code == 201, instance.text
        events = f"{instance.headers['location']}/events"
        assert http.get(events, params={"confirm": "true"}).status_code == 200
        # A topics v1 topic, and a topic for the topic admin API's reads, both empty.
        topic = http.post("/api/event_streams/topics", json={"name": "people", "schema": []})
        assert topic.status_code == 200, topic.text
        consume = f"/api/v1/topics/{topic.json()['data']['id']}/consume"
        made = http.post("/admin/v1/topics", json={"name": "audit", "partitions": 1})
        assert made.status_code == 201, made.text

        idle = _gauge(http, "sluicegate_storage_waiters")
        polls: dict[str, Future[httpx.Response]] = {
            "cloudevents": pool.submit(http.get, events, params={"timeout": POLL_SECONDS}),
            "topics v1": pool.submit(http.post, consume, json={"timeout_secs": POLL_SECONDS}),
            "topic admin": pool.submit(
                http.get,
                "/admin/v1/topics/audit/records",
                params={"offset": 0, "timeout": POLL_SECONDS},
            ),
        }
        # Each is parked on the log: three waiters, besides the gateway's own.
        _until(lambda: _gauge(http, "sluicegate_storage_waiters") >= idle + 3)
        took = _stop(server)
        answers = {name: poll.result(timeout=5) for name, poll in polls.items()}
    assert answers["cloudevents"].status_code == 204
    assert answers["topics v1"].status_code == 200
    assert answers["topics v1"].json() == {"messages": []}
    assert answers["topic admin"].status_code == 200
    assert answers["topic admin"].json()["records"] == []
    for name, answer in answers.items():
        assert answer.elapsed.total_seconds() < GRACEFUL / 2, name
    assert took < GRACEFUL / 2


def test_a_request_the_stop_cuts_short_is_answered_in_its_dialect(tmp_path: Path) -> None:
    # Under each server (``http_server``); a write held by the SQLite commit process.
    graceful = 1.0
    env = {"SLUICEGATE_SERVER__GRACEFUL_SHUTDOWN": str(graceful)}
    with (
        serve_in_subprocess(tmp_path, env=env) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
        ThreadPoolExecutor(2) as pool,
    ):
        record = {"value": {"type": "text", "data": "first"}}
        assert http.post("/v2/topics/orders/records", json=record).status_code == 200
        assert http.post("/ce/produce/raw", content=b"{}", headers=_event("1")).status_code == 202
        # No commit finishes from here: both writes below wait for theirs.
        [commits] = children(server.pid)  # the commit process
        os.kill(commits, signal.SIGSTOP)
        try:
            record = {"value": {"type": "text", "data": "second"}}
            stuck = {
                "records v2": pool.submit(http.post, "/v2/topics/orders/records", json=record),
                "cloudevents": pool.submit(
                    http.post, "/ce/produce/raw", content=b"{}", headers=_event("2")
                ),
            }
            time.sleep(1.0)
            assert not any(answer.done() for answer in stuck.values())  # in the server
            server.process.send_signal(signal.SIGTERM)
            answers = {name: answer.result(timeout=10 * graceful) for name, answer in stuck.items()}
        finally:
            os.kill(commits, signal.SIGCONT)
        assert server.process.wait(timeout=30) == 0
    records_v2 = answers["records v2"]
    assert records_v2.status_code == 408
    assert records_v2.json()["error_code"] == 408
    assert "stopped before this request finished" in records_v2.json()["message"]
    cloudevents = answers["cloudevents"]
    assert cloudevents.status_code == 408
    assert cloudevents.json()["error"] == "stopped_mid_request"
