"""The HTTP forms in, the Kafka binding to a record, and the forms consumers get back."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.bindings import kafka as sdk_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from cloudevents.v1.kafka import KafkaMessage, from_binary

from sluicegate.core.auth.patterns import PatternSet
from sluicegate.core.cloudevents.binding import (
    LITERALS_HEADER,
    from_batch,
    from_http_binary,
    from_record,
    from_structured,
    from_structured_record,
    http_binary,
    percent_encode,
    structured_batch,
    structured_json,
    to_record,
)
from sluicegate.core.cloudevents.consumers import _filter_for
from sluicegate.core.cloudevents.event import CloudEvent
from sluicegate.core.records import NewRecord, Record
from sluicegate.errors import BadRequest

_BASE = {"specversion": "1.0", "id": "e-1", "source": "urn:shop", "type": "Order.Created"}


def stored(record: NewRecord, offset: int = 7) -> Record:
    return Record(
        record.topic, record.partition, offset, 1, record.key, record.value, record.headers
    )


def headers(**attributes: str) -> dict[bytes, bytes]:
    return {f"ce-{name}".encode(): value.encode() for name, value in attributes.items()}


def decode(body: bytes) -> Any:
    return msgspec.json.decode(body)


# -- binary HTTP ---------------------------------------------------------------------


def test_binary_form_round_trips_through_record_to_structured_and_raw() -> None:
    sent = {
        **headers(**_BASE, subject="order/42", time="2025-01-31T12:00:00.5+01:00"),
        **headers(dataschema="https://schemas.example/order", partitionkey="cust-7"),
        b"ce-tenant": b"eu%20west%20%E2%82%AC",
        b"content-type": b"application/json; charset=utf-8",
        b"authorization": b"Bearer x",
    }
    event = from_http_binary(sent, b'{"total": 12.5}')
    assert event.extensions == {"partitionkey": "cust-7", "tenant": "eu west \u20ac"}
    record = to_record(event, "ce.Order.Created", partition=3)
    assert record.key == b"cust-7"
    assert record.partition == 3
    assert dict(record.headers)["content-type"] == b"application/json; charset=utf-8"
    rendered = decode(structured_json(stored(record), offset=12))
    assert rendered == {
        **_BASE,
        "subject": "order/42",
        "time": "2025-01-31T12:00:00.5+01:00",
        "dataschema": "https://schemas.example/order",
        "partitionkey": "cust-7",
        "tenant": "eu west \u20ac",
        "datacontenttype": "application/json; charset=utf-8",
        "offset": "12",
        "data": {"total": 12.5},
    }
    raw_headers, body = http_binary(stored(record), offset=12)
    assert body == b'{"total": 12.5}'
    assert dict(raw_headers)[b"ce-tenant"] == b"eu%20west%20%E2%82%AC"
    assert dict(raw_headers)[b"ce-offset"] == b"12"
    again = from_http_binary(dict(raw_headers), body)
    assert again.extensions["tenant"] == "eu west \u20ac"
    assert msgspec.structs.replace(again, extensions=event.extensions) == event


def test_binary_form_built_by_the_sdk_is_read() -> None:
    sdk_event = SdkEvent(
        {**_BASE, "time": datetime(2025, 1, 31, 12, tzinfo=UTC), "comexampleext": 'a "c" 1%'},
        {"n": 1},
    )
    message = sdk_http.to_binary(sdk_event, JSONFormat())
    lowered = {k.lower().encode(): v.encode() for k, v in message.headers.items()}
    event = from_http_binary(lowered, message.body)
    assert event.extensions == {"comexampleext": 'a "c" 1%'}
    assert event.time == "2025-01-31T12:00:00Z"
    assert decode(event.data or b"") == {"n": 1}


@pytest.mark.parametrize(
    ("changed", "attribute", "says"),
    [
        ({"specversion": "0.3"}, "specversion", "must be '1.0'"),
        ({"id": ""}, "id", "must not be empty"),
        ({"time": "2025-01-31 12:00:00"}, "time", "RFC 3339"),
        ({"subject": ""}, "subject", "must not be empty"),
        ({"source": "urn:shop with space"}, "source", "must be a URI-reference"),
        ({"source": "urn:shop%7Corders"}, "source", "must be a URI-reference"),  # "|"
        ({"dataschema": "order.json"}, "dataschema", "must be a URI"),
    ],
)
def test_binary_form_names_the_wrong_attribute(
    changed: dict[str, str], attribute: str, says: str
) -> None:
    with pytest.raises(BadRequest, match=says) as caught:
        from_http_binary(headers(**{**_BASE, **changed}), b"")
    assert caught.value.detail["attribute"] == attribute


def test_binary_form_refuses_a_missing_attribute_and_bad_names() -> None:
    with pytest.raises(BadRequest, match="attribute source is required"):
        from_http_binary(headers(specversion="1.0", id="1", type="t"), b"")
    with pytest.raises(BadRequest, match="invalid attribute name 'my_ext'"):
        from_http_binary({**headers(**_BASE), b"ce-my_ext": b"x"}, b"")
    with pytest.raises(BadRequest, match="Content-Type header"):
        from_http_binary({**headers(**_BASE), b"ce-datacontenttype": b"text/plain"}, b"")
    with pytest.raises(BadRequest, match="not UTF-8") as caught:
        from_http_binary({**headers(**_BASE), b"ce-subject": b"%FF"}, b"")
    assert caught.value.detail["attribute"] == "subject"
    with pytest.raises(BadRequest, match="not valid JSON") as caught:
        from_http_binary({**headers(**_BASE), b"content-type": b"application/json"}, b"{")
    assert caught.value.detail["attribute"] == "data"


def test_binary_data_comes_back_as_base64_and_text_as_a_string() -> None:
    blob = bytes(range(256))
    event = from_http_binary(
        {**headers(**_BASE), b"content-type": b"application/octet-stream"}, blob
    )
    rendered = decode(structured_json(stored(to_record(event, "t"))))
    assert base64.b64decode(rendered["data_base64"]) == blob
    assert "data" not in rendered
    text = from_http_binary(
        {**headers(**_BASE), b"content-type": b"text/plain"}, "h\u00e9".encode()
    )
    assert decode(structured_json(stored(to_record(text, "t"))))["data"] == "h\u00e9"


# -- structured and batch ------------------------------------------------------------


def test_structured_event_with_typed_extensions_keeps_their_json_types() -> None:
    body = msgspec.json.encode(
        {
            **_BASE,
            "time": "2025-01-31T12:00:00Z",
            "count": 5,
            "flag": False,
            "label": "5",
            "nothing": None,
            "data": [1, "x"],
        }
    )
    event = from_structured(body)
    assert event.extensions == {"count": "5", "flag": "false", "label": "5"}
    assert event.literal == frozenset({"count", "flag"})
    assert event.datacontenttype == "application/json"
    record = to_record(event, "t")
    assert dict(record.headers)[LITERALS_HEADER] == b"count,flag"
    rendered = decode(structured_json(stored(record), offset=1))
    assert rendered["count"] == 5
    assert rendered["flag"] is False
    assert rendered["label"] == "5"
    assert rendered["data"] == [1, "x"]
    assert from_record(stored(record)) == event


def test_structured_data_base64_round_trips() -> None:
    blob = b"\x00\xffbinary"
    body = msgspec.json.encode(
        {**_BASE, "datacontenttype": "image/png", "data_base64": base64.b64encode(blob).decode()}
    )
    event = from_structured(body)
    assert event.data == blob
    rendered = decode(structured_json(stored(to_record(event, "t"))))
    assert rendered["datacontenttype"] == "image/png"
    assert base64.b64decode(rendered["data_base64"]) == blob
    without_type = from_structured(
        msgspec.json.encode({**_BASE, "data_base64": base64.b64encode(blob).decode()})
    )
    assert without_type.datacontenttype is None
    assert "data_base64" in decode(structured_json(stored(to_record(without_type, "t"))))


def test_structured_event_written_by_the_sdk_round_trips() -> None:
    sdk_event = SdkEvent(
        {
            **_BASE,
            "time": datetime(2025, 1, 31, 12, tzinfo=UTC),
            "subject": "s",
            "dataschema": "https://x/s.json",
            "datacontenttype": "application/json",
            "region": "eu",
        },
        {"a": {"b": [1, 2]}},
    )
    message = sdk_http.to_structured(sdk_event, JSONFormat())
    event = from_structured(message.body)
    rendered = decode(structured_json(stored(to_record(event, "t"))))
    back = sdk_http.from_structured(
        sdk_http.HTTPMessage(
            headers={"content-type": "application/cloudevents+json"},
            body=msgspec.json.encode(rendered),
        ),
        JSONFormat(),
    )
    assert back.get_attributes() == sdk_event.get_attributes()
    assert back.get_data() == sdk_event.get_data()


@pytest.mark.parametrize(
    ("event", "attribute", "says"),
    [
        ({**_BASE, "id": 5}, "id", "attribute id must be a string"),
        ({**_BASE, "partitionkey": 5}, "partitionkey", "attribute partitionkey must be a string"),
        ({**_BASE, "big": 2**31}, "big", "32-bit"),
        ({**_BASE, "ratio": 0.5}, "ratio", "string, boolean or integer"),
        ({**_BASE, "Bad": "x"}, "Bad", "invalid attribute name"),
        ({**_BASE, "data": 1, "data_base64": "AA=="}, "data_base64", "not both"),
        ({**_BASE, "data_base64": "!!"}, "data_base64", "not valid base64"),
        ({**_BASE, "datacontenttype": "text/plain", "data": {}}, "data", "JSON string"),
        ({**_BASE, "source": "caf\xe9"}, "source", "must be a URI-reference"),
        ({**_BASE, "source": "1shop:orders"}, "source", "must be a URI-reference"),
        ({**_BASE, "dataschema": "/schemas/order.json"}, "dataschema", "must be a URI"),
    ],
)
def test_structured_event_errors_name_the_attribute(
    event: dict[str, Any], attribute: str, says: str
) -> None:
    with pytest.raises(BadRequest, match=says) as caught:
        from_structured(msgspec.json.encode(event))
    assert caught.value.detail["attribute"] == attribute


def test_batch_errors_name_the_index() -> None:
    good = {**_BASE, "data": {}}
    batch = [good, {**good, "id": "e-2", "ext": True}, {**good, "type": None}]
    with pytest.raises(BadRequest, match=r"events\[2\]: attribute type is required") as caught:
        from_batch(msgspec.json.encode(batch))
    assert caught.value.detail == {"attribute": "type", "index": 2}
    with pytest.raises(BadRequest, match=r"events\[1\]: an event must be a JSON object"):
        from_batch(msgspec.json.encode([good, [1]]))
    with pytest.raises(BadRequest, match="JSON array"):
        from_batch(b'{"a": 1}')
    with pytest.raises(BadRequest, match="not valid JSON"):
        from_batch(b"[{")


@pytest.mark.parametrize(
    ("source", "dataschema"),
    [
        ("urn:shop", "urn:schema:order"),
        ("/sensors/1", "https://schemas.example/order.json#/definitions/v2"),
        ("//shop.example/orders", "urn:a%20b"),
        ("https://shop.example/orders?region=eu#x", None),
        ("sensor-1", None),
    ],
)
def test_source_and_dataschema_are_a_uri_reference_and_a_uri(
    source: str, dataschema: str | None
) -> None:
    # The CloudEvents types of the two attributes (RFC 3986): what a consumer's SDK may
    # parse them as, refusing the event if they were not.
    event = {**_BASE, "source": source, "data": {}}
    if dataschema is not None:
        event["dataschema"] = dataschema
    assert from_structured(msgspec.json.encode(event)).source == source
    [read] = from_batch(msgspec.json.encode([event]))
    assert (read.source, read.dataschema) == (source, dataschema)
    sent = {f"ce-{k}".encode(): percent_encode(v.encode()) for k, v in event.items() if k != "data"}
    binary = from_http_binary(sent, b"")
    assert (binary.source, binary.dataschema) == (source, dataschema)


def test_a_batch_names_the_event_whose_source_or_dataschema_is_no_uri() -> None:
    good = {**_BASE, "dataschema": "urn:schema", "data": {}}
    batch = [{**good, "id": str(i)} for i in range(5)]
    batch[3]["source"] = "urn:shop orders"
    with pytest.raises(BadRequest, match=r"events\[3\]: attribute source must be a URI-ref"):
        from_batch(msgspec.json.encode(batch))
    batch[3]["source"] = "urn:shop"
    batch[0]["dataschema"] = "order.json"
    with pytest.raises(BadRequest, match=r"events\[0\]: attribute dataschema must be a URI") as e:
        from_batch(msgspec.json.encode(batch))
    assert e.value.detail == {"attribute": "dataschema", "index": 0}


def test_batch_decodes_every_event_in_order() -> None:
    batch = [{**_BASE, "id": str(i), "data": {"i": i}} for i in range(5)]
    batch.append({**_BASE, "id": "x", "tenant": "t1"})
    events = from_batch(msgspec.json.encode(batch))
    assert [e.id for e in events] == ["0", "1", "2", "3", "4", "x"]
    assert events[5].extensions == {"tenant": "t1"}
    rendered = decode(
        structured_batch((stored(to_record(e, "t")), n) for n, e in enumerate(events, 1))
    )
    assert [r["offset"] for r in rendered] == ["1", "2", "3", "4", "5", "6"]
    assert rendered[2]["data"] == {"i": 2}


# -- the Kafka binding ---------------------------------------------------------------


def test_the_sdk_reads_what_to_record_writes() -> None:
    event = CloudEvent(
        **_BASE,
        subject="order/1",
        time="2025-01-31T12:00:00Z",
        datacontenttype="application/json",
        dataschema="https://x/s.json",
        extensions={"partitionkey": "k1", "tenant": "eu"},
        data=b'{"total": 3}',
    )
    record = to_record(event, "t")
    message = KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)
    read = from_binary(message)
    assert read["id"] == "e-1"
    assert read["source"] == "urn:shop"
    assert read["type"] == "Order.Created"
    assert read["subject"] == "order/1"
    assert read["dataschema"] == "https://x/s.json"
    assert read["datacontenttype"] == "application/json"
    assert read["tenant"] == "eu"
    # The SDK's classic API takes partitionkey from the record key, as the bytes it is.
    assert read["partitionkey"] == b"k1"
    assert read.data == {"total": 3}
    current = sdk_kafka.from_binary(
        sdk_kafka.KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value),
        JSONFormat(),
    )
    assert current.get_extension("partitionkey") == "k1"
    assert current.get_time() == datetime(2025, 1, 31, 12, tzinfo=UTC)
    assert current.get_data() == {"total": 3}


def test_a_structured_mode_record_the_sdk_writes_is_read_in_the_binary_form() -> None:
    sent = SdkEvent(
        {
            **_BASE,
            "time": datetime(2025, 1, 31, 12, tzinfo=UTC),
            "datacontenttype": "application/json",
            "partitionkey": "k1",
        },
        {"total": 3},
    )
    message = sdk_kafka.to_structured(sent, JSONFormat())
    key = message.key.encode() if isinstance(message.key, str) else message.key  # as Kafka has it
    record = Record("t", 2, 9, 5, key, message.value, tuple(message.headers.items()))
    binary = from_structured_record(record)
    assert binary is not None
    assert (binary.topic, binary.partition, binary.offset, binary.timestamp) == ("t", 2, 9, 5)
    assert binary.key == b"k1"
    assert structured_json(binary) == structured_json(stored(to_record(from_record(binary), "t")))
    read = sdk_kafka.from_binary(
        sdk_kafka.KafkaMessage(headers=dict(binary.headers), key=binary.key, value=binary.value),
        JSONFormat(),
    )
    assert read.get_attributes() == sent.get_attributes()
    assert read.get_data() == sent.get_data()
    # Told by the content-type header, in any case; the JSON format only; a valid event.
    shouting = (("Content-Type", b"Application/CloudEvents+JSON"),)
    assert from_structured_record(Record("t", 0, 0, 1, None, message.value, shouting))
    for content_type, value in [
        (b"application/cloudevents+avro", message.value),
        (b"application/json", message.value),
        (b"application/cloudevents+json", b'{"id": "1"}'),
        (b"application/cloudevents+json", b"not json"),
        (b"application/cloudevents+json", None),
    ]:
        plain = Record("t", 0, 0, 1, None, value, (("content-type", content_type),))
        assert from_structured_record(plain) is None
    assert from_structured_record(Record("t", 0, 0, 1, None, message.value, ())) is None


def test_an_event_stored_without_a_time_is_given_its_records_time() -> None:
    # Not the gateway's doing (it stores every event with one): another Kafka client's
    # record. A consumed event has a time, the seed says: when it was produced will do.
    record = Record("t", 0, 0, 1_738_324_800_250_000, None, b"{}", (("ce_id", b"1"),))
    when = "2025-01-31T12:00:00.250000Z"
    assert decode(structured_json(record, 1))["time"] == when
    assert decode(structured_batch([(record, 1), (record, 2)]))[1]["time"] == when
    assert (b"ce-time", when.encode()) in http_binary(record, 1)[0]
    assert from_record(record).time == when
    timed = Record(
        "t", 0, 0, 1, None, b"{}", (("ce_id", b"1"), ("ce_time", b"2020-01-01T00:00:00Z"))
    )
    assert decode(structured_json(timed, 1))["time"] == "2020-01-01T00:00:00Z"
    assert [v for n, v in http_binary(timed, 1)[0] if n == b"ce-time"] == [b"2020-01-01T00:00:00Z"]


def test_a_record_without_the_partitionkey_header_still_gives_its_key() -> None:
    record = Record("t", 0, 0, 1, b"k", b"{}", (("ce_id", b"1"), ("content-type", b"a/json")))
    assert from_record(record).partitionkey == "k"
    assert decode(structured_json(record))["partitionkey"] == "k"


def test_percent_encoding_of_header_values() -> None:
    assert percent_encode(b"plain-value_1.0") == b"plain-value_1.0"
    assert percent_encode('a "b" 5% \u20ac'.encode()) == b"a%20%22b%22%205%25%20%E2%82%AC"


def test_structured_json_escapes_what_json_needs() -> None:
    event = CloudEvent(**{**_BASE, "subject": 'quote " back \\ nl \n tab \t \u20ac'})
    rendered = decode(structured_json(stored(to_record(event, "t"))))
    assert rendered["subject"] == 'quote " back \\ nl \n tab \t \u20ac'
    assert "data" not in rendered
    assert "data_base64" not in rendered


@pytest.mark.parametrize(
    "body",
    [
        b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "ext": 3, "data": {"a"',
        b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": "\\ud800"}',
        b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "ext": "\\udfff"}',
        b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": ' + b"[" * 3000,
    ],
)
def test_broken_json_is_400_in_every_form(body: bytes) -> None:
    for parse in (from_structured, lambda raw: from_batch(b"[" + raw + b"]")):
        with pytest.raises(BadRequest, match="not valid JSON"):
            parse(body)


def test_binary_json_data_with_a_lone_surrogate_is_400() -> None:
    with pytest.raises(BadRequest, match="not valid JSON") as caught:
        from_http_binary({**headers(**_BASE), b"content-type": b"application/json"}, b'"\\ud800"')
    assert caught.value.detail["attribute"] == "data"
    event = from_http_binary(
        {**headers(**_BASE), b"content-type": b"application/json"}, b'"\\u00e9"'
    )
    assert event.data == b'"\\u00e9"'


# -- records another Kafka client wrote ------------------------------------------------


def _foreign(*headers: tuple[str, bytes], value: bytes | None = b'{"a": 1}') -> Record:
    return Record("t", 0, 7, 1, None, value, headers)


_ATTRIBUTES = (
    ("ce_specversion", b"1.0"),
    ("ce_id", b"e-1"),
    ("ce_source", b"urn:s"),
)


def test_a_type_twice_is_delivered_as_the_consumers_filter_reads_it() -> None:
    # The filter reads the fourth header when it is ce_type; the event must say the same
    # type in every form, or a client could be handed a type it may not consume.
    allowed = ("ce_type", b"Probe.Event")
    for names in [
        (*_ATTRIBUTES, allowed, ("ce_type", b"Secret.Type")),
        (("ce_type", b"Secret.Type"), *_ATTRIBUTES[1:], allowed),
    ]:
        record = _foreign(*names, ("content-type", b"application/json"))
        assert _filter_for(PatternSet(("Probe.Event",)))([record]) == [record]
        assert _filter_for(PatternSet(("Secret.*",)))([record]) == []
        assert decode(structured_json(record))["type"] == "Probe.Event"
        sent, _ = http_binary(record, 7)
        assert [value for name, value in sent if name == b"ce-type"] == [b"Probe.Event"]


def test_a_header_twice_gives_the_event_the_first_and_the_filters_type_in_every_form() -> None:
    # Dead-lettered (from_record) and delivered (structured_json) alike: the dead stream
    # once stored the last ce_id and ce_type, a type its client never consumed.
    record = _foreign(
        *_ATTRIBUTES,
        ("ce_type", b"Probe.Event"),
        ("ce_id", b"second-id"),
        ("ce_type", b"Other.Type"),
        ("ce_region", b"eu"),
        ("ce_region", b"us"),
        ("content-type", b"application/json"),
        ("content-type", b"text/plain"),
        (LITERALS_HEADER, b"\xff,region"),
        (LITERALS_HEADER, b"id"),
    )
    event = from_record(record)
    assert (event.id, event.type, event.extensions["region"]) == ("e-1", "Probe.Event", "eu")
    assert event.datacontenttype == "application/json"
    assert event.literal == {"\ufffd", "region"}  # a literals header no UTF-8: no 500
    delivered = decode(structured_json(record))
    assert (delivered["id"], delivered["type"], delivered["region"]) == ("e-1", "Probe.Event", "eu")


def test_the_literals_header_never_makes_a_core_attribute_a_number() -> None:
    record = _foreign(
        *_ATTRIBUTES[:1],
        ("ce_id", b"5"),
        ("ce_source", b"urn:s"),
        ("ce_type", b"T"),
        ("ce_time", b"true"),
        ("ce_count", b"3"),
        (LITERALS_HEADER, b"id,time,count,specversion"),
    )
    event = decode(structured_json(record))
    assert (event["id"], event["time"], event["specversion"]) == ("5", "true", "1.0")
    assert event["count"] == 3  # an extension it lists: a literal, as produced


def test_data_headers_are_not_the_events_data() -> None:
    forged = ("ce_data", b'{"forged": true}'), ("ce_data_base64", b"!!")
    tombstone = decode(
        structured_json(_foreign(*_ATTRIBUTES, ("ce_type", b"T"), *forged, value=None))
    )
    assert "data" not in tombstone
    assert "data_base64" not in tombstone
    json_data = _foreign(
        *_ATTRIBUTES, ("ce_type", b"T"), *forged, ("content-type", b"application/json")
    )
    event = decode(structured_json(json_data))
    assert event["data"] == {"a": 1}
    assert "data_base64" not in event
    sent, _ = http_binary(json_data, 7)
    assert not [name for name, _ in sent if name.startswith(b"ce-data")]


def test_the_binary_form_sends_only_headers_http_can_carry() -> None:
    record = _foreign(
        *_ATTRIBUTES,
        ("ce_type", b"T"),
        ("ce_id", b"e-2"),  # twice: the first
        ("ce_bad header", b"x"),
        ("ce_Upper", b"x"),
        ("content-type", b"application/json\r\nX-Injected: yes"),
        ("ce_subject", b"a\r\nX-Injected: yes"),
    )
    sent, body = http_binary(record, 7)
    assert dict(sent) == {
        b"ce-specversion": b"1.0",
        b"ce-id": b"e-1",
        b"ce-source": b"urn:s",
        b"ce-type": b"T",
        b"ce-subject": b"a%0D%0AX-Injected:%20yes",
        b"ce-time": b"1970-01-01T00:00:00.000001Z",
        b"ce-offset": b"7",
    }
    assert body == b'{"a": 1}'
