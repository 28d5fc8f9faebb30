"""The soak's goals, judged from samples made up to pass or to fail one goal each."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bench.soak_report import BURST_SLACK, WAL_SIZE_LIMIT, MiB, judge

BASE_RSS = 100 * MiB


def sample(t: float, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "t": t,
        "rss_bytes": BASE_RSS,
        "fds": 30,
        "loop_lag_s": 0.01,
        "metric_series": 150,
        "topic_name_in_metrics": False,
        "consumer_instances": 3,
        "data_dir_bytes": int(1.3 * 10 * MiB),
        "wal_bytes": 4 * MiB,
        "stored_bytes": 10 * MiB,
        "ok": int(t * 100),
        "errors": 0,
        "skipped": 0,
        "dropped_clients": 0,
        "topics_created": int(t),
        "events_produced": int(t * 5),
        "events_received": int(t * 10),
    }
    return values | changes


def burst(rss_before: float, rss_with: float, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "created": 1000,
        "rss_before": int(rss_before * MiB),
        "rss_with": int(rss_with * MiB),
        "rss_after": int(rss_with * MiB),
        "instances_before": 3,
        "instances_with": 1003,
        "instances_after": 3,
        "still_alive": 0,
        "expired_after_s": 130.0,
    }
    return values | changes


def healthy() -> dict[str, Any]:
    """A run that meets every goal: flat RSS, a bounded WAL, every event consumed."""
    return {
        "config": {
            "minutes": 10,
            "consumers": {"idle_instances": 1000, "idle_bursts_at": [0.2, 0.5]},
        },
        "fds_baseline": 30,
        "fds_after": 30,
        "tally": {
            "ok": 60_000,
            "errors": 0,
            "skipped": 0,
            "dropped_clients": 10,
            "topics_created": 600,
        },
        "samples": [sample(10.0 * n) for n in range(60)],
        "consumers": {
            "ce_produced": 3000,
            "ce_uncertain": 0,
            "poll_missing": 0,
            "ws_missing": 0,
            "poll_received": 3000,
            "ws_received": 3010,
            "ws_connections": 4,
            "unexpected": 0,
            "walks": {"soak-0": 20_000, "soak-avro-0": 5_000},
            "acknowledged": {"soak-0": 20_000, "soak-avro-0": 5_000},
            "bursts": [burst(100, 104), burst(104, 104.5)],
        },
    }


def failed(report: dict[str, Any]) -> set[str]:
    return {name for name, goal in judge(report).items() if not goal["ok"]}


def test_a_steady_run_meets_every_goal() -> None:
    goals = judge(healthy())
    assert set(goals) == {
        "rss",
        "wal",
        "data_dir",
        "fds",
        "metric_series",
        "errors",
        "events",
        "walks",
        "idle_instances",
    }
    assert failed(healthy()) == set()
    assert "3,000 events acknowledged" in goals["events"]["detail"]


def test_a_run_without_consumers_is_judged_on_the_rest() -> None:
    report = healthy()
    del report["consumers"]
    assert set(judge(report)) == {"rss", "wal", "data_dir", "fds", "metric_series", "errors"}
    assert failed(report) == set()


def test_too_few_samples_are_no_verdict() -> None:
    report = healthy()
    report["samples"] = report["samples"][:7]
    assert failed(report) == {"samples"}


def test_rss_that_climbs_past_a_tenth_fails() -> None:
    report = healthy()
    for s in report["samples"]:
        s["rss_bytes"] = BASE_RSS + int(s["t"] / 600 * 20 * MiB)  # +20 MiB over the run
    assert failed(report) == {"rss"}


def test_a_wal_that_keeps_growing_fails_and_one_past_twice_the_limit_too() -> None:
    report = healthy()
    for s in report["samples"]:
        s["wal_bytes"] = int(s["t"] / 600 * WAL_SIZE_LIMIT)  # rising, below the cap
    assert failed(report) == {"wal"}
    report = healthy()
    report["samples"][30]["wal_bytes"] = 2 * WAL_SIZE_LIMIT + 1
    assert failed(report) == {"wal"}


@pytest.mark.parametrize(
    ("where", "change", "goal"),
    [
        ("fds_after", 31, "fds"),
        ("samples", {"metric_series": 300}, "metric_series"),
        ("samples", {"topic_name_in_metrics": True}, "metric_series"),
        ("samples", {"data_dir_bytes": 21 * MiB}, "data_dir"),
        ("tally", {"errors": 1}, "errors"),
    ],
)
def test_each_of_the_other_goals_fails_alone(where: str, change: Any, goal: str) -> None:
    report = healthy()
    if where == "samples":
        report["samples"][-1] |= change
    elif where == "tally":
        report["tally"] |= change
    else:
        report[where] = change
    assert failed(report) == {goal}


@pytest.mark.parametrize(
    "change",
    [
        {"poll_missing": 1},
        {"ws_missing": 2},
        {"unexpected": 1},
        {"ce_produced": 0},
    ],
)
def test_an_event_missed_by_either_group_or_never_produced_fails(change: dict[str, int]) -> None:
    report = healthy()
    report["consumers"] |= change
    assert failed(report) == {"events"}


def test_a_walk_short_of_its_topic_fails() -> None:
    report = healthy()
    report["consumers"]["walks"]["soak-avro-0"] = 4_999
    assert failed(report) == {"walks"}
    report = healthy()
    report["consumers"]["acknowledged"] = {}
    assert failed(report) == {"walks"}


def test_idle_instances_must_all_be_made_and_all_expire() -> None:
    for change in ({"still_alive": 1}, {"created": 999}):
        report = healthy()
        report["consumers"]["bursts"][1] |= change
        assert failed(report) == {"idle_instances"}
    report = healthy()
    report["consumers"]["bursts"].pop()
    assert failed(report) == {"idle_instances"}


def test_a_later_burst_must_reuse_the_memory_of_the_first() -> None:
    report = healthy()
    bursts = report["consumers"]["bursts"]
    # RSS never falls back (Python keeps its arenas), but the second burst fits in them.
    bursts[0]["rss_after"] = bursts[0]["rss_with"]
    assert failed(copy.deepcopy(report)) == set()
    # A second burst that costs as much as the first: the first's memory never came back.
    bursts[1] = burst(104, 108)
    assert failed(report) == {"idle_instances"}
    # Small bursts are judged against the slack, not against half of a little.
    report["consumers"]["bursts"] = [
        burst(100, 100.2),
        burst(100.2, 100.2 + BURST_SLACK / MiB * 0.9),
    ]
    assert failed(report) == set()
