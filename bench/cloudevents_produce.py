"""CloudEvents produce benchmarks. Run: ``python -m bench.run --only cloudevents-produce``.

- ``cloudevents-produce-raw``: ``POST /ce/produce/raw`` (binary mode: ``ce-`` headers and
  a small JSON body), 64 connections, durable on SQLite, taking turns with the bare-ASGI
  baseline of the same run (see ``bench.http_produce``); ratio = raw rate / baseline rate
  (target ≥ 0.5).
- ``cloudevents-produce-batch``: ``POST /ce/produce/events``, 100 structured events per
  request (keyed by 20 customers, so each request writes to up to 12 partitions), 16
  connections, durable on SQLite; events/s against the 250,000 target.

Every request carries ids never sent before (wrk's ``request()`` numbers them per thread
and run): a repeated ``source`` + ``id`` would be acknowledged without being stored, and
the benchmark would measure de-duplication instead of storage.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

import httpx

from bench.http_produce import TEXT_BODY, _entry, _wrk
from bench.servers import SERVER_CPU, baseline_server, spread_helper_threads
from bench.wrk import WrkResult, combined
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["run"]

EVENTS_PER_BATCH = 100
DATA = {"order": 1001, "total": 12.5, "currency": "EUR", "note": "x" * 60}
RAW_HEADERS = {
    "ce-specversion": "1.0",
    "ce-source": "urn:bench:shop",
    "ce-type": "Bench.Order.Created",
    "ce-time": "2025-01-31T12:00:00Z",
    "ce-partitionkey": "customer-42",
}
# Each request gets ids of its own: ``__RUN__`` (this wrk run), the thread, a counter.
_NUMBERING = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
"""
RAW_LUA = (
    "\n".join(f'wrk.headers["{name}"] = "{value}"' for name, value in RAW_HEADERS.items())
    + _NUMBERING
    + """
function request()
  counter = counter + 1
  wrk.headers["ce-id"] = "__RUN__-" .. tid .. "-" .. counter
  return wrk.format()
end
"""
)
BATCH_LUA = (
    _NUMBERING
    + """
function request()
  counter = counter + 1
  local body = string.gsub(wrk.body, "@ID@", "__RUN__-" .. tid .. "-" .. counter)
  return wrk.format(nil, nil, nil, body)
end
"""
)


def _batch_body() -> str:
    events = [
        {
            "specversion": "1.0",
            "id": f"@ID@-{n}",
            "source": "urn:bench:shop",
            "type": "Bench.Order.Created",
            "time": "2025-01-31T12:00:00Z",
            "partitionkey": f"customer-{n % 20}",
            "data": DATA,
        }
        for n in range(EVENTS_PER_BATCH)
    ]
    return json.dumps(events)


def _check(result: WrkResult, what: str) -> None:
    if not result.ok:
        raise RuntimeError(f"{what}: wrk saw errors: {dict(result)}")


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Raw produce against the baseline in turns, then batch produce; ``duration`` s each."""
    raw_body = json.dumps(DATA)
    batch_body = _batch_body()
    batch_type = "application/cloudevents-batch+json"
    with (
        baseline_server() as base_url,
        tempfile.TemporaryDirectory() as data_dir,
        serve_in_subprocess(data_dir, cpu=SERVER_CPU) as server,
    ):
        spread_helper_threads(server.pid)
        raw_url = f"{server.url}/ce/produce/raw"
        batch_url = f"{server.url}/ce/produce/events"
        # One of each first: the type's topic is created, and either form must be accepted.
        headers = {**RAW_HEADERS, "ce-id": "warm-up", "content-type": "application/json"}
        httpx.post(raw_url, content=raw_body, headers=headers).raise_for_status()
        warm = batch_body.replace("@ID@", "warm-up")
        httpx.post(batch_url, content=warm, headers={"content-type": batch_type}).raise_for_status()

        _wrk(base_url, TEXT_BODY, 2)
        _wrk(raw_url, raw_body, 2, lua=RAW_LUA)
        baseline: list[WrkResult] = []
        raw: list[WrkResult] = []
        for turn in range(max(2, round(duration))):
            order = [(baseline, base_url, TEXT_BODY, ""), (raw, raw_url, raw_body, RAW_LUA)]
            for results, url, body, lua in order[turn % 2 :] + order[: turn % 2]:
                result = _wrk(url, body, 1, lua=lua)
                _check(result, url)
                results.append(result)
        base_rps, _ = combined(baseline)
        raw_rps, raw_p99 = combined(raw)

        batch = _wrk(
            batch_url,
            batch_body,
            duration,
            connections=16,
            content_type=batch_type,
            lua=BATCH_LUA,
        )
        _check(batch, "batch")
    return {
        "cloudevents-http-baseline": _entry(base_rps, "requests/s", base_rps),
        "cloudevents-produce-raw": _entry(
            raw_rps, "requests/s", base_rps, p99_ms=raw_p99, durable=True, target_ratio=0.5
        ),
        "cloudevents-produce-batch": _entry(
            batch.rps * EVENTS_PER_BATCH,
            "events/s",
            250_000,
            requests_per_second=round(batch.rps, 1),
            p99_ms=batch["p99_us"] / 1000,
            durable=True,
        ),
    }
