"""Event types to topics.

Permissions on CloudEvents are by event ``type``; storage is by topic. Explicit routes
(``[[cloudevents.routes]]``: type patterns → topic, first match wins) let an operator
put related types in one topic; every other type gets its own topic by the default rule:

* ``<prefix><type>`` when that is a legal Kafka topic name (``ce.Organization.Event.Occurred``);
* otherwise the type with each character Kafka does not allow replaced by ``_``, cut to
  fit, plus ``-`` and 8 hex digits of the type's SHA-256 — so two different types never
  share a topic by accident (``ce.urn_a_b-1f2e3d4c``).

The rule is a pure function of the type: every gateway node maps alike, and a type keeps
its topic across restarts.
"""

from __future__ import annotations

import functools
import hashlib
import re

from sluicegate.config import CloudEventSettings
from sluicegate.core.auth.patterns import PatternSet
from sluicegate.core.topics import RESERVED_PREFIX, is_internal, validate_topic_name
from sluicegate.errors import BadRequest, ConfigError, InvalidTopicName

__all__ = ["TypeRouter"]

_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")
_ILLEGAL_CHAR = re.compile(r"[^a-zA-Z0-9._-]")
_MAX_TOPIC = 249
_MAX_TYPE = 1024


class TypeRouter:
    """Maps a CloudEvents ``type`` to the topic its events are stored in."""

    def __init__(self, settings: CloudEventSettings) -> None:
        self._prefix = settings.topic_prefix
        self._routes: list[tuple[PatternSet, str]] = []
        for index, route in enumerate(settings.routes):
            try:
                validate_topic_name(route.topic)
            except InvalidTopicName as exc:
                raise ConfigError(f"cloudevents.routes[{index}].topic", exc.message) from None
            if is_internal(route.topic):
                raise ConfigError(
                    f"cloudevents.routes[{index}].topic",
                    f"{route.topic!r} is an internal topic's name (names starting with "
                    f"{RESERVED_PREFIX!r} are Kafka's and the gateway's own)",
                )
            if not route.types:
                raise ConfigError(f"cloudevents.routes[{index}].types", "must not be empty")
            self._routes.append((PatternSet(route.types), route.topic))
        if self._prefix and not _LEGAL.fullmatch(self._prefix):
            raise ConfigError(
                "cloudevents.topic_prefix", "must be characters of [a-zA-Z0-9._-] only"
            )
        if is_internal(self._prefix):
            raise ConfigError(
                "cloudevents.topic_prefix",
                f"must not start with {RESERVED_PREFIX!r}: that names internal topics",
            )
        self.topic_for = functools.lru_cache(maxsize=65_536)(self._topic_for)

    def _topic_for(self, event_type: str) -> str:
        if not event_type:
            raise BadRequest("the event type must not be empty")
        if len(event_type) > _MAX_TYPE:
            raise BadRequest(f"the event type is longer than {_MAX_TYPE} characters")
        for patterns, topic in self._routes:
            if patterns.matches(event_type):
                return topic
        direct = self._prefix + event_type
        if is_internal(direct):
            # Only with an empty prefix: a type named like an internal topic has none.
            raise BadRequest(
                f"event type {event_type!r} would be stored in an internal topic (names "
                f"starting with {RESERVED_PREFIX!r}); route it to a topic of its own with "
                "[[cloudevents.routes]], or set cloudevents.topic_prefix"
            )
        if _LEGAL.fullmatch(event_type) and len(direct) <= _MAX_TOPIC and direct not in {".", ".."}:
            return direct
        digest = hashlib.sha256(event_type.encode()).hexdigest()[:8]
        room = _MAX_TOPIC - len(self._prefix) - len(digest) - 1
        return f"{self._prefix}{_ILLEGAL_CHAR.sub('_', event_type)[:room]}-{digest}"

    def route_topics(self) -> list[str]:
        """The topics of the explicit routes, in order."""
        return [topic for _, topic in self._routes]
