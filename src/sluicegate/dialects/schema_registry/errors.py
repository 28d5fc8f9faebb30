"""Errors as Confluent's Schema Registry answers them: ``{"error_code", "message"}``.

The HTTP status and the finer ``error_code`` come from the error's class, refined by the
``reason`` the registry puts in its detail (soft-deleted subject, invalid version...).
Errors with no Confluent code of their own carry their HTTP status as ``error_code``, as
Confluent does for malformed bodies (400), missing routes (404) and the like.
"""

from __future__ import annotations

from sluicegate.core.schemas.model import Reason
from sluicegate.errors import (
    IncompatibleSchema,
    InvalidSchema,
    SchemaNotFound,
    ServerError,
    SluicegateError,
    StorageTimeout,
    SubjectNotFound,
    VersionNotFound,
)
from sluicegate.http.request import Request
from sluicegate.http.responses import Response, json_response

__all__ = ["ASSOCIATION_NOT_FOUND", "CONTENT_TYPE", "INVALID_MODE", "error_status", "render_error"]

CONTENT_TYPE = b"application/vnd.schemaregistry.v1+json"

#: Reasons only this dialect raises.
ASSOCIATION_NOT_FOUND = "association_not_found"
INVALID_MODE = "invalid_mode"

_BY_REASON: dict[str, tuple[int, int]] = {
    Reason.SUBJECT_SOFT_DELETED: (404, 40404),
    Reason.SUBJECT_NOT_SOFT_DELETED: (404, 40405),
    Reason.VERSION_SOFT_DELETED: (404, 40406),
    Reason.VERSION_NOT_SOFT_DELETED: (404, 40407),
    Reason.SUBJECT_COMPATIBILITY_NOT_SET: (404, 40408),
    ASSOCIATION_NOT_FOUND: (404, 40410),
    Reason.UNSUPPORTED_SCHEMA_TYPE: (422, 42201),
    Reason.INVALID_VERSION: (422, 42202),
    Reason.INVALID_COMPATIBILITY_LEVEL: (422, 42203),
    INVALID_MODE: (422, 42204),
    Reason.REFERENCE_EXISTS: (422, 42206),
    Reason.INVALID_SUBJECT: (422, 42208),
}

_BY_CLASS: list[tuple[type[SluicegateError], tuple[int, int]]] = [
    (SubjectNotFound, (404, 40401)),
    (VersionNotFound, (404, 40402)),
    (SchemaNotFound, (404, 40403)),
    (IncompatibleSchema, (409, 409)),
    (InvalidSchema, (422, 42201)),
    (StorageTimeout, (500, 50002)),
]


def error_status(exc: SluicegateError) -> tuple[int, int]:
    """The HTTP status and Confluent ``error_code`` for ``exc``."""
    mapped = _BY_REASON.get(exc.detail.get("reason", ""))
    if mapped is not None:
        return mapped
    for cls, codes in _BY_CLASS:
        if isinstance(exc, cls):
            return codes
    if isinstance(exc, ServerError):
        return exc.status, 50001
    return exc.status, exc.status


def render_error(exc: SluicegateError, request: Request) -> Response:
    """The response for ``exc`` in Confluent's format."""
    status, code = error_status(exc)
    body = {"error_code": code, "message": exc.message}
    return json_response(body, status, content_type=CONTENT_TYPE)
