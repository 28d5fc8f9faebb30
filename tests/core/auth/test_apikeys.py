"""API keys: format, entropy, hashing and the stored record."""

from __future__ import annotations

import hashlib
import re

import msgspec

from sluicegate.core.auth.apikeys import (
    ApiKey,
    NewApiKey,
    generate_key,
    hash_key,
    new_key_id,
    validate_custom_key,
)


def test_generated_keys_are_prefixed_base62_of_256_bits() -> None:
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert re.fullmatch(r"sg_[0-9A-Za-z]{43}", key)
    # 43 base62 digits hold 32 bytes: 62**43 > 2**256 > 62**42.
    assert 62**43 > 2**256 > 62**42


def test_hash_is_sha256_of_the_key() -> None:
    assert hash_key("sg_abc") == hashlib.sha256(b"sg_abc").digest()


def test_record_holds_the_hash_never_the_key() -> None:
    key = generate_key()
    record = ApiKey.create("app", key, now=100.0, expires_at=200.0)
    assert key not in repr(record)
    assert record.hash == hashlib.sha256(key.encode()).hexdigest()
    assert record.prefix == key[:9]
    assert record.id.startswith("k_")
    assert record.matches(hash_key(key))
    assert not record.matches(hash_key(key + "x"))


def test_status_and_expiry() -> None:
    record = ApiKey.create("app", generate_key(), now=100.0, expires_at=200.0)
    assert record.status(150.0) == "active"
    assert record.status(200.0) == "expired"
    forever = ApiKey.create("app", generate_key(), now=100.0)
    assert not forever.is_expired(1e12)
    revoked = msgspec.structs.replace(forever, revoked_at=120.0)
    assert revoked.status(121.0) == "revoked"


def test_new_key_repr_hides_the_key() -> None:
    key = generate_key()
    created = NewApiKey(record=ApiKey.create("app", key, now=1.0), key=key)
    assert key not in repr(created)


def test_key_ids_are_unique() -> None:
    assert len({new_key_id() for _ in range(1000)}) == 1000


def test_custom_keys() -> None:
    assert validate_custom_key("a" * 32)
    assert validate_custom_key(generate_key())
    assert not validate_custom_key("short")
    assert not validate_custom_key("a" * 31 + ".")
    assert not validate_custom_key("a" * 257)
