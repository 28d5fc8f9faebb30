"""JWT bearer tokens: verified with keys the operator configured, never with keys a token names.

Rules that close the usual holes:

- The accepted algorithms are fixed by ``auth.jwt.algorithms``; ``alg: none`` is never
  among them, and a token's ``alg`` only selects *which configured key* is tried.
- ``HS*`` tokens are checked with ``auth.jwt.secret`` only; asymmetric tokens with a key
  from the operator's JWKS only, and only if that key's type (and ``alg``, when the JWK
  declares one) fits the token's algorithm. So an HS256 token "signed" with the RSA public
  key as secret is never checked against that key (algorithm confusion).
- ``exp``, ``iss`` and ``aud`` are required and checked, ``nbf`` when present.

JWKS documents come from a file or a URL and are (re)loaded by ``load``/``run`` — on the
event loop, never inside ``verify``: a request never waits for the identity provider. A
token with an unknown ``kid`` makes ``run`` refresh early (at most every
``_MIN_REFRESH_INTERVAL`` seconds) so key rotation is picked up quickly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import jwt

from sluicegate.config import (
    JWT_EC_ALGORITHMS_BY_CURVE,
    JWT_RSA_ALGORITHMS,
    JWT_SYMMETRIC_ALGORITHMS,
    JwtSettings,
)
from sluicegate.errors import ConfigError, Unauthenticated

__all__ = ["JwtVerifier", "looks_like_jwt"]

logger = logging.getLogger("sluicegate.auth")

_MAX_JWKS_BYTES = 1024 * 1024
_MIN_REFRESH_INTERVAL = 30.0
_RETRY_INTERVAL = 10.0
_FETCH_TIMEOUT = 10.0


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer credential has a JWT's shape (three dot-separated parts)."""
    return token.count(".") == 2


def _key_algorithms(data: Mapping[str, Any]) -> frozenset[str]:
    """The algorithms a JWK may verify: its declared ``alg``, else what its type allows."""
    kty = data.get("kty")
    if kty == "RSA":
        family = JWT_RSA_ALGORITHMS
    elif kty == "EC" and data.get("crv") in JWT_EC_ALGORITHMS_BY_CURVE:
        family = frozenset({JWT_EC_ALGORITHMS_BY_CURVE[data["crv"]]})
    elif kty == "OKP" and data.get("crv") in {"Ed25519", "Ed448"}:
        family = frozenset({"EdDSA"})
    else:
        # Symmetric ("oct") keys belong in auth.jwt.secret, not in a public key set.
        return frozenset()
    declared = data.get("alg")
    if declared is None:
        return family
    return family & {declared} if isinstance(declared, str) else frozenset()


class _Key:
    __slots__ = ("algorithms", "key", "kid")

    def __init__(self, kid: str | None, key: Any, algorithms: frozenset[str]) -> None:
        self.kid = kid
        self.key = key
        self.algorithms = algorithms


def _parse_jwks(document: Any) -> list[_Key]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS document is an object with a 'keys' list")
    keys: list[_Key] = []
    for data in document["keys"]:
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        algorithms = _key_algorithms(data)
        if not algorithms:
            continue
        try:
            parsed = jwt.PyJWK(data, algorithm=next(iter(sorted(algorithms))))
        except jwt.PyJWTError:
            continue
        kid = data.get("kid")
        keys.append(_Key(kid if isinstance(kid, str) else None, parsed.key, algorithms))
    if not keys:
        raise ValueError("the JWKS holds no usable signature keys")
    return keys


_ERRORS: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet (nbf or iat in the future)"),
    (jwt.InvalidAudienceError, "the token's audience (aud) is not accepted"),
    (jwt.InvalidIssuerError, "the token's issuer (iss) is not accepted"),
    (jwt.InvalidSignatureError, "the token's signature is invalid"),
    (jwt.InvalidKeyError, "the token cannot be verified with the configured key"),
    (jwt.DecodeError, "the bearer token is not a well-formed JWT"),
]


def _explain(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token lacks the required claim {exc.claim!r}"
    for kind, message in _ERRORS:
        if isinstance(exc, kind):
            return message
    return "the token is invalid"


class JwtVerifier:
    """Verifies JWTs against ``auth.jwt``; ``enabled`` is false when no algorithm is set."""

    def __init__(
        self,
        settings: JwtSettings,
        *,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.enabled = bool(settings.algorithms)
        self._algorithms = frozenset(settings.algorithms)
        self._decoder = jwt.PyJWT(
            {"require": ["exp", "iss", "aud"], "enforce_minimum_key_length": True}
        )
        self._by_kid: dict[str, _Key] = {}
        self._anonymous: list[_Key] = []
        self._http = http_client
        self._clock = clock
        self._refresh_soon = asyncio.Event()
        self._last_refresh = float("-inf")
        #: Bumped whenever the key set changes, so callers can drop cached verdicts.
        self.generation = 0

    @property
    def _jwks_is_url(self) -> bool:
        jwks = self.settings.jwks
        return jwks is not None and jwks.startswith(("https://", "http://"))

    # -- key loading -----------------------------------------------------------------

    async def load(self) -> None:
        """Load the JWKS; a bad file is a ``ConfigError``, an unreachable URL is retried."""
        if not self.enabled or self.settings.jwks is None:
            return
        try:
            await self.refresh()
        except ConfigError:
            raise
        except (OSError, ValueError, httpx.HTTPError) as exc:
            if not self._jwks_is_url:
                raise ConfigError("auth.jwt.jwks", str(exc)) from None
            logger.error(
                "cannot fetch the JWKS; JWTs with asymmetric algorithms fail until it loads",
                extra={"error": str(exc)},
            )

    async def refresh(self) -> None:
        """Read the JWKS file or fetch the URL now and swap in its keys."""
        self._last_refresh = self._clock()
        source = self.settings.jwks
        if source is None:
            return
        if self._jwks_is_url:
            raw = await self._fetch(source)
        else:
            raw = await asyncio.to_thread(Path(source).read_bytes)
        try:
            document = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError("the JWKS is not valid JSON") from None
        keys = _parse_jwks(document)
        by_kid = {key.kid: key for key in keys if key.kid is not None}
        anonymous = [key for key in keys if key.kid is None]
        if set(by_kid) != set(self._by_kid) or len(anonymous) != len(self._anonymous):
            self.generation += 1
        self._by_kid, self._anonymous = by_kid, anonymous

    async def _fetch(self, url: str) -> bytes:
        client = self._http or httpx.AsyncClient(timeout=_FETCH_TIMEOUT)
        try:
            async with client.stream("GET", url, headers={"accept": "application/json"}) as resp:
                resp.raise_for_status()
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_JWKS_BYTES:
                        raise ValueError(f"the JWKS is larger than {_MAX_JWKS_BYTES} bytes")
                return bytes(body)
        finally:
            if client is not self._http:
                await client.aclose()

    async def run(self) -> None:
        """Refresh a JWKS URL every ``auth.jwt.jwks_refresh`` seconds (sooner on unknown kids)."""
        if not self.enabled or not self._jwks_is_url:
            return
        ok = bool(self._by_kid or self._anonymous)
        while True:
            interval = self.settings.jwks_refresh if ok else _RETRY_INTERVAL
            try:
                async with asyncio.timeout(interval):
                    await self._refresh_soon.wait()
                    # An unknown kid: refresh now, but never more often than the minimum.
                    wait = self._last_refresh + _MIN_REFRESH_INTERVAL - self._clock()
                    if wait > 0:
                        await asyncio.sleep(wait)
            except TimeoutError:
                pass
            self._refresh_soon.clear()
            try:
                await self.refresh()
                ok = True
            except (OSError, ValueError, httpx.HTTPError) as exc:
                ok = False
                logger.warning(
                    "cannot refresh the JWKS; keeping the previous keys", extra={"error": str(exc)}
                )

    # -- verification ----------------------------------------------------------------

    def _key_for(self, alg: str, kid: Any) -> Any:
        if alg in JWT_SYMMETRIC_ALGORITHMS:
            return self.settings.secret
        if isinstance(kid, str):
            found = self._by_kid.get(kid)
            if found is None:
                self._refresh_soon.set()
                raise Unauthenticated(f"the token's key id {kid[:64]!r} is not in the JWKS")
            candidates = [found]
        elif kid is None:
            candidates = [
                k for k in (*self._by_kid.values(), *self._anonymous) if alg in k.algorithms
            ]
            if len(candidates) != 1:
                raise Unauthenticated("the token has no key id (kid) and no single key fits it")
        else:
            raise Unauthenticated("the token's key id (kid) is not a string")
        key = candidates[0]
        if alg not in key.algorithms:
            raise Unauthenticated(f"the token's algorithm {alg} does not fit its key")
        return key.key

    def verify(self, token: str) -> dict[str, Any]:
        """The token's verified claims; ``Unauthenticated`` saying what is wrong otherwise."""
        if not self.enabled:
            raise Unauthenticated("this server does not accept JWT bearer tokens")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a well-formed JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            shown = alg[:16] if isinstance(alg, str) else alg
            raise Unauthenticated(f"the token's algorithm {shown!r} is not accepted")
        key = self._key_for(alg, header.get("kid"))
        try:
            claims: dict[str, Any] = self._decoder.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway,
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_explain(exc)) from None
        return claims

    def client_name(self, claims: Mapping[str, Any]) -> str:
        """The client a verified token names, from the ``auth.jwt.client_claim`` claim."""
        claim = self.settings.client_claim
        value = claims.get(claim)
        if not isinstance(value, str) or not value:
            raise Unauthenticated(f"the token has no {claim!r} claim naming a client")
        return value

    def __repr__(self) -> str:
        return f"JwtVerifier(algorithms={sorted(self._algorithms)!r})"
