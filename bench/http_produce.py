"""HTTP benchmarks: the bare-ASGI ceiling and records v2 produce, measured in one run.

Every sluicegate number is a ratio against ``http-baseline`` from the same run: this
machine is shared and noisy, so absolute numbers from different runs don't compare.
The servers run on core 0 and wrk on core 1.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

import httpx

from bench.servers import WRK_CPU, baseline_server
from bench.wrk import WrkResult, run_wrk
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["run"]

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


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Run the HTTP benchmarks; each for ``duration`` seconds after a short warm-up."""
    results: dict[str, dict[str, Any]] = {}
    with baseline_server() as url:
        _wrk(url, TEXT_BODY, 2)
        base = _wrk(url, TEXT_BODY, duration)
    _check(base, "http-baseline")
    results["http-baseline"] = _entry(
        base.rps, "requests/s", base.rps, p99_ms=base["p99_us"] / 1000
    )

    with tempfile.TemporaryDirectory() as data_dir, serve_in_subprocess(data_dir, cpu=0) as server:
        produce = f"{server.url}/v2/topics/bench/records"
        httpx.post(produce, content=TEXT_BODY, headers={"content-type": "application/json"})
        _wrk(produce, TEXT_BODY, 2)
        text = _wrk(produce, TEXT_BODY, duration)
        _check(text, "records-v2-text")
        results["records-v2-text"] = _entry(
            text.rps, "requests/s", base.rps, p99_ms=text["p99_us"] / 1000, durable=True
        )
        half = _at_rate(produce, TEXT_BODY, text.rps / 2, duration)
        _check(half, "records-v2-text-half-rate")
        results["records-v2-text-p99-at-half-peak"] = _entry(
            half["p99_us"] / 1000,
            "ms",
            10.0,
            rate=round(half.rps, 1),
            target_rate=round(text.rps / 2, 1),
        )
        avro_url = f"{produce}?serializer=confluent"
        first = httpx.post(
            avro_url, content=AVRO_BODY, headers={"content-type": "application/json"}
        )
        first.raise_for_status()
        _wrk(avro_url, AVRO_BODY, 2)
        avro = _wrk(avro_url, AVRO_BODY, duration)
        _check(avro, "records-v2-avro")
        results["records-v2-avro"] = _entry(
            avro.rps, "requests/s", base.rps, p99_ms=avro["p99_us"] / 1000, durable=True
        )
    return results
