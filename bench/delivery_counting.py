"""What delivery counting for ``max_deliveries`` costs the consumer core. Run:
``python -m bench.run --only delivery-counting``.

In process, on the SQLite log, without HTTP: ``BACKLOG`` events in 12 partitions, read by
one consumer instance at a time in batches of ``BATCH``, confirming each batch (the
WebSocket consumer's loop without its socket). Rounds alternate between a group with
``max_deliveries`` off and one with it on (each round a fresh group, so each reads the
whole backlog), and each round is timed in CPU time of this process
(``time.process_time``), which other processes on a busy machine do not inflate.

- ``delivery-counting-first``: the backlog read for the first time (the usual case:
  nothing is counted but the delivered end), median events per CPU second with counting
  on, against the same with it off (target ratio ≥ 0.95);
- ``delivery-counting-redelivered``: every event delivered a second time (a consumer that
  read the backlog, confirmed nothing and came back): the worst case, each batch's
  counts stored in the log before it is handed out.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.consumer_core import OneTopic, fill_backlog, never
from bench.http_produce import _entry
from sluicegate.config import load_settings
from sluicegate.core.consumers.registry import ConsumerInstances
from sluicegate.core.gateway import Gateway
from sluicegate.storage.base import running
from sluicegate.storage.factory import open_log

__all__ = ["run"]

BACKLOG = 60_000
PARTITIONS = 12
BATCH = 1000
ROUNDS = 5
TOPIC = "bench.counting"


async def _read_all(instances: ConsumerInstances, group: str, limit: int, confirm: bool) -> None:
    instance = await instances.create("bench", group, OneTopic(TOPIC), max_deliveries=limit)
    read = 0
    while read < BACKLOG:
        batch = await instance.next_batch(BATCH, 0, never, window=BACKLOG + BATCH)
        read += len(batch)
        if confirm:
            await instance.confirm()
    await instances.discard(instance)


async def _rounds(data_dir: Path) -> dict[str, dict[str, Any]]:
    settings = load_settings(environ={}, overrides={"storage": {"data_dir": str(data_dir)}})
    async with running(open_log(settings)) as log:
        gateway = Gateway(settings, log)
        await gateway.start()
        await fill_backlog(log, TOPIC, PARTITIONS, BACKLOG)
        instances = gateway.consumers
        first: dict[int, list[float]] = {0: [], 5: []}
        again: dict[int, list[float]] = {0: [], 5: []}
        wall: dict[int, list[float]] = {0: [], 5: []}
        for round_ in range(ROUNDS):
            for limit in (0, 5) if round_ % 2 == 0 else (5, 0):
                group = f"g{round_}-{limit}"
                started = time.process_time()
                await _read_all(instances, group, limit, confirm=False)
                first[limit].append(BACKLOG / (time.process_time() - started))
                started, clock = time.process_time(), time.perf_counter()
                await _read_all(instances, group, limit, confirm=True)
                again[limit].append(BACKLOG / (time.process_time() - started))
                # The counts go to the log's own writer (SQLite: another process), which
                # CPU time of this one does not see: the wall clock does, noisily.
                wall[limit].append(BACKLOG / (time.perf_counter() - clock))
    off, on = statistics.median(first[0]), statistics.median(first[5])
    again_off, again_on = statistics.median(again[0]), statistics.median(again[5])
    print(f"first: {on:,.0f} vs {off:,.0f}; redelivered: {again_on:,.0f} vs {again_off:,.0f}")
    common = {"events": BACKLOG, "batch": BATCH, "rounds": ROUNDS, "clock": "process CPU time"}
    return {
        "delivery-counting-first": _entry(on, "events/cpu-s", off, target_ratio=0.95, **common),
        "delivery-counting-redelivered": _entry(
            again_on,
            "events/cpu-s",
            again_off,
            wall_events_per_s=round(statistics.median(wall[5])),
            wall_baseline=round(statistics.median(wall[0])),
            **common,
        ),
    }


def run(duration: float = 10.0) -> dict[str, dict[str, Any]]:
    """Both figures (bounded by ``BACKLOG`` and ``ROUNDS``, not ``duration``)."""
    with tempfile.TemporaryDirectory() as data_dir:
        return asyncio.run(_rounds(Path(data_dir)))
