"""CloudEvents de-duplication: memory per remembered id, append overhead, load rate.

Run: ``python -m bench.run --only cloudevents-dedup [--duration SECONDS]``. What is
measured, each against a baseline of the same run:

- ``cloudevents-dedup-bytes-per-id``: resident memory added by 1,000,000 remembered ids
  in ``IdTable``, per id (RSS delta, each structure built in a fresh process). Baseline:
  the naive structure, a ``set`` of the same 16-byte digests. Lower is better.
- ``cloudevents-dedup-append-batch100``: 16 tasks storing batches of 100 new events
  through ``EventIds.append_once`` on the SQLite log, events/s. Baseline: the same
  batches through plain ``Log.append`` (no identities, no markers). ratio = ours /
  baseline; 1 - ratio is what de-duplication costs.
- ``cloudevents-dedup-load``: ``EventIds.load()`` over the markers of 1,000,000 ids,
  ids/s. Baseline: reading the same marker records with ``Log.read`` into a ``set`` (the
  naive structure's load).
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.http_produce import _entry
from bench.storage_append import _run_async
from sluicegate.config import CloudEventSettings
from sluicegate.core.cloudevents.dedup import MARKER_TOPIC, MAX_DIGESTS_PER_MARKER, EventIds
from sluicegate.core.cloudevents.id_table import IdTable
from sluicegate.core.records import NewRecord, TopicPartition
from sluicegate.core.topics import TopicSpec
from sluicegate.storage.base import Log, running
from sluicegate.storage.sqlite import SqliteLog

__all__ = ["run"]

IDS = 1_000_000
TASKS = 16
BATCH = 100
TOPIC = "ce.bench"
VALUE = b'{"order": 12345, "status": "shipped", "items": [1, 2, 3]}'
HEADERS = (("ce_specversion", b"1.0"), ("ce_type", b"bench.order"), ("ce_source", b"/bench"))
NOW = 1_700_000_000


# -- memory per id ------------------------------------------------------------------


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _digests(start: int, stop: int) -> list[bytes]:
    return [hashlib.blake2b(b"%d" % n, digest_size=16).digest() for n in range(start, stop)]


def _bytes_per_id(structure: str) -> float:
    """In a fresh process: RSS added by ``IDS`` ids held in ``structure``, per id."""
    before = _rss()
    # Digests are made as requests make them, a batch at a time: a set keeps each digest
    # object, the table copies it into a shard and lets it go.
    if structure == "table":
        table = IdTable(max_ids=IDS * 2, slot_seconds=60)
        for start in range(0, IDS, BATCH):
            table.add_all(_digests(start, start + BATCH), NOW + 3600, NOW)
        kept: object = table
    else:
        remembered: set[bytes] = set()
        for start in range(0, IDS, BATCH):
            remembered.update(_digests(start, start + BATCH))
        kept = remembered
    added = _rss() - before
    del kept
    return added / IDS


def _measure_memory(structure: str) -> float:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return float(pool.apply(_bytes_per_id, (structure,)))


# -- append overhead ----------------------------------------------------------------


async def _measure_appends(data_dir: Path, seconds: float, *, once: bool) -> float:
    async with running(SqliteLog(data_dir)) as log:
        await log.create_topic(TopicSpec(name=TOPIC, partitions=12))
        ids = EventIds(log, CloudEventSettings())
        await ids.load()
        loop = asyncio.get_running_loop()
        written = 0
        serial = 0

        async def produce(task: int) -> None:
            nonlocal written, serial
            while loop.time() < deadline:
                serial += 1
                records = [
                    NewRecord(TOPIC, (task + i) % 12, None, VALUE, HEADERS) for i in range(BATCH)
                ]
                if once:
                    keys = [b"/bench\x00%d-%d" % (serial, i) for i in range(BATCH)]
                    await ids.append_once([(k, [r]) for k, r in zip(keys, records, strict=True)])
                else:
                    await log.append(records)
                written += BATCH

        deadline = loop.time() + seconds / 5  # warm-up: page cache, WAL growth
        async with asyncio.TaskGroup() as tg:
            for task in range(TASKS):
                tg.create_task(produce(task))
        written = 0
        started = loop.time()
        deadline = started + seconds
        async with asyncio.TaskGroup() as tg:
            for task in range(TASKS):
                tg.create_task(produce(task))
        return written / (loop.time() - started)


# -- load rate ----------------------------------------------------------------------


async def _write_markers(log: Log) -> None:
    digests = _digests(0, IDS)
    await log.create_topic(TopicSpec(name=MARKER_TOPIC, partitions=1, retention_ms=86_400_000))
    header = (("lifetime_ms", b"86400000"),)
    markers = [
        NewRecord(
            MARKER_TOPIC, 0, None, b"".join(digests[at : at + MAX_DIGESTS_PER_MARKER]), header
        )
        for at in range(0, IDS, MAX_DIGESTS_PER_MARKER)
    ]
    for at in range(0, len(markers), 50):
        await log.append(markers[at : at + 50])


async def _measure_load(data_dir: Path, *, baseline: bool) -> float:
    async with running(SqliteLog(data_dir)) as log:
        if baseline:
            await _write_markers(log)
        started = time.perf_counter()
        if baseline:
            tp = TopicPartition(MARKER_TOPIC, 0)
            position, high = 0, (await log.watermarks(tp)).high
            remembered: set[bytes] = set()
            while position < high:
                records = await log.read(tp, position, max_records=1000, max_bytes=8 << 20)
                for record in records:
                    value = record.value or b""
                    remembered.update(value[at : at + 16] for at in range(0, len(value), 16))
                position = records[-1].offset + 1
            ids = len(remembered)
        else:
            event_ids = EventIds(log, CloudEventSettings(dedup_max_ids=2 * IDS))
            await event_ids.load()
            ids = int(event_ids.stats()["remembered_ids"])
        elapsed = time.perf_counter() - started
        if ids != IDS:
            raise RuntimeError(f"loaded {ids} ids, expected {IDS}")
        return ids / elapsed


def run(duration: float) -> dict[str, dict[str, Any]]:
    """Measure; ``duration`` bounds the append measurements (the rest are one-shot)."""
    results: dict[str, dict[str, Any]] = {}
    results["cloudevents-dedup-bytes-per-id"] = _entry(
        _measure_memory("table"), "bytes/id", _measure_memory("set")
    )
    each = duration / 2
    with tempfile.TemporaryDirectory(prefix="sluicegate-bench-") as tmp:
        plain = _run_async(_measure_appends(Path(tmp) / "plain", each, once=False))
        once = _run_async(_measure_appends(Path(tmp) / "once", each, once=True))
        results["cloudevents-dedup-append-batch100"] = _entry(once, "events/s", plain)
        markers = Path(tmp) / "markers"
        naive = _run_async(_measure_load(markers, baseline=True))
        loaded = _run_async(_measure_load(markers, baseline=False))
        results["cloudevents-dedup-load"] = _entry(loaded, "ids/s", naive)
    return results
