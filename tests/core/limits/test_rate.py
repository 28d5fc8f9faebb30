"""Token buckets per (client, dialect), on an injected clock."""

from __future__ import annotations

import pytest

from sluicegate.config import LimitSettings, RateSettings
from sluicegate.core.limits.rate import Rate, RateLimiter
from sluicegate.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def allowed(limiter: RateLimiter, client: str, dialect: str, attempts: int) -> int:
    count = 0
    for _ in range(attempts):
        try:
            limiter.check(client, dialect)
        except RateLimited:
            continue
        count += 1
    return count


def test_burst_then_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(Rate(10, burst=5), clock=clock)
    assert allowed(limiter, "a", "records_v2", 20) == 5
    with pytest.raises(RateLimited) as caught:
        limiter.check("a", "records_v2")
    assert caught.value.retry_after == pytest.approx(0.1)
    assert caught.value.status == 429
    clock.now += 0.25
    assert allowed(limiter, "a", "records_v2", 20) == 2
    clock.now += 100
    assert allowed(limiter, "a", "records_v2", 20) == 5  # never more than the burst


def test_buckets_are_per_client_and_dialect() -> None:
    clock = Clock()
    limiter = RateLimiter(Rate(1, burst=2), clock=clock)
    assert allowed(limiter, "a", "records_v2", 5) == 2
    assert allowed(limiter, "b", "records_v2", 5) == 2
    assert allowed(limiter, "a", "topics_v1", 5) == 2


def test_no_default_rate_means_unlimited() -> None:
    limiter = RateLimiter(None, {"topics_v1_legacy": Rate(1, burst=1)}, clock=Clock())
    assert allowed(limiter, "a", "records_v2", 10_000) == 10_000
    assert len(limiter) == 0
    assert allowed(limiter, "a", "topics_v1_legacy", 3) == 1


def test_legacy_topics_endpoints_default_to_1000_per_minute() -> None:
    clock = Clock()
    limiter = RateLimiter.from_settings(LimitSettings(), clock=clock)
    assert allowed(limiter, "a", "topics_v1_legacy", 1500) == 1000
    with pytest.raises(RateLimited, match="1000 requests per minute on the topics_v1_legacy API"):
        limiter.check("a", "topics_v1_legacy")
    clock.now += 6  # 1000/min refills 100 requests in 6 s
    assert allowed(limiter, "a", "topics_v1_legacy", 500) == 100
    assert limiter.rate_for("records_v2") is None


def test_settings_default_rate_and_dialect_overrides() -> None:
    settings = LimitSettings(
        rate_per_second=5,
        rate_burst=0,
        dialect_rates={"cloudevents": RateSettings(rate_per_second=1, burst=3)},
    )
    limiter = RateLimiter.from_settings(settings, clock=Clock())
    assert allowed(limiter, "a", "records_v2", 10) == 5  # burst 0: one second's worth
    assert allowed(limiter, "a", "cloudevents", 10) == 3


def test_rate_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="rate_per_second"):
        Rate(0)
    assert Rate(0.5).burst == 1
    assert Rate(2.5).describe() == "150 requests per minute"
    assert Rate(2.123456789).describe() == "2.12346 requests per second"
    assert Rate(3).describe() == "3 requests per second"
    assert Rate(1 / 60).describe() == "1 requests per minute"


def test_full_buckets_are_pruned() -> None:
    clock = Clock()
    limiter = RateLimiter(Rate(1000, burst=1), clock=clock)
    for i in range(10_000):
        limiter.check(f"client-{i}", "records_v2")
    assert len(limiter) == 10_000
    clock.now += 1  # every bucket is full again
    limiter.check("newcomer", "records_v2")
    assert len(limiter) == 1
