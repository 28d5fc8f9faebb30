"""Principals: topic permissions, CloudEvents sources and types, and what 403s say."""

from __future__ import annotations

import pytest

from sluicegate.core.auth.principals import Permissions, Principal, validate_client_name
from sluicegate.errors import BadRequest, Forbidden


def make(**permissions: list[str]) -> Principal:
    return Principal("app", Permissions(**permissions))


def test_actions_are_independent() -> None:
    principal = make(produce=["orders.*"], consume=["audit"])
    assert principal.allows("produce", "orders.eu")
    assert not principal.allows("consume", "orders.eu")
    assert principal.allows("consume", "audit")
    assert not principal.allows("admin", "audit")


def test_require_raises_forbidden_naming_the_check() -> None:
    principal = make(produce=["orders.*"])
    principal.require("produce", "orders.eu")
    with pytest.raises(Forbidden) as caught:
        principal.require("consume", "orders.eu")
    assert caught.value.message == "client 'app' may not consume from topic 'orders.eu'"
    assert caught.value.detail == {"check": "consume"}
    with pytest.raises(Forbidden, match="may not administer topic 'x'"):
        principal.require("admin", "x")


def test_repeated_decisions_are_consistent() -> None:
    principal = make(produce=["orders.*", "audit"])
    for _ in range(3):
        assert principal.allows("produce", "orders.eu")
        assert not principal.allows("produce", "payments")
        assert principal.allows("produce", "audit")


def test_two_principals_with_the_same_patterns_do_not_share_names() -> None:
    a = Principal("a", Permissions(produce=["t.*"]))
    b = Principal("b", Permissions(produce=["u.*"]))
    assert a.allows("produce", "t.1")
    assert not b.allows("produce", "t.1")


def test_admin_on_everything_is_required_for_the_admin_api() -> None:
    assert make(admin=["*"]).is_admin
    make(admin=["*"]).require_admin()
    narrow = make(admin=["orders.*"])
    assert not narrow.is_admin
    with pytest.raises(Forbidden, match="admin permission on '\\*'"):
        narrow.require_admin()


def test_cloudevents_sources_and_types() -> None:
    principal = make(
        ce_sources=["urn:shop:*", "https://example.com/orders"],
        ce_produce_types=["com.example.order.*"],
        ce_consume_types=["com.example.invoice.created"],
    )
    principal.require_source("urn:shop:eu")
    principal.require_source("https://example.com/orders")
    principal.require_type("com.example.order.created")
    assert principal.may_use_source("urn:shop:us")
    assert principal.may_produce_type("com.example.order.paid")
    assert principal.consumes_type("com.example.invoice.created")
    assert not principal.consumes_type("com.example.order.created")
    with pytest.raises(Forbidden, match="source 'urn:other'") as source:
        principal.require_source("urn:other")
    assert source.value.detail == {"check": "source"}
    with pytest.raises(Forbidden, match=r"type 'com\.example\.invoice\.created'") as kind:
        principal.require_type("com.example.invoice.created")
    assert kind.value.detail == {"check": "type"}


def test_may_produce_is_both_checks() -> None:
    principals = [
        make(ce_sources=["urn:shop:*"], ce_produce_types=["com.example.order.*"]),
        make(ce_sources=["*"], ce_produce_types=["com.example.order.*"]),
        make(ce_sources=["urn:shop:*"], ce_produce_types=["*"]),
        make(ce_sources=["urn:shop:*"]),
        make(ce_produce_types=["*"]),
        make(),
        Principal.anonymous(),
    ]
    pairs = [
        (source, event_type)
        for source in ("urn:shop:eu", "urn:other")
        for event_type in ("com.example.order.paid", "com.example.invoice.created")
    ]
    for principal in principals:
        for source, event_type in pairs:
            both = principal.may_use_source(source) and principal.may_produce_type(event_type)
            assert principal.may_produce(source, event_type) is both


def test_no_permissions_allow_nothing() -> None:
    principal = make()
    assert not principal.allows("produce", "a")
    assert not principal.may_use_source("s")
    assert not principal.consumes_type("t")


def test_anonymous_may_do_everything() -> None:
    anonymous = Principal.anonymous()
    assert anonymous.name == "anonymous"
    assert anonymous.is_admin
    assert anonymous.allows("produce", "x")
    assert anonymous.consumes_type("any.type")


def test_permissions_validate_every_list() -> None:
    Permissions(produce=["a.*"], ce_sources=["urn:x"]).validate()
    with pytest.raises(BadRequest, match=r"^ce_sources: ") as caught:
        Permissions(ce_sources=["has space"]).validate()
    assert caught.value.detail == {"field": "ce_sources"}


@pytest.mark.parametrize("name", ["admin", "orders-app", "svc@example.com", "a1:b+c", "x" * 128])
def test_valid_client_names(name: str) -> None:
    assert validate_client_name(name) == name


@pytest.mark.parametrize("name", ["", "-lead", ".x", "a b", "a/b", "x" * 129, "é"])
def test_invalid_client_names(name: str) -> None:
    with pytest.raises(BadRequest, match="invalid client name"):
        validate_client_name(name)


def test_repr_names_the_client_only() -> None:
    assert repr(make(produce=["secret-topic"])) == "Principal('app')"
