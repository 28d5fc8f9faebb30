"""Topics v1 public API bodies, as the seed describes them."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = [
    "BatchPublishRequest",
    "BatchPublishResponse",
    "BatchResult",
    "ConsumeRequest",
    "ConsumeResponse",
    "Message",
    "PublishResponse",
]

#: The seed's limits: at most 50 messages per consume, 60 s of long polling.
MAX_BATCH_SIZE = 50
MAX_TIMEOUT_SECS = 60
#: At most this many messages in one batch publish.
MAX_BATCH_PUBLISH = 100

# Decoded from and encoded to JSON, these never hold themselves: ``gc=False`` keeps the
# cyclic garbage collector from tracking them.


class ConsumeRequest(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    after_message_id: str | None = None
    #: RFC 3339; a time in the future means now.
    since_time: str | None = None
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=MAX_BATCH_SIZE)] = MAX_BATCH_SIZE
    timeout_secs: Annotated[int, msgspec.Meta(ge=0, le=MAX_TIMEOUT_SECS)] = 0


class Message(msgspec.Struct, gc=False):
    message_id: str
    #: The stored value as JSON (see ``payloads``), embedded without a decode/encode round.
    payload: msgspec.Raw
    #: RFC 3339 with milliseconds and ``+00:00``, as in the seed.
    time: str


class ConsumeResponse(msgspec.Struct, gc=False):
    messages: list[Message]


class PublishResponse(msgspec.Struct, gc=False):
    message_id: str


class BatchPublishRequest(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """``payloads`` as the seed's table names it; ``payload`` as its sample request sends it."""

    payloads: list[msgspec.Raw] | None = None
    payload: list[msgspec.Raw] | None = None


class BatchResult(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    message_id: str | None = None
    result: Literal["success", "error"]
    error: str | None = None


class BatchPublishResponse(msgspec.Struct, gc=False):
    is_partial_error: bool
    #: By the message's index in the request, as a string ("0", "1"...).
    message_ids: dict[str, BatchResult]
