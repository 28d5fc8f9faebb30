import pytest

from sluicegate.config import CloudEventRoute, CloudEventSettings
from sluicegate.core.cloudevents.routing import TypeRouter
from sluicegate.core.topics import validate_topic_name
from sluicegate.errors import BadRequest, ConfigError


def router(*routes: tuple[list[str], str], prefix: str = "ce.") -> TypeRouter:
    return TypeRouter(
        CloudEventSettings(
            topic_prefix=prefix,
            routes=[CloudEventRoute(types=types, topic=topic) for types, topic in routes],
        )
    )


def test_default_rule_keeps_legal_types_readable() -> None:
    assert router().topic_for("Organization.Event.Occurred") == "ce.Organization.Event.Occurred"
    assert router(prefix="").topic_for("orders-v1") == "orders-v1"


@pytest.mark.parametrize("event_type", ["urn:a/b", "urn:a_b", "spaces in type", "x" * 300, "ü"])
def test_default_rule_makes_legal_distinct_topics(event_type: str) -> None:
    topic = router().topic_for(event_type)
    assert validate_topic_name(topic) == topic
    assert topic.startswith("ce.")


def test_sanitized_types_never_collide() -> None:
    r = router()
    assert r.topic_for("urn:a/b") != r.topic_for("urn:a_b")
    assert r.topic_for("urn:a/b") != r.topic_for("urn/a:b")
    assert r.topic_for("urn:a/b") == r.topic_for("urn:a/b")


def test_routes_first_match_wins() -> None:
    r = router((["com.example.order.*"], "orders"), (["com.example.*"], "example"))
    assert r.topic_for("com.example.order.created") == "orders"
    assert r.topic_for("com.example.user.created") == "example"
    assert r.topic_for("org.other") == "ce.org.other"
    assert r.route_topics() == ["orders", "example"]


def test_bad_routes_name_the_setting() -> None:
    with pytest.raises(ConfigError) as info:
        router((["a.*"], "bad topic"))
    assert info.value.key == "cloudevents.routes[0].topic"
    with pytest.raises(ConfigError) as info:
        router(([], "ok"))
    assert info.value.key == "cloudevents.routes[0].types"
    with pytest.raises(ConfigError) as info:
        router(prefix="ce/")
    assert info.value.key == "cloudevents.topic_prefix"


def test_empty_or_huge_types_are_bad_requests() -> None:
    with pytest.raises(BadRequest, match="must not be empty"):
        router().topic_for("")
    with pytest.raises(BadRequest, match="longer than 1024"):
        router().topic_for("t" * 1025)


def test_no_route_or_type_reaches_an_internal_topic() -> None:
    # Names starting with "__" are Kafka's and the gateway's own (its clients, schemas):
    # an event stored there would be read back as the gateway's state.
    for topic in ("__sluicegate_clients", "__consumer_offsets", "__mine"):
        with pytest.raises(ConfigError, match="internal topic") as info:
            router((["Order.*"], topic))
        assert info.value.key == "cloudevents.routes[0].topic"
    with pytest.raises(ConfigError, match="must not start with '__'") as info:
        router(prefix="__ce.")
    assert info.value.key == "cloudevents.topic_prefix"
    with pytest.raises(BadRequest, match="internal topic"):
        router(prefix="").topic_for("__sluicegate_clients")
    assert router(prefix="").topic_for("_one.underscore") == "_one.underscore"
