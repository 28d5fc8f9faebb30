"""Helpers shared by test modules: JWTs as an identity provider (or an attacker) makes
them, a server (uvicorn or Hypercorn) serving an app on a real socket inside the test's
event loop, the environment that puts a server process on a storage backend, and
``eventually``, which polls a condition until it holds."""

from __future__ import annotations

import asyncio
import base64
import gc
import inspect
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import jwt
import pytest
import uvicorn

from sluicegate.config import Settings
from sluicegate.http.servers import bind, http_server
from sluicegate.http.types import ASGIApp

__all__ = [
    "E2E_ADMIN_KEY",
    "backend_env",
    "eventually",
    "jwt_claims",
    "serving",
    "serving_in_loop",
    "signed_jwt",
    "unsigned_jwt",
]

#: The bootstrap admin key of the ``admin_server`` fixture (``tests/e2e/conftest.py``).
E2E_ADMIN_KEY = "sg_e2e_admin_key_0123456789abcdef0123456789"


def backend_env(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    """The environment that serves ``sluicegate serve`` from ``backend``.

    Nothing for SQLite (the data directory is the store); for Kafka, the session's broker
    and a topic prefix of its own, so that servers sharing the broker never meet.
    """
    if backend != "kafka":
        return {}
    return {
        "SLUICEGATE_STORAGE__BACKEND": "kafka",
        "SLUICEGATE_KAFKA__BOOTSTRAP_SERVERS": request.getfixturevalue("kafka_bootstrap"),
        "SLUICEGATE_KAFKA__TOPIC_PREFIX": f"e{uuid.uuid4().hex[:10]}.",
    }


async def eventually(
    check: Callable[[], object], what: str, *, timeout: float = 30.0, interval: float = 0.01
) -> Any:
    """Ask ``check`` (its answer, or the awaitable it returns, awaited) every ``interval``
    seconds until the answer is truthy, and return that answer; an AssertionError naming
    ``what`` once ``timeout`` seconds have passed.

    For state that nothing signals (gauges, a follower's progress, another process's
    view): where something can be awaited instead, await it.
    """
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if inspect.isawaitable(answer):
            answer = await answer
        if answer:
            return answer
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(interval)


@asynccontextmanager
async def serving_in_loop(config: uvicorn.Config) -> AsyncIterator[int]:
    """Serve ``config`` (with ``port=0``) in this event loop; yield the port it listens on.

    The app runs in the test's loop (a log it uses lives there): call blocking clients
    through ``asyncio.to_thread`` so the loop keeps serving.
    """
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # it failed to start: say why
                await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def serving(app: ASGIApp, settings: Settings) -> AsyncIterator[int]:
    """Serve ``app`` as ``sluicegate serve`` does with ``settings`` (uvicorn, or Hypercorn
    with ``server.http2``) on a free port of 127.0.0.1 in this event loop; yield the port.

    Stopped gracefully on exit, as on SIGTERM. Call blocking clients through
    ``asyncio.to_thread`` so the loop keeps serving.
    """
    sock = bind("127.0.0.1", 0)
    server = http_server(app, settings)
    task = asyncio.create_task(server.serve(sock))
    try:
        yield sock.getsockname()[1]
    finally:
        server.request_exit()
        await task
        sock.close()


def jwt_claims(
    *, issuer: str, audience: str, subject: str, lifetime: float = 300.0, **extra: Any
) -> dict[str, Any]:
    """Registered claims valid from now for ``lifetime`` seconds (negative: already expired)."""
    now = int(time.time())
    return {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": now,
        "exp": now + int(lifetime),
        **extra,
    }


def signed_jwt(claims: dict[str, Any], secret: str, algorithm: str = "HS256") -> str:
    """``claims`` signed with a shared secret."""
    return jwt.encode(claims, secret, algorithm=algorithm)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """``claims`` with ``alg: none`` and an empty signature: what no server may accept."""
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


@contextmanager
def cyclic_collector_off() -> Iterator[None]:
    """No cyclic garbage collection in the block (what it finds before is collected):
    what is freed in it is freed by reference counting alone, as between the rare full
    collections ``sluicegate serve`` runs."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive(kind: type) -> int:
    """Objects of exactly ``kind`` the collector tracks, garbage not yet collected too."""
    return sum(type(o) is kind for o in gc.get_objects())
