"""The event-loop lag gauge: measured by a timer, reported as the window's worst."""

from __future__ import annotations

import asyncio
import time

from sluicegate.observability.metrics import LoopLag, Metrics


def gauge(metrics: Metrics) -> float:
    for line in metrics.render().decode().splitlines():
        if line.startswith("sluicegate_event_loop_lag_seconds "):
            return float(line.split()[1])
    raise AssertionError("no sluicegate_event_loop_lag_seconds in /metrics")


async def test_a_blocked_loop_shows_as_lag() -> None:
    metrics = Metrics()
    metrics.loop_lag.interval = 0.01
    watching = asyncio.ensure_future(metrics.loop_lag.watch())
    try:
        await asyncio.sleep(0.05)
        time.sleep(0.2)  # noqa: ASYNC251 - the blocking call on the loop this gauge exposes
        await asyncio.sleep(0.05)
    finally:
        watching.cancel()
    assert 0.15 <= gauge(metrics) < 1.0


def test_the_gauge_is_the_worst_of_the_window_only() -> None:
    lag = LoopLag(interval=1.0, window=3.0)
    assert lag.worst == 0.0
    for sample in (0.5, 0.1, 0.2, 0.3):
        lag.record(sample)
    assert lag.worst == 0.3  # 0.5 has left the three-sample window
    lag.record(-0.001)  # a timer that fired a hair early is no lag
    assert lag.worst == 0.3


def test_the_gauge_reads_zero_before_the_first_sample() -> None:
    assert gauge(Metrics()) == 0.0
