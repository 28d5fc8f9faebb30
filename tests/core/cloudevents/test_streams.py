from sluicegate.core.cloudevents import streams
from sluicegate.core.topics import is_internal, validate_topic_name


def test_stream_topics_are_internal_legal_and_per_client() -> None:
    for client in ["orders-app", "a@b", "a:b", "x" * 128]:
        for topic in (streams.test_topic(client), streams.dead_topic(client)):
            assert validate_topic_name(topic) == topic
            assert is_internal(topic)
    assert streams.test_topic("orders-app").startswith("__sluicegate_ce_test.orders-app-")
    assert streams.dead_topic("orders-app").startswith("__sluicegate_ce_dead.orders-app-")
    # Names that read alike once made topic-legal still get topics of their own.
    assert streams.test_topic("a@b") != streams.test_topic("a:b")
    assert streams.test_topic("c") != streams.dead_topic("c")
