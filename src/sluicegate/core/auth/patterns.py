"""Name patterns in permissions: exact names and shell-style globs, compiled once.

``orders`` matches only ``orders``; ``orders.*`` matches ``orders.eu`` and ``orders.us.v2``;
``*`` matches everything; ``?`` one character and ``[ab]`` one of a set, as in ``fnmatch``.
Matching is case-sensitive, like Kafka topic names and CloudEvents attributes.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from sluicegate.errors import BadRequest

__all__ = ["MAX_PATTERN_LENGTH", "PatternSet", "validate_pattern"]

MAX_PATTERN_LENGTH = 512
_GLOB_CHARS = frozenset("*?[")


def validate_pattern(pattern: str) -> str:
    """Return ``pattern`` if it is usable in a permission, else raise ``BadRequest``."""
    if not isinstance(pattern, str) or not pattern:
        raise BadRequest("a pattern must be a non-empty string")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise BadRequest(f"a pattern may have at most {MAX_PATTERN_LENGTH} characters")
    if not pattern.isprintable() or any(ch.isspace() for ch in pattern):
        raise BadRequest(f"pattern {pattern!r} contains whitespace or control characters")
    return pattern


class PatternSet:
    """A list of patterns compiled into one set lookup and one regular expression."""

    __slots__ = ("_exact", "_regex", "everything", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: tuple[str, ...] = tuple(validate_pattern(p) for p in patterns)
        globs = [p for p in self.patterns if not _GLOB_CHARS.isdisjoint(p)]
        self._exact = frozenset(p for p in self.patterns if _GLOB_CHARS.isdisjoint(p))
        #: ``*`` alone grants every name: callers skip matching (and caching) entirely.
        self.everything = "*" in self.patterns
        self._regex = (
            re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs), re.DOTALL)
            if globs
            else None
        )

    def matches(self, name: str) -> bool:
        """Whether ``name`` is one of the exact names or matches one of the globs."""
        if self.everything or name in self._exact:
            return True
        return self._regex is not None and self._regex.match(name) is not None

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __repr__(self) -> str:
        return f"PatternSet({list(self.patterns)!r})"
