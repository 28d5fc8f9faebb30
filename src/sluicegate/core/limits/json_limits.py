"""Cheap shape checks on a raw JSON body before it is decoded.

A small body can still be expensive: ``[[[[...]]]]`` nested 30,000 deep, a hundred
thousand tiny keys, or one huge string. ``JsonLimits.check`` measures them on the raw
bytes with a few C-level passes (``replace``, ``translate``, ``count``) and no Python loop
per byte or per token, so it costs a fraction of decoding:

1. Drop escape sequences ``\\\\`` and ``\\"`` (only if there is a backslash at all), so
   every remaining ``"`` delimits a string.
2. Keep only ``" [ ] { } : ,``. In valid JSON a kept ``,``/``:``/bracket always stands
   between two strings, so ``""`` is exactly a string without structural characters
   inside; deleting every ``""`` leaves only the rare strings that do hold some, which a
   regular expression then removes. What is left is the structure.
3. Keys are the ``:`` of the structure; depth is the number of passes that delete the
   innermost ``[]`` pairs (``{}`` counted as ``[]``), stopped after ``max_depth + 1``.
4. A string can only be too long if the body is; only then does one regular expression
   look for a string of more than ``max_string_bytes``. Likewise a body with fewer
   opening brackets than ``max_depth`` and fewer colons than ``max_keys`` (counted, or
   bounded by its length) skips steps 2 and 3; both are counted in what step 2's one
   ``translate`` keeps, which steps 2 and 3 then reuse; a small body has them counted
   on its raw bytes first, and only a body those counts do not settle is translated.

A caller about to decode a large body into a type that bounds its depth (a batch of
records: an object, an array, objects of scalars) can ask ``bounded_at_depth`` first: the
strings and keys bounded as above, the depth left to the decoder, ``check`` run only if
the decode fails or those bounds do not hold, so that every refusal stays what it is.

Malformed JSON (unbalanced brackets, a string that never ends) is not this check's
business: it returns and leaves the error to the decoder, which reports it precisely.
"""

from __future__ import annotations

import re

from sluicegate.config import LimitSettings
from sluicegate.errors import BadRequest

__all__ = ["JsonLimits"]

_KEEP = b'"[]{}:,'
_NOT_KEPT = bytes(set(range(256)) - set(_KEEP))
_QUOTED = re.compile(rb'"[^"]*"')
_BRACKETS_ONLY = bytes.maketrans(b"{}", b"[]")
#: Bodies up to this size have their bounds counted on the raw bytes first. A
#: ``translate`` that deletes lays out a 256-entry table on every call, which costs
#: more than counting a small body three times over (callgrind); a body the raw counts
#: do not settle goes on to the one ``translate``, as a large one does at once.
_RAW_COUNT_BYTES = 8 * 1024


def _long_string_pattern(limit: int) -> re.Pattern[bytes]:
    # From the start, skip whole strings (pairs of quotes) lazily until one opens that
    # has more than ``limit`` bytes before its closing quote. Possessive runs: no backtracking.
    return re.compile(rb'\A(?:[^"]*+"[^"]*+")*?[^"]*+"[^"]{%d}' % (limit + 1))


class JsonLimits:
    """Limits on a JSON document's nesting depth, key count and string size."""

    __slots__ = ("_long_string", "max_depth", "max_keys", "max_string_bytes")

    def __init__(self, max_depth: int, max_keys: int, max_string_bytes: int) -> None:
        self.max_depth = max_depth
        self.max_keys = max_keys
        self.max_string_bytes = max_string_bytes
        self._long_string = _long_string_pattern(max_string_bytes)

    @classmethod
    def from_settings(cls, limits: LimitSettings) -> JsonLimits:
        """The limits ``limits.max_json_*`` describe."""
        return cls(limits.max_json_depth, limits.max_json_keys, limits.max_json_string_bytes)

    def check(self, raw: bytes) -> None:
        """Raise ``BadRequest`` naming the limit if ``raw`` exceeds one; otherwise return."""
        # Upper bounds first, strings included: depth is at most the number of opening
        # brackets, keys at most the number of colons and at most a quarter of the bytes
        # (the least a key takes is ``"":0``). Most bodies are within the limits by these
        # bounds alone, and too short to hold a long string, so they need no more work.
        size = len(raw)
        # Small bodies first, counted raw: brackets and colons inside strings are
        # counted too, so these are upper bounds all the same.
        if (
            size <= _RAW_COUNT_BYTES
            and size <= self.max_string_bytes + 2
            and raw.count(b"[") + raw.count(b"{") <= self.max_depth
            and (size < 4 * self.max_keys or raw.count(b":") <= self.max_keys)
        ):
            return
        # One pass over the body keeps the characters of step 2 (those inside strings too):
        # the bounds are counted in what it keeps, a fraction of the body, and when they do
        # not settle the question (a batch has more brackets than the depth limit) it is
        # step 2's first half already, unless escapes had to go first.
        kept = raw.translate(None, _NOT_KEPT)
        bounded = kept.count(b"[") + kept.count(b"{") <= self.max_depth and (
            size < 4 * self.max_keys or kept.count(b":") <= self.max_keys
        )
        if bounded and size <= self.max_string_bytes + 2:
            return
        # find, not ``in``: on Python 3.11 ``in`` formats and discards a TypeError first.
        escaped = raw.find(b"\\") >= 0
        if escaped:
            raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
        if len(raw) > self.max_string_bytes + 2 and self._long_string.match(raw):
            raise BadRequest(
                f"a JSON string exceeds the limit of {self.max_string_bytes} bytes",
                limit="max_json_string_bytes",
            )
        if bounded:
            return
        if escaped:
            kept = raw.translate(None, _NOT_KEPT)  # what is kept once escapes are gone
        structure = kept.replace(b'""', b"")
        if structure.find(b'"') >= 0:
            structure = _QUOTED.sub(b"", structure)
        keys = structure.count(b":")
        if keys > self.max_keys:
            raise BadRequest(
                f"the JSON document has {keys} keys; the limit is {self.max_keys}",
                limit="max_json_keys",
            )
        self._check_depth(structure)

    def bounded_at_depth(self, raw: bytes, depth: int) -> bool:
        """Whether ``raw`` is within every limit provided its document nests at most
        ``depth`` levels: ``check(raw)`` would then return. For a large body that a
        typed decoder is about to read: a document that decodes into a type whose
        documents nest at most ``depth`` levels is that deep at most, so when this is
        true, ``check`` is needed only if the decode fails (its errors come first).

        Counted as ``check`` bounds them before its structure pass, without it: strings
        by the body's size, keys by its colons (or by its size). A body this does not
        settle is for ``check`` at once, before it is decoded.
        """
        size = len(raw)
        return (
            depth <= self.max_depth
            and size <= self.max_string_bytes + 2
            and (size < 4 * self.max_keys or raw.count(b":") <= self.max_keys)
        )

    def _check_depth(self, structure: bytes) -> None:
        brackets = structure.translate(_BRACKETS_ONLY, b":,")
        depth = 0
        while brackets:
            inner = brackets.replace(b"[]", b"")
            if len(inner) == len(brackets):
                return  # unbalanced: malformed, the decoder reports it
            depth += 1
            if depth > self.max_depth:
                raise BadRequest(
                    f"the JSON document nests deeper than the limit of {self.max_depth} levels",
                    limit="max_json_depth",
                )
            brackets = inner
