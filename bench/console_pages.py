"""What the console's pages cost the server with 10,000 topics.

    python -m bench.console_pages [--topics 10000] [--rounds 200]

The console is static files plus the admin API, so a page costs the requests it makes.
One gateway on the embedded log, in this process, holds ``--topics`` topics (made
through the core, not HTTP: creating them is not what is measured), one of which has
records in each of the last minutes. Each request the topics pages make is then sent
``--rounds`` times through the app (httpx's ASGI transport: no socket, so the figure is
the server's time plus the in-process client's), and its median and p99, wall-clock and
CPU time, are reported against ``GET /healthz`` measured in the same run (the baseline:
an answer that does no work). The issue's target is 100 ms for any page.

``python -m bench.run --only console`` writes ``console-<request>`` entries: the p99 in
ms, the baseline's p99, and their ratio. CPU shares (``python -m cProfile -o``) stay
meaningful on a busy machine; wall-clock figures do not.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from typing import Any

import httpx

__all__ = ["run"]

#: Request → path, as the console's topics pages send them.
REQUESTS = {
    "page": "/console",
    "script": "/console/js/views/topic.js",
    "topics-first-page": "/admin/v1/topics?limit=50",
    "topics-last-page-search": "/admin/v1/topics?limit=50&name=t09999",
    "topics-search-nothing": "/admin/v1/topics?limit=50&name=no-such-name",
    "topic-describe": "/admin/v1/topics/busy",
    "topic-browse": "/admin/v1/topics/busy/browse?from=0&limit=50",
    "topic-rates": "/admin/v1/topics/busy/rates?minutes=15",
}


async def _timings(client: httpx.AsyncClient, path: str, rounds: int) -> list[tuple[float, float]]:
    """(wall ms, CPU ms) of each request: this process's CPU time, every thread's (the
    readers of the log run in threads), which a busy machine does not inflate."""
    took = []
    for _ in range(rounds):
        started, cpu = time.perf_counter(), time.process_time()
        response = await client.get(path)
        took.append(((time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000))
        assert response.status_code == 200, (path, response.status_code, response.text[:200])
    return took


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3)


def _summary(took: list[tuple[float, float]]) -> dict[str, float]:
    wall = [w for w, _ in took]
    cpu = [c for _, c in took]
    return {
        "median_ms": round(statistics.median(wall), 3),
        "p99_ms": _p99(wall),
        "cpu_median_ms": round(statistics.median(cpu), 3),
        "cpu_p99_ms": _p99(cpu),
    }


async def _measure(topics: int, rounds: int, data_dir: str) -> dict[str, dict[str, float]]:
    from sluicegate.app import build_app
    from sluicegate.config import load_settings
    from sluicegate.core.gateway import Gateway
    from sluicegate.core.topics import TopicSpec
    from sluicegate.storage.base import running
    from sluicegate.storage.factory import open_log

    overrides = {"storage": {"data_dir": data_dir}, "auth": {"enabled": False}}
    settings = load_settings(environ={}, overrides=overrides)
    log = open_log(settings)
    async with running(log):
        gateway = Gateway(settings, log)
        await gateway.start()
        names = [f"t{i:05d}" for i in range(topics - 1)]
        for start in range(0, len(names), 200):
            await asyncio.gather(
                *(gateway.topics.create(TopicSpec(name=n)) for n in names[start : start + 200])
            )
        await gateway.topics.create(TopicSpec(name="busy", partitions=3))
        transport = httpx.ASGITransport(app=build_app(gateway))
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
            body = {"records": [{"value": f"record {i}"} for i in range(100)]}
            for _ in range(20):
                sent = await client.post("/admin/v1/topics/busy/records", json=body)
                assert sent.status_code == 200, sent.text
            await _timings(client, "/healthz", rounds)  # warm-up
            results = {"baseline": _summary(await _timings(client, "/healthz", rounds))}
            for name, path in REQUESTS.items():
                await _timings(client, path, 5)
                results[name] = _summary(await _timings(client, path, rounds))
    return results


def measure(topics: int, rounds: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="sg-console-") as data_dir:
        return asyncio.run(_measure(topics, rounds, data_dir))


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """``bench.run``'s entry: CPU p99 of each request against ``/healthz``'s."""
    results = measure(10_000, max(50, int(duration * 20)))
    baseline = results.pop("baseline")["cpu_p99_ms"]
    return {
        f"console-{name}": {
            "value": figures["cpu_p99_ms"],
            "unit": "CPU ms p99 (10,000 topics)",
            "baseline": baseline,
            "ratio": round(figures["cpu_p99_ms"] / baseline, 2) if baseline else None,
        }
        for name, figures in results.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    results = measure(args.topics, args.rounds)
    width = max(map(len, results))
    for name, figures in results.items():
        print(
            f"{name:<{width}}  wall median {figures['median_ms']:8.3f} p99 {figures['p99_ms']:8.3f}"
            f"  CPU median {figures['cpu_median_ms']:8.3f} p99 {figures['cpu_p99_ms']:8.3f} ms"
        )


if __name__ == "__main__":
    main()
