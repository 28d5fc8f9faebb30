"""Prometheus metrics. Labels are route templates and statuses, never client input.

Unbounded label values (raw paths, topic names from requests) are how a metrics
registry eats a server's memory (Karapace #1104), so the only labels here come from
the code: the matched route's template, the method, the status and the dialect. The
one exception, consumer groups (and their topics), is capped: past ``max_groups``
groups, the rest are summed under the group ``other``.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left as _bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from sluicegate.core.consumers.lag import GroupFigures
    from sluicegate.core.consumers.stream import WakeToWrite

__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "OTHER_GROUPS",
    "LoopLag",
    "Metrics",
    "RequestSeries",
]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)
_LATENCY_BUCKETS = LATENCY_BUCKETS


class _StatsCollector(Collector):
    """Reads a component's figures at scrape time, so the hot path pays nothing for them.

    A name ending in ``_total`` is a counter (Prometheus' convention), any other a gauge.
    """

    def __init__(self, prefix: str, subject: str, stats: Callable[[], dict[str, float]]) -> None:
        self._prefix = prefix
        self._subject = subject
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        for name, value in sorted(self._stats().items()):
            if name.endswith("_total"):
                counter = name.removesuffix("_total")
                yield CounterMetricFamily(
                    f"{self._prefix}_{counter}", f"{self._subject} counter {counter}.", value
                )
            else:
                yield GaugeMetricFamily(
                    f"{self._prefix}_{name}", f"{self._subject} gauge {name}.", value
                )


#: The group label of every group past the cap.
OTHER_GROUPS = "other"
#: Kinds of open consumer connections, each always exported (0 when none).
CONSUMER_KINDS = ("long_poll", "websocket", "sse")


class _GroupCollector(Collector):
    """Consumer groups' lag and health from ``GroupLag``'s last snapshot.

    Groups keep the label they were first given while they are in the snapshot, so a
    series does not jump from one group to another as others come and go; the groups
    past ``max_groups`` are summed (their ages: the largest) under ``other``.
    """

    def __init__(self, snapshot: Callable[[], Iterable[GroupFigures]], max_groups: int) -> None:
        self._snapshot = snapshot
        self._max_groups = max_groups
        self._labelled: dict[str, None] = {}

    def collect(self) -> Iterator[Metric]:
        figures = list(self._snapshot())
        present = {f.group for f in figures}
        labelled = self._labelled
        for gone in [g for g in labelled if g not in present]:
            del labelled[gone]
        for f in figures:
            if f.group not in labelled and len(labelled) < self._max_groups:
                labelled[f.group] = None
        lag: dict[tuple[str, str], float] = {}
        age: dict[str, float] = {}
        sums: dict[str, list[float]] = {}
        for f in figures:
            label = f.group if f.group in labelled else OTHER_GROUPS
            for topic, events in f.lag_by_topic.items():
                key = (label, topic if label != OTHER_GROUPS else OTHER_GROUPS)
                lag[key] = lag.get(key, 0) + events
            age[label] = max(age.get(label, 0.0), f.oldest_unconfirmed_age)
            row = sums.setdefault(label, [0, 0, 0, 0])
            row[0] += f.instances
            row[1] += f.deliveries
            row[2] += f.redeliveries
            row[3] += f.dead_letters
        family = GaugeMetricFamily(
            "sluicegate_consumer_group_lag",
            "Events of a topic not confirmed yet by a consumer group (high watermark minus "
            "committed position).",
            labels=["group", "topic"],
        )
        for (group, topic), behind in sorted(lag.items()):
            family.add_metric([group, topic], behind)
        yield family
        ages = GaugeMetricFamily(
            "sluicegate_consumer_group_oldest_unconfirmed_age_seconds",
            "Seconds since the oldest event a consumer group has not confirmed was stored.",
            labels=["group"],
        )
        for group, seconds in sorted(age.items()):
            ages.add_metric([group], seconds)
        yield ages
        members = GaugeMetricFamily(
            "sluicegate_consumer_group_instances",
            "Live consumer instances of a group on this node.",
            labels=["group"],
        )
        for group, row in sorted(sums.items()):
            members.add_metric([group], row[0])
        yield members
        for index, name, text in (
            (1, "deliveries", "Events handed to a consumer group, redeliveries included."),
            (2, "redeliveries", "Events handed to a consumer group again, unconfirmed before."),
            (3, "dead_letters", "Events written to the dead stream after max_deliveries."),
        ):
            counter = CounterMetricFamily(
                f"sluicegate_consumer_group_{name}", text, labels=["group"]
            )
            for group, row in sorted(sums.items()):
                counter.add_metric([group], row[index])
            yield counter


class _OpenConsumers(Collector):
    """Long polls waiting and streams open, per dialect and kind."""

    def __init__(self, dialect: str, counts: Callable[[], dict[str, int]]) -> None:
        self._dialect = dialect
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "sluicegate_consumers_open",
            "Long polls waiting and consumer streams (WebSocket, Server-Sent Events) open.",
            labels=["dialect", "kind"],
        )
        counts = self._counts()
        for kind in sorted({*CONSUMER_KINDS, *counts}):
            family.add_metric([self._dialect, kind], counts.get(kind, 0))
        yield family


class _WakeToWrite(Collector):
    """The streams' wake-up to write histogram (``core.consumers.stream.WakeToWrite``)."""

    def __init__(self, dialect: str, source: WakeToWrite) -> None:
        self._dialect = dialect
        self._source = source

    def collect(self) -> Iterator[Metric]:
        source = self._source
        family = HistogramMetricFamily(
            "sluicegate_consumer_stream_wake_to_write_seconds",
            "From a waiting consumer stream's wake-up (a commit moved the log) to the write "
            "of its first events to the connection.",
            labels=["dialect"],
        )
        cumulative, buckets = 0, []
        for bound, count in zip(source.BOUNDS, source.buckets, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
        family.add_metric([self._dialect], buckets, source.total)
        yield family


class LoopLag(Collector):
    """How late the event loop wakes a timer: the time any ready callback waits to run.

    Every ``interval`` seconds a sleep measures how much longer than asked it took. The
    gauge is the largest lag of the last ``window`` seconds, kept here rather than reset
    by a scrape, so every scraper sees the same figure however often it asks.
    """

    def __init__(self, interval: float = 0.25, window: float = 10.0) -> None:
        self.interval = interval
        self.window = window
        self._samples: deque[float] = deque(maxlen=max(1, round(window / interval)))

    def record(self, lag: float) -> None:
        """One measured lag, in seconds."""
        self._samples.append(max(0.0, lag))

    @property
    def worst(self) -> float:
        """The largest lag in the window, in seconds (0 before the first sample)."""
        return max(self._samples, default=0.0)

    async def watch(self) -> None:
        """Measure until cancelled (a housekeeping task of the server)."""
        while True:
            # time.monotonic, not loop.time: uvloop's clock counts whole milliseconds.
            started = time.monotonic()
            await asyncio.sleep(self.interval)
            self.record(time.monotonic() - started - self.interval)

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "sluicegate_event_loop_lag_seconds",
            "Largest delay of the event loop in waking a timer over the last "
            f"{self.window:g} seconds.",
            self.worst,
        )


class RequestSeries:
    """One route and method's requests: counts by status, latency bucket counts, sum."""

    __slots__ = ("buckets", "statuses", "total")

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        #: One count per bucket of ``_LATENCY_BUCKETS``, then the +Inf bucket.
        self.buckets = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, status: int, seconds: float) -> None:
        """One response with ``status``, ``seconds`` after its request started."""
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        self.buckets[_bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds


class _RequestStats(Collector):
    """Request counts and latency histograms, kept as plain numbers.

    prometheus-client takes a lock on every ``inc`` and ``observe``; the event loop is
    the only writer here, so the request path just adds to lists and the scrape turns
    them into metric families.
    """

    def __init__(self) -> None:
        #: (dialect, route, method) -> its counts by status and its latency histogram.
        self.series: dict[tuple[str, str, str], RequestSeries] = {}

    def series_for(self, dialect: str, route: str, method: str) -> RequestSeries:
        key = (dialect, route, method)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = RequestSeries()
        return series

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "sluicegate_http_requests",
            "HTTP requests answered, by route template, method and status.",
            labels=["dialect", "route", "method", "status"],
        )
        ordered = sorted(self.series.items())
        for (dialect, route, method), series in ordered:
            for status, count in sorted(series.statuses.items()):
                requests.add_metric([dialect, route, method, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "sluicegate_http_request_duration_seconds",
            "Time from request start to response sent, by route template.",
            labels=["dialect", "route", "method"],
        )
        bounds = [*map(str, _LATENCY_BUCKETS), "+Inf"]
        for (dialect, route, method), series in ordered:
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, series.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([dialect, route, method], buckets, series.total)
        yield latency


class _ForwardingStats(Collector):
    """Requests sent on to other nodes, by target node id (bounded by the forwarder)."""

    def __init__(self, series: Mapping[str, RequestSeries]) -> None:
        self._series = series

    def collect(self) -> Iterator[Metric]:
        forwarded = CounterMetricFamily(
            "sluicegate_cluster_forwarded_requests",
            "Requests forwarded to the node holding their consumer instance or serving their "
            "group's stream, by node and status (101: a WebSocket accepted there).",
            labels=["node", "status"],
        )
        latency = HistogramMetricFamily(
            "sluicegate_cluster_forward_duration_seconds",
            "Time from forwarding a request to having the other node's answer (a stream's "
            "first bytes), by node.",
            labels=["node"],
        )
        bounds = [*map(str, _LATENCY_BUCKETS), "+Inf"]
        for node, series in sorted(self._series.items()):
            for status, count in sorted(series.statuses.items()):
                forwarded.add_metric([node, str(status)], count)
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, series.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([node], buckets, series.total)
        yield forwarded
        yield latency


class Metrics:
    """The metrics of one gateway; each gateway has its own registry (tests run many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = _RequestStats()
        self.registry.register(self._requests)
        #: The event loop's lag; its ``watch()`` must run for the gauge to move.
        self.loop_lag = LoopLag()
        self.registry.register(self.loop_lag)
        #: The series of ``(dialect, route template, method)``: its ``observe(status,
        #: seconds)`` counts one response. Callers may keep it; it lives as long as this.
        self.requests = self._requests.series_for
        #: Every request series by (dialect, route template, method), for the history.
        self.request_series = self._requests.series
        #: Records appended and commit latency bucket counts (``LATENCY_BUCKETS``, then
        #: +Inf), kept as plain numbers beside the Prometheus ones for the history: a
        #: sample reads them without a registry collection.
        self.appended_total = 0
        self.commit_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        #: The storage gauges (``watch_storage``); none until it is called.
        self.storage_stats: Callable[[], dict[str, float]] = dict
        self._appended = Counter(
            "sluicegate_records_appended",
            "Records durably appended to the log.",
            registry=self.registry,
        )
        self._commits = Histogram(
            "sluicegate_commit_duration_seconds",
            "Time one durable storage commit (group of appends) took.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_commit(self, records: int, seconds: float) -> None:
        """A ``storage.base.CommitObserver``."""
        self._appended.inc(records)
        self._commits.observe(seconds)
        self.appended_total += records
        self.commit_buckets[_bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def watch_storage(self, stats: Callable[[], dict[str, float]]) -> None:
        self.storage_stats = stats
        self.registry.register(_StatsCollector("sluicegate_storage", "Storage", stats))

    def watch_event_ids(self, stats: Callable[[], dict[str, float]]) -> None:
        """CloudEvents de-duplication's figures (``EventIds.stats``)."""
        self.registry.register(
            _StatsCollector("sluicegate_cloudevents_dedup", "CloudEvents de-duplication", stats)
        )

    def watch_consumers(self, stats: Callable[[], dict[str, float]]) -> None:
        """CloudEvents consumer instances' figures (``ConsumerInstances.stats``)."""
        self.registry.register(
            _StatsCollector("sluicegate_cloudevents_consumers", "CloudEvents consumers", stats)
        )

    def watch_forwarding(self, series: Mapping[str, RequestSeries]) -> None:
        """Forwarded requests per target node (``Forwarder.series``)."""
        self.registry.register(_ForwardingStats(series))

    def watch_groups(
        self, snapshot: Callable[[], Iterable[GroupFigures]], *, max_groups: int
    ) -> None:
        """Consumer groups' figures (``GroupLag.snapshot``), ``max_groups`` labelled."""
        self.registry.register(_GroupCollector(snapshot, max_groups))

    def watch_open_consumers(self, dialect: str, counts: Callable[[], dict[str, int]]) -> None:
        """``dialect``'s open consumers by kind: ``long_poll``, ``websocket``, ``sse``."""
        self.registry.register(_OpenConsumers(dialect, counts))

    def watch_wake_to_write(self, dialect: str, source: WakeToWrite) -> None:
        """``dialect``'s streams' wake-up to write histogram."""
        self.registry.register(_WakeToWrite(dialect, source))

    def render(self) -> bytes:
        return generate_latest(self.registry)
