"""Hypothesis strategies: a valid request of a route, then one thing done wrong to it.

Each strategy draws an ``Example`` of the target and returns a ``Case``: the bytes to
write, and what the answer may be. The families follow what clients (and attackers)
get wrong: the body's bytes, its JSON, the headers, the framing, the path and query.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from sluicegate.config import ServerSettings
from tests.fuzz.catalogue import Example, Target
from tests.raw_http import request_bytes

__all__ = ["Case", "bad_text_cases", "cases", "valid_request"]

MAX_HEADER_BYTES = ServerSettings().max_header_bytes


@dataclass(frozen=True)
class Case:
    """One request to send, as bytes, and what its answer may be."""

    #: The mutation, for the failure report.
    kind: str
    method: str
    target: bytes
    data: bytes
    #: The client stops sending in the middle: no answer at all is fine.
    incomplete: bool = False
    #: Not a request the app can see (not HTTP, a head over the limit): the HTTP layer's
    #: answer in the plain error body, or none, is fine.
    framing: bool = False
    #: The body nests deeper than the JSON limit: the answer must be a 400.
    too_deep: bool = False

    def __repr__(self) -> str:
        # Hypothesis prints the failing case: its start says what it is.
        shown = self.data if len(self.data) <= 600 else self.data[:600] + b"..."
        return f"Case({self.kind!r}, {len(self.data)} bytes: {shown!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # What Hypothesis's printer asks first (it would list a dataclass's fields).
        printer.text(repr(self))


@dataclass(frozen=True)
class Draft:
    """A request before it becomes bytes: what the mutations change."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes | None

    def target(self) -> bytes:
        query = "&".join(f"{quote(k, safe='%')}={quote(v, safe='%')}" for k, v in self.query)
        return (self.path + ("?" + query if query else "")).encode("latin-1")

    def case(self, kind: str, **flags: bool) -> Case:
        data = request_bytes(self.method, self.target(), list(self.headers), self.body)
        return Case(kind, self.method, self.target(), data, **flags)


def valid_request(target: Target, example: Example, authorization: bytes) -> Draft:
    """``example`` of ``target`` as the route expects it."""
    body = example.body_bytes()
    headers: list[tuple[bytes, bytes]] = [(b"authorization", authorization)]
    headers += [(name.encode(), value.encode()) for name, value in example.headers]
    if body is not None:
        headers.append((b"content-type", example.content_type.encode()))
    return Draft(
        target.method,
        target.path(example.params),
        example.query,
        tuple(headers),
        body,
    )


# -- the body's bytes ---------------------------------------------------------------


@st.composite
def _byte_mutation(draw: st.DrawFn, request: Draft) -> Case:
    body = request.body or b"{}"
    kind = draw(st.sampled_from(["flip", "truncate", "duplicate", "nul"]))
    if kind == "flip":
        mutated = bytearray(body)
        for _ in range(draw(st.integers(1, 4))):
            index = draw(st.integers(0, len(mutated) - 1))
            mutated[index] ^= draw(st.integers(1, 255))
        body = bytes(mutated)
    elif kind == "truncate":
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif kind == "duplicate":
        start = draw(st.integers(0, len(body) - 1))
        end = draw(st.integers(start + 1, len(body)))
        body = body[:end] + body[start:end] + body[end:]
    else:
        at = draw(st.integers(0, len(body)))
        body = body[:at] + b"\x00" + body[at:]
    return replace(request, body=body).case(f"body bytes: {kind}")


# -- the body's JSON ----------------------------------------------------------------


class _Object(list[tuple[str, Any]]):
    """A JSON object as pairs, so that a key can be written twice."""


class _Literal(str):
    """JSON text written as is: numbers no JSON library writes, strings with bytes that
    are not text (held as surrogateescape'd characters until the body is encoded)."""


def _dumps(node: Any) -> str:
    if isinstance(node, _Literal):
        return str(node)
    if isinstance(node, _Object):
        return "{" + ", ".join(f"{_dumps(k)}: {_dumps(v)}" for k, v in node) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(_dumps(item) for item in node) + "]"
    return json.dumps(node)


def _slots(node: Any, depth: int = 0) -> list[tuple[Any, Any, int]]:
    """Every (container, key or index, depth) that holds a value, objects before leaves."""
    found: list[tuple[Any, Any, int]] = []
    if isinstance(node, _Object):
        for index, (_, value) in enumerate(node):
            found.append((node, index, depth + 1))
            found += _slots(value, depth + 1)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.append((node, index, depth + 1))
            found += _slots(value, depth + 1)
    return found


def _set(container: Any, index: int, value: Any) -> None:
    if isinstance(container, _Object):
        container[index] = (container[index][0], value)
    else:
        container[index] = value


def _get(container: Any, index: int) -> Any:
    return container[index][1] if isinstance(container, _Object) else container[index]


def _encoded(document: Any) -> bytes:
    return _dumps(document).encode("utf-8", "surrogateescape")


#: What a JSON string must not hold: bytes that are not UTF-8 (a stray continuation, a
#: truncated sequence, an encoded surrogate, an overlong slash, a code point past
#: U+10FFFF, the issue's \xff\xfe), escapes of lone surrogates, and NULs raw or escaped.
BAD_TEXT = [
    b"\xff\xfe",
    b"\x80",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xf4\x90\x80\x80",
    rb"\ud800",
    rb"\udc00",
    rb"\udbff\ud800",
    rb"\ud800\u0041",
    b"\x00",
    rb"\u0000",
]


def _strings(node: Any) -> list[tuple[Any, int, bool]]:
    """Every string of ``node``: (container, index, whether it is an object's key)."""
    found: list[tuple[Any, int, bool]] = []
    if isinstance(node, _Object):
        for index, (_, value) in enumerate(node):
            found.append((node, index, True))
            if isinstance(value, str):
                found.append((node, index, False))
            found += _strings(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, str):
                found.append((node, index, False))
            found += _strings(value)
    return found


def _spoil(container: Any, index: int, is_key: bool, payload: bytes, at: float) -> str:
    """Write ``payload`` into a string, as is, ``at`` (0-1) of the way through it."""
    text = container[index][0] if is_key else _get(container, index)
    cut = round(len(text) * at)
    inner = (
        json.dumps(text[:cut])[1:-1]
        + payload.decode("utf-8", "surrogateescape")
        + json.dumps(text[cut:])[1:-1]
    )
    spoilt = _Literal(f'"{inner}"')
    if is_key:
        container[index] = (spoilt, container[index][1])
    else:
        _set(container, index, spoilt)
    return f"{payload!r} in {'key' if is_key else 'string'} {text[:40]!r}"


def bad_text_cases(request: Draft) -> list[Case]:
    """Each string of the body (keys too) with each of ``BAD_TEXT`` in its middle."""
    cases = []
    count = len(_strings([json.loads(request.body or b"{}", object_pairs_hook=_Object)]))
    for position in range(count):
        for payload in BAD_TEXT:
            root = [json.loads(request.body or b"{}", object_pairs_hook=_Object)]
            what = _spoil(*_strings(root)[position], payload, 0.5)
            cases.append(replace(request, body=_encoded(root[0])).case(f"bad text: {what}"))
    return cases


#: Numbers past 64 bits either way, past a double, not JSON at all, or merely odd.
ODD_NUMBERS = [
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901234567890123456789",
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    "1.5",
    "-0",
    "1E+2",
    "0x10",
    "01",
]


@st.composite
def _json_mutation(
    draw: st.DrawFn, request: Draft, max_depth: int, example_reads_body: bool
) -> Case:
    document = json.loads(request.body or b"{}", object_pairs_hook=_Object)
    root = [document]  # so that the document itself is a slot too
    slots = _slots(root)
    container, index, depth = draw(st.sampled_from(slots))
    kind = draw(st.sampled_from(["bad text", "number", "duplicate key", "nesting", "nested text"]))
    flags: dict[str, bool] = {}
    strings = _strings(root)
    if kind == "bad text" and strings:
        slot = draw(st.sampled_from(strings))
        payload = draw(st.sampled_from(BAD_TEXT))
        kind = "bad text: " + _spoil(*slot, payload, draw(st.floats(0, 1)))
    elif kind == "number":
        _set(container, index, _Literal(draw(st.sampled_from(ODD_NUMBERS))))
    elif kind == "duplicate key":
        objects = [(c, i) for c, i, _ in slots if isinstance(_get(c, i), _Object) and _get(c, i)]
        if objects:
            obj = _get(*draw(st.sampled_from(objects)))
            key, value = obj[draw(st.integers(0, len(obj) - 1))]
            obj.append((key, draw(st.sampled_from([None, value, "other", 7]))))
    elif kind == "nesting":
        # The value wrapped in arrays until the document nests exactly as deep as the
        # limit, or one level more: the first must pass the limit, the second must not.
        # ``depth`` counts the wrapper ``root`` as a level.
        value = _get(container, index)
        over = 1 if draw(st.booleans()) else 0
        for _ in range(max(0, max_depth + over - (depth - 1) - _depth_of(value))):
            value = [value]
        _set(container, index, value)
        nested = _depth_of(root[0])
        flags["too_deep"] = nested > max_depth and example_reads_body
        kind = f"nesting to {nested} (limit {max_depth})"
    else:
        # A string holding JSON text nested far past any limit: fields parsed again
        # after the body (a schema, records v2's data as a string).
        levels = draw(st.sampled_from([100, 5_000, 30_000]))
        _set(container, index, "[" * levels + "]" * levels)
    return replace(request, body=_encoded(root[0])).case(f"body JSON: {kind}", **flags)


def _depth_of(node: Any) -> int:
    if isinstance(node, _Object):
        return 1 + max((_depth_of(v) for _, v in node), default=0)
    if isinstance(node, list):
        return 1 + max((_depth_of(v) for v in node), default=0)
    return 0


# -- headers and framing ------------------------------------------------------------


ODD_CONTENT_TYPES = [
    b"application/json; charset=latin-1",
    b"application/json;;;",
    b'application/json; charset="utf-8"; q=\xff',
    b"APPLICATION/JSON",
    b"application/json ; boundary=",
    b"application/json\t;x=y",
    b";",
    b"",
    b"application/json, application/json",
    b"application/\xc3\xa9json",
    b"text/plain",
    b"multipart/form-data; boundary=x",
]


def _authorizations(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.sampled_from(
        [
            b"",
            b"Bearer ",
            b"Bearer",
            b"Bearer  " + valid.split(b" ", 1)[1],
            valid + b"\xff",
            b"Bearer \xc3\xa9\xff\x80",
            b"Bearer " + b"A" * 8_000,
            b"Bearer " + b"sg_" + b"x" * 60_000,
            b"Bearer a.b.c",
            b"Bearer \xff.\xfe.\x80",
            b"Bearer e30.e30.",
            b"Basic " + base64.b64encode(b"\xff:\xfe"),
            b"Basic !!!",
            b"Basic " + base64.b64encode(b":" + valid.split(b" ", 1)[1]),
            b"Negotiate abc",
            valid.lower(),
        ]
    )


@st.composite
def _header_mutation(draw: st.DrawFn, request: Draft) -> Case:
    headers = [(n, v) for n, v in request.headers if n != b"content-type"]
    content_type = dict(request.headers).get(b"content-type", b"application/json")
    kind = draw(
        st.sampled_from(["authorization", "content-type", "several content-types", "non-ascii"])
    )
    if kind == "authorization":
        authorization = draw(_authorizations(dict(request.headers)[b"authorization"]))
        headers = [(b"authorization", authorization)] + [
            (n, v) for n, v in headers if n != b"authorization"
        ]
        headers.append((b"content-type", content_type))
    elif kind == "content-type":
        headers.append((b"content-type", draw(st.sampled_from(ODD_CONTENT_TYPES))))
    elif kind == "several content-types":
        headers += [
            (b"content-type", content_type),
            (b"content-type", draw(st.sampled_from(ODD_CONTENT_TYPES))),
        ]
    else:
        name = draw(st.sampled_from([b"x-fuzz", b"accept", b"user-agent", b"content-type"]))
        if name == b"content-type":
            headers.append((name, content_type + b"\xff"))
        else:
            value = draw(st.sampled_from([b"\x80\xff", b"caf\xc3\xa9", b"\xed\xa0\x80"]))
            headers += [(b"content-type", content_type), (name, value)]
    return replace(request, headers=tuple(headers)).case(f"headers: {kind}")


@st.composite
def _framing_mutation(draw: st.DrawFn, request: Draft) -> Case:
    body = request.body if request.body is not None else b"{}"
    head = request_bytes(request.method, request.target(), list(request.headers), None)[:-2]
    kind = draw(
        st.sampled_from(
            [
                "content-length short",
                "content-length long",
                "content-length not a number",
                "two content-lengths",
                "chunked cut short",
                "chunked complete",
                "chunk size not hex",
                "chunked and content-length",
            ]
        )
    )
    incomplete = framing = False
    if kind == "content-length short":
        cut = draw(st.integers(0, max(0, len(body) - 1)))
        data = head + b"content-length: %d\r\n\r\n" % cut + body
        framing = True  # what follows the declared body is not a request
    elif kind == "content-length long":
        data = (
            head + b"content-length: %d\r\n\r\n" % (len(body) + draw(st.integers(1, 1000))) + body
        )
        incomplete = True
    elif kind == "content-length not a number":
        value = draw(st.sampled_from([b"abc", b"-1", b"1_0", b"99999999999999999999999", b"\xff"]))
        data = head + b"content-length: " + value + b"\r\n\r\n" + body
        framing = True
    elif kind == "two content-lengths":
        data = (
            head
            + b"content-length: %d\r\ncontent-length: %d\r\n\r\n" % (len(body), len(body) + 1)
            + body
        )
        framing = True
    else:
        pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
        te = b"transfer-encoding: chunked\r\n"
        if kind == "chunked cut short":
            data = head + te + b"\r\n" + chunks[: draw(st.integers(0, len(chunks)))]
            incomplete = True
        elif kind == "chunked complete":
            data = head + te + b"\r\n" + chunks + b"0\r\n\r\n"
        elif kind == "chunk size not hex":
            data = head + te + b"\r\nzz\r\n" + body + b"\r\n0\r\n\r\n"
            framing = True
        else:
            data = head + te + b"content-length: 3\r\n\r\n" + chunks + b"0\r\n\r\n"
            framing = True
    return Case(
        f"framing: {kind}",
        request.method,
        request.target(),
        data,
        incomplete=incomplete,
        framing=framing,
    )


# -- path and query -----------------------------------------------------------------


@st.composite
def _path_mutation(draw: st.DrawFn, target: Target, example: Example, request: Draft) -> Case:
    kind = draw(
        st.sampled_from(
            [
                "%FF",
                "%00",
                "..",
                "long segment",
                "trailing slash",
                "double slash",
                "bad escape",
                "raw non-ASCII",
                "unknown query",
                "repeated query",
                "query not UTF-8",
            ]
        )
    )
    params = dict(example.params)
    inserted = {
        "%FF": "%FF",
        "%00": "%00",
        "..": "/../",
        "bad escape": "%G1%",
        "raw non-ASCII": "\xff",
    }
    framing = False
    path, query = request.path, request.query
    if kind in inserted and params:
        name = draw(st.sampled_from(sorted(params)))
        at = draw(st.integers(0, len(params[name])))
        params[name] = params[name][:at] + inserted[kind] + params[name][at:]
        # As they are: the example's values need no escaping, the inserted bytes must
        # reach the server unescaped.
        path = target.path(params, encode=str)
    elif kind in inserted:
        path = path + inserted[kind]
    elif kind == "long segment":
        # The longest is refused by the HTTP layer, with the line over the head's limit.
        length = draw(st.sampled_from([256, 4_096, MAX_HEADER_BYTES]))
        framing = length == MAX_HEADER_BYTES
        if params:
            params[draw(st.sampled_from(sorted(params)))] = "a" * length
            path = target.path(params)
        else:
            path = path + "/" + "a" * length
    elif kind == "trailing slash":
        path = path + "/"
    elif kind == "double slash":
        path = path.replace("/", "//", 1)
    elif kind == "unknown query":
        query = (*query, (draw(st.sampled_from(["fuzz", "%FF", "a%00", ""])), "1"))
    elif kind == "repeated query":
        query = query + query if query else (("x", "1"), ("x", "1"))
    else:
        query = (*query, (draw(st.sampled_from(["offset", "subject", "x"])), "%C3"))
    if kind == "raw non-ASCII":
        framing = True  # bytes outside ASCII in a request line are not HTTP
    return replace(request, path=path, query=query).case(f"path: {kind}", framing=framing)


def cases(target: Target, authorization: bytes, max_depth: int) -> st.SearchStrategy[Case]:
    """A request of ``target`` with one thing done wrong."""

    @st.composite
    def one(draw: st.DrawFn) -> Case:
        example = draw(st.sampled_from(target.examples))
        request = valid_request(target, example, authorization)
        families = [
            _header_mutation(request),
            _path_mutation(target, example, request),
            _framing_mutation(request),
            _byte_mutation(request),
        ]
        if request.body is not None:
            families.append(_json_mutation(request, max_depth, example.reads_body))
        return draw(st.one_of(families))

    return one()
