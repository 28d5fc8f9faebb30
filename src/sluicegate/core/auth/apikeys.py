"""API keys: ``sg_`` and 43 base62 characters (256 random bits), stored only as a hash.

A key has 256 bits of entropy, so a fast unsalted SHA-256 is a sound hash: nobody can
guess a preimage, and a fast hash keeps the per-request check to one digest and one dict
lookup (``ClientStore.find_key``). The stored record carries a public ``id`` (used to
list and revoke) and the key's first characters (``prefix``) so an operator can tell
keys apart without ever seeing one again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import msgspec

__all__ = [
    "KEY_PREFIX",
    "ApiKey",
    "NewApiKey",
    "generate_key",
    "hash_key",
    "new_key_id",
    "validate_custom_key",
]

KEY_PREFIX = "sg_"
_KEY_BYTES = 32
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: 62**43 > 2**256, so 43 characters hold 32 bytes.
_KEY_CHARS = 43
_SHOWN_PREFIX = len(KEY_PREFIX) + 6
#: Keys an operator brings (``SLUICEGATE_ADMIN_KEY``): long enough, and no dots so they
#: are never mistaken for a JWT.
_CUSTOM_KEY = re.compile(r"[A-Za-z0-9_\-]{32,256}")


def _base62(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    for _ in range(_KEY_CHARS):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(reversed(chars))


def generate_key() -> str:
    """A new random key: ``sg_`` + base62 of 32 bytes from ``secrets``."""
    return KEY_PREFIX + _base62(secrets.token_bytes(_KEY_BYTES))


def hash_key(key: str) -> bytes:
    """The SHA-256 digest of a presented or new key; what is stored and looked up."""
    return hashlib.sha256(key.encode()).digest()


def new_key_id() -> str:
    """A public, random identifier for a key record (not derived from the key)."""
    return "k_" + secrets.token_hex(6)


def validate_custom_key(key: str) -> bool:
    """Whether an operator-supplied key is acceptable (32-256 of ``[A-Za-z0-9_-]``)."""
    return _CUSTOM_KEY.fullmatch(key) is not None


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A stored key: never the key itself, only its SHA-256 (hex)."""

    id: str
    client: str
    #: SHA-256 of the key, hex; compared with ``hmac.compare_digest``.
    hash: str
    #: The key's first characters, shown in listings to recognise a key.
    prefix: str
    #: Seconds since the epoch.
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None

    @property
    def digest(self) -> bytes:
        return bytes.fromhex(self.hash)

    def matches(self, digest: bytes) -> bool:
        """Constant-time comparison of a presented key's digest with the stored one."""
        return hmac.compare_digest(self.digest, digest)

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def status(self, now: float) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.is_expired(now) else "active"

    @classmethod
    def create(
        cls, client: str, key: str, *, now: float, expires_at: float | None = None
    ) -> ApiKey:
        """The record for ``key`` (which the caller shows once and then forgets)."""
        return cls(
            id=new_key_id(),
            client=client,
            hash=hash_key(key).hex(),
            prefix=key[:_SHOWN_PREFIX],
            created_at=now,
            expires_at=expires_at,
        )


class NewApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key just created: the record and the one-time secret."""

    record: ApiKey
    key: str

    def __repr__(self) -> str:
        return f"NewApiKey(record={self.record!r}, key='***')"
