"""Crash durability: kill -9 a real server while it produces; 10 rounds (bench/crash.py: 100)."""

from __future__ import annotations

import random
from pathlib import Path

from bench.crash import crash_rounds


async def test_kill_9_loses_and_duplicates_nothing_acknowledged(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    report = await crash_rounds(10, tmp_path, seed=seed, max_delay=1.0)
    assert report.rounds == 10, f"seed {seed}: {report.problems[:10]}"
    assert report.problems == [], f"seed {seed}: {report.problems[:10]}"
    # The rounds did real work: many records acknowledged, all of them found.
    assert report.acknowledged > 100, f"seed {seed}"
    assert report.stored >= report.acknowledged
