"""Prometheus metrics. Labels are route templates and statuses, never client input.

Unbounded label values (raw paths, topic names from requests) are how a metrics
registry eats a server's memory (Karapace #1104), so the only labels here come from
the code: the matched route's template, the method, the status and the dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (
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


class _StatsCollector(Collector):
    """Reads a backend's gauges at scrape time, so the hot path pays nothing for them."""

    def __init__(self, stats: Callable[[], dict[str, float]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        for name, value in sorted(self._stats().items()):
            yield GaugeMetricFamily(f"sluicegate_storage_{name}", f"Storage gauge {name}.", value)


class Metrics:
    """The metrics of one gateway; each gateway has its own registry (tests run many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "sluicegate_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["dialect", "route", "method", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "sluicegate_http_request_duration_seconds",
            "Time from request start to response sent, by route template.",
            ["dialect", "route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
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
        # Children are looked up once per label set: .labels() is the costly part.
        self._request_children: dict[tuple[str, str, str, int], Callable[[], None]] = {}
        self._latency_children: dict[tuple[str, str, str], Callable[[float], None]] = {}

    def observe_request(
        self, dialect: str, route: str, method: str, status: int, seconds: float
    ) -> None:
        key = (dialect, route, method, status)
        inc = self._request_children.get(key)
        if inc is None:
            inc = self._requests.labels(dialect, route, method, str(status)).inc
            self._request_children[key] = inc
        inc()
        lkey = (dialect, route, method)
        observe = self._latency_children.get(lkey)
        if observe is None:
            observe = self._latency.labels(dialect, route, method).observe
            self._latency_children[lkey] = observe
        observe(seconds)

    def observe_commit(self, records: int, seconds: float) -> None:
        """A ``storage.base.CommitObserver``."""
        self._appended.inc(records)
        self._commits.observe(seconds)

    def watch_storage(self, stats: Callable[[], dict[str, float]]) -> None:
        self.registry.register(_StatsCollector(stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)
