"""Principals: who is asking, and what they may do.

A principal is a named client with permissions. Topic permissions are three lists of
patterns (produce, consume, admin); CloudEvents adds the sources and types a producer
may use and the types a consumer receives. One ``Principal`` object is built per client
version and shared by all of its requests, so patterns are compiled once; decisions for
glob patterns are memoized in one bounded LRU shared by all principals.
"""

from __future__ import annotations

import functools
import re
from typing import Literal

import msgspec

from sluicegate.core.auth.patterns import PatternSet, validate_pattern
from sluicegate.errors import BadRequest, Forbidden

__all__ = [
    "ANONYMOUS",
    "MAX_DELIVERIES",
    "Action",
    "Permissions",
    "Principal",
    "validate_client_name",
]

Action = Literal["produce", "consume", "admin"]

ANONYMOUS = "anonymous"

#: Client names appear in URLs and JWT claims (``sub`` is often an e-mail or a UUID).
_CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+\-]{0,127}")


def validate_client_name(name: str) -> str:
    """Return ``name`` if it is a valid client name, else raise ``BadRequest``."""
    if not isinstance(name, str) or _CLIENT_NAME.fullmatch(name) is None:
        raise BadRequest(
            f"invalid client name {str(name)[:140]!r}: expected 1-128 characters of "
            "[A-Za-z0-9._@:+-], starting with a letter or digit"
        )
    return name


#: The largest ``max_deliveries`` a client or a consumer group may set.
MAX_DELIVERIES = 1000

#: Decisions remembered across all principals; bounds memory however many names clients try.
_DECISION_CACHE_SIZE = 65_536

_VERBS: dict[Action, str] = {
    "produce": "produce to",
    "consume": "consume from",
    "admin": "administer",
}


class Permissions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a client may do; every list holds exact names or glob patterns."""

    produce: list[str] = msgspec.field(default_factory=list)
    consume: list[str] = msgspec.field(default_factory=list)
    admin: list[str] = msgspec.field(default_factory=list)
    #: CloudEvents: ``source`` values this client may produce with.
    ce_sources: list[str] = msgspec.field(default_factory=list)
    #: CloudEvents: event ``type`` values this client may produce.
    ce_produce_types: list[str] = msgspec.field(default_factory=list)
    #: CloudEvents: event ``type`` values this client receives as a consumer.
    ce_consume_types: list[str] = msgspec.field(default_factory=list)
    #: CloudEvents: deliveries after which an unconfirmed event is dead-lettered (0: off).
    ce_max_deliveries: int = 0

    def validate(self) -> Permissions:
        """Return self if every pattern is usable, else raise ``BadRequest`` naming the list."""
        if not 0 <= self.ce_max_deliveries <= MAX_DELIVERIES:
            raise BadRequest(
                f"ce_max_deliveries must be 0 (off) to {MAX_DELIVERIES}, "
                f"got {self.ce_max_deliveries}",
                field="ce_max_deliveries",
            )
        for field in self.__struct_fields__:
            if field == "ce_max_deliveries":
                continue
            for pattern in getattr(self, field):
                try:
                    validate_pattern(pattern)
                except BadRequest as exc:
                    raise BadRequest(f"{field}: {exc.message}", field=field) from None
        return self

    @classmethod
    def everything(cls) -> Permissions:
        """Every permission on every name (the bootstrap admin, ``--no-auth`` mode)."""
        return cls(
            produce=["*"],
            consume=["*"],
            admin=["*"],
            ce_sources=["*"],
            ce_produce_types=["*"],
            ce_consume_types=["*"],
        )


@functools.lru_cache(maxsize=_DECISION_CACHE_SIZE)
def _decide(patterns: PatternSet, name: str) -> bool:
    return patterns.matches(name)


class Principal:
    """An authenticated client. ``require*`` raise ``Forbidden``; ``allows``/``may*`` answer."""

    __slots__ = ("_sets", "name", "permissions")

    def __init__(self, name: str, permissions: Permissions) -> None:
        self.name = name
        self.permissions = permissions
        self._sets: dict[str, PatternSet] = {
            "produce": PatternSet(permissions.produce),
            "consume": PatternSet(permissions.consume),
            "admin": PatternSet(permissions.admin),
            "ce_sources": PatternSet(permissions.ce_sources),
            "ce_produce_types": PatternSet(permissions.ce_produce_types),
            "ce_consume_types": PatternSet(permissions.ce_consume_types),
        }

    @classmethod
    def anonymous(cls) -> Principal:
        """The principal of every request when authentication is switched off."""
        return cls(ANONYMOUS, Permissions.everything())

    def _check(self, kind: str, name: str) -> bool:
        patterns = self._sets[kind]
        if patterns.everything:
            return True
        if not patterns:
            return False
        return _decide(patterns, name)

    # -- topics ----------------------------------------------------------------------

    def allows(self, action: Action, topic: str) -> bool:
        """Whether this client may ``action`` (produce, consume, admin) on ``topic``."""
        return self._check(action, topic)

    def require(self, action: Action, topic: str) -> None:
        """Raise ``Forbidden`` unless this client may ``action`` on ``topic``."""
        # _check, inlined: every produce and consume request asks this.
        patterns = self._sets[action]
        if patterns.everything:
            return
        if not (patterns and _decide(patterns, topic)):
            raise Forbidden(
                f"client {self.name!r} may not {_VERBS[action]} topic {topic!r}",
                check=action,
            )

    def may_describe(self, topic: str) -> bool:
        """Whether this client may see ``topic`` listed and described: any permission on
        it will do, as Kafka's ``Describe`` is implied by its ``Read``, ``Write`` and
        ``Alter`` (a consumer may look at what it reads)."""
        return (
            self._check("admin", topic)
            or self._check("consume", topic)
            or self._check("produce", topic)
        )

    def require_describe(self, topic: str) -> None:
        """Raise ``Forbidden`` unless ``may_describe(topic)``."""
        if not self.may_describe(topic):
            raise Forbidden(
                f"client {self.name!r} may not describe topic {topic!r}: that takes the "
                "produce, consume or admin permission on it",
                check="describe",
            )

    def may_register_schema(self, subject: str) -> bool:
        """Whether this client may add a version to schema registry ``subject``: admin on
        the subject's name, or produce on the topic of a ``<topic>-key|value`` subject (a
        producer whose serializer registers its own schema). Every way into the registry
        asks this (its API, records v2's schemas given inline): a subject another strategy
        names (``<record>-value``, ``<topic>-<record>-value``) may be spelled as another
        topic's, whose contract a producer of this one must not change."""
        if self.allows("admin", subject):
            return True
        for suffix in ("-key", "-value"):
            if subject.endswith(suffix):
                return self.allows("produce", subject.removesuffix(suffix))
        return False

    def require_admin(self) -> None:
        """Raise ``Forbidden`` unless this client administers every topic (pattern ``*``)."""
        if not self._sets["admin"].everything:
            raise Forbidden(
                f"client {self.name!r} needs the admin permission on '*' for this operation",
                check="admin",
            )

    @property
    def is_admin(self) -> bool:
        """Whether this client administers every topic, which the admin API requires."""
        return self._sets["admin"].everything

    # -- CloudEvents -----------------------------------------------------------------

    def may_use_source(self, source: str) -> bool:
        """Whether this client may produce events with this ``source``."""
        return self._check("ce_sources", source)

    def require_source(self, source: str) -> None:
        """Raise ``Forbidden`` unless this client may produce events with ``source``."""
        if not self._check("ce_sources", source):
            raise Forbidden(
                f"client {self.name!r} may not produce events with source {source!r}",
                check="source",
            )

    def may_produce(self, source: str, event_type: str) -> bool:
        """``may_use_source(source) and may_produce_type(event_type)`` in one call, with
        ``_check`` inlined: a single event's produce asks both on every request."""
        sources = self._sets["ce_sources"]
        if not (sources.everything or (sources and _decide(sources, source))):
            return False
        types = self._sets["ce_produce_types"]
        return types.everything or bool(types and _decide(types, event_type))

    def may_produce_type(self, event_type: str) -> bool:
        """Whether this client may produce events of ``event_type``."""
        return self._check("ce_produce_types", event_type)

    def require_type(self, event_type: str) -> None:
        """Raise ``Forbidden`` unless this client may produce events of ``event_type``."""
        if not self._check("ce_produce_types", event_type):
            raise Forbidden(
                f"client {self.name!r} may not produce events of type {event_type!r}",
                check="type",
            )

    def consumes_type(self, event_type: str) -> bool:
        """Whether this client, as a consumer, receives events of ``event_type``."""
        return self._check("ce_consume_types", event_type)

    def __repr__(self) -> str:
        return f"Principal({self.name!r})"
