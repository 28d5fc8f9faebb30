"""uvicorn against Hypercorn (``[server] http2 = true``) on HTTP/1.1 records v2 produce.

Four servers run side by side, each event loop on core 0 (``bench.servers``): the bare
ASGI baseline and sluicegate, under each HTTP server. wrk (HTTP/1.1, core 1) takes turns
on all four in one rotation, so load from elsewhere falls on each alike. Each server's
produce rate is a ratio against its own baseline; Hypercorn's figures are also given
against uvicorn's, the question that decides the default server. Where h2load is
installed (``apt-get install nghttp2-client``), Hypercorn's baseline and produce are then
driven over HTTP/2 with prior knowledge too, in turns of their own.
"""

from __future__ import annotations

import tempfile
from typing import Any

from bench.h2load import available, run_h2load
from bench.http_produce import TEXT_BODY, server_env, take_turns
from bench.servers import SERVER_CPU, baseline_server, spread_helper_threads
from bench.wrk import combined
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["run"]


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Measure both servers for ``duration`` one-second turns each."""
    with (
        baseline_server(http2=False) as uvicorn_base,
        baseline_server(http2=True) as hypercorn_base,
        tempfile.TemporaryDirectory() as uvicorn_dir,
        tempfile.TemporaryDirectory() as hypercorn_dir,
        serve_in_subprocess(uvicorn_dir, cpu=SERVER_CPU, env=server_env(False)) as uvicorn,
        serve_in_subprocess(hypercorn_dir, cpu=SERVER_CPU, env=server_env(True)) as hypercorn,
    ):
        for server in (uvicorn, hypercorn):
            spread_helper_threads(server.pid)
        path = "/v2/topics/bench/records"
        targets = {
            "uvicorn-baseline": (uvicorn_base, TEXT_BODY),
            "uvicorn-records-v2-text": (uvicorn.url + path, TEXT_BODY),
            "hypercorn-baseline": (hypercorn_base, TEXT_BODY),
            "hypercorn-records-v2-text": (hypercorn.url + path, TEXT_BODY),
        }
        runs = take_turns(targets, duration)
        h2c = _h2c_turns(hypercorn_base, hypercorn.url + path, duration) if available() else {}
    rates = {name: combined(results) for name, results in runs.items()}

    def entry(name: str, baseline: str, **extra: Any) -> dict[str, Any]:
        rps, p99 = rates[name]
        base = rates[baseline][0]
        return {
            "value": round(rps, 1),
            "unit": "requests/s",
            "baseline": round(base, 1),
            "ratio": round(rps / base, 3),
            "p99_ms": p99,
            **extra,
        }

    text_ratio = rates["hypercorn-records-v2-text"][0] / rates["uvicorn-records-v2-text"][0]
    over_h2c: dict[str, dict[str, Any]] = {}
    if h2c:
        base = rates["hypercorn-baseline"][0]
        over_h2c = {
            "h2-hypercorn-baseline-h2c": _rate(h2c["baseline"], base),
            "h2-hypercorn-records-v2-text-h2c": _rate(h2c["produce"], h2c["baseline"]),
        }
    return {
        "h2-uvicorn-baseline": entry("uvicorn-baseline", "uvicorn-baseline"),
        "h2-uvicorn-records-v2-text": entry("uvicorn-records-v2-text", "uvicorn-baseline"),
        # Its baseline is uvicorn's: the bare cost of the server itself.
        "h2-hypercorn-baseline": entry("hypercorn-baseline", "uvicorn-baseline"),
        "h2-hypercorn-records-v2-text": entry(
            "hypercorn-records-v2-text", "hypercorn-baseline", vs_uvicorn=round(text_ratio, 3)
        ),
        **over_h2c,
    }


def _h2c_turns(baseline: str, produce: str, duration: float) -> dict[str, float]:
    """h2load (HTTP/2 with prior knowledge) on Hypercorn's baseline and produce, in turns of
    one second, ``duration`` each: requests/s of each."""
    targets = {"baseline": baseline, "produce": produce}
    for url in targets.values():
        run_h2load(url, TEXT_BODY, 2)  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in targets}
    for turn in range(max(2, round(duration))):
        for name in list(targets)[turn % 2 :] + list(targets)[: turn % 2]:
            rates[name].append(run_h2load(targets[name], TEXT_BODY, 1))
    return {name: sum(values) / len(values) for name, values in rates.items()}


def _rate(value: float, baseline: float) -> dict[str, Any]:
    return {
        "value": round(value, 1),
        "unit": "requests/s",
        "baseline": round(baseline, 1),
        "ratio": round(value / baseline, 3),
    }
