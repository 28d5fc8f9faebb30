"""The one exception hierarchy of sluicegate.

Every error the gateway raises on purpose is a ``SluicegateError``. The class carries
what decides handling — the HTTP ``status`` a dialect starts from, a stable ``code``
string, and whether a client may ``retriable``-y send the same request again — so each
dialect maps errors to its own body format in one place (``dialects/*/errors.py``),
and anything that is *not* a ``SluicegateError`` is a bug: the outermost handler turns
it into a 500 with an incident id.

* SluicegateError
  x ConfigError                 bad settings; the server refuses to start
  x ClientError                 the request is wrong; sending it again will not help
    + BadRequest                400
      - InvalidTopicName
      - InvalidPartition
      - OffsetOutOfRange
      - InvalidSchema
      - InvalidRecord
      - InvalidMessageId
    + Unauthenticated           401 missing, malformed, unknown, revoked or expired credentials
    + Forbidden                 403 a known principal without the permission
    + OriginNotAllowed          403 a WebSocket handshake from a web page not allowed
    + NotFound                  404
      - UnknownTopic
      - UnknownGroupMember
      - UnknownConsumerInstance
      - MessagePurged
      - SchemaNotFound / SubjectNotFound / VersionNotFound
    + MethodNotAllowed          405
    + NotAcceptable             406 the ``Accept`` header excludes what the route answers
    + RequestTimeout            408 the request's headers or body did not arrive in time
    + Conflict                  409
      - TopicExists
      - IncompatibleSchema
    + PayloadTooLarge           413
    + UriTooLong                414
    + UnsupportedMediaType      415
    + Unprocessable             422
    + RateLimited               429, with retry_after
    + HeadersTooLarge           431
  x ServerError                 the gateway could not do it now; the same request may succeed later
    + StorageTimeout            408 (records v2) — the write's outcome is decided, see its docstring
      - StoppedMidRequest       the server stopped before the request finished
    + Unavailable               503, with retry_after
      - ShuttingDown
      - Overloaded
      - StorageUnavailable
      - GroupElsewhere          the consumer group is served by another node
    + StorageError              500 the backend failed in a way that is not the client's doing
      - DataDirectoryError
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "ClientError",
    "ConfigError",
    "Conflict",
    "DataDirectoryError",
    "Forbidden",
    "GroupElsewhere",
    "HeadersTooLarge",
    "IncompatibleSchema",
    "InvalidMessageId",
    "InvalidPartition",
    "InvalidRecord",
    "InvalidSchema",
    "InvalidTopicName",
    "MessagePurged",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "OffsetOutOfRange",
    "OriginNotAllowed",
    "Overloaded",
    "PayloadTooLarge",
    "RateLimited",
    "RequestTimeout",
    "SchemaNotFound",
    "ServerError",
    "ShuttingDown",
    "SluicegateError",
    "StoppedMidRequest",
    "StorageError",
    "StorageTimeout",
    "StorageUnavailable",
    "SubjectNotFound",
    "TopicExists",
    "Unauthenticated",
    "Unavailable",
    "UnknownConsumerInstance",
    "UnknownGroupMember",
    "UnknownTopic",
    "Unprocessable",
    "UnsupportedMediaType",
    "UpgradeRequired",
    "UriTooLong",
    "VersionNotFound",
]


class SluicegateError(Exception):
    """Base of every error sluicegate raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    retriable: ClassVar[bool] = False

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        #: Extra, non-secret facts a dialect may put in its error body (field names, limits).
        self.detail: dict[str, Any] = detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigError(SluicegateError):
    """A setting is missing or invalid; names the setting. The server refuses to start."""

    code = "config_error"

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}", key=key)
        self.key = key


# --- the client's doing -------------------------------------------------------------


class ClientError(SluicegateError):
    """The request cannot succeed as sent."""

    status = 400
    code = "bad_request"


class BadRequest(ClientError):
    """Malformed or invalid input; the message names the field."""


class InvalidTopicName(BadRequest):
    code = "invalid_topic_name"


class InvalidPartition(BadRequest):
    code = "invalid_partition"


class OffsetOutOfRange(BadRequest):
    code = "offset_out_of_range"


class InvalidSchema(BadRequest):
    """A schema that does not parse, or data that does not match its schema."""

    code = "invalid_schema"


class InvalidRecord(BadRequest):
    code = "invalid_record"


class InvalidMessageId(BadRequest):
    """A message id that is malformed, names another topic, or was never issued."""

    code = "invalid_message_id"


class Unauthenticated(ClientError):
    """No usable credentials: missing, malformed, unknown, revoked, expired."""

    status = 401
    code = "unauthenticated"


class Forbidden(ClientError):
    """The principal is known but lacks the permission the request needs."""

    status = 403
    code = "forbidden"


class OriginNotAllowed(ClientError):
    """A WebSocket handshake whose ``Origin`` is not allowed (RFC 6455 10.2: 403).

    Not an authorization failure of the client, whose credentials may be fine: a web
    page of another site must not open a connection with the browser's credentials
    (a TLS client certificate, say). No dialect turns it into a 401.
    """

    status = 403
    code = "origin_not_allowed"


class NotFound(ClientError):
    status = 404
    code = "not_found"


class UnknownTopic(NotFound):
    code = "unknown_topic"


class UnknownGroupMember(NotFound):
    code = "unknown_member"


class UnknownConsumerInstance(NotFound):
    """A consumer instance that was deleted, expired, or belongs to another client.

    Another client's instance is answered exactly like a missing one, so that instance
    ids cannot be probed.
    """

    code = "unknown_consumer_instance"


class MessagePurged(NotFound):
    """A message id whose message (or messages after it) was purged or expired."""

    code = "message_purged"


class SchemaNotFound(NotFound):
    code = "schema_not_found"


class SubjectNotFound(NotFound):
    code = "subject_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class MethodNotAllowed(ClientError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message, allowed=allowed)
        self.allowed = allowed


class UpgradeRequired(ClientError):
    """A plain HTTP request to a WebSocket endpoint: it speaks only after a handshake."""

    status = 426
    code = "upgrade_required"


class NotAcceptable(ClientError):
    """The client's ``Accept`` excludes every media type the route answers with."""

    status = 406
    code = "not_acceptable"


class RequestTimeout(ClientError):
    """The client did not send the request's headers or body within the server's timeout.

    Answered by the HTTP layer, below any route, and the connection is closed. Not
    ``StorageTimeout``, which is records v2's 408 for a write whose outcome is decided.
    """

    status = 408
    code = "request_timeout"


class Conflict(ClientError):
    status = 409
    code = "conflict"


class TopicExists(Conflict):
    code = "topic_exists"


class IncompatibleSchema(Conflict):
    code = "incompatible_schema"


class PayloadTooLarge(ClientError):
    status = 413
    code = "payload_too_large"


class UriTooLong(ClientError):
    status = 414
    code = "uri_too_long"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"


class Unprocessable(ClientError):
    status = 422
    code = "unprocessable"


class RateLimited(ClientError):
    """Too many requests from this client; ``retry_after`` is in seconds."""

    status = 429
    code = "rate_limited"
    retriable = True

    def __init__(self, message: str, retry_after: float, **detail: Any) -> None:
        super().__init__(message, **detail)
        self.retry_after = retry_after


class HeadersTooLarge(ClientError):
    """The request line and headers together exceed ``server.max_header_bytes``."""

    status = 431
    code = "headers_too_large"


# --- the gateway's doing ------------------------------------------------------------


class ServerError(SluicegateError):
    """The gateway could not serve the request now."""

    status = 500
    code = "internal_error"


class StorageTimeout(ServerError):
    """Storage did not confirm a write in time.

    The write stays queued and is committed or failed as a whole, so a client that sees
    this may find either none or all of its records in the log — never part of a batch.
    """

    status = 408
    code = "storage_timeout"
    retriable = True


class StoppedMidRequest(StorageTimeout):
    """The server's graceful shutdown ran out before the request finished (storage that
    does not answer, mostly). As for ``StorageTimeout``, a write the request made is
    stored whole or not at all."""

    code = "stopped_mid_request"


class Unavailable(ServerError):
    status = 503
    code = "unavailable"
    retriable = True

    def __init__(self, message: str, retry_after: float = 1.0, **detail: Any) -> None:
        super().__init__(message, **detail)
        self.retry_after = retry_after


class ShuttingDown(Unavailable):
    code = "shutting_down"


class Overloaded(Unavailable):
    code = "overloaded"


class StorageUnavailable(Unavailable):
    code = "storage_unavailable"


class Starting(Unavailable):
    """The gateway has not started serving yet: its storage is not ready (a Kafka
    cluster that does not answer yet, the gateway's state being read)."""

    code = "starting"


class GroupElsewhere(Unavailable):
    """This node does not serve the consumer group: another node holds its shard, or this
    node lost it. Normally a request is sent on to the group's node before it gets here;
    this answers the rare one that raced a move."""

    code = "group_elsewhere"


class StorageError(ServerError):
    """The backend failed; the write (if any) was not acknowledged."""

    code = "storage_error"


class StorageForbidden(StorageError):
    """The storage refused the gateway's own credentials or permissions (a Kafka SASL
    login, a Kafka ACL): the operator's to fix, not the client's, and not retried."""

    code = "storage_forbidden"


class DataDirectoryError(StorageError):
    """The data directory is missing, unreadable, corrupt or held by another server."""

    code = "data_directory_error"
