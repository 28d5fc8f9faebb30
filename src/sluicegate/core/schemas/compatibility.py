"""Compatibility levels, and the check a new schema must pass to follow earlier versions.

``BACKWARD``: the new schema reads data written with the previous version (consumers
upgrade first). ``FORWARD``: the previous version reads data written with the new one
(producers upgrade first). ``FULL``: both. The ``_TRANSITIVE`` levels check against
every live version instead of the latest only. ``NONE`` checks nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from sluicegate.core.schemas import avro_compatibility, json_compatibility
from sluicegate.core.schemas.avro import AvroSchema
from sluicegate.core.schemas.json_schema import JsonSchema
from sluicegate.core.schemas.model import ParsedSchema, Reason
from sluicegate.errors import Unprocessable

__all__ = ["CompatibilityLevel", "incompatibilities", "parse_level", "read_errors"]


class CompatibilityLevel(StrEnum):
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        """Whether every live version is checked, not only the latest."""
        return self.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        """Whether the new schema must read the old schemas' data."""
        return self.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """Whether the old schemas must read the new schema's data."""
        return self.startswith(("FORWARD", "FULL"))


def parse_level(value: object) -> CompatibilityLevel:
    """A level from its name in any case; ``Unprocessable`` (Confluent's 42203) otherwise."""
    if isinstance(value, str):
        try:
            return CompatibilityLevel(value.upper())
        except ValueError:
            pass
    raise Unprocessable(
        "Invalid compatibility level. Valid values are none, backward, forward, full, "
        "backward_transitive, forward_transitive, and full_transitive",
        reason=Reason.INVALID_COMPATIBILITY_LEVEL,
    )


def read_errors(reader: ParsedSchema, writer: ParsedSchema) -> list[str]:
    """Why ``reader`` cannot read (or accept) everything written with ``writer``."""
    if isinstance(reader, AvroSchema) and isinstance(writer, AvroSchema):
        return avro_compatibility.read_errors(reader, writer)
    if isinstance(reader, JsonSchema) and isinstance(writer, JsonSchema):
        return json_compatibility.read_errors(reader, writer)
    return [
        f"SCHEMA_TYPE_CHANGED: a {reader.schema_type} schema cannot read {writer.schema_type} data"
    ]


def incompatibilities(
    level: CompatibilityLevel,
    new: ParsedSchema,
    previous: Sequence[tuple[int, ParsedSchema]],
    *,
    all_versions: bool | None = None,
) -> list[str]:
    """Why ``new`` may not follow ``previous`` (``(version, schema)``, oldest first).

    Only the latest version is checked unless the level is transitive; ``all_versions``
    overrides that (the compatibility API names the versions to check itself).
    """
    if level is CompatibilityLevel.NONE or not previous:
        return []
    transitive = level.transitive if all_versions is None else all_versions
    targets = previous if transitive else previous[-1:]
    messages: list[str] = []
    for version, old in reversed(targets):
        if level.backward:
            messages.extend(
                f"{level}: the new schema cannot read data written with version {version}: {error}"
                for error in read_errors(new, old)
            )
        if level.forward:
            messages.extend(
                f"{level}: version {version} cannot read data written with the new schema: {error}"
                for error in read_errors(old, new)
            )
    return messages
