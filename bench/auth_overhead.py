"""What authentication costs: records v2 text produce with an API key against ``--no-auth``.

Run: ``python -m bench.run --only auth``. Two servers, their event loops on core 0 (see
``bench.servers``), wrk on core 1, in one run: one with authentication on, producing as
a client that holds ``produce`` on the topic only and sends its ``sg_`` key as
``Authorization: Bearer``; one started with ``--no-auth``. They take turns in one-second
runs (no-auth, auth, then auth, no-auth, and so on), ``duration`` seconds each in all,
so the drift and bursts of load on a shared machine fall on both alike; the totals are
compared.

``auth-overhead``: value = requests/s with auth, baseline = requests/s without, ratio =
value / baseline (target ≥ 0.90), ``overhead_pct`` = throughput lost, in percent
(target ≤ 10).
"""

from __future__ import annotations

import secrets
import tempfile
from contextlib import ExitStack
from typing import Any

import httpx

from bench.http_produce import TEXT_BODY, _check, _entry, _wrk
from bench.servers import SERVER_CPU, spread_helper_threads
from bench.wrk import WrkResult, combined
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["run"]

TOPIC = "bench"
TARGET_RATIO = 0.90


def _producer_key(url: str, admin_key: str) -> str:
    """A new client that may only produce to the bench topic, and its API key."""
    admin = {"authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=url, headers=admin, timeout=30) as client:
        body = {"name": "bench-producer", "produce": [TOPIC]}
        client.post("/admin/v1/clients", json=body).raise_for_status()
        created = client.post("/admin/v1/clients/bench-producer/keys", json={})
        created.raise_for_status()
        return str(created.json()["key"])


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Measure produce with and without authentication, ``duration`` seconds each."""
    admin_key = secrets.token_urlsafe(32)
    with ExitStack() as stack:
        enter = stack.enter_context
        plain = enter(serve_in_subprocess(enter(tempfile.TemporaryDirectory()), cpu=SERVER_CPU))
        secured = enter(
            serve_in_subprocess(
                enter(tempfile.TemporaryDirectory()),
                args=(),
                env={"SLUICEGATE_ADMIN_KEY": admin_key},
                cpu=SERVER_CPU,
            )
        )
        for server in (plain, secured):
            spread_helper_threads(server.pid)
        bearer = f"Bearer {_producer_key(secured.url, admin_key)}"
        no_auth_url = f"{plain.url}/v2/topics/{TOPIC}/records"
        auth_url = f"{secured.url}/v2/topics/{TOPIC}/records"
        headers = {"content-type": "application/json", "authorization": bearer}
        for url in (no_auth_url, auth_url):
            httpx.post(url, content=TEXT_BODY, headers=headers).raise_for_status()
        _wrk(no_auth_url, TEXT_BODY, 2)
        _wrk(auth_url, TEXT_BODY, 2, authorization=bearer)
        runs: dict[str, list[WrkResult]] = {"no-auth": [], "auth": []}
        for turn in range(max(2, round(duration))):
            order = ("no-auth", "auth") if turn % 2 == 0 else ("auth", "no-auth")
            for name in order:
                if name == "auth":
                    result = _wrk(auth_url, TEXT_BODY, 1, authorization=bearer)
                else:
                    result = _wrk(no_auth_url, TEXT_BODY, 1)
                _check(result, f"records-v2-text ({name})")
                runs[name].append(result)
    with_auth, p99_auth = combined(runs["auth"])
    without, p99_plain = combined(runs["no-auth"])
    entry = _entry(
        with_auth,
        "requests/s",
        without,
        overhead_pct=round(100 * (1 - with_auth / without), 1),
        target_ratio=TARGET_RATIO,
        p99_ms=p99_auth,
        baseline_p99_ms=p99_plain,
    )
    return {"auth-overhead": entry}
