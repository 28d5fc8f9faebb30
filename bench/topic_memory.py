"""Memory per topic: what new topics cost a server, and what holds it.

    python -m bench.topic_memory [REV ...] [--topics 1000 5000 10000] [--data-mib 16]
                                 [--no-attribution]

New topics are made the way the soak makes them (``bench.soak``): each is auto-created
by its first records v2 produce, then described through the admin API, and after each
step the topic list is read once. A last step stores ``--data-mib`` of 512-byte records
in a few steady topics and creates none, so that growth with the topic count can be
told from growth with the database (SQLite's page caches fill as the file grows).

Two measurements of the work tree (and of each ``REV``, exported as ``bench.compare``
does), one after the other:

- **a real server** (``sluicegate serve`` on 127.0.0.1): resident memory of the server
  and of its commit process after a warm-up and after each step; ``rss_per_topic`` is
  the growth over the topic steps divided by the topics created;
- **attribution**, in a process of its own running the same tree in-process (the ASGI
  app through httpx's ASGI transport): ``tracemalloc`` snapshots after each step, the
  growth from the warm-up to the last topic step grouped by file and line, and SQLite's
  own heap (``sqlite3_memory_used``, read through ctypes from the libsqlite3 that
  Python's ``sqlite3`` module is linked against: tracemalloc sees only Python's
  allocations). The commit process is not in this figure; the real server's is.
  ``--no-attribution`` leaves it out, which halves the run.

Writes ``bench/results/topic_memory.json``. ``python -m bench.run --only topic-memory``
runs the work tree with the default steps: ``topic-memory-rss`` is the real server's RSS
after 10,000 topics against its RSS after the warm-up (the soak's goal asks for at most
1.10 over a whole run), ``topic-memory-python`` and ``topic-memory-sqlite`` the same for
the in-process figures; each entry carries the bytes per topic.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import ExitStack, suppress
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench.compare import ROOT, WORKTREE, server_env, source_trees
from bench.http_produce import _entry
from bench.soak import _children
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["run"]

RESULTS = Path(__file__).parent / "results"
STEPS = (1_000, 5_000, 10_000)
DATA_MIB = 16
#: Requests in flight; the first produce of each topic is an exclusive write (one
#: transaction, one fsync), so more in flight only lengthens the writer's queue.
CONCURRENCY = 16
STEADY_TOPICS = 4
VALUE = "v" * 512
RECORDS_PER_BATCH = 100
#: Lines shown from the tracemalloc comparison, largest growth first.
TOP_LINES = 15

#: Called after the warm-up and after each step with its label and the topics created.
Measure = Callable[[str, int], Awaitable[dict[str, Any]]]


# -- the workload, the same for both measurements ------------------------------------


async def _ok(response: Awaitable[httpx.Response]) -> httpx.Response:
    answer = await response
    if answer.status_code != 200:
        raise RuntimeError(f"{answer.request.method} {answer.request.url}: {answer.status_code}")
    return answer


async def _new_topic(client: httpx.AsyncClient, name: str) -> None:
    record = {"key": {"type": "text", "data": "first"}, "value": {"type": "text", "data": VALUE}}
    await _ok(client.post(f"/v2/topics/{name}/records", json=record))
    await _ok(client.get(f"/admin/v1/topics/{name}"))


async def _store(client: httpx.AsyncClient, topic: str, batches: int) -> None:
    body = {"records": [{"key": f"k{i}", "value": VALUE} for i in range(RECORDS_PER_BATCH)]}
    for _ in range(batches):
        await _ok(client.post(f"/admin/v1/topics/{topic}/records", json=body))


async def _in_parallel(jobs: Iterable[Callable[[], Awaitable[None]]]) -> None:
    """Run ``jobs``, ``CONCURRENCY`` at a time.

    A few workers, not a task per job: 10,000 tasks at once would leave their traces in
    the figures (asyncio's set of tasks keeps the size it grew to).
    """
    pending = iter(jobs)

    async def worker() -> None:
        for job in pending:
            await job()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def _drive(
    client: httpx.AsyncClient, steps: Sequence[int], data_mib: float, measure: Measure
) -> list[dict[str, Any]]:
    """Warm up, then create topics up to each step and store ``data_mib``; measure each."""
    # Every kind of request once, so that what is opened lazily is in the first figure.
    await _new_topic(client, "tm-steady-0")
    await _store(client, "tm-steady-0", 1)
    await _ok(client.get("/admin/v1/topics"))
    points = [await measure("warm-up", 0)]
    created = 0
    for target in steps:
        started = time.monotonic()
        await _in_parallel(
            partial(_new_topic, client, f"tm-new-{n:05d}") for n in range(created, target)
        )
        await _ok(client.get("/admin/v1/topics"))
        created = target
        point = await measure(f"{target} topics", created)
        points.append({**point, "seconds": round(time.monotonic() - started, 1)})
    batches = round(data_mib * 2**20 / (len(VALUE) * RECORDS_PER_BATCH))
    if batches:
        started = time.monotonic()
        share = -(-batches // STEADY_TOPICS)
        await _in_parallel(
            partial(_store, client, f"tm-steady-{k}", share) for k in range(STEADY_TOPICS)
        )
        point = await measure(f"+{data_mib:g} MiB of records", created)
        points.append({**point, "seconds": round(time.monotonic() - started, 1)})
    return points


def _per_topic(points: list[dict[str, Any]], key: str) -> float:
    """Growth of ``key`` from the warm-up to the last topic step, per topic created."""
    steps = [p for p in points if p["label"].endswith(" topics")]
    topics = steps[-1]["topics"]
    return round((steps[-1][key] - points[0][key]) / topics, 1) if topics else 0.0


# -- a real server ---------------------------------------------------------------------


def _status(pid: int, field: str) -> int:
    """A ``kB`` figure of ``/proc/<pid>/status`` in bytes (0 once the process is gone)."""
    with suppress(FileNotFoundError, ProcessLookupError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    return 0


def _server(source: Path | None, steps: Sequence[int], data_mib: float) -> dict[str, Any]:
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sg-tm-")))
        server = stack.enter_context(serve_in_subprocess(data_dir, env=server_env(source)))

        async def measure(label: str, topics: int) -> dict[str, Any]:
            commits = _children(server.pid)
            return {
                "label": label,
                "topics": topics,
                "rss": _status(server.pid, "VmRSS") + sum(_status(c, "VmRSS") for c in commits),
                "server_rss": _status(server.pid, "VmRSS"),
                "server_anon": _status(server.pid, "RssAnon"),
                "commit_rss": sum(_status(c, "VmRSS") for c in commits),
            }

        async def drive() -> list[dict[str, Any]]:
            limits = httpx.Limits(max_connections=CONCURRENCY)
            async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
                return await _drive(client, steps, data_mib, measure)

        points = asyncio.run(drive())
    return {
        "points": points,
        "rss_per_topic": _per_topic(points, "rss"),
        "server_rss_per_topic": _per_topic(points, "server_rss"),
        "commit_rss_per_topic": _per_topic(points, "commit_rss"),
    }


# -- attribution, in a process of its own --------------------------------------------


def _sqlite_memory() -> Callable[[], int | None]:
    """``sqlite3_memory_used`` of the libsqlite3 the ``sqlite3`` module uses, if shared."""
    import sqlite3

    name = ctypes.util.find_library("sqlite3")
    if name is None:
        return lambda: None
    library = ctypes.CDLL(name)
    library.sqlite3_memory_used.restype = ctypes.c_int64
    library.sqlite3_libversion.restype = ctypes.c_char_p
    # The same library only if the module is linked against it, not built with its own.
    if library.sqlite3_libversion().decode() != sqlite3.sqlite_version:
        return lambda: None
    return lambda: int(library.sqlite3_memory_used())


def _attribute(steps: Sequence[int], data_mib: float) -> dict[str, Any]:
    """The in-process measurement: run the app here, with tracemalloc on."""
    from sluicegate.app import build_app
    from sluicegate.config import load_settings
    from sluicegate.core.gateway import Gateway
    from sluicegate.storage.base import running
    from sluicegate.storage.factory import open_log

    sqlite_used = _sqlite_memory()
    snapshots: dict[str, tracemalloc.Snapshot] = {}

    async def measure(label: str, topics: int) -> dict[str, Any]:
        # The last requests' tasks are freed by callbacks still queued on the loop.
        await asyncio.sleep(0.1)
        gc.collect()
        snapshots[label] = tracemalloc.take_snapshot()
        return {
            "label": label,
            "topics": topics,
            "python": tracemalloc.get_traced_memory()[0],
            "sqlite": sqlite_used(),
            "rss": _status(os.getpid(), "VmRSS"),
        }

    async def drive(data_dir: str) -> list[dict[str, Any]]:
        overrides = {"storage": {"data_dir": data_dir}, "auth": {"enabled": False}}
        settings = load_settings(environ={}, overrides=overrides)
        log = open_log(settings)
        async with running(log):
            gateway = Gateway(settings, log)
            await gateway.start()
            transport = httpx.ASGITransport(app=build_app(gateway))
            async with httpx.AsyncClient(transport=transport, base_url="http://tm") as client:
                return await _drive(client, steps, data_mib, measure)

    tracemalloc.start(1)
    with tempfile.TemporaryDirectory(prefix="sg-tm-") as data_dir:
        points = asyncio.run(drive(data_dir))
    tracemalloc.stop()
    last_step = [p["label"] for p in points if p["label"].endswith(" topics")][-1]
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    growth = (
        snapshots[last_step]
        .filter_traces(ignore)
        .compare_to(snapshots["warm-up"].filter_traces(ignore), "lineno")
    )
    topics = points[-1]["topics"] or 1
    lines = [
        {
            "where": f"{stat.traceback[0].filename.split('/src/')[-1]}:{stat.traceback[0].lineno}",
            "bytes": stat.size_diff,
            "blocks": stat.count_diff,
            "per_topic": round(stat.size_diff / topics, 1),
        }
        for stat in sorted(growth, key=lambda s: s.size_diff, reverse=True)[:TOP_LINES]
    ]
    return {
        "points": points,
        "python_per_topic": _per_topic(points, "python"),
        "sqlite_per_topic": _per_topic(points, "sqlite") if points[0]["sqlite"] else None,
        "top_lines": lines,
    }


def _attribute_in_child(
    source: Path | None, steps: Sequence[int], data_mib: float
) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.topic_memory", "--attribute-here"]
    command += ["--topics", *map(str, steps), "--data-mib", str(data_mib)]
    env = {**os.environ, **(server_env(source) or {})}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the attribution run failed:\n{done.stderr.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# -- the runs ---------------------------------------------------------------------------


def measure_trees(
    revs: Sequence[str],
    steps: Sequence[int] = STEPS,
    data_mib: float = DATA_MIB,
    *,
    attribute: bool = True,
) -> dict[str, dict[str, Any]]:
    """Both measurements (or the real server's only) of the work tree and each of ``revs``."""
    results: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        for name, source in source_trees(stack, list(revs)).items():
            results[name] = {"server": _server(source, steps, data_mib)}
            if attribute:
                results[name]["attribution"] = _attribute_in_child(source, steps, data_mib)
    return results


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """The work tree's figures as ``bench.run`` entries (``duration`` is not used: the
    run lasts as long as creating the topics takes)."""
    tree = measure_trees([])[WORKTREE]
    server, attribution = tree["server"], tree["attribution"]
    topic_steps = [p for p in server["points"] if p["label"].endswith(" topics")]
    in_process = [p for p in attribution["points"] if p["label"].endswith(" topics")]
    entries = {
        "topic-memory-rss": _entry(
            topic_steps[-1]["rss"],
            "bytes",
            server["points"][0]["rss"],
            topics=topic_steps[-1]["topics"],
            per_topic=server["rss_per_topic"],
        ),
        "topic-memory-python": _entry(
            in_process[-1]["python"],
            "bytes",
            attribution["points"][0]["python"],
            per_topic=attribution["python_per_topic"],
        ),
    }
    if attribution["sqlite_per_topic"] is not None:
        entries["topic-memory-sqlite"] = _entry(
            in_process[-1]["sqlite"],
            "bytes",
            attribution["points"][0]["sqlite"],
            per_topic=attribution["sqlite_per_topic"],
        )
    return entries


def _print(name: str, tree: dict[str, Any]) -> None:
    mib = 2**20
    server, attribution = tree["server"], tree.get("attribution")
    print(f"{name}: real server, RSS of server + commit process")
    for point in server["points"]:
        print(
            f"  {point['label']:24} {point['rss'] / mib:7.1f} MiB  (server "
            f"{point['server_rss'] / mib:.1f}, anon {point['server_anon'] / mib:.1f}; "
            f"commit process {point['commit_rss'] / mib:.1f})"
        )
    print(
        f"  per topic: {server['rss_per_topic']:,.0f} bytes (server "
        f"{server['server_rss_per_topic']:,.0f}, commit process "
        f"{server['commit_rss_per_topic']:,.0f})"
    )
    if attribution is None:
        return
    print(f"{name}: in-process, traced Python heap and SQLite's heap")
    for point in attribution["points"]:
        sqlite = "n/a" if point["sqlite"] is None else f"{point['sqlite'] / mib:.2f} MiB"
        print(f"  {point['label']:24} python {point['python'] / mib:7.2f} MiB  sqlite {sqlite}")
    sqlite_per_topic = attribution["sqlite_per_topic"]
    print(
        f"  per topic: python {attribution['python_per_topic']:,.0f} bytes, sqlite "
        f"{'n/a' if sqlite_per_topic is None else f'{sqlite_per_topic:,.0f} bytes'}"
    )
    print("  largest growth by line, warm-up to the last topic step:")
    for line in attribution["top_lines"]:
        print(f"    {line['per_topic']:8,.1f} B/topic {line['blocks']:>8,} blocks  {line['where']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revs", nargs="*", help="commits to measure after the work tree")
    parser.add_argument("--topics", type=int, nargs="+", default=list(STEPS), help="steps")
    parser.add_argument("--data-mib", type=float, default=DATA_MIB, help="records, last step")
    parser.add_argument(
        "--no-attribution", action="store_true", help="the real servers only (half the time)"
    )
    parser.add_argument("--attribute-here", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attribute_here:
        # The child of ``_attribute_in_child``: its figures go to stdout as JSON.
        print(json.dumps(_attribute(args.topics, args.data_mib)))
        return
    results = measure_trees(
        args.revs, args.topics, args.data_mib, attribute=not args.no_attribution
    )
    out = RESULTS / "topic_memory.json"
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    for name, tree in results.items():
        _print(name, tree)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
