"""Limits and first start over real sockets: a real ``sluicegate serve`` with auth on."""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from sluicegate.testing.process import ServerProcess, serve_in_subprocess

ADMIN_KEY = secrets.token_urlsafe(32)
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
TEXT = {"value": {"type": "text", "data": "v"}}
LONG_POLL = 3  # seconds a poll on an empty topic is held


def serve(data_dir: Path, **limits: str) -> AbstractContextManager[ServerProcess]:
    """An auth-on server with the admin key above and ``SLUICEGATE_LIMITS__<NAME>`` set."""
    env = {"SLUICEGATE_ADMIN_KEY": ADMIN_KEY}
    env.update({f"SLUICEGATE_LIMITS__{name.upper()}": value for name, value in limits.items()})
    return serve_in_subprocess(data_dir, args=(), env=env)


def connect(server: ServerProcess) -> httpx.AsyncClient:
    """A client for ``server`` with room for every concurrent request the tests make."""
    limits = httpx.Limits(max_connections=32)
    return httpx.AsyncClient(base_url=server.url, timeout=15, limits=limits)


async def new_client(
    http: httpx.AsyncClient, name: str, **permissions: list[str]
) -> dict[str, str]:
    """Create a client with the admin key; its Authorization header."""
    created = await http.post(
        "/admin/v1/clients", json={"name": name, **permissions}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    key = await http.post(f"/admin/v1/clients/{name}/keys", json={}, headers=ADMIN)
    assert key.status_code == 201, key.text
    return {"authorization": f"Bearer {key.json()['key']}"}


# -- rate --------------------------------------------------------------------------


@pytest.fixture
def rated(tmp_path: Path) -> Iterator[ServerProcess]:
    with serve(tmp_path, rate_per_second="5", rate_burst="5") as server:
        yield server


async def test_rate_limit_answers_429_then_recovers(rated: ServerProcess) -> None:
    async with connect(rated) as http:
        await rate_limit(http)


async def rate_limit(http: httpx.AsyncClient) -> None:
    other = await new_client(http, "other", produce=["*"])
    url = "/v2/topics/rated/records"
    started = time.monotonic()
    responses = await asyncio.gather(*(http.post(url, json=TEXT, headers=ADMIN) for _ in range(20)))
    elapsed = time.monotonic() - started
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) == {200, 429}, statuses
    # The burst, plus what the bucket refilled at 5/s while the requests were in flight.
    assert 5 <= statuses[200] <= 5 + math.ceil(5 * elapsed), (statuses, elapsed)
    limited = [r for r in responses if r.status_code == 429]
    for response in limited:
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {
            "error_code": 429,
            "message": "client 'admin' exceeded 5 requests per second on the records_v2 API",
        }
    retry_after = max(int(r.headers["retry-after"]) for r in limited)
    assert retry_after == 1  # a token is back within 1/5 s; Retry-After is whole seconds
    # Buckets are per client: another client is served while the admin is limited.
    assert (await http.post(url, json=TEXT, headers=other)).status_code == 200
    await asyncio.sleep(retry_after)  # honour Retry-After, as a client should
    for _ in range(3):
        response = await http.post(url, json=TEXT, headers=ADMIN)
        assert response.status_code == 200, response.text


# -- concurrency -------------------------------------------------------------------


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[ServerProcess]:
    with serve(tmp_path, max_concurrent_requests="3", max_concurrent_requests_per_client="2") as s:
        yield s


async def waiters(http: httpx.AsyncClient) -> int:
    """Long polls the server holds now: its ``/metrics`` gauge (unauthenticated: no slot)."""
    metrics = (await http.get("/metrics")).text
    found = re.search(r"^sluicegate_storage_waiters (\S+)$", metrics, re.MULTILINE)
    assert found is not None, metrics
    return int(float(found.group(1)))


async def settled_waiters(http: httpx.AsyncClient) -> int:
    """The gauge once two reads agree: the gateway's own followers long-poll too."""
    previous = await waiters(http)
    for _ in range(100):
        await asyncio.sleep(0.02)
        current = await waiters(http)
        if current == previous:
            return current
        previous = current
    pytest.fail("the long-poll gauge never settled")


async def wait_for_waiters(http: httpx.AsyncClient, expected: int) -> None:
    """Return once the server holds at least ``expected`` long polls; fail after 5 s."""
    deadline = time.monotonic() + 5
    while await waiters(http) < expected:
        if time.monotonic() > deadline:
            pytest.fail(f"the server never held {expected} long polls")
        await asyncio.sleep(0.01)


async def refused(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> httpx.Response:
    """A request that must be refused at once, not held like the long polls."""
    started = time.monotonic()
    response = await http.get(url, headers=headers)
    assert time.monotonic() - started < LONG_POLL / 2, "refused requests must not wait"
    assert response.headers["retry-after"] == "1"
    return response


async def test_concurrency_caps_answer_429_per_client_and_503_overall(
    capped: ServerProcess,
) -> None:
    async with connect(capped) as http:
        await concurrency_caps(http)


async def concurrency_caps(http: httpx.AsyncClient) -> None:
    assert (await http.post("/admin/v1/topics", json={"name": "idle"}, headers=ADMIN)).is_success
    other = await new_client(http, "other", consume=["*"])
    poll = f"/admin/v1/topics/idle/records?timeout={LONG_POLL}"
    idle = await settled_waiters(http)
    async with asyncio.timeout(LONG_POLL + 10), asyncio.TaskGroup() as tg:
        held = [tg.create_task(http.get(poll, headers=ADMIN)) for _ in range(2)]
        await wait_for_waiters(http, idle + 2)
        per_client = await refused(http, poll, ADMIN)
        assert per_client.status_code == 429
        assert per_client.json() == {
            "error": "rate_limited",
            "message": "client 'admin' already has 2 requests in flight (limit 2)",
        }
        held.append(tg.create_task(http.get(poll, headers=other)))
        await wait_for_waiters(http, idle + 3)
        overall = await refused(http, poll, other)
        assert overall.status_code == 503
        assert overall.json()["error"] == "overloaded"
        assert (await refused(http, poll, ADMIN)).status_code == 429  # its own cap first
    for task in held:
        response = task.result()
        assert response.status_code == 200, response.text
        assert response.json()["records"] == []
    # Every slot was given back.
    assert (await http.get("/admin/v1/topics/idle/records", headers=ADMIN)).status_code == 200
    assert (await http.get("/admin/v1/topics/idle/records", headers=other)).status_code == 200


# -- body size ---------------------------------------------------------------------


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[ServerProcess]:
    with serve(tmp_path) as server:
        yield server


def rss(pid: int) -> int:
    """Resident memory of a process in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


async def hundred_megabytes() -> AsyncIterator[bytes]:
    chunk = b"x" * 65536
    for _ in range(100 * 1024 * 1024 // len(chunk)):
        yield chunk


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_huge_bodies_are_refused_without_buffering(plain: ServerProcess) -> None:
    url = f"{plain.url}/v2/topics/big/records"
    assert httpx.post(url, json=TEXT, headers=ADMIN).status_code == 200  # warm
    before = rss(plain.pid)

    async def chunked() -> tuple[httpx.Response, float]:
        headers = {**ADMIN, "content-type": "application/json"}
        async with httpx.AsyncClient(timeout=60) as client:
            started = time.monotonic()
            response = await client.post(url, content=hundred_megabytes(), headers=headers)
            return response, time.monotonic() - started

    response, elapsed = asyncio.run(chunked())
    assert response.status_code == 413, response.text
    assert response.json()["error_code"] == 413
    assert elapsed < 30, elapsed
    assert rss(plain.pid) - before < 30 * 1024 * 1024

    async def declared() -> bytes:
        host, port = httpx.URL(plain.url).host, httpx.URL(plain.url).port
        assert port is not None
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                b"POST /v2/topics/big/records HTTP/1.1\r\n"
                + f"host: {host}\r\nauthorization: Bearer {ADMIN_KEY}\r\n".encode()
                + b"content-type: application/json\r\ncontent-length: 100000000\r\n\r\n"
            )
            await writer.drain()
            # Not one byte of the body is sent: the answer comes from the headers alone.
            async with asyncio.timeout(10):
                return await reader.readuntil(b"\r\n\r\n")
        finally:
            writer.close()
            await writer.wait_closed()

    assert asyncio.run(declared()).startswith(b"HTTP/1.1 413 ")
    assert httpx.post(url, json=TEXT, headers=ADMIN).status_code == 200


# -- first start -------------------------------------------------------------------


def test_first_start_prints_a_working_admin_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLUICEGATE_ADMIN_KEY", raising=False)
    stdout = tmp_path / "stdout.txt"
    with serve_in_subprocess(tmp_path / "data", args=(), stdout=stdout) as server:
        printed = stdout.read_text()
        assert "shown only this once" in printed
        keys = re.findall(r"^ {4}(sg_[0-9A-Za-z]{43})$", printed, re.MULTILINE)
        assert len(keys) == 1, printed
        assert not any(keys[0] in line for line in server.log)  # printed, never logged
        clients = httpx.get(f"{server.url}/admin/v1/clients")
        assert clients.status_code == 401
        clients = httpx.get(
            f"{server.url}/admin/v1/clients", headers={"authorization": f"Bearer {keys[0]}"}
        )
        assert clients.status_code == 200, clients.text
        assert [c["name"] for c in clients.json()] == ["admin"]


def test_no_auth_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "sluicegate.cli.main", "serve", "--no-auth"]
    command += ["--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "server.host" in done.stderr
    assert "0.0.0.0" in done.stderr
