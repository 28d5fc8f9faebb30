"""A CloudEvent (CloudEvents 1.0.2): its attributes checked once, its data as bytes.

Every parser (``binding.py``) builds a ``CloudEvent`` through ``checked_event`` and
every writer (Kafka headers, HTTP headers, structured JSON) reads one, so the rules of
the specification live here once:

* ``specversion`` is ``1.0``; ``id``, ``source`` and ``type`` are non-empty strings;
* ``source`` is a URI-reference and ``dataschema``, when present, a URI (RFC 3986, the
  specification's types: a consumer's SDK may parse them, and refuse the event if not);
* ``subject`` and ``dataschema``, when present, are non-empty; ``time`` is RFC 3339;
* attribute names are 1-20 characters of ``[a-z0-9]``;
* extension values are strings, booleans or 32-bit integers (the JSON format's types);
  an extension sent as a JSON boolean or integer is remembered as such (``literal``) so
  that a consumer gets it back with its JSON type, not as a string.

Errors are ``BadRequest``s whose ``detail`` names the ``attribute`` (and, for an event
of a batch, its ``index``), so each dialect can say where the problem is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import jsonschema_rs
import msgspec

from sluicegate.errors import BadRequest

__all__ = [
    "CONTEXT_ATTRIBUTES",
    "CONTROL_CHARACTER",
    "RFC3339",
    "SPECVERSION",
    "CloudEvent",
    "check_attribute_name",
    "check_extension_value",
    "check_time",
    "check_type",
    "checked_event",
    "is_json_media_type",
    "is_text_media_type",
    "is_uri",
    "is_uri_reference",
]

SPECVERSION = "1.0"

#: The attributes the specification defines, in the order writers emit them.
CONTEXT_ATTRIBUTES = (
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
)

_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]{1,20}")
# RFC 3339 section 5.6: full-date "T" full-time, with a time zone; lower-case t/z allowed.
RFC3339 = re.compile(
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)"
    r"(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)"
)
_INT32 = (-(2**31), 2**31 - 1)
_RFC3339 = RFC3339.fullmatch
# The CloudEvents String type excludes the control characters (C0, DEL and C1).
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _format(name: str) -> Callable[[str], bool]:
    validator = jsonschema_rs.validator_for(
        {"type": "string", "format": name}, validate_formats=True
    )
    return validator.is_valid


#: RFC 3986 as JSON Schema's formats check it (jsonschema-rs, compiled: a tenth of a µs a
#: value): ``source`` is a URI-reference, ``dataschema`` a URI (a scheme, then the rest).
is_uri_reference = _format("uri-reference")
is_uri = _format("uri")


class CloudEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One event: the context attributes, extensions, and data as bytes.

    ``data`` is ``None`` for an event without data. For JSON data
    (``is_json_media_type(datacontenttype)``) it is the JSON text; otherwise the bytes.
    """

    id: str
    source: str
    type: str
    specversion: str = SPECVERSION
    subject: str | None = None
    #: RFC 3339, exactly as the producer sent it.
    time: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    #: Extension attributes (``partitionkey`` included) in the order they were sent.
    extensions: Mapping[str, str] = msgspec.field(default_factory=dict)
    #: Extensions whose JSON value is a boolean or integer literal, not a string.
    literal: frozenset[str] = frozenset()
    data: bytes | None = None

    @property
    def partitionkey(self) -> str | None:
        """The ``partitionkey`` extension: the Kafka record key, so it keeps per-key order."""
        return self.extensions.get("partitionkey")

    def attributes(self) -> list[tuple[str, str]]:
        """Every attribute present, as strings: context attributes first, then extensions."""
        out = [("specversion", self.specversion), ("id", self.id), ("source", self.source)]
        out.append(("type", self.type))
        for name in ("subject", "time", "datacontenttype", "dataschema"):
            value = getattr(self, name)
            if value is not None:
                out.append((name, value))
        out.extend(self.extensions.items())
        return out

    def size(self) -> int:
        """Bytes of the data and of every attribute's value: what the event limit counts."""
        text = _joined_values(self)
        total = len(text) if text.isascii() else len(text.encode())
        return total if self.data is None else total + len(self.data)


def _joined_values(event: CloudEvent) -> str:
    """Every attribute value of ``event`` in one string (one C-level pass to check)."""
    return "".join(
        (
            event.specversion,
            event.id,
            event.source,
            event.type,
            event.subject or "",
            event.time or "",
            event.datacontenttype or "",
            event.dataschema or "",
            *event.extensions.values(),
        )
    )


def is_json_media_type(media_type: str | None) -> bool:
    """Whether data of this ``datacontenttype`` is JSON (``application/json``, ``*+json``)."""
    if media_type is None:
        return False
    base = media_type.split(";", 1)[0].strip().lower()
    return base in ("application/json", "text/json") or base.endswith("+json")


def is_text_media_type(media_type: str | None) -> bool:
    """Whether data of this ``datacontenttype`` is text that JSON can carry as a string."""
    return media_type is not None and media_type.lstrip()[:5].lower() == "text/"


def _where(index: int | None) -> str:
    return "" if index is None else f"events[{index}]: "


def _bad(message: str, attribute: str, index: int | None) -> BadRequest:
    detail: dict[str, object] = {"attribute": attribute}
    if index is not None:
        detail["index"] = index
    return BadRequest(f"{_where(index)}{message}", **detail)


def check_attribute_name(name: str, index: int | None = None) -> str:
    """Return ``name`` if it is a legal attribute name, else raise ``BadRequest``."""
    if _ATTRIBUTE_NAME.fullmatch(name) is None:
        raise _bad(
            f"invalid attribute name {name[:40]!r}: expected 1-20 characters of [a-z0-9]",
            name[:40],
            index,
        )
    return name


def check_type(event_type: str) -> str:
    """Return ``event_type`` if it can be a type (where no event carries it: the admin
    API), else raise ``BadRequest``."""
    if not event_type:
        raise BadRequest("the event type must not be empty", attribute="type")
    if not event_type.isprintable() and CONTROL_CHARACTER.search(event_type):
        raise BadRequest("the event type holds a control character", attribute="type")
    return event_type


def check_time(value: str, index: int | None = None) -> str:
    """Return ``value`` if it is an RFC 3339 timestamp, else raise ``BadRequest``."""
    if RFC3339.fullmatch(value) is None:
        raise _bad(
            f"attribute time {value[:64]!r} is not an RFC 3339 timestamp "
            "(e.g. 2025-01-31T12:00:00Z)",
            "time",
            index,
        )
    return value


def check_extension_value(name: str, value: object, index: int | None = None) -> tuple[str, bool]:
    """An extension's value as its string form, and whether it is a JSON literal.

    Strings are kept as they are; booleans become ``true``/``false`` and integers their
    decimal form (the canonical string forms the HTTP and Kafka bindings carry).
    """
    if isinstance(value, str):
        return value, False
    if isinstance(value, bool):
        return ("true" if value else "false"), True
    if isinstance(value, int):
        if not _INT32[0] <= value <= _INT32[1]:
            raise _bad(
                f"extension attribute {name} = {value} is outside the 32-bit integer range",
                name,
                index,
            )
        return str(value), True
    raise _bad(
        f"extension attribute {name} must be a string, boolean or integer, got {_json_type(value)}",
        name,
        index,
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return "a number with a fraction or exponent"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _required(value: str | None, name: str, index: int | None) -> str:
    if value is None:
        raise _bad(f"attribute {name} is required", name, index)
    if not value:
        raise _bad(f"attribute {name} must not be empty", name, index)
    return value


def _first_wrong(
    specversion: str | None,
    id: str | None,
    source: str | None,
    type: str | None,
    subject: str | None,
    time: str | None,
    datacontenttype: str | None,
    dataschema: str | None,
    index: int | None,
) -> None:
    """Raise ``BadRequest`` naming the first of these attributes that is wrong."""
    if specversion is None:
        raise _bad("attribute specversion is required", "specversion", index)
    if specversion != SPECVERSION:
        raise _bad(
            f"attribute specversion must be {SPECVERSION!r}, got {specversion[:20]!r}",
            "specversion",
            index,
        )
    _required(id, "id", index)
    source = _required(source, "source", index)
    if not is_uri_reference(source):
        raise _bad(
            f"attribute source must be a URI-reference (RFC 3986), got {source[:80]!r}",
            "source",
            index,
        )
    _required(type, "type", index)
    if subject is not None and not subject:
        raise _bad("attribute subject must not be empty when present", "subject", index)
    if dataschema is not None:
        if not dataschema:
            raise _bad("attribute dataschema must not be empty when present", "dataschema", index)
        if not is_uri(dataschema):
            raise _bad(
                f"attribute dataschema must be a URI (RFC 3986, with a scheme), got "
                f"{dataschema[:80]!r}",
                "dataschema",
                index,
            )
    if datacontenttype is not None and not datacontenttype.strip():
        raise _bad(
            "attribute datacontenttype must not be empty when present", "datacontenttype", index
        )
    if time is not None:
        check_time(time, index)


def checked_event(
    *,
    specversion: str | None,
    id: str | None,
    source: str | None,
    type: str | None,
    subject: str | None = None,
    time: str | None = None,
    datacontenttype: str | None = None,
    dataschema: str | None = None,
    extensions: Mapping[str, str] | None = None,
    literal: frozenset[str] = frozenset(),
    data: bytes | None = None,
    index: int | None = None,
) -> CloudEvent:
    """A ``CloudEvent`` once every attribute is checked; ``BadRequest`` naming the first
    that is wrong (and ``index``, the event's place in a batch)."""
    # The usual event passes every check, tested in one expression; only when that fails
    # are the attributes checked one by one, to name the first that is wrong.
    if not (
        specversion == SPECVERSION
        and id
        and source
        and is_uri_reference(source)
        and type
        and (subject is None or subject)
        and (dataschema is None or (dataschema and is_uri(dataschema)))
        and (datacontenttype is None or datacontenttype.strip())
        and (time is None or _RFC3339(time) is not None)
    ):
        _first_wrong(
            specversion, id, source, type, subject, time, datacontenttype, dataschema, index
        )
    # Non-empty strings by now (_first_wrong raised otherwise): said for the type checker.
    assert id
    assert source
    assert type
    event = CloudEvent(
        id=id,
        source=source,
        type=type,
        subject=subject,
        time=time,
        datacontenttype=datacontenttype,
        dataschema=dataschema,
        extensions=extensions if extensions is not None else {},
        literal=literal,
        data=data,
    )
    # isprintable() over every value at once is one C call; it refuses more than
    # control characters, so only then is each value searched for what the
    # specification forbids.
    if not _joined_values(event).isprintable():
        for name, value in event.attributes():
            if CONTROL_CHARACTER.search(value):
                raise _bad(f"attribute {name} holds a control character", name, index)
    return event
