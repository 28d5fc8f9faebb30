import pytest

from sluicegate.core.records import NewRecord, format_timestamp, parse_timestamp
from sluicegate.core.topics import validate_topic_name
from sluicegate.errors import InvalidTopicName


def test_timestamp_round_trip_keeps_microseconds() -> None:
    micros = 1_642_999_419_079_206
    text = format_timestamp(micros)
    assert text == "2022-01-24T04:43:39.079206Z"
    assert parse_timestamp(text) == micros


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("2023-04-14T15:07:14.437+00:00", 1_681_484_834_437_000),
        ("2023-04-14T17:07:14.437+02:00", 1_681_484_834_437_000),
        ("2023-04-14T15:07:14Z", 1_681_484_834_000_000),
        ("1970-01-01T00:00:00z", 0),
    ],
)
def test_parse_rfc3339(text: str, micros: int) -> None:
    assert parse_timestamp(text) == micros


@pytest.mark.parametrize("text", ["yesterday", "2023-04-14T15:07:14", ""])
def test_parse_rejects_non_rfc3339(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_timestamp(text)


def test_record_size_counts_key_value_and_headers() -> None:
    record = NewRecord("t", 0, b"key", b"value", [("h", b"12"), ("h", b"3")])
    assert record.size() == 3 + 5 + 3 + 2


@pytest.mark.parametrize("name", ["a", "A.b-c_9", "x" * 249])
def test_legal_topic_names(name: str) -> None:
    assert validate_topic_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "x" * 250, "with space", "slash/", "ünï"])
def test_illegal_topic_names(name: str) -> None:
    with pytest.raises(InvalidTopicName, match="invalid topic name"):
        validate_topic_name(name)
