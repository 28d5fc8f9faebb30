"""Bodies of the clients and keys admin API."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["ClientCreate", "ClientOut", "ClientUpdate", "KeyCreate", "KeyOut", "NewKeyOut"]


class ClientUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A client's permissions; each list holds exact names or glob patterns."""

    produce: list[str] = msgspec.field(default_factory=list)
    consume: list[str] = msgspec.field(default_factory=list)
    admin: list[str] = msgspec.field(default_factory=list)
    ce_sources: list[str] = msgspec.field(default_factory=list)
    ce_produce_types: list[str] = msgspec.field(default_factory=list)
    ce_consume_types: list[str] = msgspec.field(default_factory=list)
    #: Deliveries after which an unconfirmed event goes to the dead stream (0: off).
    ce_max_deliveries: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    certificate_subjects: list[str] = msgspec.field(default_factory=list)


# Checked by the client store, with messages that name the field; only described here.
ClientName = Annotated[
    str,
    msgspec.Meta(
        description="1-128 characters of [A-Za-z0-9._@:+-], starting with a letter or digit",
        extra_json_schema={"pattern": r"^[A-Za-z0-9][A-Za-z0-9._@:+\-]{0,127}$"},
    ),
]


class ClientCreate(ClientUpdate, kw_only=True, forbid_unknown_fields=True):
    name: ClientName


class ClientOut(msgspec.Struct, kw_only=True):
    name: str
    #: ``config`` (from the config file, read-only here) or ``api``.
    origin: str
    #: RFC 3339; ``None`` for clients from the config file.
    created_at: str | None
    produce: list[str]
    consume: list[str]
    admin: list[str]
    ce_sources: list[str]
    ce_produce_types: list[str]
    ce_consume_types: list[str]
    ce_max_deliveries: int
    certificate_subjects: list[str]
    active_keys: int


class KeyCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """When the key stops working: an RFC 3339 time or seconds from now; neither: never."""

    expires_at: Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})] | None = (
        None
    )
    expires_in: Annotated[float, msgspec.Meta(extra_json_schema={"exclusiveMinimum": 0})] | None = (
        None
    )


class KeyOut(msgspec.Struct, kw_only=True):
    id: str
    client: str
    #: The key's first characters, to recognise it.
    prefix: str
    #: ``active``, ``expired`` or ``revoked``.
    status: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class NewKeyOut(KeyOut, kw_only=True):
    #: The key itself: shown in this response only, never stored or shown again.
    key: str

    def __repr__(self) -> str:
        return f"NewKeyOut(id={self.id!r}, client={self.client!r}, key='***')"
