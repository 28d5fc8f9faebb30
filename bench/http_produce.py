"""HTTP benchmarks: the bare-ASGI ceiling and records v2 produce, measured in one run.

Every sluicegate number is a ratio against ``http-baseline`` from the same run: this
machine is shared and noisy, so absolute numbers from different runs don't compare.
Both servers run side by side (event loops on core 0, see ``bench.servers``; wrk on
core 1) and take turns in one-second runs, baseline, text and Avro in a rotating order,
``duration`` seconds each in all, so bursts of load from elsewhere fall on all of them
alike. The half-peak latency run follows, paced to half the text rate just measured.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from typing import Any

import httpx

from bench.servers import SERVER_CPU, WRK_CPU, baseline_server, spread_helper_threads
from bench.wrk import WrkResult, combined, run_wrk
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["run", "server_env", "take_turns"]

TEXT_BODY = json.dumps(
    {
        "headers": [{"name": "colour", "value": "YmxhY2s="}],
        "key": {"type": "text", "data": "customer-42"},
        "value": {"type": "text", "data": "x" * 100},
    }
)
AVRO_SCHEMA = json.dumps(
    {
        "namespace": "com.eventstreams.samples",
        "type": "record",
        "name": "recordValueName",
        "fields": [{"name": "valueName", "type": "string"}, {"name": "count", "type": "long"}],
    }
)
AVRO_BODY = json.dumps(
    {
        "key": {"type": "text", "data": "customer-42"},
        "value": {
            "type": "avro",
            "schema": AVRO_SCHEMA,
            "schema_name_strategy": "topic",
            "data": {"valueName": "sample", "count": 42},
        },
    }
)


def server_env(http2: bool) -> dict[str, str]:
    """The environment that makes ``sluicegate serve`` run under Hypercorn, or uvicorn."""
    return {"SLUICEGATE_SERVER__HTTP2": "true" if http2 else "false"}


def _wrk(url: str, body: str, duration: float, **kwargs: Any) -> WrkResult:
    import os

    os.sched_setaffinity(0, {WRK_CPU})
    try:
        return run_wrk(url, body, duration=duration, **kwargs)
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))


def _entry(value: float, unit: str, baseline: float, **extra: Any) -> dict[str, Any]:
    return {
        "value": round(value, 1),
        "unit": unit,
        "baseline": round(baseline, 1),
        "ratio": round(value / baseline, 3) if baseline else None,
        **extra,
    }


def _check(result: WrkResult, what: str) -> None:
    if not result.ok:
        raise RuntimeError(f"{what}: wrk saw errors: {dict(result)}")


def _at_rate(url: str, body: str, target: float, duration: float) -> WrkResult:
    """wrk paced to about ``target`` requests/s: calibrated in short runs, then measured.

    Each connection pauses between requests, so the rate is connections / (latency +
    pause); latency depends on the rate, hence a few calibration rounds.
    """
    connections = 16
    pause_ms = 1000.0 * connections / target
    for _ in range(4):
        probe = _wrk(url, body, 2, connections=connections, delay_ms=pause_ms)
        pause_ms = max(0.0, pause_ms * probe.rps / target)
    return _wrk(url, body, duration, connections=connections, delay_ms=pause_ms)


def take_turns(
    targets: Mapping[str, tuple[str, str]], duration: float
) -> dict[str, list[WrkResult]]:
    """wrk on every ``(url, body)`` target: a 2-s warm-up each, then one-second runs in a
    rotating order, ``duration`` of them per target."""
    for url, body in targets.values():
        _wrk(url, body, 2)
    runs: dict[str, list[WrkResult]] = {name: [] for name in targets}
    names = list(targets)
    for turn in range(max(2, round(duration))):
        shift = turn % len(names)
        for name in names[shift:] + names[:shift]:
            url, body = targets[name]
            result = _wrk(url, body, 1)
            _check(result, name)
            runs[name].append(result)
    return runs


def run(duration: float = 10.0, server_name: str = "uvicorn") -> dict[str, dict[str, Any]]:
    """Run the HTTP benchmarks; each for ``duration`` seconds after a short warm-up.

    ``server_name`` serves the baseline and sluicegate alike: ``uvicorn`` or ``hypercorn``
    (``[server] http2 = true``).
    """
    http2 = server_name == "hypercorn"
    with (
        baseline_server(http2) as base_url,
        tempfile.TemporaryDirectory() as data_dir,
        serve_in_subprocess(data_dir, cpu=SERVER_CPU, env=server_env(http2)) as server,
    ):
        spread_helper_threads(server.pid)
        produce = f"{server.url}/v2/topics/bench/records"
        avro_url = f"{produce}?serializer=confluent"
        json_headers = {"content-type": "application/json"}
        httpx.post(produce, content=TEXT_BODY, headers=json_headers).raise_for_status()
        httpx.post(avro_url, content=AVRO_BODY, headers=json_headers).raise_for_status()
        targets = {
            "http-baseline": (base_url, TEXT_BODY),
            "records-v2-text": (produce, TEXT_BODY),
            "records-v2-avro": (avro_url, AVRO_BODY),
        }
        runs = take_turns(targets, duration)
        rates = {name: combined(results) for name, results in runs.items()}
        base_rps = rates["http-baseline"][0]
        results = {
            name: _entry(rps, "requests/s", base_rps, p99_ms=p99)
            | ({} if name == "http-baseline" else {"durable": True})
            for name, (rps, p99) in rates.items()
        }
        text_rps = rates["records-v2-text"][0]
        half = _at_rate(produce, TEXT_BODY, text_rps / 2, duration)
        _check(half, "records-v2-text-half-rate")
        results["records-v2-text-p99-at-half-peak"] = _entry(
            half["p99_us"] / 1000,
            "ms",
            10.0,
            rate=round(half.rps, 1),
            target_rate=round(text_rps / 2, 1),
        )
    return results


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="records v2 produce against the bare baseline")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per target")
    parser.add_argument("--server", choices=["uvicorn", "hypercorn"], default="uvicorn")
    options = parser.parse_args()
    print(json.dumps(run(options.duration, options.server), indent=2))
