"""Crash durability: produce concurrently, ``kill -9`` the server, restart, verify.

    python -m bench.crash --rounds 100 [--data-dir DIR]

Each round starts a real ``sluicegate serve``, runs concurrent producers through the
records v2 API, kills the server with SIGKILL at a random moment, restarts it on the
same data directory and stops it, then opens the log directly and checks that

* every acknowledged record is present exactly once, at the offset it was acknowledged
  with, with the key and value that were sent;
* no record at all (acknowledged or in flight) is stored twice;
* each producer's records are in the order it sent them;
* ``PRAGMA integrity_check`` says ``ok``.

Rounds accumulate on one data directory, so later rounds also check that earlier
rounds' records survived. The test suite runs 10 rounds; this script runs any number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.wal_growth import file_size
from sluicegate.core.records import TopicPartition
from sluicegate.errors import UnknownTopic
from sluicegate.storage.base import running
from sluicegate.storage.sqlite import SqliteLog
from sluicegate.testing.process import serve_in_subprocess

__all__ = ["CrashReport", "crash_rounds"]

TOPIC = "crash"
PRODUCERS = 16


@dataclass
class CrashReport:
    rounds: int = 0
    acknowledged: int = 0
    stored: int = 0
    #: The largest WAL a kill left behind (the next start empties it).
    wal_max_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def _producer(
    client: httpx.AsyncClient, url: str, name: str, start: int, acked: dict[str, int]
) -> None:
    seq = start
    while True:
        value = f"{name}:{seq}"
        body = {"key": {"type": "text", "data": name}, "value": {"type": "text", "data": value}}
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError:
            return  # the server is gone: this record's fate is unknown, which is allowed
        if response.status_code != 200:
            return
        acked[value] = response.json()["offset"]
        seq += 1


async def _produce_until_killed(
    url: str, kill: asyncio.Event, round_no: int, acked: dict[str, int]
) -> None:
    limits = httpx.Limits(max_connections=PRODUCERS)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        target = f"{url}/v2/topics/{TOPIC}/records"
        tasks = [
            asyncio.create_task(_producer(client, target, f"r{round_no}p{i}", 0, acked))
            for i in range(PRODUCERS)
        ]
        await kill.wait()
        await asyncio.gather(*tasks)


async def _read_all(data_dir: Path) -> list[tuple[int, bytes, bytes]]:
    rows: list[tuple[int, bytes, bytes]] = []
    async with running(SqliteLog(data_dir)) as log:
        try:
            topic = await log.get_topic(TOPIC)
        except UnknownTopic:  # every round was killed before its first produce
            return rows
        for partition in range(topic.partitions):
            tp = TopicPartition(TOPIC, partition)
            offset = (await log.watermarks(tp)).low
            while True:
                batch = await log.read(tp, offset, max_records=5000, max_bytes=1 << 24)
                if not batch:
                    break
                rows.extend((r.offset, r.key or b"", r.value or b"") for r in batch)
                offset = batch[-1].offset + 1
    return rows


def _verify(
    rows: list[tuple[int, bytes, bytes]], acked: dict[str, int], report: CrashReport
) -> None:
    seen: dict[str, int] = {}
    last_seq: dict[str, int] = {}
    for offset, key, value in rows:
        text = value.decode()
        if text in seen:
            report.problems.append(f"{text} stored twice, at {seen[text]} and {offset}")
        seen[text] = offset
        name, _, seq = text.partition(":")
        if key.decode() != name:
            report.problems.append(f"{text} at {offset} has key {key!r}")
        if int(seq) <= last_seq.get(name, -1):
            report.problems.append(f"{text} at {offset} is out of order")
        last_seq[name] = int(seq)
    for value, offset in acked.items():
        if value not in seen:
            report.problems.append(f"acknowledged {value} (offset {offset}) is lost")
        elif seen[value] != offset:
            report.problems.append(f"{value} acknowledged at {offset} but stored at {seen[value]}")
    report.stored = len(rows)
    report.acknowledged = len(acked)


def _integrity(data_dir: Path, report: CrashReport) -> None:
    with sqlite3.connect(data_dir / "sluicegate.db") as db:
        result = db.execute("PRAGMA integrity_check").fetchall()
    if result != [("ok",)]:
        report.problems.append(f"integrity_check: {result}")


async def crash_rounds(
    rounds: int, data_dir: Path, *, seed: int | None = None, max_delay: float = 1.5
) -> CrashReport:
    """Run ``rounds`` kill -9 rounds on ``data_dir``; the report lists every problem."""
    rng = random.Random(seed)
    report = CrashReport()
    acked: dict[str, int] = {}
    for round_no in range(rounds):
        with serve_in_subprocess(data_dir) as server:
            kill = asyncio.Event()
            producing = asyncio.create_task(
                _produce_until_killed(server.url, kill, round_no, acked)
            )
            await asyncio.sleep(rng.uniform(0.05, max_delay))
            server.kill()
            kill.set()
            await producing
        report.wal_max_bytes = max(report.wal_max_bytes, file_size(data_dir / "sluicegate.db-wal"))
        with serve_in_subprocess(data_dir) as server:  # recovery after the crash
            if server.stop() != 0:
                report.problems.append(f"round {round_no}: restart did not stop cleanly")
        report.rounds += 1
        _integrity(data_dir, report)
        if report.problems:
            break
    _verify(await _read_all(data_dir), acked, report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="kill -9 durability rounds")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp)
        report = asyncio.run(crash_rounds(args.rounds, data_dir, seed=seed))
    summary = {
        "rounds": report.rounds,
        "seed": seed,
        "acknowledged": report.acknowledged,
        "stored": report.stored,
        "wal_max_bytes": report.wal_max_bytes,
        "lost_or_duplicated": len(report.problems),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary))
    for problem in report.problems[:50]:
        print(problem, file=sys.stderr)
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
