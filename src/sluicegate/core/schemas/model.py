"""The registry's nouns: schema types, references, registered schemas and parsed schemas."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Protocol

import msgspec

from sluicegate.errors import Unprocessable

__all__ = [
    "LATEST",
    "ParsedSchema",
    "Reason",
    "RegisteredSchema",
    "Schema",
    "SchemaReference",
    "SchemaType",
    "Version",
    "parse_schema_type",
    "parse_version",
]

LATEST: Literal["latest"] = "latest"
#: A version number, or the latest live version.
Version = int | Literal["latest"]
_MAX_VERSION = 2**31 - 1


class SchemaType(StrEnum):
    AVRO = "AVRO"
    JSON = "JSON"


class Reason(StrEnum):
    """Why a registry error happened, in ``SluicegateError.detail["reason"]``.

    The error class says what kind of failure it is (not found, conflict...); the reason
    tells a dialect which of Confluent's finer error codes to answer with.
    """

    SUBJECT_SOFT_DELETED = "subject_soft_deleted"
    SUBJECT_NOT_SOFT_DELETED = "subject_not_soft_deleted"
    VERSION_SOFT_DELETED = "version_soft_deleted"
    VERSION_NOT_SOFT_DELETED = "version_not_soft_deleted"
    SUBJECT_COMPATIBILITY_NOT_SET = "subject_compatibility_not_set"
    INVALID_VERSION = "invalid_version"
    INVALID_COMPATIBILITY_LEVEL = "invalid_compatibility_level"
    INVALID_SUBJECT = "invalid_subject"
    UNSUPPORTED_SCHEMA_TYPE = "unsupported_schema_type"
    REFERENCE_EXISTS = "reference_exists"


_SCHEMA_TYPES = {kind.value: kind for kind in SchemaType}


def parse_schema_type(value: str | None) -> SchemaType:
    """``AVRO`` (also when absent, as Confluent) or ``JSON``; anything else is refused."""
    if value is None or value == "":
        return SchemaType.AVRO
    known = _SCHEMA_TYPES.get(value)  # the exact spelling, as nearly every caller sends it
    if known is not None:
        return known
    try:
        return SchemaType(value.upper())
    except ValueError:
        raise Unprocessable(
            f"unsupported schema type {value!r}: this registry supports AVRO and JSON",
            reason=Reason.UNSUPPORTED_SCHEMA_TYPE,
        ) from None


def parse_version(value: str | int) -> Version:
    """A version from a path or body: ``1``..``2^31-1``, or ``latest`` (also ``-1``)."""
    if isinstance(value, str) and value.strip().lower() == LATEST:
        return LATEST
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number == -1:
        return LATEST
    if not 1 <= number <= _MAX_VERSION:
        raise Unprocessable(
            f"The specified version '{value}' is not a valid version id. Allowed values are "
            'between [1, 2^31-1] and the string "latest"',
            reason=Reason.INVALID_VERSION,
        )
    return number


class SchemaReference(msgspec.Struct, frozen=True):
    """A named dependency on another subject's version (Confluent's ``references``).

    For Avro ``name`` is the full name of the type the referenced schema defines; for JSON
    Schema it is the URI that ``$ref`` uses.
    """

    name: str
    subject: str
    version: int


class Schema(msgspec.Struct, frozen=True, kw_only=True):
    """A schema by its global id, as stored once whatever the subjects that use it."""

    id: int
    schema: str
    schema_type: SchemaType = SchemaType.AVRO
    references: tuple[SchemaReference, ...] = ()


class RegisteredSchema(msgspec.Struct, frozen=True, kw_only=True):
    """A schema as registered under one subject and version."""

    id: int
    subject: str
    version: int
    schema: str
    schema_type: SchemaType = SchemaType.AVRO
    references: tuple[SchemaReference, ...] = ()


class ParsedSchema(Protocol):
    """A schema parsed once and kept: what the registry compares, validates and encodes with."""

    @property
    def schema_type(self) -> SchemaType: ...

    @property
    def canonical(self) -> str:
        """A normal form: two schemas with the same one read and write data alike."""
        ...

    @property
    def full_name(self) -> str | None:
        """The name subject strategies use (Avro named type, JSON Schema ``title``)."""
        ...

    def validate(self, datum: object) -> None:
        """Raise ``InvalidSchema`` naming the first field of ``datum`` that does not match."""
        ...

    def encode(self, datum: object) -> bytes:
        """Validate ``datum`` and serialize it (Avro binary, or JSON)."""
        ...

    def decode(self, payload: bytes) -> object:
        """Deserialize ``payload``; ``InvalidRecord`` if it was not written with this schema."""
        ...
