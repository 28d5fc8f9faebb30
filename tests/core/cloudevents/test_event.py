import pytest

from sluicegate.core.cloudevents.event import (
    CloudEvent,
    check_attribute_name,
    check_time,
    checked_event,
    is_json_media_type,
    is_text_media_type,
)
from sluicegate.errors import BadRequest


@pytest.mark.parametrize(
    "value",
    ["2025-01-31T12:00:00Z", "2025-01-31t12:00:00.123456z", "2025-12-31T23:59:60+14:00"],
)
def test_rfc3339_times_are_accepted(value: str) -> None:
    assert check_time(value) == value


@pytest.mark.parametrize(
    "value", ["2025-01-31", "2025-01-31T12:00:00", "2025-13-01T00:00:00Z", "2025-01-31T12:00Z"]
)
def test_other_times_are_refused(value: str) -> None:
    with pytest.raises(BadRequest, match="RFC 3339"):
        check_time(value, index=4)


@pytest.mark.parametrize("name", ["a", "abc123", "x" * 20])
def test_attribute_names(name: str) -> None:
    assert check_attribute_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "a-b", "a_b", "x" * 21])
def test_bad_attribute_names(name: str) -> None:
    with pytest.raises(BadRequest, match=r"expected 1-20 characters of \[a-z0-9\]"):
        check_attribute_name(name)


def test_media_types() -> None:
    assert is_json_media_type("application/json; charset=utf-8")
    assert is_json_media_type("application/cloudevents+json")
    assert not is_json_media_type("text/plain")
    assert not is_json_media_type(None)
    assert is_text_media_type("text/plain")
    assert not is_text_media_type("application/octet-stream")


def test_size_counts_data_and_attribute_values() -> None:
    event = CloudEvent(id="1", source="s", type="t", extensions={"k": "\u20ac"}, data=b"12345")
    assert event.size() == 5 + len("1.0") + 3 + len("\u20ac".encode())


def test_checked_event_names_the_index() -> None:
    with pytest.raises(BadRequest, match=r"^events\[3\]: attribute id is required") as caught:
        checked_event(specversion="1.0", id=None, source="s", type="t", index=3)
    assert caught.value.detail == {"attribute": "id", "index": 3}


@pytest.mark.parametrize("value", ["a\x00b", "tab\there", "c1\x85"])
def test_control_characters_are_refused(value: str) -> None:
    with pytest.raises(BadRequest, match="control character") as caught:
        checked_event(specversion="1.0", id="1", source="s", type="t", subject=value)
    assert caught.value.detail["attribute"] == "subject"
    with pytest.raises(BadRequest, match="attribute ext holds a control character"):
        checked_event(specversion="1.0", id="1", source="s", type="t", extensions={"ext": value})


def test_other_unicode_is_kept() -> None:
    event = checked_event(specversion="1.0", id="\u00a0\u200b", source="s", type="\u20ac")
    assert event.id == "\u00a0\u200b"
