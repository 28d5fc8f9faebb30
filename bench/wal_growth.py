"""The WAL under sustained produce: its size over time, and the request rate meanwhile.

    python -m bench.wal_growth [REV ...] [--duration SECONDS]

Serves this tree (and each ``REV``, exported as ``bench.compare`` does) on a fresh data
directory, one after the other, and drives single-record records v2 produce with wrk
(64 connections) for ``duration`` seconds, sampling the sizes of ``sluicegate.db`` and
``sluicegate.db-wal`` every half second. Sequential, not interleaved: it answers "does
the WAL stay bounded", not "which is faster" (``bench.compare`` does that).
Writes ``bench/results/wal_growth.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.compare import ROOT, server_env, source_trees
from bench.http_produce import TEXT_BODY, _wrk
from bench.servers import SERVER_CPU, spread_helper_threads
from sluicegate.storage.sqlite.directory import DATABASE_FILE
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["file_size", "run"]

_SAMPLE_EVERY = 0.5


def file_size(path: Path) -> int:
    """Bytes in ``path``, 0 if it does not exist (a WAL is deleted on a clean close)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _sample(data_dir: Path, stop: threading.Event, into: list[tuple[float, int, int]]) -> None:
    started = time.monotonic()
    db, wal = data_dir / DATABASE_FILE, data_dir / f"{DATABASE_FILE}-wal"
    while not stop.wait(_SAMPLE_EVERY):
        into.append((round(time.monotonic() - started, 1), file_size(wal), file_size(db)))


def _measure(source: Path | None, duration: float) -> dict[str, Any]:
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sg-wal-")))
        server = stack.enter_context(
            serve_in_subprocess(data_dir, cpu=SERVER_CPU, env=server_env(source))
        )
        spread_helper_threads(server.pid)
        url = f"{server.url}/v2/topics/bench/records"
        headers = {"content-type": "application/json"}
        httpx.post(url, content=TEXT_BODY, headers=headers).raise_for_status()
        samples: list[tuple[float, int, int]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sample, args=(data_dir, stop, samples))
        sampler.start()
        requests, seconds, errors = 0, 0.0, 0
        try:
            for _ in range(max(1, round(duration / 5))):
                result = _wrk(url, TEXT_BODY, 5)
                requests += result["requests"]
                seconds += result["duration_us"] / 1e6
                errors += result["non2xx"] + result["socket_errors"]
        finally:
            stop.set()
            sampler.join()
    wal = [w for _, w, _ in samples]
    return {
        "requests_per_s": round(requests / seconds, 1),
        "errors": errors,
        "wal_max_bytes": max(wal),
        "wal_last_bytes": wal[-1],
        "db_last_bytes": samples[-1][2],
        "samples": samples,
    }


def run(revs: list[str], duration: float) -> dict[str, dict[str, Any]]:
    """WAL and database sizes under load, for this tree and each of ``revs``."""
    results: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        for name, source in source_trees(stack, revs).items():
            results[name] = _measure(source, duration)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revs", nargs="*", help="commits to measure after the working tree")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load each")
    args = parser.parse_args()
    results = run(args.revs, args.duration)
    out = ROOT / "bench" / "results" / "wal_growth.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    for name, entry in results.items():
        mib = {
            key: entry[key] / 2**20 for key in ("wal_max_bytes", "wal_last_bytes", "db_last_bytes")
        }
        print(
            f"{name:16} {entry['requests_per_s']:>9,.0f} requests/s  errors {entry['errors']}  "
            f"WAL max {mib['wal_max_bytes']:7.1f} MiB  last {mib['wal_last_bytes']:7.1f} MiB  "
            f"db {mib['db_last_bytes']:.1f} MiB"
        )


if __name__ == "__main__":
    main()
