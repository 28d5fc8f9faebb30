"""One JSON Schema's nodes as the compatibility checker reads them: ``$ref`` followed in
the document it is written in, nodes merged (the parts of an ``allOf``) and multiplied out
(a writer's ``anyOf``/``oneOf``/``allOf`` as plain alternatives), single values asked of
the schema's own validator.

Merging may over-approximate (when two values cannot be merged exactly, one is kept), so
it serves the writer's side only, where allowing more documents keeps the check sound.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import jsonschema
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT7

from sluicegate.core.schemas.json_schema import JsonSchema

__all__ = [
    "ANNOTATIONS",
    "ARRAY_BOUNDS",
    "COMBINATORS",
    "CONDITIONAL",
    "ITEM_KEYWORDS",
    "LOWER_BOUNDS",
    "NUMBER_BOUNDS",
    "OBJECT_BOUNDS",
    "STRING_BOUNDS",
    "SchemaNodes",
    "accepts_anything",
    "as_list",
    "as_schema",
    "escape",
    "is_number",
    "is_positive_integer",
    "join",
    "json_equal",
    "mapping",
    "strings",
    "type_meet",
    "types_of",
    "walk",
]

ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "$id",
        "id",
        "$schema",
        "readOnly",
        "writeOnly",
        "deprecated",
        "format",
        "contentEncoding",
        "contentMediaType",
        "definitions",
        "$defs",
        "$anchor",
        "$vocabulary",
    }
)
COMBINATORS = frozenset({"allOf", "anyOf", "oneOf"})
NUMBER_BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
STRING_BOUNDS = ("minLength", "maxLength")
ARRAY_BOUNDS = ("minItems", "maxItems")
OBJECT_BOUNDS = ("minProperties", "maxProperties")
LOWER_BOUNDS = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"})
ITEM_KEYWORDS = ("items", "prefixItems", "additionalItems")
_ALL_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
#: Writer alternatives multiplied out at once, at most; past it, branches are taken whole
#: and multiplied out when compared (a bound on work).
_MAX_ALTERNATIVES = 32
_MAX_REFERENCE_HOPS = 32
CONDITIONAL = ("if", "then", "else")


class SchemaNodes:
    """One schema's documents, as the reader's or as the writer's side of a comparison:
    follows ``$ref``, merges and multiplies out nodes, and asks the schema's own validator
    about single values. Nodes it builds are kept, one per input, so that their identity
    is stable for the checker's cycle detection."""

    def __init__(self, schema: JsonSchema, *, reading: bool) -> None:
        self.schema = schema
        self.root = schema.document
        self.resources = schema.resources
        self.canonical = (schema.canonical, json.dumps(schema.resources, sort_keys=True))
        #: The draft the schema is read in (its validator class): the same keywords mean
        #: different things in two.
        self.dialect: type = jsonschema.validators.validator_for(
            self.root, default=jsonschema.Draft7Validator
        )
        legacy = {
            jsonschema.Draft3Validator,
            jsonschema.Draft4Validator,
            jsonschema.Draft6Validator,
            jsonschema.Draft7Validator,
        }
        #: From 2019-09 on, keywords beside ``$ref`` apply too (before, they are ignored).
        self.ref_siblings_apply = self.dialect not in legacy
        #: 2020-12 spells tuples ``prefixItems`` + ``items``; earlier drafts ``items`` +
        #: ``additionalItems``.
        self.prefix_items = self.dialect is jsonschema.Draft202012Validator
        #: What an unresolvable ``$ref`` stands for: nothing for the reader, anything for
        #: the writer, so that not knowing never makes a change look compatible.
        self._unknown: Any = not reading
        self._base: dict[int, str] = {}
        for name, document in self.resources.items():
            for node in walk(document):
                self._base[id(node)] = name
        self._derived: dict[tuple[Any, ...], Any] = {}
        #: Nodes standing for a ``$ref`` and its siblings (their ``allOf`` is not written).
        self.from_ref: set[int] = set()
        self._expanded: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        self._validators: dict[str, Any] = {}
        self._registry: Registry[Any] = Registry().with_resources(
            (name, Resource.from_contents(contents, default_specification=DRAFT7))
            for name, contents in self.resources.items()
        )
        text = "".join(self.canonical)
        self._dynamic = '"$dynamicRef"' in text or '"$recursiveRef"' in text

    # -- references ----------------------------------------------------------------------

    def resolve(self, node: Any) -> Any:
        """``node`` with ``$ref`` followed: ``False`` or a dict."""
        for _ in range(_MAX_REFERENCE_HOPS):
            node = as_schema(node)
            if not isinstance(node, dict) or not isinstance(node.get("$ref"), str):
                return node
            base = self._base.get(id(node), "")
            target = self._lookup(node["$ref"], base)
            if self.ref_siblings_apply and any(k not in ANNOTATIONS for k in node if k != "$ref"):
                siblings = {k: v for k, v in node.items() if k != "$ref"}
                combined = self.derive(("ref", id(node)), {"allOf": [target, siblings]}, node)
                self.from_ref.add(id(combined))
                return combined
            node = target
        return self._unknown

    def _lookup(self, ref: str, base: str) -> Any:
        name, _, pointer = ref.partition("#")
        if not name:
            document = self.resources.get(base, self.root) if base else self.root
        elif name in self.resources:
            document = self.resources[name]
        elif isinstance(self.root, dict) and name in (self.root.get("$id"), self.root.get("id")):
            document = self.root
        else:
            return self._unknown
        for raw in pointer.split("/")[1:]:
            token = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(document, dict) and token in document:
                document = document[token]
            elif isinstance(document, list) and token.isdigit() and int(token) < len(document):
                document = document[int(token)]
            else:
                return self._unknown
        return document

    def derive(self, key: tuple[Any, ...], node: Any, origin: Any) -> Any:
        """A node built from others, kept once per ``key``: the same inputs give the same
        object, so the checker's cycle detection sees recursion through derived nodes."""
        if key not in self._derived:
            self._derived[key] = node
            base = self._base.get(id(origin))
            if base is not None:
                self._base[id(node)] = base
        return self._derived[key]

    def meet(self, parts: list[Any]) -> Any:
        """A node for the documents every one of ``parts`` accepts."""
        resolved = [self.resolve(part) for part in parts]
        if any(node is False for node in resolved):
            return False
        parts = [
            part for part, node in zip(parts, resolved, strict=True) if not accepts_anything(node)
        ]
        if len(parts) <= 1:
            return parts[0] if parts else True
        return self.derive(("meet", *map(id, parts)), {"allOf": list(parts)}, parts[0])

    # -- single values -------------------------------------------------------------------

    def accepts_value(self, node: Any, value: Any) -> bool | None:
        """Whether the schema's validator accepts ``value`` at ``node``; ``None`` if unknown."""
        if self._dynamic:
            return None  # $dynamicRef depends on the path taken to the node
        base = self._base.get(id(node), "")
        if base not in self._validators:
            document = self.resources.get(base, self.root) if base else self.root
            self._validators[base] = jsonschema.validators.validator_for(
                document, default=self.dialect
            )(document, registry=self._registry)
        try:
            return bool(self._validators[base].evolve(schema=node).is_valid(value))
        except (Unresolvable, RecursionError, re.error):
            return None

    # -- the writer's alternatives -------------------------------------------------------

    def alternatives(self, node: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """Plain schemas (no combinators) whose union holds every document ``node`` accepts,
        each with where its choices came from (``""`` when ``node`` had none)."""
        if id(node) not in self._expanded:
            self._expanded[id(node)] = self._expand(node, set())
        return self._expanded[id(node)]

    def _expand(self, node: Any, active: set[int]) -> list[tuple[str, dict[str, Any]]]:
        node = self.resolve(node)
        if node is False:
            return []
        if id(node) in active:
            return [("", {})]  # a cycle with no descent: anything, an over-approximation
        if COMBINATORS.isdisjoint(node):
            plain = node  # itself, so that checking it again is seen as a cycle
        else:
            plain = {k: v for k, v in node.items() if k not in COMBINATORS}
        if "not" in plain and accepts_anything(self.resolve(plain["not"])):
            return []
        found: list[tuple[str, dict[str, Any]]] | None = [("", plain)]
        active.add(id(node))
        try:
            for index, part in enumerate(as_list(node.get("allOf"))):
                found = self._product(found, [(f"allOf/{index}", part)], active, choice=False)
            for keyword in ("anyOf", "oneOf"):
                branches = [(f"{keyword}/{i}", b) for i, b in enumerate(as_list(node.get(keyword)))]
                if branches:
                    found = self._product(found, branches, active, choice=True)
        finally:
            active.discard(id(node))
        return [("", plain)] if found is None else found

    def _product(
        self,
        found: list[tuple[str, dict[str, Any]]] | None,
        branches: list[tuple[str, Any]],
        active: set[int],
        *,
        choice: bool,
    ) -> list[tuple[str, dict[str, Any]]] | None:
        """``found`` intersected with the union of ``branches``: each branch multiplied out
        if that stays within bounds, else taken whole (its combinators left for later)."""
        if found is None:
            return None
        deep = [
            (join(where, label) if choice or label else "", option)
            for where, branch in branches
            for label, option in self._expand(branch, active)
        ]
        combined = self._combine(found, deep)
        if combined is None:
            whole = [(where if choice else "", self.resolve(branch)) for where, branch in branches]
            combined = self._combine(found, [(w, n) for w, n in whole if n is not False])
        return combined

    def _combine(
        self,
        found: list[tuple[str, dict[str, Any]]],
        options: list[tuple[str, dict[str, Any]]],
    ) -> list[tuple[str, dict[str, Any]]] | None:
        if len(found) * len(options) > _MAX_ALTERNATIVES:
            return None
        combined = []
        for label, alternative in found:
            for option_label, option in options:
                merged = self._merge(alternative, option)
                if merged is not None:
                    combined.append((", ".join(filter(None, (label, option_label))), merged))
        return combined

    def _merge(self, left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any] | None:
        """A plain schema holding every document both accept; ``None`` if none can exist."""
        merged = {k: v for k, v in left.items() if k not in (*CONDITIONAL, *ITEM_KEYWORDS)}
        for key, value in right.items():
            if key in CONDITIONAL or key in ITEM_KEYWORDS:
                continue
            if key not in merged or json_equal(merged[key], value):
                merged[key] = value
                continue
            combined = self._merge_keyword(key, merged[key], value, left, right)
            if combined is _EMPTY:
                return None
            if combined is _DROP:
                del merged[key]
            else:
                merged[key] = combined
        for keyword in ("exclusiveMinimum", "exclusiveMaximum"):
            # Draft 4's boolean flag qualifies its own part's bound: kept only beside it.
            bound = keyword.replace("exclusiveM", "m")
            flag = merged.get(keyword)
            if isinstance(flag, bool) and not any(
                json_equal(part.get(keyword), flag)
                and bound in part
                and json_equal(part[bound], merged.get(bound))
                for part in (left, right)
            ):
                del merged[keyword]
        merged.update(_merge_conditionals(left, right))
        merged.update(self._merge_items(left, right))
        if "type" in merged and not types_of(merged):
            return None
        return merged

    def _merge_keyword(
        self, key: str, mine: Any, theirs: Any, left: dict[str, Any], right: dict[str, Any]
    ) -> Any:
        if key == "type":
            kinds = type_meet(types_of(left) or set(_ALL_TYPES), types_of(right) or set(_ALL_TYPES))
            return sorted(kinds) if kinds else _EMPTY
        if key == "enum" and isinstance(mine, list) and isinstance(theirs, list):
            common = [v for v in mine if any(json_equal(v, w) for w in theirs)]
            return common if common else _EMPTY
        if key == "const":
            return _EMPTY
        if key == "required":
            return sorted(strings(mine) | strings(theirs))
        if key in ("properties", "patternProperties"):
            return self._merge_properties(key, left, right)
        if key in ("additionalProperties", "propertyNames", "not"):
            if key == "not":
                return self.derive(("not", id(mine), id(theirs)), {"anyOf": [mine, theirs]}, mine)
            return self.meet([mine, theirs])
        if key == "uniqueItems":
            return mine is True or theirs is True
        if key == "multipleOf" and is_positive_integer(mine) and is_positive_integer(theirs):
            return math.lcm(mine, theirs)
        if key in LOWER_BOUNDS and is_number(mine) and is_number(theirs):
            return max(mine, theirs)
        if key in (*NUMBER_BOUNDS, *STRING_BOUNDS, *ARRAY_BOUNDS, *OBJECT_BOUNDS):
            return min(mine, theirs) if is_number(mine) and is_number(theirs) else _DROP
        return _DROP  # either value alone allows more than both: the writer may allow more

    def _merge_properties(
        self, key: str, left: dict[str, Any], right: dict[str, Any]
    ) -> dict[str, Any]:
        mine, theirs = mapping(left.get(key)), mapping(right.get(key))
        if key == "patternProperties":
            return {
                pattern: self.meet(
                    [s for s in (mine.get(pattern), theirs.get(pattern)) if s is not None]
                )
                for pattern in {**mine, **theirs}
            }
        return {
            name: self.meet(
                [self.meet(self.applicable(left, name)), self.meet(self.applicable(right, name))]
            )
            for name in {**mine, **theirs}
        }

    def _merge_items(self, left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
        if not any(k in schema for k in ITEM_KEYWORDS for schema in (left, right)):
            return {}
        left_tuple, left_rest = self.item_schemas(left)
        right_tuple, right_rest = self.item_schemas(right)
        positions = [
            self.meet(
                [
                    left_tuple[i] if i < len(left_tuple) else left_rest,
                    right_tuple[i] if i < len(right_tuple) else right_rest,
                ]
            )
            for i in range(max(len(left_tuple), len(right_tuple)))
        ]
        rest = self.meet([left_rest, right_rest])
        if not positions:
            return {"items": rest}
        if self.prefix_items:
            return {"prefixItems": positions, "items": rest}
        return {"items": positions, "additionalItems": rest}

    # -- what applies where --------------------------------------------------------------

    def applicable(self, schema: dict[str, Any], name: str) -> list[Any]:
        """The subschemas ``schema`` applies to a property ``name`` (all must accept it)."""
        found = [s for p, s in self.named_parts(schema, name)]
        return found or [schema.get("additionalProperties", True)]

    def named_parts(self, schema: dict[str, Any], name: str) -> list[tuple[str, Any]]:
        """``properties`` and matching ``patternProperties`` for ``name``, with where."""
        parts = []
        properties = mapping(schema.get("properties"))
        if name in properties:
            parts.append((f"properties/{escape(name)}", properties[name]))
        for pattern, subschema in mapping(schema.get("patternProperties")).items():
            try:
                matches = re.search(pattern, name) is not None
            except re.error:
                # Both sides' validators refuse such a schema at registration; assume it
                # applies (a stricter reader, and for the writer, a constraint it has).
                matches = True
            if matches:
                parts.append((f"patternProperties/{escape(pattern)}", subschema))
        return parts

    def item_schemas(self, schema: dict[str, Any]) -> tuple[list[Any], Any]:
        """Positional item schemas, as the schema's draft reads them, and the rest's."""
        if self.prefix_items:
            return as_list(schema.get("prefixItems")), schema.get("items", True)
        items = schema.get("items", True)
        if isinstance(items, list):
            return list(items), schema.get("additionalItems", True)
        return [], items

    def never_has(self, schema: dict[str, Any], name: str) -> bool:
        """Whether ``schema`` forbids a property ``name`` outright."""
        return any(self.resolve(part) is False for part in self.applicable(schema, name))

    def names(self, schema: dict[str, Any]) -> list[str] | None:
        """Every property name ``schema`` allows, if it closes its content model."""
        open_patterns = [
            s
            for s in mapping(schema.get("patternProperties")).values()
            if self.resolve(s) is not False
        ]
        if self.resolve(schema.get("additionalProperties", True)) is not False or open_patterns:
            return None
        return [n for n in mapping(schema.get("properties")) if not self.never_has(schema, n)]


_EMPTY = object()
_DROP = object()


def _merge_conditionals(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    """``if``/``then``/``else`` move as one: from the part that has one, or from both
    when they agree; from neither when they differ (the writer then allows more)."""
    groups = [
        {k: schema[k] for k in CONDITIONAL if k in schema}
        for schema in (left, right)
        if "if" in schema
    ]
    if len(groups) == 2 and not json_equal(groups[0], groups[1]):
        return {}
    return groups[0] if groups else {}


def type_meet(left: set[str], right: set[str]) -> set[str]:
    """The types in both sets; ``integer`` is a part of ``number``."""
    common = left & right
    if ("integer" in left and "number" in right) or ("number" in left and "integer" in right):
        common.add("integer")
    return common


def json_equal(left: Any, right: Any) -> bool:
    """Equality as JSON Schema's ``enum``/``const`` see it: ``true`` is not ``1``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if is_number(left) and is_number(right):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(v, right[k]) for k, v in left.items())
    return type(left) is type(right) and left == right


def walk(node: Any) -> Iterator[Any]:
    """``node`` and every object and array inside it."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            yield current
            stack.extend(current.values())
        elif isinstance(current, list):
            yield current
            stack.extend(current)


def as_schema(node: Any) -> Any:
    """``True`` as ``{}``; ``False`` and objects as they are; anything else as ``{}``."""
    if node is False or isinstance(node, dict):
        return node
    return {}


def accepts_anything(node: Any) -> bool:
    """Whether ``node`` constrains nothing (annotations at most)."""
    node = as_schema(node)
    return isinstance(node, dict) and all(key in ANNOTATIONS for key in node)


def types_of(schema: dict[str, Any]) -> set[str] | None:
    """The types ``schema`` names; ``None`` if it names none (any type)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    return None


def join(head: str, tail: str) -> str:
    """Two parts of a JSON pointer or label, either of which may be empty."""
    return "/".join(filter(None, (head, tail)))


def is_number(value: Any) -> bool:
    """Whether ``value`` is a JSON number (``true`` is not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_positive_integer(value: Any) -> bool:
    """Whether ``value`` is an integer above zero (``true`` is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def strings(value: Any) -> set[str]:
    """The strings of a JSON array (``required``...); none if it is not one."""
    return {item for item in value if isinstance(item, str)} if isinstance(value, list) else set()


def mapping(value: Any) -> dict[str, Any]:
    """A JSON object (``properties``...); empty if it is not one."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """A JSON array (``allOf``...); empty if it is not one."""
    return value if isinstance(value, list) else []


def escape(token: str) -> str:
    """``token`` as one step of a JSON pointer."""
    return token.replace("~", "~0").replace("/", "~1")
