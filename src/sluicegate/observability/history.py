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


class _Counters(msgspec.Struct, frozen=True):
    """The counters a point is the difference of: kept for the last sample only."""

    time: float
    appended: int
    produce: list[int]
    commits: list[int]


class _Point(msgspec.Struct, frozen=True):
    """One interval, computed when its sample is taken: rendering only lays points out."""

    time: float
    produce_rate: float
    produce_p99: float | None
    commit_p99: float | None
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
        self._points: deque[_Point] = deque(maxlen=max(1, round(window / interval)))
        self._last: _Counters | None = None

    def _produce_buckets(self) -> list[int]:
        total = [0] * (len(LATENCY_BUCKETS) + 1)
        for (_, route, method), series in self._metrics.request_series.items():
            if (method, route) in PRODUCE_ROUTES:
                total = [a + b for a, b in zip(total, series.buckets, strict=True)]
        return total

    def sample(self) -> None:
        """Take one sample now: a point for the interval since the last one, if any."""
        metrics = self._metrics
        now = _Counters(
            self._clock(),
            metrics.appended_total,
            self._produce_buckets(),
            list(metrics.commit_buckets),
        )
        before, self._last = self._last, now
        if before is None:
            return
        elapsed = now.time - before.time
        appended = now.appended - before.appended
        self._points.append(
            _Point(
                round(now.time, 3),
                round(appended / elapsed, 3) if elapsed > 0 else 0.0,
                quantile(0.99, _minus(now.produce, before.produce), LATENCY_BUCKETS),
                quantile(0.99, _minus(now.commits, before.commits), LATENCY_BUCKETS),
                dict(metrics.storage_stats()),
            )
        )

    async def run(self) -> None:
        """Sample now, then every ``interval`` seconds, until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def render(self) -> HistoryOut:
        """The points as columns, oldest first."""
        points = list(self._points)
        series: dict[str, list[float | None]] = {
            "produce_rate": [p.produce_rate for p in points],
            "produce_p99": [p.produce_p99 for p in points],
            "commit_p99": [p.commit_p99 for p in points],
        }
        for name in sorted({name for p in points for name in p.storage}):
            series[f"storage_{name}"] = [p.storage.get(name) for p in points]
        return HistoryOut(
            interval=self.interval,
            window=self.window,
            times=[p.time for p in points],
            series=series,
        )
