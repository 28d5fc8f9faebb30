"""The last minutes of a few figures, sampled in-process, for the console's charts.

Every ``interval`` seconds one sample of: the produce rate (records durably appended per
second since the previous sample), the p99 latency of produce requests and of storage
commits over that interval, and the storage gauges (``Log.stats``). Samples go into a
ring buffer (``collections.deque`` with ``maxlen``) holding ``window`` seconds: memory
is fixed (180 samples of a handful of floats at the defaults), and a sample costs a few
sums over the request series, so the buffer runs whether anybody looks or not.

Why not a Prometheus query: the gateway must chart its own figures with nothing else
installed (an air-gapped laptop running ``make serve``); ``/metrics`` is still there for
a Prometheus that keeps the long history and the alerts. Why not compute the charts
from ``/metrics`` in the browser: counters since start say nothing about the last
minutes until the page has been open for them, and every open page would scrape.

Latencies are read from the same bucket counts ``/metrics`` exports: the p99 of an
interval is interpolated inside the bucket holding it, as Prometheus'
``histogram_quantile`` does, so both show the same figure; ``None`` when the interval
saw no request.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from itertools import pairwise

import msgspec

from sluicegate.observability.metrics import LATENCY_BUCKETS, Metrics

__all__ = ["PRODUCE_ROUTES", "HistoryOut", "MetricsHistory", "quantile"]

#: Seconds between samples, and seconds of samples kept.
DEFAULT_INTERVAL = 5.0
DEFAULT_WINDOW = 900.0

#: (method, route template) of every request that produces records; a test keeps the
#: list equal to the app's produce routes.
PRODUCE_ROUTES = frozenset(
    {
        ("POST", "/v2/topics/{topic_name}/records"),
        ("POST", "/admin/v1/topics/{name}/records"),
        ("POST", "/api/v1/topics/{topic_id}/publish"),
        ("POST", "/api/v1/batch/topics/{topic_id}/publish"),
        ("POST", "/api/pubsub/topics/{topic_id}/publish"),
        ("POST", "/api/pubsub/topics/{topic_id}/batch/publish"),
        ("POST", "/ce/produce/raw"),
        ("POST", "/ce/produce/event"),
        ("POST", "/ce/produce/events"),
    }
)


class HistoryOut(msgspec.Struct, frozen=True, kw_only=True):
    """Columns of samples, oldest first: ``times[i]`` is when ``series[name][i]`` was taken."""

    interval: float
    window: float
    #: Unix seconds.
    times: list[float]
    #: ``produce_rate`` (records/s), ``produce_p99`` and ``commit_p99`` (seconds, ``None``
    #: without requests), then ``storage_<gauge>`` for each storage gauge.
    series: dict[str, list[float | None]]


def quantile(q: float, counts: Sequence[int], bounds: Sequence[float]) -> float | None:
    """The ``q`` quantile of a histogram: ``counts[i]`` observations up to ``bounds[i]``
    (one more count for the +Inf bucket), linearly interpolated inside its bucket."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index == len(bounds):
                return bounds[-1]  # in +Inf: the largest finite bound, as Prometheus says
            lower = bounds[index - 1] if index else 0.0
            return lower + (bounds[index] - lower) * (rank - seen) / count
        seen += count
    return bounds[-1]


class _Sample(msgspec.Struct, frozen=True):
    time: float
    appended: int
    produce: list[int]
    commits: list[int]
    storage: dict[str, float]


def _minus(now: list[int], before: list[int]) -> list[int]:
    return [a - b for a, b in zip(now, before, strict=True)]


class MetricsHistory:
    """Samples of one gateway's ``Metrics``; ``run()`` takes them until cancelled."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        interval: float = DEFAULT_INTERVAL,
        window: float = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._metrics = metrics
        self.interval = interval
        self.window = window
        self._clock = clock
        # One raw sample more than the window's points: each point is a difference.
        self._samples: deque[_Sample] = deque(maxlen=max(2, round(window / interval) + 1))

    def _produce_buckets(self) -> list[int]:
        total = [0] * (len(LATENCY_BUCKETS) + 1)
        for (_, route, method), series in self._metrics.request_series.items():
            if (method, route) in PRODUCE_ROUTES:
                total = [a + b for a, b in zip(total, series.buckets, strict=True)]
        return total

    def sample(self) -> None:
        """Take one sample now."""
        metrics = self._metrics
        self._samples.append(
            _Sample(
                self._clock(),
                metrics.appended_total,
                self._produce_buckets(),
                list(metrics.commit_buckets),
                dict(metrics.storage_stats()),
            )
        )

    async def run(self) -> None:
        """Sample now, then every ``interval`` seconds, until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def render(self) -> HistoryOut:
        """The samples as columns, each point the interval since the sample before."""
        samples = list(self._samples)
        times: list[float] = []
        series: dict[str, list[float | None]] = {
            "produce_rate": [],
            "produce_p99": [],
            "commit_p99": [],
        }
        gauges = sorted({name for s in samples for name in s.storage})
        for name in gauges:
            series[f"storage_{name}"] = []
        for before, now in pairwise(samples):
            elapsed = now.time - before.time
            times.append(round(now.time, 3))
            rate = (now.appended - before.appended) / elapsed if elapsed > 0 else 0.0
            series["produce_rate"].append(round(rate, 3))
            produce = quantile(0.99, _minus(now.produce, before.produce), LATENCY_BUCKETS)
            series["produce_p99"].append(produce)
            commits = quantile(0.99, _minus(now.commits, before.commits), LATENCY_BUCKETS)
            series["commit_p99"].append(commits)
            for name in gauges:
                series[f"storage_{name}"].append(now.storage.get(name))
        return HistoryOut(interval=self.interval, window=self.window, times=times, series=series)
