"""Subject name strategies, with IBM Event Streams' -key/-value suffixes."""

from __future__ import annotations

import pytest

from sluicegate.core.schemas.naming import subject_name
from sluicegate.errors import BadRequest


def test_the_seed_example_topicrecord_key() -> None:
    # IBM's documented response: schema_artifact_id for a topicrecord key.
    assert (
        subject_name("topicrecord", "test-topic", "com.eventstreams.samples.recordKeyName", True)
        == "test-topic-com.eventstreams.samples.recordKeyName-key"
    )


def test_the_seed_example_topicrecord_value() -> None:
    assert (
        subject_name("topicrecord", "test-topic", "com.eventstreams.samples.recordValueName", False)
        == "test-topic-com.eventstreams.samples.recordValueName-value"
    )


@pytest.mark.parametrize(("is_key", "expected"), [(True, "orders-key"), (False, "orders-value")])
def test_topic_strategy(is_key: bool, expected: str) -> None:
    assert subject_name("topic", "orders", "com.acme.Order", is_key) == expected
    assert subject_name("topic", "orders", None, is_key) == expected


@pytest.mark.parametrize(
    ("is_key", "expected"), [(True, "com.acme.Order-key"), (False, "com.acme.Order-value")]
)
def test_record_strategy_has_the_same_suffix(is_key: bool, expected: str) -> None:
    assert subject_name("record", "orders", "com.acme.Order", is_key) == expected


@pytest.mark.parametrize("strategy", ["record", "topicrecord"])
def test_record_strategies_need_a_name(strategy: str) -> None:
    with pytest.raises(BadRequest) as caught:
        subject_name(strategy, "orders", None, False)
    assert caught.value.message == (
        f"schema_name_strategy {strategy!r} needs a named schema: an Avro record, enum or "
        "fixed, or a JSON Schema with a title"
    )


def test_unknown_strategy() -> None:
    with pytest.raises(BadRequest) as caught:
        subject_name("TopicNameStrategy", "orders", None, False)
    assert caught.value.message == (
        "unknown schema_name_strategy 'TopicNameStrategy': expected one of topic, record, "
        "topicrecord"
    )
