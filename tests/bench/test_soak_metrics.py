"""What the soak's sampler reads from a /metrics text."""

from __future__ import annotations

import pytest

from bench.soak import _metrics

SCRAPE = """\
# HELP sluicegate_event_loop_lag_seconds Event loop lag.
sluicegate_event_loop_lag_seconds 0.012
sluicegate_cloudevents_consumers_instances 7.0
sluicegate_http_requests_total{route="/v2/topics/{topic}/records",status="200"} 3.0
sluicegate_consumer_group_lag{group="ce/anonymous/soak-churn",topic="ce.example.soak.alert"} 27.0
sluicegate_consumer_group_instances{group="other"} 4.0
"""


def test_series_lag_and_instances_are_read() -> None:
    series, lag, instances, leaked = _metrics(SCRAPE)
    assert (series, lag, instances) == (5, 0.012, 7)
    # Capped group labels and the lag's CloudEvents topics are not records topics.
    assert leaked is False


@pytest.mark.parametrize("topic", ["soak-3", "soak-avro-0", "soak-new-00042", "soak-warm-up"])
def test_a_records_topic_in_a_label_is_a_leak(topic: str) -> None:
    line = f'sluicegate_records_total{{topic="{topic}"}} 1.0\n'
    assert _metrics(SCRAPE + line)[3] is True
