"""Who is asking: credentials of a request → ``Principal``, or ``Unauthenticated``.

Credentials, in order of precedence:

1. ``Authorization: Bearer <token>`` — a JWT if it has a JWT's shape (three dot-separated
   parts), else an API key.
2. ``Authorization: Basic base64(user:password)`` — the password is an API key (what
   Schema Registry and REST-proxy clients send); the user name is not checked, and a key
   sent as the user name with an empty password is accepted too.
3. A verified TLS client certificate whose CN or SAN is a client's certificate subject.

A request that carries an ``Authorization`` header is judged by it alone: an invalid
header is a 401 even if a valid certificate came along, so credentials never silently
fall back to weaker ones.

``authenticate`` is synchronous: API keys are one SHA-256 and dict lookup, JWT verdicts
are cached until the token expires, and JWKS documents are fetched in the background
(``run``), never while a request waits.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable

import httpx

from sluicegate.config import AuthSettings
from sluicegate.core.auth.apikeys import hash_key
from sluicegate.core.auth.certificates import PeerCertificate
from sluicegate.core.auth.clients import ClientStore
from sluicegate.core.auth.jwt import JwtVerifier, looks_like_jwt
from sluicegate.core.auth.principals import Principal
from sluicegate.errors import Unauthenticated

__all__ = ["Authenticator", "Credentials"]

logger = logging.getLogger("sluicegate.auth")

#: Verified JWTs remembered (token → client, expiry) so a repeated token skips the signature.
_JWT_CACHE_SIZE = 4096
#: API keys that were found, remembered (key → client, expiry) for their next request.
_API_KEY_CACHE_SIZE = 4096

_NO_CREDENTIALS = (
    "this request needs credentials: an API key or JWT in 'Authorization: Bearer <token>', "
    "an API key as the password of HTTP Basic auth, or a TLS client certificate"
)


class Authenticator:
    """Turns a request's credentials into the ``Principal`` of a known client."""

    def __init__(
        self,
        settings: AuthSettings,
        store: ClientStore,
        *,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = settings.enabled
        self.store = store
        self.jwt = JwtVerifier(settings.jwt, http_client=http_client)
        self._clock = clock
        self._anonymous = Principal.anonymous()
        self._jwt_cache: dict[str, tuple[str, float, int]] = {}
        self._api_keys: dict[str, tuple[Principal, float | None, int]] = {}

    async def load(self) -> None:
        """Replay clients and keys and load the JWKS; the log must be running."""
        await self.store.load()
        if self.enabled:
            await self.jwt.load()
        else:
            logger.warning(
                "AUTHENTICATION IS OFF: every request is served as an anonymous client "
                "with every permission. For local experiments on a loopback address only."
            )

    async def run(self) -> None:
        """Follow other nodes' client and key changes and refresh the JWKS; until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.store.follow(), name="clients.follow")
            if self.enabled:
                tg.create_task(self.jwt.run(), name="jwks.refresh")

    def authenticate(
        self, authorization: str | None, peer_cert: PeerCertificate | None = None
    ) -> Principal:
        """The principal the credentials prove, or ``Unauthenticated`` saying what is wrong."""
        if not self.enabled:
            return self._anonymous
        if authorization:
            return self._from_header(authorization)
        if peer_cert is not None:
            return self._from_certificate(peer_cert)
        raise Unauthenticated(_NO_CREDENTIALS)

    def credentials(
        self, authorization: bytes | None, peer_cert: PeerCertificate | None
    ) -> Credentials:
        """A request's credentials as they came (its ``Authorization`` header, raw, and
        its TLS client certificate), to be proven again while a stream it opened lasts."""
        return Credentials(
            self, None if authorization is None else authorization.decode("latin-1"), peer_cert
        )

    # -- Authorization header --------------------------------------------------------

    def _from_header(self, authorization: str) -> Principal:
        if authorization.startswith("Bearer sg_") and " " not in authorization[7:]:
            return self._from_api_key(authorization[7:])  # the common case, parsed cheaply
        scheme, _, credentials = authorization.strip().partition(" ")
        credentials = credentials.strip()
        scheme = scheme.lower()
        if scheme == "bearer":
            token = credentials
        elif scheme == "basic":
            token = _basic_secret(credentials)
        else:
            raise Unauthenticated(
                "unsupported Authorization scheme; send 'Bearer <token>' or 'Basic ...'"
            )
        if not token:
            raise Unauthenticated("the Authorization header carries no credentials")
        if looks_like_jwt(token):
            return self._from_jwt(token)
        return self._from_api_key(token)

    def _from_api_key(self, key: str) -> Principal:
        # Hashing the key (SHA-256 through OpenSSL) and the lookups cost more than the
        # rest of a request's authentication, so a key that was found is remembered with
        # its client, for as long as no client or key changes anywhere (the store's
        # generation): a revocation or a deletion counts from the next request. Keys that
        # are not found are not remembered, so guessing costs no memory.
        store = self.store
        cached = self._api_keys.get(key)
        if cached is not None and cached[2] == store.generation:
            principal, expires_at, _ = cached
            if expires_at is not None and self._clock() >= expires_at:
                raise Unauthenticated("the API key has expired")
            return principal
        generation = store.generation
        record = store.find_key(hash_key(key))
        if record is None:
            raise Unauthenticated("unknown or revoked API key")
        if record.is_expired(self._clock()):
            raise Unauthenticated("the API key has expired")
        found = store.principal(record.client)
        if found is None:
            raise Unauthenticated("the API key's client no longer exists")
        keys = self._api_keys
        if len(keys) >= _API_KEY_CACHE_SIZE and key not in keys:
            del keys[next(iter(keys))]  # the oldest: insertion order approximates age
        keys[key] = (found, record.expires_at, generation)
        return found

    def _from_jwt(self, token: str) -> Principal:
        now = self._clock()
        cached = self._jwt_cache.get(token)
        if cached is not None and cached[1] > now and cached[2] == self.jwt.generation:
            name = cached[0]
        else:
            claims = self.jwt.verify(token)
            name = self.jwt.client_name(claims)
            if len(self._jwt_cache) >= _JWT_CACHE_SIZE:
                # Drop the oldest entry: insertion order is a good enough proxy for age.
                del self._jwt_cache[next(iter(self._jwt_cache))]
            self._jwt_cache[token] = (name, float(claims["exp"]), self.jwt.generation)
        principal = self.store.principal(name)
        if principal is None:
            raise Unauthenticated(
                f"the token's {self.jwt.settings.client_claim!r} claim names no known client"
            )
        return principal

    # -- TLS client certificate ------------------------------------------------------

    def _from_certificate(self, cert: PeerCertificate) -> Principal:
        name = self.store.client_for_certificate(cert)
        if name is None:
            raise Unauthenticated("the TLS client certificate is not mapped to any client")
        principal = self.store.principal(name)
        if principal is None:
            raise Unauthenticated("the TLS client certificate's client no longer exists")
        return principal

    def __repr__(self) -> str:
        return f"Authenticator(enabled={self.enabled!r})"


def _basic_secret(credentials: str) -> str:
    """The API key in HTTP Basic credentials: the password, or the user if none."""
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Unauthenticated("malformed HTTP Basic credentials") from None
    user, _, password = decoded.partition(":")
    return password or user


class Credentials:
    """What a long-lived stream's client proved itself with, proven again on demand.

    A request is authenticated once, but a stream (a topic's tail, a CloudEvents WebSocket
    or Server-Sent Events consumer) may last for days: it asks ``principal()`` before each
    delivery, so that a key revoked or expired, a client deleted or a permission taken
    away ends it as it would refuse the client's next request. Asking costs a dictionary
    look-up while no client or key changed (``Authenticator``'s remembered keys).
    """

    __slots__ = ("_authenticator", "_authorization", "_peer_cert")

    def __init__(
        self,
        authenticator: Authenticator,
        authorization: str | None,
        peer_cert: PeerCertificate | None,
    ) -> None:
        self._authenticator = authenticator
        self._authorization = authorization
        self._peer_cert = peer_cert

    def principal(self) -> Principal:
        """The client the credentials prove now, or ``Unauthenticated`` saying why not."""
        authorization = self._authorization
        return self._authenticator.authenticate(
            authorization, None if authorization else self._peer_cert
        )
