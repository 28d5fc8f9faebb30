"""Permission patterns: exact names, globs, and what is refused."""

from __future__ import annotations

import pytest

from sluicegate.core.auth.patterns import PatternSet, validate_pattern
from sluicegate.errors import BadRequest


@pytest.mark.parametrize(
    ("patterns", "name", "expected"),
    [
        (["orders"], "orders", True),
        (["orders"], "orders2", False),
        (["orders"], "Orders", False),
        (["orders.*"], "orders.eu", True),
        (["orders.*"], "orders.eu.v2", True),
        (["orders.*"], "orders", False),
        (["orders-?"], "orders-1", True),
        (["orders-?"], "orders-12", False),
        (["orders-[ab]"], "orders-b", True),
        (["orders-[ab]"], "orders-c", False),
        (["*"], "anything.at.all", True),
        (["a", "b.*", "c?"], "b.x", True),
        (["a", "b.*", "c?"], "cd", True),
        (["a", "b.*", "c?"], "d", False),
        ([], "a", False),
        (["urn:source:*"], "urn:source:eu/1", True),
        (["https://example.com/*"], "https://example.com/sensors/1", True),
        (["orders.*"], "orders.eu\nx", True),
    ],
)
def test_matching(patterns: list[str], name: str, expected: bool) -> None:
    assert PatternSet(patterns).matches(name) is expected


def test_dot_is_literal_not_regex() -> None:
    assert not PatternSet(["a.b"]).matches("axb")


def test_star_alone_is_everything() -> None:
    assert PatternSet(["x", "*"]).everything
    assert not PatternSet(["x*"]).everything


@pytest.mark.parametrize("bad", ["", " ", "a b", "tab\t", "x" * 513, "ctl\x00"])
def test_invalid_patterns_are_refused(bad: str) -> None:
    with pytest.raises(BadRequest):
        validate_pattern(bad)
    with pytest.raises(BadRequest):
        PatternSet([bad])


def test_empty_set_is_falsy() -> None:
    assert not PatternSet([])
    assert PatternSet(["a"])
