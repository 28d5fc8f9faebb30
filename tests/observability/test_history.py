"""The metrics history: samples of the produce rate, p99 latencies and storage gauges in a
bounded ring buffer, and ``GET /admin/v1/metrics/history`` serving them."""

from __future__ import annotations

import httpx
import pytest

from sluicegate.app import GatewayApp
from sluicegate.observability.history import PRODUCE_ROUTES, MetricsHistory, quantile
from sluicegate.observability.metrics import LATENCY_BUCKETS, Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    bounds = (0.1, 0.2, 0.4)
    assert quantile(0.99, [0, 0, 0, 0], bounds) is None
    # 100 observations, all in (0.1, 0.2]: the 99th lies 99% of the way through it.
    assert quantile(0.99, [0, 100, 0, 0], bounds) == pytest.approx(0.199)
    assert quantile(0.5, [50, 50, 0, 0], bounds) == pytest.approx(0.1)
    # In the +Inf bucket: the largest finite bound.
    assert quantile(0.99, [1, 0, 0, 99], bounds) == 0.4


def test_each_point_is_the_interval_since_the_sample_before() -> None:
    metrics, clock = Metrics(), Clock()
    stats = {"waiters": 3.0, "queued_records": 0.0}
    metrics.watch_storage(lambda: stats)
    history = MetricsHistory(metrics, interval=5, window=60, clock=clock)
    produce = metrics.requests("records_v2", "/v2/topics/{topic_name}/records", "POST")
    other = metrics.requests("admin", "/admin/v1/clients", "GET")
    history.sample()
    for _ in range(99):
        produce.observe(200, 0.003)
    produce.observe(200, 0.7)
    other.observe(200, 30.0)  # not a produce request: no part of its p99
    metrics.observe_commit(500, 0.002)
    clock.now += 5
    stats["waiters"] = 7.0
    history.sample()
    clock.now += 5
    history.sample()  # an interval without requests or commits
    out = history.render()
    assert out.times == [1_700_000_005.0, 1_700_000_010.0]
    assert out.series["produce_rate"] == [100.0, 0.0]
    p99, idle = out.series["produce_p99"]
    assert p99 is not None
    assert 0.0025 < p99 <= 0.005
    assert idle is None
    commit, _ = out.series["commit_p99"]
    assert commit is not None
    assert 0.001 < commit <= 0.0025
    assert out.series["storage_waiters"] == [7.0, 7.0]
    assert out.series["storage_queued_records"] == [0.0, 0.0]


def test_the_buffer_holds_the_window_and_no_more() -> None:
    metrics, clock = Metrics(), Clock()
    history = MetricsHistory(metrics, interval=5, window=60, clock=clock)
    for _ in range(100):
        history.sample()
        clock.now += 5
    out = history.render()
    assert len(out.times) == 12  # 60 s of 5 s intervals
    assert out.times[-1] == clock.now - 5
    assert all(len(points) == 12 for points in out.series.values())


def test_the_latency_buckets_are_the_exported_ones() -> None:
    metrics = Metrics()
    assert len(metrics.commit_buckets) == len(LATENCY_BUCKETS) + 1


def test_every_produce_route_is_served(app: GatewayApp) -> None:
    served = {(m, r.path) for r in app.router.routes for m in r.methods}
    assert served >= PRODUCE_ROUTES
    # Any route that produces is in the list: records v2, publishes, CloudEvents produce.
    producing = {
        (m, path)
        for m, path in served
        if m == "POST"
        and (path.endswith(("/publish", "/records")) or path.startswith("/ce/produce/"))
    }
    assert producing <= PRODUCE_ROUTES


async def test_the_endpoint_serves_the_samples(app: GatewayApp, client: httpx.AsyncClient) -> None:
    assert app.history is not None
    app.history.sample()
    created = await client.post("/admin/v1/topics", json={"name": "t", "partitions": 1})
    assert created.status_code == 201, created.text
    produced = await client.post(
        "/v2/topics/t/records", json={"value": {"type": "text", "data": "x"}}
    )
    assert produced.status_code == 200, produced.text
    app.history.sample()
    response = await client.get("/admin/v1/metrics/history")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["interval"] == 5.0
    assert body["window"] == 900.0
    assert len(body["times"]) == 1
    assert body["series"]["produce_rate"][0] > 0
    assert body["series"]["produce_p99"][0] > 0
    assert set(body["series"]) >= {"produce_rate", "produce_p99", "commit_p99", "storage_waiters"}
