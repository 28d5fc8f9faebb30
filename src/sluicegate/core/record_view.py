"""A stored record as a person reads it: key and value decoded where the bytes allow.

The console (and any script) shows records without knowing how they were written, so
each payload is tried, cheapest first: Confluent's wire format (magic byte 0 and a
schema id this gateway's registry knows: Avro or JSON Schema, decoded with that
schema), UTF-8 text that is a JSON object or array, other UTF-8 text, and base64 for
the rest. ``text`` always holds the payload exactly (for Avro, the datum as JSON with
every integer exact), so that a reader in JavaScript, whose numbers are doubles, can show
``9007199254740993`` or ``1.10`` as stored: a bare JSON scalar (``1e5``, ``"x"``,
``true``) is shown as the text it is. A record written under the CloudEvents Kafka
binding (``ce_*`` headers) also gets its attributes gathered, ``content-type`` as
``datacontenttype``; so does one in structured mode (``content-type:
application/cloudevents+json``, the event as the value), from the event's members.
"""

from __future__ import annotations

from base64 import b64encode
from typing import Any

import msgspec

from sluicegate.core.cloudevents.binding import type_header
from sluicegate.core.records import Record, format_timestamp
from sluicegate.core.schemas import wire
from sluicegate.core.schemas.registry import SchemaRegistry
from sluicegate.errors import SluicegateError

__all__ = ["HeaderView", "Payload", "RecordView", "view_record"]

_json = msgspec.json.Decoder()
_encode_json = msgspec.json.Encoder().encode
_CE_PREFIX = "ce_"
_CE_STRUCTURED = "application/cloudevents+json"


class Payload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A key or value: ``encoding`` says which other fields are set.

    ``null`` (no bytes), ``text`` (``text``), ``json`` (an object or array: ``text`` and
    the parsed ``data``), ``avro`` / ``json_schema`` (``data`` decoded with registered
    schema ``schema_id``, ``text`` that datum as JSON text),
    ``base64`` (``text``, when no other reading fits; ``error`` says why a framed
    payload could not be decoded).
    """

    encoding: str
    text: str | None = None
    data: Any = None
    schema_id: int | None = None
    error: str | None = None


class HeaderView(msgspec.Struct, frozen=True, array_like=False):
    name: str
    #: UTF-8 text, else base64 (``encoding``).
    value: str
    encoding: str = "text"


class RecordView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    partition: int
    offset: int
    #: RFC 3339, UTC.
    timestamp: str
    key: Payload
    value: Payload
    headers: list[HeaderView]
    #: CloudEvents attributes from ``ce_*`` headers, when the record is a CloudEvent.
    cloudevent: dict[str, str] | None = None


_NULL = Payload(encoding="null")


def _framed(data: bytes, registry: SchemaRegistry) -> Payload | None:
    """The payload decoded with its registered schema, or ``None`` if it is not framed
    with an id the registry knows."""
    if len(data) < wire.HEADER_SIZE or data[0] != wire.MAGIC_BYTE:
        return None
    schema_id = int.from_bytes(data[1:5], "big")
    try:
        parsed = registry.parsed(schema_id)
    except SluicegateError:
        return None  # an id nobody registered: most likely not the wire format at all
    kind = "avro" if parsed.schema_type == "AVRO" else "json_schema"
    try:
        _, datum = registry.decode_confluent(data)
    except SluicegateError as exc:
        return Payload(
            encoding="base64",
            text=b64encode(data).decode(),
            schema_id=schema_id,
            error=exc.message,
        )
    return Payload(
        encoding=kind, text=_datum_text(data, kind, datum), data=datum, schema_id=schema_id
    )


def _datum_text(data: bytes, kind: str, datum: Any) -> str | None:
    """A decoded datum as JSON text: a JSON Schema payload's own text, else the datum
    encoded (exact integers), or ``None`` if it holds what JSON cannot."""
    if kind == "json_schema":
        try:
            return data[wire.HEADER_SIZE :].decode()
        except UnicodeDecodeError:
            pass
    try:
        return _encode_json(datum).decode()
    except (TypeError, ValueError, msgspec.EncodeError):
        return None


def _payload(data: bytes | None, registry: SchemaRegistry) -> Payload:
    if data is None:
        return _NULL
    framed = _framed(data, registry)
    if framed is not None:
        return framed
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return Payload(encoding="base64", text=b64encode(data).decode())
    # Only an object or an array: a bare number or string ("1e5", "-0", " 42") is
    # better shown as the text it is than as the value a reader would make of it.
    if text.lstrip()[:1] in ("{", "["):
        try:
            return Payload(encoding="json", text=text, data=_json.decode(data))
        except (msgspec.DecodeError, RecursionError):  # deeper than msgspec reads: text
            pass
    return Payload(encoding="text", text=text)


def _header(name: str, value: bytes) -> HeaderView:
    try:
        return HeaderView(name, value.decode())
    except UnicodeDecodeError:
        return HeaderView(name, b64encode(value).decode(), "base64")


def view_record(record: Record, registry: SchemaRegistry) -> RecordView:
    """``record`` with its key, value and headers decoded as well as they can be."""
    headers = [_header(name, value) for name, value in record.headers]
    attributes: dict[str, str] = {}
    content_type: str | None = None
    # A header twice: the first counts, and the type consumers are filtered by, as for
    # the event a consumer is delivered.
    for header in headers:
        if header.encoding != "text":
            continue
        if header.name.startswith(_CE_PREFIX):
            attributes.setdefault(header.name[len(_CE_PREFIX) :], header.value)
        elif header.name.lower() == "content-type" and content_type is None:
            content_type = header.value
    value = _payload(record.value, registry)
    cloudevent = None
    if "specversion" in attributes:
        cloudevent = attributes
        event_type = type_header(record.headers)
        if event_type is not None and "type" in attributes:
            attributes["type"] = event_type.decode("utf-8", "replace")
        if content_type is not None:
            cloudevent.setdefault("datacontenttype", content_type)
    elif content_type is not None and _is_structured(content_type):
        cloudevent = _structured(value)
    return RecordView(
        partition=record.partition,
        offset=record.offset,
        timestamp=format_timestamp(record.timestamp),
        key=_payload(record.key, registry),
        value=value,
        headers=headers,
        cloudevent=cloudevent,
    )


def _is_structured(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == _CE_STRUCTURED


def _structured(value: Payload) -> dict[str, str] | None:
    """A structured-mode CloudEvent's attributes: its members but ``data`` and
    ``data_base64``, strings as they are and other values as JSON; ``None`` if the value
    is no JSON object with a ``specversion``."""
    event = value.data if value.encoding == "json" else None
    if not isinstance(event, dict) or "specversion" not in event:
        return None
    return {
        name: member if isinstance(member, str) else _encode_json(member).decode()
        for name, member in event.items()
        if name not in ("data", "data_base64")
    }
