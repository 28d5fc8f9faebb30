"""CloudEvents on the wire: the HTTP binding's three forms in, the Kafka binding to the log,
and the forms consumers get back out.

In (HTTP binding 1.0.2 and the JSON event format):

* binary: ``ce-<attr>`` headers, percent-decoded, the body as data and ``Content-Type``
  as ``datacontenttype`` (``from_http_binary``);
* structured: one ``application/cloudevents+json`` object, ``data`` or ``data_base64``
  (``from_structured``);
* batch: an ``application/cloudevents-batch+json`` array of such objects (``from_batch``).

Stored (Kafka protocol binding 1.0.2, binary content mode, ``to_record``): every
attribute but ``datacontenttype`` as a ``ce_<attr>`` header holding its string form,
``datacontenttype`` as the ``content-type`` header, the data as the value, and the
``partitionkey`` extension as the record key (and as its header, so a reader that ignores
keys still sees it). A plain Kafka consumer, or the ``cloudevents`` SDK's
``kafka.from_binary``, reads the event back. One header of the gateway's own,
``sluicegate.literals``, lists the extensions that were JSON booleans or integers, which
the binding's strings cannot tell from strings.

Out: ``structured_json`` writes the complete JSON form of a stored event, with the
consumer's ``offset``, straight from the record's headers and value; ``http_binary``
gives the binary HTTP form (``GET …/raw``); ``from_record`` the ``CloudEvent``.

Data in the JSON form: JSON data (``datacontenttype`` ``application/json`` or
``*+json``) is written as ``data`` as it was sent; text (``text/*``) as a ``data``
string; anything else, or data without a ``datacontenttype``, as ``data_base64``. A
structured event with ``data`` and no ``datacontenttype`` is stored with
``application/json``, the default the JSON format and the seed give it, so it comes back
as the same JSON.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain, repeat
from operator import add, attrgetter, countOf, itemgetter
from typing import Any, cast
from urllib.parse import unquote_to_bytes

import msgspec

from sluicegate.core.cloudevents.event import (
    CONTEXT_ATTRIBUTES,
    CONTROL_CHARACTER,
    RFC3339,
    SPECVERSION,
    CloudEvent,
    check_attribute_name,
    check_extension_value,
    checked_event,
    is_json_media_type,
    is_text_media_type,
    is_uri,
    is_uri_reference,
)
from sluicegate.core.json_text import SEPARATOR, is_utf8, json_texts
from sluicegate.core.records import Header, NewRecord, Record, format_timestamp
from sluicegate.errors import BadRequest

__all__ = [
    "CE_HEADER_PREFIX",
    "LITERALS_HEADER",
    "PlainBatch",
    "PlainBinary",
    "decode_batch",
    "from_batch",
    "from_http_binary",
    "from_record",
    "from_structured",
    "from_structured_record",
    "http_binary",
    "percent_encode",
    "plain_binary",
    "plain_records",
    "structured_batch",
    "structured_batch_of",
    "structured_events",
    "structured_json",
    "to_record",
    "to_records",
    "type_header",
]

#: Kafka header names of attributes: ``ce_`` + the attribute's name.
CE_HEADER_PREFIX = "ce_"
#: The gateway's own header: extensions whose JSON value is a literal (``true``, ``42``).
LITERALS_HEADER = "sluicegate.literals"
_CONTENT_TYPE = "content-type"
_HTTP_PREFIX = b"ce-"
_JSON = "application/json"

_RFC3339 = RFC3339.fullmatch
_CONTROL = CONTROL_CHARACTER.search
_check_json = msgspec.json.Decoder(msgspec.Raw).decode
_decode_any = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode

# -- in: the HTTP binding's binary form ----------------------------------------------


# Bytes are searched with ``find``, not ``in``: on Python 3.11 ``needle in data`` first
# tries the needle as an integer byte and formats a TypeError that it then discards, about
# 1,900 instructions each time (seven times for the benchmark's raw event); ``find`` took
# a third of the time (timeit: 84 against 271 ns for a short header value).
def _header_text(name: str, raw: bytes, index: int | None) -> str:
    """A ``ce-`` header's value: percent-decoded (HTTP binding 3.1.3.2), then UTF-8."""
    try:
        if raw.find(b"%") >= 0:
            raw = unquote_to_bytes(raw)
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(
            f"header ce-{name} is not UTF-8 text once percent-decoded",
            attribute=name,
            **({} if index is None else {"index": index}),
        ) from None


#: ``ce-`` header names seen → (attribute name, whether a context attribute): checked
#: once each, since a producer sends the same few names on every request.
_BINARY_NAMES: dict[bytes, tuple[str, bool]] = {}


def _binary_name(raw_name: bytes, index: int | None) -> tuple[str, bool]:
    known = _BINARY_NAMES.get(raw_name)
    if known is None:
        name = check_attribute_name(raw_name[3:].decode("latin-1"), index)
        if name == "datacontenttype":
            raise BadRequest(
                "in binary mode datacontenttype is the Content-Type header, "
                "not a ce-datacontenttype header",
                attribute=name,
            )
        known = (name, name in _CONTEXT)
        if len(_BINARY_NAMES) < _REMEMBERED:
            _BINARY_NAMES[raw_name] = known
    return known


def from_http_binary(
    headers: Mapping[bytes, bytes], body: bytes, *, index: int | None = None
) -> CloudEvent:
    """The event of a binary-mode HTTP message: ``ce-`` headers (lower-case names, as ASGI
    gives them), the body, and ``Content-Type`` as ``datacontenttype``."""
    plain = plain_binary(headers, body)
    if plain is not None:
        return plain.cloud_event()
    return _binary_each(headers, body, index)


#: The attributes of a plain binary-mode event: the context attributes of a ``ce-``
#: header and one extension, ``partitionkey``; the first four are required.
_PLAIN_ATTRIBUTES = frozenset(CONTEXT_ATTRIBUTES) - {"datacontenttype"} | {"partitionkey"}
_PLAIN_REQUIRED = ("specversion", "id", "source", "type")
#: The order of a stored event's ``ce_`` headers (``to_record``'s), ``time`` among them.
_RECORD_ORDER = (*_PLAIN_REQUIRED, "subject", "time", "dataschema", "partitionkey")
_BEFORE_TIME = _RECORD_ORDER[: _RECORD_ORDER.index("time")]
_SPECVERSION = SPECVERSION.encode()
#: The bytes a plain event's header values hold: printable ASCII but ``%`` (a
#: percent-encoded value is decoded header by header). Values are plain when deleting
#: these leaves nothing: ``bytes.translate`` does that in a fifth of a regular
#: expression's search for any other byte.
_PLAIN_BYTES = bytes(byte for byte in range(0x20, 0x7F) if byte != ord("%"))


class _BinaryShape:
    """What the header names of a plain binary-mode request fix, found once per names.

    ``values`` takes the request's values in the record's header order (``ce-``
    attributes, then Content-Type if there is one) in one C call; ``names`` are those
    headers' names in the record.
    """

    __slots__ = (
        "attributes",
        "content_type_at",
        "key_at",
        "names",
        "names_size",
        "schema_at",
        "time_at",
        "time_before",
        "values",
    )

    def __init__(self, attributes: tuple[str, ...], content_type: bool) -> None:
        raw = [b"ce-" + name.encode() for name in attributes]
        self.names = tuple(CE_HEADER_PREFIX + name for name in attributes)
        if content_type:
            raw.append(b"content-type")
            self.names += (_CONTENT_TYPE,)
        #: The attribute of each value but Content-Type's.
        self.attributes = attributes
        self.values: Callable[[Mapping[bytes, bytes]], tuple[bytes, ...]] = itemgetter(*raw)
        self.names_size = sum(map(len, self.names))
        self.content_type_at = len(attributes) if content_type else -1
        self.time_at = attributes.index("time") if "time" in attributes else -1
        self.key_at = attributes.index("partitionkey") if "partitionkey" in attributes else -1
        self.schema_at = attributes.index("dataschema") if "dataschema" in attributes else -1
        #: Where a ``ce_time`` header goes when the gateway gives the event its time.
        self.time_before = sum(1 for name in attributes if name in _BEFORE_TIME)


#: Header names of a request (all of them, in order) → its shape, ``None`` when it is not
#: a plain event's: a producer sends the same headers on every request.
_BINARY_SHAPES: dict[tuple[bytes, ...], _BinaryShape | None] = {}
_UNSEEN: Any = object()


def _binary_shape(names: tuple[bytes, ...]) -> _BinaryShape | None:
    present = {name[3:].decode("latin-1") for name in names if name[:3] == _HTTP_PREFIX}
    if not set(_PLAIN_REQUIRED) <= present <= _PLAIN_ATTRIBUTES:
        return None
    attributes = tuple(name for name in _RECORD_ORDER if name in present)
    return _BinaryShape(attributes, b"content-type" in names)


class PlainBinary(msgspec.Struct, gc=False):
    """The usual binary-mode event, checked as ``from_http_binary`` checks it (known
    ``ce-`` names; printable ASCII values without a percent sign; every attribute
    valid; JSON data that is JSON) but kept as its header values: the producer stores it
    from them (``record``), with no ``CloudEvent`` made and no value decoded but its
    ``source``, ``type`` and ``time``."""

    shape: _BinaryShape
    #: The header values, in ``shape.values``' order.
    values: tuple[bytes, ...]
    source: str
    type: str
    time: str | None
    #: ``source``, NUL, ``id``: the event's identity for de-duplication.
    identity: bytes
    key: bytes | None
    data: bytes | None
    #: What ``CloudEvent.size`` counts: every attribute's value and the data.
    size: int

    def record(self, topic: str, partition: int, now: str) -> NewRecord:
        """``to_record(self.cloud_event(), topic, partition=partition)`` of the event
        given ``now`` as its ``time`` when it has none: the same headers, in order."""
        shape = self.shape
        headers = tuple(zip(shape.names, self.values, strict=True))
        size = shape.names_size + self.size
        if self.time is None:
            at = shape.time_before
            stamp = now.encode()
            headers = (*headers[:at], ("ce_time", stamp), *headers[at:])
            size += len("ce_time") + len(stamp)
        key = self.key
        if key is not None:
            size += len(key)
        return NewRecord(topic, partition, key, self.data, headers, size)

    def cloud_event(self) -> CloudEvent:
        """The event as a ``CloudEvent``."""
        shape = self.shape
        values = self.values
        found = dict(zip(shape.attributes, map(bytes.decode, values), strict=False))
        get = found.get
        key = get("partitionkey")
        at = shape.content_type_at
        return CloudEvent(
            id=found["id"],
            source=self.source,
            type=self.type,
            subject=get("subject"),
            time=self.time,
            datacontenttype=None if at < 0 else values[at].decode(),
            dataschema=get("dataschema"),
            extensions={} if key is None else {"partitionkey": key},
            data=self.data,
        )


def plain_binary(headers: Mapping[bytes, bytes], body: bytes) -> PlainBinary | None:
    """The event of a binary-mode HTTP message as a ``PlainBinary``; ``None`` for any
    other (``from_http_binary`` reads it header by header, and names what is wrong)."""
    names = tuple(headers)
    shape = _BINARY_SHAPES.get(names, _UNSEEN)
    if shape is _UNSEEN:
        shape = _binary_shape(names)
        if len(_BINARY_SHAPES) >= _REMEMBERED:
            _BINARY_SHAPES.clear()
        _BINARY_SHAPES[names] = shape
    if shape is None:
        return None
    values = shape.values(headers)
    joined = b"".join(values)
    # No value may be empty here (a subject, a dataschema, a Content-Type must not be; an
    # empty partitionkey may, and is read header by header).
    if joined.translate(None, _PLAIN_BYTES) or values[0] != _SPECVERSION or b"" in values:
        return None
    source = values[2].decode()
    if not is_uri_reference(source) or (
        shape.schema_at >= 0 and not is_uri(values[shape.schema_at].decode())
    ):
        return None
    time = None
    if shape.time_at >= 0:
        time = values[shape.time_at].decode()
        if _RFC3339(time) is None:
            return None
    at = shape.content_type_at
    if at >= 0 and not values[at].strip():
        return None
    data = body if body else None
    if data is not None and at >= 0:
        content_type = values[at]
        kind = _DATA_KIND.get(content_type)  # _data_kind's memory, without its call
        if (_data_kind(content_type) if kind is None else kind) == _AS_JSON:
            try:
                # _check_json_data's check, inline: the error is named header by header.
                (_decode_any if data.find(b"\\u") >= 0 else _check_json)(data)
            except (msgspec.DecodeError, RecursionError):
                return None
    key_at = shape.key_at
    return PlainBinary(
        shape,
        values,
        source,
        values[3].decode(),
        time,
        values[2] + b"\x00" + values[1],
        None if key_at < 0 else values[key_at],
        data,
        len(joined) if data is None else len(joined) + len(data),
    )


def _binary_each(headers: Mapping[bytes, bytes], body: bytes, index: int | None) -> CloudEvent:
    """``from_http_binary`` header by header: any event, and the error of a wrong one."""
    attributes: dict[str, str] = {}
    extensions: dict[str, str] = {}
    for raw_name, raw_value in headers.items():
        if raw_name[:3] != _HTTP_PREFIX:
            continue
        name, context = _binary_name(raw_name, index)
        if raw_value.isascii() and raw_value.find(b"%") < 0:
            value = raw_value.decode("ascii")
        else:
            value = _header_text(name, raw_value, index)
        if context:
            attributes[name] = value
        else:
            extensions[name] = value
    content_type = headers.get(b"content-type")
    datacontenttype = content_type.decode("latin-1") if content_type else None
    data = body if body else None
    if data is not None and content_type and _data_kind(content_type) == _AS_JSON:
        _check_json_data(data, index)
    return _checked(attributes, datacontenttype, extensions, frozenset(), data, index)


#: The context attributes a ``ce-`` or ``ce_`` header carries (not ``datacontenttype``).
_CONTEXT = frozenset(CONTEXT_ATTRIBUTES) - {"datacontenttype"}


def _checked(
    attributes: Mapping[str, str | None],
    datacontenttype: str | None,
    extensions: dict[str, str],
    literal: frozenset[str],
    data: bytes | None,
    index: int | None,
) -> CloudEvent:
    """``checked_event`` from the attributes a parser collected by name."""
    return checked_event(
        specversion=attributes.get("specversion"),
        id=attributes.get("id"),
        source=attributes.get("source"),
        type=attributes.get("type"),
        subject=attributes.get("subject"),
        time=attributes.get("time"),
        datacontenttype=datacontenttype,
        dataschema=attributes.get("dataschema"),
        extensions=extensions,
        literal=literal,
        data=data,
        index=index,
    )


def _check_json_data(data: bytes, index: int | None) -> None:
    try:
        # Checked, not decoded, unless a \\u escape might be a lone surrogate.
        (_decode_any if data.find(b"\\u") >= 0 else _check_json)(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BadRequest(
            f"{'' if index is None else f'events[{index}]: '}the data is not valid JSON, "
            f"as its content type says: {exc}",
            attribute="data",
            **({} if index is None else {"index": index}),
        ) from None


# -- in: the JSON event format -------------------------------------------------------


class _Structured(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """An event with no extension but ``partitionkey``: the common case, decoded in C."""

    specversion: str | None = None
    id: str | None = None
    source: str | None = None
    type: str | None = None
    subject: str | None = None
    time: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    partitionkey: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")
    data_base64: str | None = None


_decode_one = msgspec.json.Decoder(_Structured).decode
_decode_many = msgspec.json.Decoder(list[_Structured]).decode
# Any other event: every member kept raw, each attribute then checked by hand.
_decode_one_raw = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode_many_raw = msgspec.json.Decoder(list[msgspec.Raw]).decode
#: Attributes whose value is a string (or null: absent); ``partitionkey`` is the
#: partitioning extension's, which the specification types as a string.
_STRING_ATTRIBUTES = frozenset({*CONTEXT_ATTRIBUTES, "partitionkey"})


def _index_detail(index: int | None) -> dict[str, Any]:
    return {} if index is None else {"index": index}


def _prefix(index: int | None) -> str:
    return "" if index is None else f"events[{index}]: "


def _not_json(exc: Exception) -> BadRequest:
    return BadRequest(f"the request body is not valid JSON: {exc}")


def _data(
    data: msgspec.Raw, data_base64: str | None, datacontenttype: str | None, index: int | None
) -> tuple[bytes | None, str | None]:
    """The event's data as bytes, and its ``datacontenttype`` (JSON when only implied)."""
    raw = bytes(data)
    if data_base64 is not None:
        if raw:
            raise BadRequest(
                f"{_prefix(index)}an event holds data or data_base64, not both",
                attribute="data_base64",
                **_index_detail(index),
            )
        try:
            return binascii.a2b_base64(data_base64, strict_mode=True), datacontenttype
        except (binascii.Error, ValueError):
            raise BadRequest(
                f"{_prefix(index)}data_base64 is not valid base64",
                attribute="data_base64",
                **_index_detail(index),
            ) from None
    if not raw or raw == b"null":
        return None, datacontenttype
    if datacontenttype is None or is_json_media_type(datacontenttype):
        if raw.find(b"\\u") >= 0:
            _check_text(raw, index)
        return raw, datacontenttype or _JSON
    if raw[:1] != b'"':
        raise BadRequest(
            f"{_prefix(index)}data must be a JSON string for datacontenttype "
            f"{datacontenttype!r}; send binary data as data_base64",
            attribute="data",
            **_index_detail(index),
        )
    return msgspec.json.decode(raw, type=str).encode(), datacontenttype


def _check_text(data: bytes, index: int | None) -> None:
    """Refuse JSON data whose ``\\u`` escapes are not text (a lone UTF-16 surrogate): kept
    raw, the data was not decoded, and consumers' decoders would refuse it."""
    try:
        _decode_any(data)
    except msgspec.DecodeError as exc:
        raise BadRequest(
            f"{_prefix(index)}the data is not valid JSON text: {exc}",
            attribute="data",
            **_index_detail(index),
        ) from None


def _from_fast(event: _Structured, index: int | None) -> CloudEvent:
    data, datacontenttype = _data(event.data, event.data_base64, event.datacontenttype, index)
    partitionkey = event.partitionkey
    return checked_event(
        specversion=event.specversion,
        id=event.id,
        source=event.source,
        type=event.type,
        subject=event.subject,
        time=event.time,
        datacontenttype=datacontenttype,
        dataschema=event.dataschema,
        extensions={} if partitionkey is None else {"partitionkey": partitionkey},
        data=data,
        index=index,
    )


def _from_members(members: dict[str, msgspec.Raw], index: int | None) -> CloudEvent:
    attributes: dict[str, str | None] = {}
    extensions: dict[str, str] = {}
    literal: set[str] = set()
    for name, raw in members.items():
        if name in ("data", "data_base64"):
            continue
        value = _decode_any(raw)
        if name in _STRING_ATTRIBUTES:
            if value is not None and not isinstance(value, str):
                raise BadRequest(
                    f"{_prefix(index)}attribute {name} must be a string",
                    attribute=name,
                    **_index_detail(index),
                )
            if name == "partitionkey":
                if value is not None:
                    extensions[name] = value
            else:
                attributes[name] = value
            continue
        check_attribute_name(name, index)
        if value is None:
            continue  # a null extension is an absent one
        text, is_literal = check_extension_value(name, value, index)
        extensions[name] = text
        if is_literal:
            literal.add(name)
    base64_raw = members.get("data_base64")
    data_base64 = None if base64_raw is None else _decode_any(base64_raw)
    if data_base64 is not None and not isinstance(data_base64, str):
        raise BadRequest(
            f"{_prefix(index)}data_base64 must be a string",
            attribute="data_base64",
            **_index_detail(index),
        )
    data, datacontenttype = _data(
        members.get("data", msgspec.Raw(b"")),
        data_base64,
        attributes.get("datacontenttype"),
        index,
    )
    return _checked(attributes, datacontenttype, extensions, frozenset(literal), data, index)


def _object_members(raw: bytes, index: int | None) -> dict[str, msgspec.Raw]:
    try:
        return _decode_one_raw(raw)
    except msgspec.ValidationError:
        raise BadRequest(
            f"{_prefix(index)}an event must be a JSON object", **_index_detail(index)
        ) from None


def from_structured(body: bytes) -> CloudEvent:
    """The event of an ``application/cloudevents+json`` body."""
    try:
        try:
            return _from_fast(_decode_one(body), None)
        except msgspec.ValidationError:
            pass  # an extension, or an attribute of the wrong type: checked one by one
        return _from_members(_object_members(body, None), None)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _not_json(exc) from None


def from_batch(body: bytes) -> list[CloudEvent]:
    """The events of an ``application/cloudevents-batch+json`` body, each checked."""
    decoded = decode_batch(body)
    return decoded.cloud_events() if isinstance(decoded, PlainBatch) else decoded


def decode_batch(
    body: bytes, check: Callable[[bytes, PlainBatch | None], None] | None = None
) -> PlainBatch | list[CloudEvent]:
    """The events of an ``application/cloudevents-batch+json`` body, each checked: a batch
    of plain events as it was decoded, without a ``CloudEvent`` per event, any other as
    its ``CloudEvent``s (``EventProducer.produce_batch`` takes either).

    ``check`` is what the body must pass before any error of its own events is raised
    (the JSON limits of a body read without them): called once, with the plain batch
    when the body decoded as one, so that it can settle the limits by the bounds that
    shape gives instead of a pass over the body's structure, else with ``None``.
    """
    error: Exception | None = None
    decoded: list[_Structured] | None = None
    try:
        decoded = _decode_many(body)
    except (msgspec.DecodeError, RecursionError) as exc:  # ValidationError among them
        error = exc
    plain = None if decoded is None else _plain(decoded, body)
    if check is not None:
        check(body, plain)
    if plain is not None:
        return plain
    try:
        if isinstance(error, msgspec.ValidationError):
            return _from_elements(body)
        if error is not None:
            raise error
        assert decoded is not None  # no error: decoded (said for the type checker)
        return [_from_fast(event, index) for index, event in enumerate(decoded)]
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _not_json(exc) from None


#: Bytes after which a decoded string may hold a control character: a JSON escape, DEL,
#: or the UTF-8 lead byte of U+0080-U+00BF (C1 controls among them). A raw C0 control
#: is not JSON inside a string, so a body with none of these has no control characters.
_MAYBE_CONTROL = (b"\\", b"\x7f", b"\xc2")
#: Deleted from a batch's data joined by NULs, to leave the brackets that open a level
#: and the NULs (``PlainBatch.depth_bound``).
_NOT_OPENING = bytes(sorted(set(range(256)) - set(b"{[\x00")))
#: What no attribute value equals (not even ``None``): "no previous event".
_UNSEEN = object()
#: ``datacontenttype`` values seen, and whether they are JSON (bounded like ``_DATA_KIND``).
_JSON_TYPE: dict[str, bool] = {}


def _json_type(datacontenttype: str) -> bool:
    known = _JSON_TYPE.get(datacontenttype)
    if known is None:
        known = bool(datacontenttype.strip()) and is_json_media_type(datacontenttype)
        if len(_JSON_TYPE) < _REMEMBERED:
            _JSON_TYPE[datacontenttype] = known
    return known


class PlainBatch:
    """A batch whose events are all plain (``_plain``), decoded and checked but not made
    into ``CloudEvent`` objects: the producer checks and stores it from the decoded
    structs (``plain_records``), and makes the events only to name a wrong one."""

    __slots__ = ("datas", "events", "pairs", "times", "uniform")

    def __init__(
        self,
        events: list[_Structured],
        datas: list[bytes],
        pairs: set[tuple[str, str]],
        times: set[str | None],
        *,
        uniform: bool = False,
    ) -> None:
        self.events = events
        #: Each event's data as it was sent (empty when absent).
        self.datas = datas
        #: The distinct (source, type) of the events, for permissions and topics.
        self.pairs = pairs
        #: The distinct ``time`` values (``None``: some event has none), each RFC 3339.
        self.times = times
        #: Whether the events share their source, type, time, dataschema and content
        #: type, and either all have a subject or none has: ``plain_records`` then makes
        #: the records column by column (``_uniform_records``).
        self.uniform = uniform

    def __len__(self) -> int:
        return len(self.events)

    def depth_bound(self, enough: int | None = None) -> int:
        """An upper bound of the body's JSON nesting depth: an array of objects whose
        members are strings but ``data``, so two levels and the deepest data's, which is
        at most the number of brackets it opens (those in its strings counted too).

        Each level of a JSON value opens and closes a bracket, so a data of ``n`` bytes
        nests at most ``n // 2`` levels: when that bound of the longest data is
        ``enough`` (at most it), it is the answer, from one pass over the lengths.
        Otherwise the brackets are counted in C over the data joined by NULs, of which
        only the opening brackets and the NULs are kept (one ``translate``, not a call
        or two per event): the runs between NULs are each event's brackets. JSON holds
        no raw NUL; should some data hold one anyway, every bracket of the batch counts,
        which bounds it all the same.
        """
        datas = self.datas
        if enough is not None:
            by_length = 2 + max(map(len, datas), default=0) // 2
            if by_length <= enough:
                return by_length
        opening = b"\x00".join(datas).translate(None, _NOT_OPENING)
        if opening.count(b"\x00") != len(datas) - 1:
            return 2 + len(opening)
        return 2 + max(map(len, opening.split(b"\x00")))

    def cloud_events(self) -> list[CloudEvent]:
        """The events, as ``from_batch`` gives them."""
        return [_plain_event(event) for event in self.events]


def _plain(decoded: list[_Structured], body: bytes) -> PlainBatch | None:
    """The batch if every event in it is plain, checked with as little work per event as
    can be; ``None`` when some event is not, for ``_from_fast`` to check event by event
    (and to name the first that is wrong, exactly as it always does).

    Plain: ``specversion`` ``1.0``, ``id``/``source``/``type`` non-empty, ``source`` a
    URI-reference, ``subject`` and ``dataschema`` non-empty when present, ``dataschema`` a
    URI (each distinct value checked once), JSON data (or none) with a JSON
    ``datacontenttype`` (or none), no ``data_base64``, and ``time`` RFC 3339 (each
    distinct value checked once). What ``checked_event`` checks value by value (control
    characters) or ``_data`` event by event (``\\u`` escapes of lone surrogates) is
    looked for once in the whole body: a body without a backslash, DEL or C1 lead byte
    cannot hold either, and any other body has its strings checked in one joined pass.
    """
    escapes = any(body.find(marker) >= 0 for marker in _MAYBE_CONTROL)
    times: set[str | None] = set()
    pairs: set[tuple[str, str]] = set()
    add_pair = pairs.add
    values: list[str] = []
    # A batch's events nearly all share their time, source and type: compared with the
    # previous event's (equal strings compare by length and bytes), each freshly decoded
    # value is hashed only when it changes. No source or type is empty, nor the marker.
    last_time: object = _UNSEEN
    last_source = last_type = ""
    # What ``PlainBatch.uniform`` asks beyond one (source, type) and one time: the first
    # event's dataschema and content type throughout, and a subject in all or in none.
    uniform = True
    if decoded:
        first = decoded[0]
        schema, content = first.dataschema, first.datacontenttype
        unsubjected = first.subject is None
        if schema and not is_uri(schema):
            return None
    for event in decoded:
        event_id, source, event_type = event.id, event.source, event.type
        subject, time, dataschema = event.subject, event.time, event.dataschema
        datacontenttype = event.datacontenttype
        if (
            event.specversion != SPECVERSION
            or not event_id
            or not source
            or not event_type
            or subject == ""
            or dataschema == ""
            or event.data_base64 is not None
            or (datacontenttype is not None and not _json_type(datacontenttype))
        ):
            return None
        if dataschema != schema and dataschema is not None and not is_uri(dataschema):
            return None
        if uniform and (
            (subject is None) is not unsubjected
            or dataschema != schema
            or datacontenttype != content
        ):
            uniform = False
        if time != last_time:
            if time not in times:
                if time is not None and _RFC3339(time) is None:
                    return None
                times.add(time)
            last_time = time
        if source != last_source or event_type != last_type:
            if not is_uri_reference(source):
                return None
            add_pair((source, event_type))
            last_source, last_type = source, event_type
        if escapes:
            values += (event_id, source, event_type, subject or "", time or "")
            values += (datacontenttype or "", dataschema or "", event.partitionkey or "")
    datas = [bytes(event.data) for event in decoded]
    if escapes:
        # Empty or ``null`` data holds no escape, so the raw bytes tell.
        if any(data.find(b"\\u") >= 0 for data in datas):
            return None
        if not "".join(values).isprintable() and _CONTROL("".join(values)):
            return None
    uniform = uniform and len(pairs) == 1 and len(times) == 1
    return PlainBatch(decoded, datas, pairs, times, uniform=uniform)


def _plain_data(event: _Structured) -> tuple[bytes | None, str | None]:
    """A plain event's data (none when empty or ``null``) and its ``datacontenttype``
    (JSON when only implied): ``_data``'s answer for the events ``_plain`` accepts."""
    data = bytes(event.data)
    if not data or data == b"null":
        return None, event.datacontenttype
    return data, event.datacontenttype or _JSON


def _plain_event(event: _Structured) -> CloudEvent:
    """The ``CloudEvent`` of an event ``_plain`` accepted (every attribute checked)."""
    # Checked by _plain (said for the type checker, which cannot know).
    assert event.id
    assert event.source
    assert event.type
    data, datacontenttype = _plain_data(event)
    partitionkey = event.partitionkey
    return CloudEvent(
        id=event.id,
        source=event.source,
        type=event.type,
        subject=event.subject,
        time=event.time,
        datacontenttype=datacontenttype,
        dataschema=event.dataschema,
        extensions={} if partitionkey is None else {"partitionkey": partitionkey},
        data=data,
    )


def _from_elements(body: bytes) -> list[CloudEvent]:
    """A batch in which some event has an extension (or is wrong): event by event."""
    try:
        elements = _decode_many_raw(body)
    except msgspec.ValidationError:
        raise BadRequest("a batch must be a JSON array of event objects") from None
    events: list[CloudEvent] = []
    for index, element in enumerate(elements):
        raw = bytes(element)
        try:
            events.append(_from_fast(_decode_one(raw), index))
        except msgspec.ValidationError:
            events.append(_from_members(_object_members(raw, index), index))
    return events


# -- stored: the Kafka binding, binary mode ------------------------------------------


#: Headers whose value repeats from event to event (a producer's source, its types),
#: encoded once: ``(name, value) → (name, value bytes)``.
_SHARED_HEADERS: dict[tuple[str, str], Header] = {}
_SHARED_HEADERS_MAX = 4096


def _shared(name: str, value: str) -> Header:
    header = _SHARED_HEADERS.get((name, value))
    if header is None:
        if len(_SHARED_HEADERS) >= _SHARED_HEADERS_MAX:
            _SHARED_HEADERS.clear()
        header = _SHARED_HEADERS[name, value] = (name, value.encode())
    return header


#: (specversion, source, type) → their headers and the bytes they add to a record with
#: the name ``ce_id``: a producer's few sources and types, made once each.
_HEADS: dict[tuple[str, str, str], tuple[Header, Header, Header, int]] = {}


def _head(event: CloudEvent) -> tuple[Header, Header, Header, int]:
    made = (
        _shared("ce_specversion", event.specversion),
        _shared("ce_source", event.source),
        _shared("ce_type", event.type),
    )
    head = (*made, _headers_size(made) + len("ce_id"))
    if len(_HEADS) >= _SHARED_HEADERS_MAX:
        _HEADS.clear()
    _HEADS[event.specversion, event.source, event.type] = head
    return head


def to_record(event: CloudEvent, topic: str, *, partition: int = 0) -> NewRecord:
    """The record that stores ``event`` in ``topic`` (partition chosen by the caller).

    The headers of ``to_records`` in the same order (``_tail``'s after ``ce_subject``;
    tests compare the two), each counted as it is added: one event's record is made
    without a call per header, nor a list, a tuple and a loop for its tail.
    """
    head = _HEADS.get((event.specversion, event.source, event.type)) or _head(event)
    event_id = event.id.encode()
    headers: tuple[Header, ...] = (head[0], ("ce_id", event_id), head[1], head[2])
    size = head[3] + len(event_id)
    if event.subject is not None:
        subject = event.subject.encode()
        headers += (("ce_subject", subject),)
        size += len("ce_subject") + len(subject)
    if event.time is not None:
        time = event.time.encode()
        headers += (("ce_time", time),)
        size += len("ce_time") + len(time)
    if event.dataschema is not None:
        header = _shared("ce_dataschema", event.dataschema)
        headers += (header,)
        size += len(header[0]) + len(header[1])
    key = None
    for name, value in event.extensions.items():
        encoded = value.encode()
        headers += ((CE_HEADER_PREFIX + name, encoded),)
        size += len(CE_HEADER_PREFIX) + len(name) + len(encoded)
        if name == "partitionkey":
            key = encoded
            size += len(key)
    if event.datacontenttype is not None:
        header = _SHARED_HEADERS.get((_CONTENT_TYPE, event.datacontenttype)) or _shared(
            _CONTENT_TYPE, event.datacontenttype
        )
        headers += (header,)
        size += len(_CONTENT_TYPE) + len(header[1])
    if event.literal:
        literals = ",".join(sorted(event.literal)).encode()
        headers += ((LITERALS_HEADER, literals),)
        size += len(LITERALS_HEADER) + len(literals)
    data = event.data
    if data is not None:
        size += len(data)
    return NewRecord(topic, partition, key, data, headers, size)


def _headers_size(headers: Sequence[Header]) -> int:
    # A plain loop: sum() over a generator resumes the generator once per header.
    size = 0
    for name, value in headers:
        size += len(name) + len(value)
    return size


def to_records(events: Sequence[CloudEvent], places: Sequence[tuple[str, int]]) -> list[NewRecord]:
    """The records of ``events``, each in its (topic, partition) of ``places``: the same
    records as ``to_record`` makes one by one.

    Events of one request share their source, type and content type, often their time
    and their partition keys. The headers after ``ce_id`` (and ``ce_subject``) depend on
    those alone, so they are made once per distinct combination within the call, and per
    event only ``ce_id`` is encoded and one tuple joined.
    """
    if len(events) == 1:
        (topic, partition), event = places[0], events[0]
        return [to_record(event, topic, partition=partition)]  # nothing repeats
    # With the bytes they add to a record's size, so that storage need not count them.
    heads: dict[tuple[str, str, str], tuple[Header, Header, Header, int]] = {}
    tails: dict[tuple[object, ...], tuple[tuple[Header, ...], bytes | None, int]] = {}
    records: list[NewRecord] = []
    append = records.append
    for event, (topic, partition) in zip(events, places, strict=True):
        shared = (event.specversion, event.source, event.type)
        head = heads.get(shared)
        if head is None:
            made = (
                _shared("ce_specversion", event.specversion),
                _shared("ce_source", event.source),
                _shared("ce_type", event.type),
            )
            head = heads[shared] = (*made, _headers_size(made) + len("ce_id"))
        extensions = event.extensions
        rest = (
            event.time,
            event.dataschema,
            event.datacontenttype,
            event.literal,
            *extensions.items(),
        )
        tail = tails.get(rest)
        if tail is None:
            made_tail, key = _tail(event)
            tail = tails[rest] = (
                made_tail,
                key,
                _headers_size(made_tail) + (0 if key is None else len(key)),
            )
        event_id = event.id.encode()
        data = event.data
        size = head[3] + len(event_id) + tail[2] + (0 if data is None else len(data))
        headers: tuple[Header, ...] = (head[0], ("ce_id", event_id), head[1], head[2])
        if event.subject is not None:
            subject = event.subject.encode()
            headers += (("ce_subject", subject),)
            size += len("ce_subject") + len(subject)
        append(NewRecord(topic, partition, tail[1], data, headers + tail[0], size))
    return records


#: What the records of a plain batch share, per distinct (source, type, time, dataschema,
#: content type, partition key): the headers after ``ce_id``, the record's key, its
#: (topic, partition) (``-1``: chosen per record), the identity key's ``source`` part,
#: and the bytes all of that adds to a record's size.
_Shared = tuple[tuple[Header, ...], bytes | None, str, int, bytes, int]
#: What those share but for the partition key: the headers before and after
#: ``ce_partitionkey``, the ``source`` part of the identity key, and their bytes.
_Base = tuple[tuple[Header, ...], tuple[Header, ...], bytes, int]


def plain_records(
    batch: PlainBatch,
    now_text: str,
    place: Callable[[str, str | None], tuple[str, int]],
    scope: Callable[[str], bytes],
) -> tuple[list[NewRecord], list[bytes]]:
    """The records of a checked plain batch, the same as ``to_records`` makes of its
    ``cloud_events()`` (``now_text`` the ``time`` of an event without one), and each
    event's identity key (``scope(type)``, ``source``, NUL, ``id``), in one pass over the
    decoded structs.

    ``place(type, partitionkey)`` gives a record's (topic, partition): called once per
    distinct key and type, but for each record without a key (the partitioner's sticky
    choice moves from record to record). ``scope`` is asked once per distinct source and
    type, never per event.
    """
    spec = _shared("ce_specversion", SPECVERSION)
    spec_size = len(spec[0]) + len(spec[1]) + len("ce_id")
    if batch.uniform:
        by_columns = _uniform_records(batch, now_text, place, scope, spec, spec_size)
        if by_columns is not None:
            return by_columns
    # Two levels: a batch's events nearly all share their source, type, time and content
    # type, while its partition keys are many (a customer's orders): the headers those
    # share are made once, and each key adds only its own. The shared part is compared
    # with the previous event's (equal strings compare by length and bytes), so only a
    # change of it hashes the freshly decoded values; the key is looked up in its part's
    # own dictionary.
    bases: dict[tuple[object, ...], tuple[dict[str | None, _Shared], _Base]] = {}
    keyed: dict[str | None, _Shared] = {}
    base: _Base | None = None
    last_source = last_type = ""  # no source or type is empty
    last_time: object = _UNSEEN
    last_schema: object = _UNSEEN
    last_content: object = _UNSEEN
    records: list[NewRecord] = []
    keys: list[bytes] = []
    add_record, add_key = records.append, keys.append
    for event, sent in zip(batch.events, batch.datas, strict=True):
        # ``_plain_data``, inlined: a call per event costs about 1% of the whole request
        # (bench.instructions' cloudevents-batch).
        datacontenttype = event.datacontenttype
        data: bytes | None = sent
        if not data or data == b"null":
            data = None
        elif datacontenttype is None:
            datacontenttype = _JSON
        source, event_type, partitionkey = event.source, event.type, event.partitionkey
        time, dataschema = event.time, event.dataschema
        # Checked by _plain (said for the type checker, which cannot know).
        assert source is not None
        assert event_type is not None
        assert event.id is not None
        if (
            source != last_source
            or event_type != last_type
            or time != last_time
            or dataschema != last_schema
            or datacontenttype != last_content
        ):
            last_source, last_type, last_time = source, event_type, time
            last_schema, last_content = dataschema, datacontenttype
            shape = (source, event_type, time, dataschema, datacontenttype)
            known = bases.get(shape)
            if known is None:
                made = _base_of(event, datacontenttype, now_text, spec_size, scope(event_type))
                known = bases[shape] = ({}, made)
            keyed, base = known
        common = keyed.get(partitionkey)
        if common is None:
            assert base is not None  # set with keyed, on the first event
            common = keyed[partitionkey] = _keyed(base, event_type, partitionkey, place)
        rest, key, topic, partition, source_key, size = common
        if partition < 0:
            topic, partition = place(event_type, partitionkey)
        event_id = event.id.encode()
        size += len(event_id)
        if data is not None:
            size += len(data)
        subject = event.subject
        if subject is None:
            headers = (spec, ("ce_id", event_id), *rest)
        else:
            encoded = subject.encode()
            size += len("ce_subject") + len(encoded)
            headers = (spec, ("ce_id", event_id), *rest[:2], ("ce_subject", encoded), *rest[2:])
        add_record(NewRecord(topic, partition, key, data, headers, size))
        add_key(source_key + event_id)
    return records, keys


def _uniform_records(
    batch: PlainBatch,
    now_text: str,
    place: Callable[[str, str | None], tuple[str, int]],
    scope: Callable[[str], bytes],
    spec: Header,
    spec_size: int,
) -> tuple[list[NewRecord], list[bytes]] | None:
    """``plain_records`` of a uniform batch (``PlainBatch.uniform``) in which every event
    has data and either every event has a partition key or none has; ``None`` for any
    other, which the event-by-event loop makes.

    The records are made column by column, each column by one C loop (``map``, ``zip``)
    over the events: the ids encoded, the identity keys, each record's headers as one
    ``zip`` of the shared headers repeated and the columns that vary (``ce_id``, the
    subject, the partition key's), its size and the record itself. Only a distinct
    partition key costs Python code of its own.
    """
    events, datas = batch.events, batch.datas
    if b"" in datas or b"null" in datas:
        return None  # an event without data (nor its content type): the loop's rule
    first = events[0]
    # In the order of their first event, as the loop asks ``place`` for them.
    partitionkeys = [event.partitionkey for event in events]
    distinct = dict.fromkeys(partitionkeys)
    unkeyed = None in distinct
    if unkeyed and len(distinct) > 1:
        return None
    event_type = first.type
    assert event_type is not None  # checked by _plain (said for the type checker)
    before, after, source_key, size = _base_of(
        first, first.datacontenttype or _JSON, now_text, spec_size, scope(event_type)
    )
    ids = list(map(str.encode, cast("list[str]", [event.id for event in events])))
    count = len(ids)
    columns: list[Iterable[object]] = [repeat(spec, count), zip(repeat("ce_id"), ids)]
    columns += map(repeat, before[:2])
    sizes = map(add, map(len, ids), map(len, datas))
    if first.subject is not None:
        # A subject in every event (``uniform``: in all or in none).
        subjects = list(map(str.encode, cast("list[str]", [e.subject for e in events])))
        columns.append(zip(repeat("ce_subject"), subjects))
        sizes = map(add, sizes, map(len, subjects))
        size += len("ce_subject")
    columns += map(repeat, before[2:])
    if unkeyed:
        columns += map(repeat, after)
        places = [place(event_type, None) for _ in range(count)]
        topics: Iterable[str] = map(itemgetter(0), places)
        partitions: Iterable[int] = map(itemgetter(1), places)
        record_keys: Iterable[bytes | None] = repeat(None)
        sizes = map(add, sizes, repeat(size))
    else:
        keyed: dict[str | None, tuple[str, int, bytes, Header, int]] = {}
        for partitionkey in distinct:
            assert partitionkey is not None  # none is (said for the type checker)
            key = partitionkey.encode()
            keyed[partitionkey] = (
                *place(event_type, partitionkey),
                key,
                ("ce_partitionkey", key),
                size + len("ce_partitionkey") + 2 * len(key),
            )
        common = list(map(keyed.__getitem__, partitionkeys))
        topics = map(itemgetter(0), common)
        partitions = map(itemgetter(1), common)
        record_keys = map(itemgetter(2), common)
        columns.append(map(itemgetter(3), common))
        columns += map(repeat, after)
        sizes = map(add, sizes, map(itemgetter(4), common))
    # The columns of repeated headers are cut by the ids' (``zip`` ends with the shortest).
    headers = zip(*columns, strict=False)
    records = list(map(NewRecord, topics, partitions, record_keys, datas, headers, sizes))
    # A comprehension: ``map(source_key.__add__, ids)`` calls a slot wrapper per id, which
    # took 1.7 times as long (timeit).
    return records, [source_key + event_id for event_id in ids]


def _base_of(
    event: _Structured, datacontenttype: str | None, now_text: str, spec_size: int, scope: bytes
) -> _Base:
    """The headers of ``event``'s record but ``ce_id``, ``ce_subject`` and the key's, and
    what its identity key starts with (``scope``, ``source``, NUL)."""
    source, event_type = event.source, event.type
    # Checked by _plain (said for the type checker, which cannot know).
    assert source
    assert event_type
    before: tuple[Header, ...] = (
        _shared("ce_source", source),
        _shared("ce_type", event_type),
        ("ce_time", (event.time or now_text).encode()),
    )
    if event.dataschema is not None:
        before += (_shared("ce_dataschema", event.dataschema),)
    after: tuple[Header, ...] = ()
    if datacontenttype is not None:
        after = (_shared(_CONTENT_TYPE, datacontenttype),)
    size = spec_size + _headers_size(before) + _headers_size(after)
    return before, after, scope + source.encode() + b"\x00", size


def _keyed(
    base: _Base,
    event_type: str,
    partitionkey: str | None,
    place: Callable[[str, str | None], tuple[str, int]],
) -> _Shared:
    """``base`` with the partition key's header, the record's key and its place."""
    before, after, source_key, size = base
    if partitionkey is None:
        return before + after, None, "", -1, source_key, size
    key = partitionkey.encode()
    topic, partition = place(event_type, partitionkey)
    headers = (*before, ("ce_partitionkey", key), *after)
    return headers, key, topic, partition, source_key, size + len("ce_partitionkey") + 2 * len(key)


def _tail(event: CloudEvent) -> tuple[tuple[Header, ...], bytes | None]:
    """The headers ``to_record`` writes after ``ce_subject``, and the record's key."""
    headers: list[Header] = []
    if event.time is not None:
        headers.append(("ce_time", event.time.encode()))
    if event.dataschema is not None:
        headers.append(_shared("ce_dataschema", event.dataschema))
    for name, value in event.extensions.items():
        headers.append((CE_HEADER_PREFIX + name, value.encode()))
    if event.datacontenttype is not None:
        headers.append(_shared(_CONTENT_TYPE, event.datacontenttype))
    if event.literal:
        headers.append((LITERALS_HEADER, ",".join(sorted(event.literal)).encode()))
    key = event.extensions.get("partitionkey")
    return tuple(headers), None if key is None else key.encode()


def from_record(record: Record) -> CloudEvent:
    """The event a record of the Kafka binding holds (as ``to_record`` wrote it)."""
    attributes: dict[str, str] = {}
    extensions: dict[str, str] = {}
    datacontenttype: str | None = None
    literal: frozenset[str] = frozenset()
    # A header twice (another Kafka client may write one so): the first counts, as for
    # the delivered event (``_members``), and the type is the one consumers are filtered
    # by (``type_header``).
    literals: bytes | None = None
    for name, value in record.headers:
        if name.startswith(CE_HEADER_PREFIX):
            attribute = name[3:]
            text = value.decode("utf-8", "replace")
            (attributes if attribute in _CONTEXT else extensions).setdefault(attribute, text)
        elif name == _CONTENT_TYPE:
            if datacontenttype is None:
                datacontenttype = value.decode("utf-8", "replace")
        elif name == LITERALS_HEADER and literals is None:
            literals = value
    if literals is not None:
        literal = frozenset(literals.decode("utf-8", "replace").split(","))
    if "partitionkey" not in extensions and record.key is not None:
        extensions["partitionkey"] = record.key.decode("utf-8", "replace")
    event_type = type_header(record.headers)
    return CloudEvent(
        id=attributes.get("id", ""),
        source=attributes.get("source", ""),
        type="" if event_type is None else event_type.decode("utf-8", "replace"),
        specversion=attributes.get("specversion", "1.0"),
        subject=attributes.get("subject"),
        time=attributes.get("time") or format_timestamp(record.timestamp),
        datacontenttype=datacontenttype,
        dataschema=attributes.get("dataschema"),
        extensions=extensions,
        literal=literal,
        data=record.value,
    )


def from_structured_record(record: Record) -> Record | None:
    """The binary-mode record of an event a Kafka producer wrote in structured mode, with
    the record's place, time and key; ``None`` for a record that holds no such event.

    The Kafka binding lets the sender choose the mode, and tells the receiver by the
    ``content-type`` header: prefixed with ``application/cloudevents`` (in any case) the
    value is an event format's. The JSON format is the one every receiver supporting the
    mode must read; another format, or a value that is no valid event, is no event here.
    """
    content_type = None
    for name, value in record.headers:
        if name.lower() == _CONTENT_TYPE:
            content_type = value
    if (
        content_type is None
        or record.value is None
        or not content_type.lower().lstrip().startswith(b"application/cloudevents+json")
    ):
        return None
    try:
        event = from_structured(record.value)
    except BadRequest:
        return None
    made = to_record(event, record.topic, partition=record.partition)
    return Record(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp,
        record.key if record.key is not None else made.key,
        made.value,
        tuple(made.headers),
    )


# -- out: the JSON event format, from the record -------------------------------------

#: The JSON member name of each header seen (``ce_subject`` → ``subject``), built once.
_MEMBER: dict[str, str] = {_CONTENT_TYPE: "datacontenttype"}
#: ``ce_`` headers that are no attribute: the event's data is the record's value, never a
#: header another Kafka client wrote.
_NOT_ATTRIBUTES = frozenset({"ce_data", "ce_data_base64", "ce_offset"})
#: Attributes whose value is a string whatever ``sluicegate.literals`` says: it lists
#: extensions only (``offset`` is the gateway's own).
_STRING_ATTRIBUTES = frozenset(
    {
        "specversion",
        "id",
        "source",
        "type",
        "datacontenttype",
        "dataschema",
        "subject",
        "time",
        "partitionkey",
        "offset",
    }
)


def type_header(headers: Sequence[Header]) -> bytes | None:
    """The event type a record's headers give: the fourth header when it is ``ce_type``
    (where the gateway writes it: found without a scan), else the first ``ce_type``.
    The consumers' type filter and every form an event is delivered in read it here, so
    a record with two (which only another Kafka client writes) is delivered with the
    type it was let through by."""
    if len(headers) > 3 and headers[3][0] == "ce_type":
        return headers[3][1]
    return next((value for name, value in headers if name == "ce_type"), None)


#: How each ``content-type`` seen carries its data in JSON: as JSON, as text, as base64.
_DATA_KIND: dict[bytes, int] = {}
_AS_JSON, _AS_TEXT, _AS_BASE64 = 0, 1, 2
_REMEMBERED = 1024


def _data_kind(content_type: bytes | None) -> int:
    if content_type is None:
        return _AS_BASE64
    kind = _DATA_KIND.get(content_type)
    if kind is None:
        media = content_type.decode("latin-1")
        kind = (
            _AS_JSON
            if is_json_media_type(media)
            else _AS_TEXT
            if is_text_media_type(media)
            else _AS_BASE64
        )
        if len(_DATA_KIND) < _REMEMBERED:
            _DATA_KIND[content_type] = kind
    return kind


def _utf8(value: bytes) -> str | None:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None  # text that is not: carried as base64


def _members(record: Record, offset: int | None) -> dict[str, Any]:
    """The event's JSON members, straight from the record's header bytes.

    The values go to msgspec's encoder as they are: ``str`` for attributes, ``Raw`` for
    JSON data and literal extensions (written unquoted), ``bytes`` for binary data (which
    msgspec writes as base64). Measured against writing the JSON by joining bytes in
    Python, this is 2.5 times faster (docs/design-notes.md).
    """
    members: dict[str, Any] = {}
    content_type: bytes | None = None
    literals: bytes | None = None
    twice = False
    for name, value in record.headers:
        member = _MEMBER.get(name)
        if member is None:
            if name[:3] != CE_HEADER_PREFIX or name in _NOT_ATTRIBUTES:
                if name == LITERALS_HEADER:
                    literals = value
                continue
            member = name[3:]
            if len(_MEMBER) < _REMEMBERED:
                _MEMBER[name] = member
        if member in members:
            twice = True  # the first is the attribute (another Kafka client's record)
            continue
        if name == _CONTENT_TYPE:
            content_type = value
        members[member] = value.decode("utf-8", "replace")
    if twice and (event_type := type_header(record.headers)) is not None:
        members["type"] = event_type.decode("utf-8", "replace")
    if literals is not None:
        for literal in literals.decode("utf-8", "replace").split(","):
            text = members.get(literal)
            if (
                text is not None
                and literal not in _STRING_ATTRIBUTES
                and json_texts((encoded := text.encode(),))
            ):
                members[literal] = msgspec.Raw(encoded)
    if "partitionkey" not in members and record.key is not None:
        members["partitionkey"] = record.key.decode("utf-8", "replace")
    if "time" not in members:
        members["time"] = format_timestamp(record.timestamp)
    if offset is not None:
        members["offset"] = str(offset)
    else:
        members.pop("offset", None)
    data = record.value
    if data is not None:
        kind = _data_kind(content_type)
        if kind == _AS_JSON and json_texts((data,)):
            members["data"] = msgspec.Raw(data)
        elif kind == _AS_TEXT and (text := _utf8(data)) is not None:
            members["data"] = text
        else:
            members["data_base64"] = data
    return members


def structured_json(record: Record, offset: int | None = None) -> bytes:
    """The complete JSON form of the event ``record`` holds, with ``offset`` as a string.

    Every attribute and extension the producer sent, ``datacontenttype``, and the data
    (see the module docstring). A stored ``offset`` extension gives way to ``offset``.
    """
    return _encode(_members(record, offset))


def structured_batch(items: Iterable[tuple[Record, int | None]]) -> bytes:
    """A JSON array of ``structured_json`` events (``application/cloudevents-batch+json``),
    written by one call of the encoder."""
    return _encode([_members(record, offset) for record, offset in items])


# -- out, fast: a byte template per kind of record -----------------------------------
#
# A consumer reads tens of thousands of events a second, nearly all of a few shapes: the
# same header names in the same order (``to_record`` writes them so). For each shape,
# and each way its data is carried, one ``bytes`` template holds every constant byte of
# the event's JSON — ``{"specversion":"%s","id":"%s",…,"offset":"%d","data":%s}`` —
# so an event is one ``%`` of the template with the header values as they are stored:
# no ``str`` per value, no dict per event. That is only the same JSON as
# ``structured_json`` when no value needs escaping and every value is UTF-8; that is
# checked once per batch, on all of its values laid end to end (one regular expression
# search, one ``isascii``), and a record that fails it is rendered by ``structured_json``.
# Records of any other shape (a literal extension, a stored ``offset``, a header that
# is no attribute, a name twice, empty JSON data) take ``structured_json`` too.
# ``tests/core/cloudevents/test_binding_fast.py`` checks the two byte for byte.

#: The bytes JSON escapes inside a string: a value with one cannot go in as it is.
_ESCAPED = bytes(range(0x20)) + b'"\\'

_NO_DATA = -1
#: Shapes remembered (cleared when full: a stream of ever-new shapes costs a rebuild).
_MAX_SHAPES = 1024


class _Shape:
    """The templates of one tuple of header names (``None`` in ``_SHAPES``: no fast path)."""

    __slots__ = ("content_type", "has_partitionkey", "head", "templates")

    def __init__(self, head: bytes, content_type: int, has_partitionkey: bool) -> None:
        #: ``{"name":"%s",…`` with every header's member, ``%`` escaped in names.
        self.head = head
        #: Index of the ``content-type`` header, -1 without one.
        self.content_type = content_type
        self.has_partitionkey = has_partitionkey
        self.templates: dict[tuple[bool, int], bytes] = {}

    def template(self, key_member: bool, kind: int) -> bytes:
        """The whole event's template: the key as ``partitionkey`` or not, data by ``kind``."""
        found = self.templates.get((key_member, kind))
        if found is None:
            parts = [self.head]
            if key_member:
                parts.append(b',"partitionkey":"%s"')
            parts.append(b',"offset":"%d"')
            if kind == _AS_JSON:
                parts.append(b',"data":%s')
            elif kind == _AS_TEXT:
                parts.append(b',"data":"%s"')
            elif kind == _AS_BASE64:
                parts.append(b',"data_base64":"%s"')
            parts.append(b"}")
            found = self.templates[key_member, kind] = b"".join(parts)
        return found


_SHAPES: dict[tuple[str, ...], _Shape | None] = {}


def _shape(names: tuple[str, ...]) -> _Shape | None:
    """The shape of records with header ``names``, or ``None`` if they take the general
    path (see above)."""
    if names in _SHAPES:
        return _SHAPES[names]
    members: list[str] = []
    content_type = -1
    for index, name in enumerate(names):
        if name == _CONTENT_TYPE:
            content_type = index
            members.append("datacontenttype")
        elif name[:3] == CE_HEADER_PREFIX and name not in _NOT_ATTRIBUTES:
            members.append(name[3:])
        else:
            members = []  # the literals header, ce_offset, a header of no attribute
            break
    shape: _Shape | None = None
    # Without a time (a record another Kafka client wrote), the record's own time goes in.
    if members and "time" in members and len(set(members)) == len(members):
        head = b",".join(_encode(member).replace(b"%", b"%%") + b':"%s"' for member in members)
        shape = _Shape(b"{" + head, content_type, "partitionkey" in members)
    if len(_SHAPES) >= _MAX_SHAPES:
        _SHAPES.clear()
    _SHAPES[names] = shape
    return shape


_HEADERS = attrgetter("headers")
_KEY = attrgetter("key")
_VALUE = attrgetter("value")
_NAME_OF = itemgetter(0)
_VALUE_OF = itemgetter(1)


def structured_events(records: Sequence[Record], first: int) -> list[bytes]:
    """``structured_json(records[i], first + i)`` for each record, byte for byte, in bulk."""
    uniform = _uniform_events(records, first)
    if uniform is not None:
        return uniform
    return _events_by_record(records, first)


def _uniform_events(records: Sequence[Record], first: int) -> list[bytes] | None:
    """``structured_events`` of a batch whose records all take one template, with no
    Python code per record; ``None`` (nothing done) for any other batch.

    One template: the same header names in the same order, one content type whose data
    is JSON, data in every record (neither ``None`` nor empty), the key no member (no
    key, or a ``ce_partitionkey`` header), and no value that JSON must escape. A
    consumer's batches are nearly always such (one producer, one type): every test
    below is a C loop over the whole batch, and the events are the template ``%`` each
    record's values, the tuples made by ``zip`` and the ``%`` called by ``map``.
    """
    count = len(records)
    if not count:
        return None
    heads = list(map(_HEADERS, records))
    width = len(heads[0])
    # Equal widths first: names laid end to end could match with records of unequal
    # widths cut at other places.
    if not width or countOf(map(len, heads), width) != count:
        return None
    names = tuple(map(_NAME_OF, heads[0]))
    shape = _SHAPES.get(names) or _shape(names)
    if shape is None or shape.content_type < 0:
        return None
    pairs = list(chain.from_iterable(heads))
    if list(map(_NAME_OF, pairs)) != [*names] * count:
        return None
    values = list(map(_VALUE_OF, pairs))
    content_types = values[shape.content_type :: width]
    content_type = content_types[0]
    if countOf(content_types, content_type) != count or _data_kind(content_type) != _AS_JSON:
        return None
    if not shape.has_partitionkey and countOf(map(_KEY, records), None) != count:
        return None
    data = list(map(_VALUE, records))
    if None in data or b"" in data or not _all_verbatim(_distinct_columns(values, width)):
        return None
    if not json_texts(data):
        return None
    arguments = zip(*([iter(values)] * width), range(first, first + count), data, strict=True)
    return list(map(shape.template(False, _AS_JSON).__mod__, arguments))


def _distinct_columns(values: list[bytes], width: int) -> list[bytes]:
    """``values`` (``width`` per record, laid end to end) less the repeats that need no
    check: of a header that holds one value in every record (the source, the type, the
    content type, often the time) its first value only.

    The check of what remains reads a few bytes per record instead of every value's,
    and a list comparison that stops at the first difference tells a column that
    varies (the id) after two records.
    """
    distinct: list[bytes] = []
    for index in range(width):
        column = values[index::width]
        if column == [column[0]] * len(column):
            distinct.append(column[0])
        else:
            distinct += column
    return distinct


def _events_by_record(records: Sequence[Record], first: int) -> list[bytes]:
    """``structured_events`` record by record: any batch, each record rendered the fast
    way where its shape allows and by ``structured_json`` where not."""
    rendered: list[bytes] = []
    append = rendered.append
    #: Per record, the values that went in as they are (``None``: rendered in general).
    verbatim: list[tuple[bytes, ...] | None] = []
    keep = verbatim.append
    offset = first
    # A batch is nearly always one shape, one content type and one way with the key:
    # compared with the record before (equal strings compare by length and bytes,
    # where a dict look-up would hash every freshly decoded name first), the template
    # is looked up once per run of records, not once per record.
    last_names: tuple[str, ...] | None = None
    shape: _Shape | None = None
    last_type: bytes | None = None
    kind = _NO_DATA
    last_template: tuple[bool, int] | None = None
    template = b""
    # The run of records like the last one rendered with JSON data: the same names, the
    # same content type, the key not a member. One test of each, and the template is
    # known: half the work per record of the way below, which finds the template.
    run_names: tuple[str, ...] | None = None
    run_type = b""
    run_content_type = 0
    run_key_ignored = False
    run_template = b""
    #: Indexes of the records whose data went in as JSON, as it is.
    as_json: list[int] = []
    for record in records:
        headers = record.headers
        value = record.value
        if not headers or value == b"":
            append(structured_json(record, offset))
            keep(None)
            offset += 1
            continue
        names, values = zip(*headers, strict=True)
        if (
            names == run_names
            and value is not None
            and values[run_content_type] == run_type
            and (run_key_ignored or record.key is None)
        ):
            append(run_template % (*values, offset, value))
            keep(values)
            as_json.append(offset - first)
            offset += 1
            continue
        if names != last_names:
            last_names = names
            shape = _SHAPES.get(names) or _shape(names)
            last_template = None
            last_type = None
        if shape is None:
            append(structured_json(record, offset))
            keep(None)
            offset += 1
            continue
        if value is None:
            this_kind = _NO_DATA
        else:
            index = shape.content_type
            if index < 0:
                this_kind = _AS_BASE64
            else:
                content_type = values[index]
                if content_type != last_type:
                    last_type = content_type
                    kind = _data_kind(content_type)
                this_kind = kind
        key = record.key
        checked: tuple[bytes, ...] = values
        key_member = False
        if key is not None and not shape.has_partitionkey:
            checked = (*values, key)
            key_member = True
        if last_template != (key_member, this_kind):
            last_template = (key_member, this_kind)
            template = shape.template(key_member, this_kind)
        if value is None:
            append(template % (*checked, offset))
        elif this_kind == _AS_BASE64:
            base64 = binascii.b2a_base64(value, newline=False)
            append(template % (*checked, offset, base64))
        else:
            append(template % (*checked, offset, value))
            if this_kind == _AS_TEXT:
                checked = (*checked, value)
            elif this_kind == _AS_JSON:
                as_json.append(offset - first)
                if not key_member:
                    run_names, run_template = names, template
                    run_content_type = shape.content_type
                    run_type = values[run_content_type]
                    run_key_ignored = shape.has_partitionkey
        keep(checked)
        offset += 1
    if not _all_verbatim(chain.from_iterable(v for v in verbatim if v is not None)):
        # Some value needs escaping or is no UTF-8: find which records, render them again.
        for index, taken in enumerate(verbatim):
            if taken is not None and not _all_verbatim(taken):
                rendered[index] = structured_json(records[index], first + index)
    if as_json and not json_texts([cast(bytes, records[index].value) for index in as_json]):
        # Some data is not the JSON its content type says (``json_texts``): again,
        # the records that hold it.
        for index in as_json:
            if not json_texts((cast(bytes, records[index].value),)):
                rendered[index] = structured_json(records[index], first + index)
    return rendered


def _all_verbatim(values: Iterable[bytes]) -> bool:
    """Whether JSON carries every one of ``values`` between quotes as it is."""
    joined = SEPARATOR.join(values)
    # Deleting the bytes JSON escapes changes nothing: a C loop over the bytes, several
    # times faster than a regular expression's search.
    if len(joined.translate(None, _ESCAPED)) != len(joined):
        return False
    return is_utf8(joined)


def structured_batch_of(records: Sequence[Record], first: int) -> bytes:
    """``structured_batch`` of ``records`` numbered from ``first``, byte for byte, in bulk."""
    return b"[" + b",".join(structured_events(records, first)) + b"]"


# -- out: the HTTP binding's binary form ---------------------------------------------

# Characters a ce- header value carries as they are (HTTP binding 3.1.3.2): printable
# ASCII but space, '"' and '%'.
_HEADER_SAFE = re.compile(rb"[!#-$&-~]*")
#: A CloudEvents attribute's name.
_ATTRIBUTE = re.compile(r"[a-z0-9]+")
#: A header value sent as it is: printable ASCII, spaces and tabs.
_FIELD_VALUE = re.compile(rb"[\t -~]*")


def percent_encode(value: bytes) -> bytes:
    """A ``ce-`` header value: UTF-8 bytes outside printable ASCII, space, ``"`` and ``%``
    percent-encoded."""
    if _HEADER_SAFE.fullmatch(value) is not None:
        return value
    return b"".join(
        bytes((byte,)) if _HEADER_SAFE.fullmatch(bytes((byte,))) else b"%%%02X" % byte
        for byte in value
    )


def http_binary(
    record: Record, offset: int | None = None
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The binary HTTP form of a stored event: ``ce-`` headers (``ce-offset`` last when
    given), ``content-type`` from ``datacontenttype``, and the data as the body."""
    headers: list[tuple[bytes, bytes]] = []
    has_key_header = has_time = has_content_type = False
    seen: set[str] = set()
    event_type = type_header(record.headers)
    for name, value in record.headers:
        if name[:3] == CE_HEADER_PREFIX:
            # Only what is an attribute's name (CloudEvents: a-z and 0-9), once: another
            # Kafka client's header (a space in its name, a name twice) must not become
            # an HTTP header the server refuses to send, or a second ce-type.
            if name in _NOT_ATTRIBUTES or name in seen or not _ATTRIBUTE.fullmatch(name, 3):
                continue
            seen.add(name)
            has_key_header = has_key_header or name == "ce_partitionkey"
            has_time = has_time or name == "ce_time"
            if name == "ce_type" and event_type is not None:
                value = event_type
            headers.append((b"ce-" + name[3:].encode(), percent_encode(value)))
        elif name == _CONTENT_TYPE and not has_content_type:
            # Sent as it is stored: one an HTTP header cannot carry (a line break in it)
            # is left out, and the data goes without a type.
            has_content_type = True
            if _FIELD_VALUE.fullmatch(value) is not None:
                headers.append((b"content-type", value))
    if not has_key_header and record.key is not None:
        headers.append((b"ce-partitionkey", percent_encode(record.key)))
    if not has_time:
        headers.append((b"ce-time", format_timestamp(record.timestamp).encode()))
    if offset is not None:
        headers.append((b"ce-offset", str(offset).encode()))
    return headers, record.value if record.value is not None else b""
