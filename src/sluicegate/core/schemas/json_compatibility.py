"""JSON Schema compatibility: does a reader schema accept every document a writer accepts?

Deciding inclusion of JSON Schemas in general is out of reach; this is a sound subset in
the spirit of Confluent's checker. A change is compatible only if it provably keeps every
writer document valid for the reader. Soundness rests on one asymmetry: the writer may be
*over*-approximated (a constraint of the writer's that the checker cannot use is dropped,
so it stands for more documents than it accepts), the reader never is.

* The writer's ``anyOf``/``oneOf``/``allOf`` are multiplied out into alternatives, each a
  plain schema (``allOf`` parts and siblings merged into one; where two parts cannot be
  merged exactly, one is kept), and each alternative must fit the reader on its own. A
  ``type`` list is split per type where the reader offers branches.
* ``type``: the reader must allow every writer type (``integer`` fits in ``number``);
  ``TYPE_CHANGED`` when none overlap, ``TYPE_NARROWED`` otherwise.
* objects: a property the reader requires and the writer does not is
  ``REQUIRED_PROPERTY_ADDED``; a writer property the reader's closed content model has no
  place for is ``PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL``; a reader property a writer
  with an open content model may carry with any value is
  ``PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL`` (as in Confluent: close the writer or add the
  property to both); closing an open model is ``ADDITIONAL_PROPERTIES_REMOVED``. Each
  named property is compared under every subschema that applies to it (``properties``
  and matching ``patternProperties``, else ``additionalProperties``); unnamed ones
  region by region.
* bounds: ``minimum``/``maxLength``/``minItems``... may only widen; ``pattern``,
  ``multipleOf``, ``enum`` and ``const`` may not narrow. Only the bounds of the types the
  writer can produce matter.
* arrays: ``items`` (also the tuple forms of the schema's draft) recursively,
  ``uniqueItems`` may not be added.
* reader ``anyOf``: each writer alternative must fit some branch; reader ``oneOf``: it
  must fit one branch and be provably disjoint from the others (types, values, or a
  required property whose values differ); reader ``allOf``: it must fit every part;
  reader ``not``: the writer must be disjoint from it, or exclude at least as much.
* A writer that allows finitely many values (``enum``, ``const``, ``null``, ``boolean``)
  is compatible whenever the reader's own validator accepts each of them.
* ``$ref`` is followed (inside the schema and into references, each relative to its own
  document); recursion through a property or item is assumed compatible while it is
  being checked (instances are finite), a cycle through nothing else is refused.
* Work is bounded: an unchanged part is compatible at once, a writer too large to
  multiply out is taken one level at a time, and past ``_MAX_COMPARISONS`` steps (or
  Python's recursion limit) the answer is ``SCHEMAS_TOO_COMPLEX``, incompatible.
* Any other constraining keyword (``if``, ``dependencies``, ``propertyNames``...) may be
  dropped by the reader; one the reader adds or changes must be the writer's own (same
  value, or for ``if``/``then``/``else`` and ``dependencies`` a part of it), or, for
  ``propertyNames``, provably accept every name the writer allows; otherwise it is
  ``UNSUPPORTED_KEYWORD_CHANGED``. Annotations (``title``, ``description``, ``default``,
  ``format``...) never matter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from sluicegate.core.schemas.json_schema import JsonSchema
from sluicegate.core.schemas.json_schema_nodes import (
    ANNOTATIONS,
    ARRAY_BOUNDS,
    COMBINATORS,
    ITEM_KEYWORDS,
    LOWER_BOUNDS,
    NUMBER_BOUNDS,
    OBJECT_BOUNDS,
    STRING_BOUNDS,
    SchemaNodes,
    accepts_anything,
    as_list,
    escape,
    is_number,
    is_positive_integer,
    json_equal,
    mapping,
    strings,
    type_meet,
    types_of,
    walk,
)

__all__ = ["read_errors"]

_MODELLED = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        *NUMBER_BOUNDS,
        *STRING_BOUNDS,
        *ARRAY_BOUNDS,
        *OBJECT_BOUNDS,
        *ITEM_KEYWORDS,
        "multipleOf",
        "pattern",
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "uniqueItems",
        *COMBINATORS,
        "not",
    }
)
#: Keywords that constrain only objects or only arrays (others: every type).
_OBJECT_ONLY = frozenset(
    {"propertyNames", "dependencies", "dependentRequired", "dependentSchemas"}
    | {"unevaluatedProperties"}
)
_ARRAY_ONLY = frozenset({"contains", "minContains", "maxContains", "unevaluatedItems"})
#: A writer of any name: property names are strings.
_ANY_NAME: dict[str, Any] = {"type": "string"}


def read_errors(reader: JsonSchema, writer: JsonSchema) -> list[str]:
    """Why a document valid for ``writer`` might be invalid for ``reader``; empty if none."""
    checker = _Checker(SchemaNodes(reader, reading=True), SchemaNodes(writer, reading=False))
    try:
        checker.check(reader.document, writer.document, "")
    except RecursionError:
        return [f"SCHEMAS_TOO_COMPLEX at #: {_TOO_DEEP}"]
    if checker.exhausted:
        return [f"SCHEMAS_TOO_COMPLEX at #: {_TOO_COMPLEX}"]
    return list(dict.fromkeys(checker.errors))


class _Work:
    """What a checker and its mirror (the sides swapped, for ``not``) share."""

    def __init__(self) -> None:
        #: Properties and items descended into, on the way to the current comparison.
        self.depth = 0
        #: Comparisons left: combinators nest into exponential work, and a registry must
        #: answer; past the budget the answer is "incompatible".
        self.budget = _MAX_COMPARISONS
        #: Whether the answer being worked out relied on a comparison in progress (or on
        #: the budget), so it holds only where it was asked.
        self.contextual = False


class _Checker:
    def __init__(
        self, reader: SchemaNodes, writer: SchemaNodes, mirror: _Checker | None = None
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._same_documents = reader.canonical == writer.canonical
        self._mirror = mirror
        self._work: _Work = mirror._work if mirror else _Work()
        #: Pairs being checked, with the depth they were entered at: meeting one again
        #: deeper down is a recursion on finite documents (assumed to hold); at the same
        #: depth it is a cycle with no end.
        self._in_progress: dict[tuple[int, int], int] = {}
        #: Answers of ``accepts`` that relied on nothing in progress, to reuse anywhere.
        self._known: dict[tuple[int, int], bool] = {}
        self.errors: list[str] = []

    def check(self, reader: Any, writer: Any, path: str) -> None:
        """Add why ``reader`` may refuse a document ``writer`` accepts to the errors."""
        reader = self._reader.resolve(reader)
        writer = self._writer.resolve(writer)
        if writer is False or accepts_anything(reader):
            return
        if reader is False:
            self._error("TYPE_NARROWED", path, "the reader accepts no value here")
            return
        if self._identical(reader, writer):
            return
        self._work.budget -= 1
        if self.exhausted:
            self._work.contextual = True
            return
        pair = (id(reader), id(writer))
        entered = self._in_progress.get(pair)
        if entered is not None:
            self._work.contextual = True
            if entered == self._work.depth:
                self._error("UNSUPPORTED_KEYWORD_CHANGED", f"{path}/$ref", _CYCLE)
            return
        self._in_progress[pair] = self._work.depth
        try:
            for label, alternative in self._writer.alternatives(writer):
                # An alternative still holding combinators was too large to multiply out
                # at once: it is checked as a writer of its own.
                plain = COMBINATORS.isdisjoint(alternative)
                compare = self._compare if plain else self.check
                errors = self._trial(compare, reader, alternative, path)
                suffix = f" (writer alternative {label})" if label else ""
                self.errors.extend(f"{error}{suffix}" for error in errors)
        finally:
            del self._in_progress[pair]

    @property
    def exhausted(self) -> bool:
        """Whether the comparison ran past its budget (and so proved nothing)."""
        return self._work.budget < 0

    def _identical(self, reader: dict[str, Any], writer: dict[str, Any]) -> bool:
        """Whether the two nodes are the same schema, read the same way (an unchanged part
        of a schema is compatible however complex it is)."""
        if self._reader.dialect is not self._writer.dialect or not json_equal(reader, writer):
            return False
        references = (node.keys() & _REFERENCES for node in walk(reader) if isinstance(node, dict))
        used = set().union(*references)
        return not used or (self._same_documents and used == {"$ref"})

    def accepts(self, reader: Any, writer: Any) -> bool:
        """Whether ``reader`` provably accepts every document ``writer`` does."""
        key = (id(reader), id(writer))
        if key in self._known:
            return self._known[key]
        work = self._work
        outer, work.contextual = work.contextual, False
        accepted = not self._trial(self.check, reader, writer, "")
        if not work.contextual:
            self._known[key] = accepted
        work.contextual = outer or work.contextual
        return accepted

    def _trial(self, run: Callable[..., None], *args: Any) -> list[str]:
        """The errors ``run(*args)`` finds, kept apart from this checker's."""
        saved, self.errors = self.errors, []
        try:
            run(*args)
            return self.errors
        finally:
            self.errors = saved

    def _descend(self, reader: Any, writer: Any, path: str) -> None:
        self._work.depth += 1
        try:
            self.check(reader, writer, path)
        finally:
            self._work.depth -= 1

    def _compare(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        """``reader`` against one plain writer alternative."""
        errors = self._trial(self._compare_structure, reader, writer, path)
        if errors:
            # The rules above are sufficient, not necessary; a writer of a few values is
            # decided exactly by asking the reader's validator about each.
            values = _finite_values(writer)
            if values is None or not all(
                self._reader.accepts_value(reader, value) is True for value in values
            ):
                self.errors.extend(errors)

    def _compare_structure(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        writer_types = types_of(writer)

        def produces(*kinds: str) -> bool:
            return writer_types is None or not writer_types.isdisjoint(kinds)

        self._types(reader, writer_types, path)
        self._values(reader, writer, path)
        if produces("number", "integer"):
            self._bounds(reader, writer, path, NUMBER_BOUNDS)
            self._multiple_of(reader, writer, path)
        if produces("string"):
            self._bounds(reader, writer, path, STRING_BOUNDS)
            if "pattern" in reader and reader["pattern"] != writer.get("pattern"):
                self._error(
                    "PATTERN_CHANGED",
                    f"{path}/pattern",
                    f"pattern {reader['pattern']!r} differs from the writer's "
                    f"{writer.get('pattern', 'absent')!r}",
                )
        if produces("array"):
            self._bounds(reader, writer, path, ARRAY_BOUNDS)
            self._array(reader, writer, path)
        if produces("object"):
            self._bounds(reader, writer, path, OBJECT_BOUNDS)
            self._object(reader, writer, path)
        self._combinators(reader, writer, path)
        self._unmodelled(reader, writer, path, produces)

    # -- types, values, bounds -----------------------------------------------------------

    def _types(self, reader: dict[str, Any], writer_types: set[str] | None, path: str) -> None:
        reader_types = types_of(reader)
        if reader_types is None:
            return
        if writer_types is None:
            self._error(
                "TYPE_NARROWED",
                f"{path}/type",
                f"the reader allows only {_names(reader_types)}; the writer allows any type",
            )
            return
        missing = {
            kind
            for kind in writer_types
            if kind not in reader_types and not (kind == "integer" and "number" in reader_types)
        }
        if not missing:
            return
        if missing == writer_types:
            self._error(
                "TYPE_CHANGED",
                f"{path}/type",
                f"type changed from {_names(writer_types)} to {_names(reader_types)}",
            )
        else:
            self._error(
                "TYPE_NARROWED",
                f"{path}/type",
                f"type {_names(missing)} is no longer allowed (now {_names(reader_types)})",
            )

    def _values(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        for keyword in ("const", "enum"):
            if keyword not in reader:
                continue
            allowed = [reader["const"]] if keyword == "const" else as_list(reader["enum"])
            produced = _finite_values(writer)
            if produced is None:
                self._error(
                    "ENUM_NARROWED",
                    f"{path}/{keyword}",
                    "the reader restricts values the writer does not",
                )
                continue
            missing = [v for v in produced if not any(json_equal(v, a) for a in allowed)]
            if missing:
                self._error(
                    "ENUM_NARROWED",
                    f"{path}/{keyword}",
                    f"values {json.dumps(missing)} are no longer allowed",
                )

    def _bounds(
        self,
        reader: dict[str, Any],
        writer: dict[str, Any],
        path: str,
        keywords: tuple[str, ...],
    ) -> None:
        for keyword in keywords:
            if keyword not in reader:
                continue
            mine, theirs = reader[keyword], writer.get(keyword)
            if is_number(mine) and is_number(theirs):
                tightened = mine > theirs if keyword in LOWER_BOUNDS else mine < theirs
            else:
                tightened = not json_equal(mine, theirs)  # draft 4's boolean flags
            if tightened:
                self._error(
                    f"{_snake(keyword)}_NARROWED",
                    f"{path}/{keyword}",
                    f"{keyword} is {mine!r} for the reader, "
                    f"{writer.get(keyword, 'absent')!r} for the writer",
                )

    def _multiple_of(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        if "multipleOf" not in reader:
            return
        mine, theirs = reader["multipleOf"], writer.get("multipleOf")
        # Only exact arithmetic is trusted: with floats, x % 0.3 == 0 does not make
        # x % 0.1 == 0 in the validator's arithmetic.
        if json_equal(mine, theirs) or (
            is_positive_integer(mine) and is_positive_integer(theirs) and theirs % mine == 0
        ):
            return
        self._error(
            "MULTIPLE_OF_CHANGED",
            f"{path}/multipleOf",
            f"multipleOf {mine!r} does not divide the writer's "
            f"{writer.get('multipleOf', 'absent')!r}",
        )

    # -- objects -------------------------------------------------------------------------

    def _object(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        reader_required = strings(reader.get("required"))
        writer_required = strings(writer.get("required"))
        for name in sorted(reader_required - writer_required):
            self._error(
                "REQUIRED_PROPERTY_ADDED",
                f"{path}/required",
                f"property {name!r} is required by the reader but not by the writer",
            )
        named = {
            *mapping(reader.get("properties")),
            *mapping(writer.get("properties")),
            *reader_required,
            *writer_required,
        }
        for name in sorted(named):
            self._property(reader, writer, name, path)
        self._unnamed_properties(reader, writer, path)

    def _property(
        self, reader: dict[str, Any], writer: dict[str, Any], name: str, path: str
    ) -> None:
        if self._writer.never_has(writer, name):
            return
        produced = self._writer.meet(self._writer.applicable(writer, name))
        declared = name in mapping(writer.get("properties"))
        parts = self._reader.named_parts(reader, name) or [
            ("additionalProperties", reader.get("additionalProperties", True))
        ]
        for where, part in parts:
            where = f"{path}/{where}"
            part = self._reader.resolve(part)
            if part is False and declared:
                self._error(
                    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                    f"{path}/properties/{escape(name)}",
                    f"property {name!r} of the writer is not allowed by the reader's closed "
                    "content model",
                )
            elif (
                not declared
                and accepts_anything(self._writer.resolve(produced))
                and not accepts_anything(part)
            ):
                self._error(
                    "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                    where,
                    f"property {name!r} is new in the reader and the writer's open content "
                    "model may carry it with any value",
                )
            else:
                self._descend(part, produced, where)

    def _unnamed_properties(
        self, reader: dict[str, Any], writer: dict[str, Any], path: str
    ) -> None:
        """Properties neither side names: compared region by region. A name may match
        patterns of the writer's the checker cannot relate to the reader's, so every
        writer region it might fall in must fit (unless the pattern is literally the same)."""
        reader_patterns = mapping(reader.get("patternProperties"))
        writer_patterns = mapping(writer.get("patternProperties"))
        writer_rest = writer.get("additionalProperties", True)
        for pattern, schema in reader_patterns.items():
            where = f"{path}/patternProperties/{escape(pattern)}"
            if pattern in writer_patterns:
                self._descend(schema, writer_patterns[pattern], where)
                continue
            for source in (*writer_patterns.values(), writer_rest):
                self._descend(schema, source, where)
        reader_rest = self._reader.resolve(reader.get("additionalProperties", True))
        sources = [
            writer_rest,
            *(s for p, s in writer_patterns.items() if p not in reader_patterns),
        ]
        for source in sources:
            if self._writer.resolve(source) is False:
                continue
            if reader_rest is False:
                self._error(
                    "ADDITIONAL_PROPERTIES_REMOVED",
                    f"{path}/additionalProperties",
                    "the reader closes a content model the writer leaves open",
                )
                return
            self._descend(reader_rest, source, f"{path}/additionalProperties")

    # -- arrays --------------------------------------------------------------------------

    def _array(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        if reader.get("uniqueItems") is True and writer.get("uniqueItems") is not True:
            self._error(
                "UNIQUE_ITEMS_ADDED", f"{path}/uniqueItems", "the reader requires unique items"
            )
        reader_tuple, reader_rest = self._reader.item_schemas(reader)
        writer_tuple, writer_rest = self._writer.item_schemas(writer)
        positions = max(len(reader_tuple), len(writer_tuple))
        # Positions past the writer's maxItems never hold an item.
        longest = writer["maxItems"] if is_number(writer.get("maxItems")) else math.inf
        present = min(positions, math.floor(longest)) if longest < positions else positions
        for index in range(present):
            self._descend(
                reader_tuple[index] if index < len(reader_tuple) else reader_rest,
                writer_tuple[index] if index < len(writer_tuple) else writer_rest,
                f"{path}/items/{index}" if reader_tuple else f"{path}/items",
            )
        if longest > positions:
            self._descend(reader_rest, writer_rest, f"{path}/items")

    # -- the reader's combinators --------------------------------------------------------

    def _combinators(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        written = id(reader) not in self._reader.from_ref
        for index, part in enumerate(as_list(reader.get("allOf"))):
            self.check(part, writer, f"{path}/allOf/{index}" if written else path)
        for keyword in ("anyOf", "oneOf"):
            if isinstance(reader.get(keyword), list):
                self._alternatives(keyword, reader[keyword], writer, path)
        if "not" in reader and not self._disjoint(writer, reader["not"]):
            if "not" not in writer:
                self._error("NOT_ADDED", f"{path}/not", "the reader adds a 'not' exclusion")
            # Excluding less is fine: the writer's excluded set must hold the reader's.
            elif not self._swapped().accepts(writer["not"], reader["not"]):
                self._error(
                    "NOT_CHANGED", f"{path}/not", "the reader excludes values the writer allows"
                )

    def _swapped(self) -> _Checker:
        """The checker with the writer reading the reader's documents (made once, so that
        a ``not`` inside a ``not`` comes back to this one and its comparisons in progress)."""
        if self._mirror is None:
            self._mirror = _Checker(
                SchemaNodes(self._writer.schema, reading=True),
                SchemaNodes(self._reader.schema, reading=False),
                mirror=self,
            )
        return self._mirror

    def _alternatives(
        self, keyword: str, branches: list[Any], writer: dict[str, Any], path: str
    ) -> None:
        """Each of the writer's types must fit one branch (``oneOf``: and no other)."""
        for kind, part in self._by_type(writer):
            what = f"the writer's {kind} documents" if kind else "the writer's documents"
            # anyOf needs one branch that fits (the first will do); oneOf, each that fits.
            fits = (i for i, branch in enumerate(branches) if self.accepts(branch, part))
            first = next(fits, None)
            if first is None:
                self._error(
                    "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                    f"{path}/{keyword}",
                    f"no {keyword} branch of the reader accepts {what}",
                )
            elif keyword == "oneOf" and not any(
                all(self._disjoint(part, other) for j, other in enumerate(branches) if j != i)
                for i in (first, *fits)
            ):
                self._error(
                    "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                    f"{path}/oneOf",
                    f"{what} may match more than one oneOf branch of the reader",
                )

    def _by_type(self, writer: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        kinds = types_of(writer)
        if kinds is None or len(kinds) == 1:
            return [("", writer)]
        return [
            (
                kind,
                self._writer.derive(("type", id(writer), kind), {**writer, "type": kind}, writer),
            )
            for kind in sorted(kinds)
        ]

    def _disjoint(self, writer: dict[str, Any], other: Any) -> bool:
        """Whether no document of the plain ``writer`` is accepted by ``other`` (a reader
        node), provably: by types, by values, or by a required property's values."""
        other = self._reader.resolve(other)
        if other is False:
            return True
        values = _finite_values(writer)
        if values is not None and all(
            self._reader.accepts_value(other, v) is False for v in values
        ):
            return True
        writer_types, other_types = types_of(writer), types_of(other)
        if writer_types and other_types and not type_meet(writer_types, other_types):
            return True
        if writer_types != {"object"}:
            return False
        other_properties = mapping(other.get("properties"))
        for name in strings(writer.get("required")) & set(other_properties):
            produced = [
                self._writer.resolve(part) for part in self._writer.applicable(writer, name)
            ]
            for part in produced:
                values = _finite_values(part) if isinstance(part, dict) else None
                if values is not None and all(
                    self._reader.accepts_value(other_properties[name], v) is False for v in values
                ):
                    return True
        return False

    # -- keywords the checker does not model ----------------------------------------------

    def _unmodelled(
        self,
        reader: dict[str, Any],
        writer: dict[str, Any],
        path: str,
        produces: Callable[..., bool],
    ) -> None:
        for keyword in sorted(reader):
            if keyword in ANNOTATIONS or keyword in _MODELLED or keyword in ("then", "else"):
                continue
            if keyword in _OBJECT_ONLY and not produces("object"):
                continue
            if keyword in _ARRAY_ONLY and not produces("array"):
                continue
            if keyword != "if" and self._same(reader, writer, keyword):
                continue
            if self._implied(reader, writer, keyword):
                continue
            self._error(
                "UNSUPPORTED_KEYWORD_CHANGED",
                f"{path}/{keyword}",
                f"keyword {keyword!r} changed; changes to it are treated as incompatible",
            )

    def _same(self, reader: dict[str, Any], writer: dict[str, Any], keyword: str) -> bool:
        """Whether the writer has the reader's constraint ``keyword`` itself."""
        if keyword in _CONTEXTUAL:
            # What these leave to check depends on the keywords beside them.
            return accepts_anything(self._reader.resolve(reader[keyword]))
        if keyword not in writer:
            return False
        if keyword in _REFERENCES:
            return self._same_documents and json_equal(reader[keyword], writer[keyword])
        return self._same_value(reader[keyword], writer[keyword])

    def _same_value(self, mine: Any, theirs: Any) -> bool:
        """Equal constraints; with a reference inside, only if the documents it points into
        are the same too."""
        if not json_equal(mine, theirs):
            return False
        return self._same_documents or not any(
            isinstance(node, dict) and not node.keys().isdisjoint(_REFERENCES)
            for node in walk(mine)
        )

    def _implied(self, reader: dict[str, Any], writer: dict[str, Any], keyword: str) -> bool:
        """Whether the reader's ``keyword`` is provably met by every writer document."""
        if keyword == "if":
            # (if → then) ∧ (¬if → else) under the writer's own condition: each half
            # must be one the writer's implies.
            return self._same(reader, writer, "if") and all(
                part not in reader or (part in writer and self.accepts(reader[part], writer[part]))
                for part in ("then", "else")
            )
        if keyword in ("dependencies", "dependentRequired", "dependentSchemas"):
            return all(
                self._dependency_met(writer, keyword, trigger, needs)
                for trigger, needs in mapping(reader[keyword]).items()
            )
        if keyword == "propertyNames":
            names = self._writer.names(writer)
            if names is not None:
                return all(
                    self._reader.accepts_value(reader[keyword], name) is True for name in names
                )
            source = writer.get("propertyNames")
            produced = _ANY_NAME if source is None else self._writer.meet([_ANY_NAME, source])
            return self.accepts(reader[keyword], produced)
        return False

    def _dependency_met(
        self, writer: dict[str, Any], keyword: str, trigger: str, needs: Any
    ) -> bool:
        if self._writer.never_has(writer, trigger):
            return True
        theirs = mapping(writer.get(keyword)).get(trigger)
        if isinstance(needs, list):
            # Property dependencies: each name must be required by the writer already,
            # or named by its own dependency on the same property.
            return set(strings(needs)) <= strings(writer.get("required")) | strings(theirs)
        if accepts_anything(self._reader.resolve(needs)):
            return True
        return theirs is not None and self._same_value(needs, theirs)

    def _error(self, kind: str, path: str, description: str) -> None:
        self.errors.append(f"{kind} at #{path}: {description}")


_REFERENCES = frozenset({"$ref", "$dynamicRef", "$recursiveRef"})
_CONTEXTUAL = frozenset({"unevaluatedProperties", "unevaluatedItems"})
_MAX_COMPARISONS = 10_000
_TOO_COMPLEX = f"comparing needs more than {_MAX_COMPARISONS} steps; treated as incompatible"
_TOO_DEEP = "nested too deeply to compare; treated as incompatible"
_CYCLE = "a $ref cycle that passes through no property or item cannot be decided"


def _finite_values(schema: dict[str, Any]) -> list[Any] | None:
    """Every value ``schema`` can accept, if it can only accept a few; else ``None``.
    Values the schema's ``type`` excludes are left out (a value kept needlessly only
    makes the check stricter)."""
    if "const" in schema:
        values = [schema["const"]]
        if "enum" in schema:
            values = [v for v in values if any(json_equal(v, e) for e in as_list(schema["enum"]))]
    elif isinstance(schema.get("enum"), list):
        values = list(schema["enum"])
    else:
        kinds = types_of(schema)
        if kinds is None or not kinds <= {"null", "boolean"}:
            return None
        values = [
            *([None] if "null" in kinds else []),
            *([False, True] if "boolean" in kinds else []),
        ]
    kinds = types_of(schema)
    if kinds is None:
        return values
    return [v for v in values if type_meet(_json_types(v), kinds)]


def _json_types(value: Any) -> set[str]:
    """The JSON Schema types ``value`` belongs to (``1.0`` is an integer, as in draft 6+)."""
    if value is None:
        return {"null"}
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"integer", "number"} if value.is_integer() else {"number"}
    if isinstance(value, str):
        return {"string"}
    if isinstance(value, list):
        return {"array"}
    return {"object"}


def _names(kinds: set[str]) -> str:
    return ", ".join(sorted(kinds))


def _snake(keyword: str) -> str:
    return "".join(f"_{c}" if c.isupper() else c.upper() for c in keyword)
