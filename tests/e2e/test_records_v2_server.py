"""Records v2 over a real socket: a real ``sluicegate serve`` process and a real client, on
both backends (what a plain Kafka consumer reads of these records:
``test_records_v2_kafka.py``)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.conftest import BACKENDS
from tests.helpers import backend_env

TEXT = {"key": {"type": "text", "data": "k"}, "value": {"type": "text", "data": "v"}}


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of this module's servers, one module-wide server on each."""
    return str(request.param)


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    http_server: str,
    backend: str,
) -> Iterator[ServerProcess]:
    # Taking ``http_server`` makes a server per HTTP server, not one shared by both.
    data_dir = tmp_path_factory.mktemp("data")
    with serve_in_subprocess(data_dir, env=backend_env(request, backend)) as server:
        yield server


def test_200_then_records_survive_restart(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    # One environment for both runs: on Kafka, the same broker and topic prefix.
    env = backend_env(request, backend)
    first = tmp_path / "first"
    # On Kafka the records live in the broker, not in the data directory: the restarted
    # server gets an empty one and must find them all the same.
    second = first if backend == "sqlite" else tmp_path / "second"
    with serve_in_subprocess(first, env=env) as server:
        url = f"{server.url}/v2/topics/durable/records"
        offsets = [httpx.post(url, json=TEXT).json()["offset"] for _ in range(3)]
        assert offsets == [0, 1, 2]
        assert server.stop() == 0
    with serve_in_subprocess(second, env=env) as server:
        assert (
            httpx.post(f"{server.url}/v2/topics/durable/records", json=TEXT).json()["offset"] == 3
        )
        described = httpx.get(f"{server.url}/admin/v1/topics/durable").json()
        assert described["partition_offsets"] == [{"partition": 0, "low": 0, "high": 4}]


@pytest.mark.parametrize(
    ("path", "kwargs", "status"),
    [
        ("/v2/topics/t/records", {"json": TEXT}, 200),
        ("/v2/topics/bad topic/records", {"json": TEXT}, 400),
        ("/v2/topics/t/records", {"json": {"value": {"type": "binary", "data": "!"}}}, 400),
        (
            "/v2/topics/t/records",
            {"content": "x" * 70_000, "headers": {"content-type": "application/json"}},
            413,
        ),
        ("/v2/topics/t/records", {"content": "{}", "headers": {"content-type": "text/plain"}}, 415),
    ],
)
def test_seed_statuses(
    server: ServerProcess, path: str, kwargs: dict[str, Any], status: int
) -> None:
    response = httpx.post(server.url + path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    if status != 200:
        assert response.json()["error_code"] == status


def test_404_when_auto_create_is_off(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    env = {"SLUICEGATE_TOPICS__AUTO_CREATE": "false", **backend_env(request, backend)}
    with serve_in_subprocess(tmp_path, env=env) as server:
        response = httpx.post(f"{server.url}/v2/topics/missing/records", json=TEXT)
        assert response.status_code == 404
        assert "missing" in response.json()["message"]


def test_408_when_storage_is_slower_than_the_deadline(tmp_path: Path) -> None:
    # SQLite only: a deadline shorter than any write. On Kafka ``storage.append_timeout``
    # becomes librdkafka's message.timeout.ms, kept above linger.ms (2 ms at the least),
    # which a local broker beats: no setting makes Kafka miss the deadline for sure. Kafka's
    # 408 is tested with a stalled broker (tests/storage/kafka/test_faults.py).
    env = {"SLUICEGATE_STORAGE__APPEND_TIMEOUT": "1e-9"}
    with serve_in_subprocess(tmp_path, env=env) as server:
        response = httpx.post(f"{server.url}/v2/topics/slow/records", json=TEXT)
        assert response.status_code == 408
        assert "either all stored or none is" in response.json()["message"]


def test_503_when_the_write_queue_is_full(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    # On Kafka the same setting bounds the records handed to Kafka and not acknowledged.
    env = {"SLUICEGATE_STORAGE__MAX_PENDING_APPENDS": "1", **backend_env(request, backend)}

    async def burst(url: str) -> list[int]:
        # 400 requests on 64 connections: on a loaded machine some wait longer for a
        # connection than httpx's default 5 s.
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            body = {"value": {"type": "text", "data": "x" * 1000}}
            responses = await asyncio.gather(*(client.post(url, json=body) for _ in range(400)))
        for response in responses:
            if response.status_code == 503:
                assert response.headers["retry-after"]
                assert response.json()["error_code"] == 503
        return [r.status_code for r in responses]

    with serve_in_subprocess(tmp_path, env=env) as server:
        statuses = asyncio.run(burst(f"{server.url}/v2/topics/busy/records"))
    assert set(statuses) <= {200, 503}
    assert 503 in statuses
    assert 200 in statuses


def test_binary_round_trip_over_the_wire(server: ServerProcess) -> None:
    raw = bytes(range(256))
    body = {"key": {"type": "binary", "data": base64.b64encode(raw).decode()}}
    answer = httpx.post(f"{server.url}/v2/topics/bin/records", json=body).json()
    page = httpx.get(
        f"{server.url}/admin/v1/topics/bin/records", params={"offset": answer["offset"]}
    ).json()
    assert page["records"][0]["encoding"] == "base64"
    assert base64.b64decode(page["records"][0]["key"]) == raw
