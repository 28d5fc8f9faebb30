"""Helpers shared by test modules: JWTs as an identity provider (or an attacker) makes them."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt

__all__ = ["jwt_claims", "signed_jwt", "unsigned_jwt"]


def jwt_claims(
    *, issuer: str, audience: str, subject: str, lifetime: float = 300.0, **extra: Any
) -> dict[str, Any]:
    """Registered claims valid from now for ``lifetime`` seconds (negative: already expired)."""
    now = int(time.time())
    return {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": now,
        "exp": now + int(lifetime),
        **extra,
    }


def signed_jwt(claims: dict[str, Any], secret: str, algorithm: str = "HS256") -> str:
    """``claims`` signed with a shared secret."""
    return jwt.encode(claims, secret, algorithm=algorithm)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """``claims`` with ``alg: none`` and an empty signature: what no server may accept."""
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
