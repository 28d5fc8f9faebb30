"""JWT verification: algorithms fixed by config, required claims, JWKS from file or URL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from sluicegate.config import JwtSettings
from sluicegate.core.auth.jwt import JwtVerifier, looks_like_jwt
from sluicegate.errors import ConfigError, Unauthenticated

ISSUER = "https://idp.example.com"
AUDIENCE = "sluicegate"
SECRET = "a-shared-secret-of-at-least-32-bytes!!"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def public_jwk(kind: type[Any], key: Any, kid: str | None, **extra: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(kind.to_jwk(key.public_key()))
    if kid is not None:
        jwk["kid"] = kid
    jwk.update(extra)
    return jwk


def jwks() -> dict[str, Any]:
    return {
        "keys": [
            public_jwk(RSAAlgorithm, RSA_KEY, "rsa-1"),
            public_jwk(ECAlgorithm, EC_KEY, "ec-1"),
            public_jwk(OKPAlgorithm, ED_KEY, "ed-1"),
        ]
    }


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "orders-app",
        "iat": now,
        "exp": now + 600,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def token(key: Any, alg: str, kid: str | None, **overrides: Any) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers=headers)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks()))
    return path


def settings(jwks_source: str | None, algorithms: list[str], **extra: Any) -> JwtSettings:
    return JwtSettings(
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=algorithms,
        jwks=jwks_source,
        **extra,
    )


@pytest.fixture
async def verifier(jwks_file: Path) -> JwtVerifier:
    verifier = JwtVerifier(
        settings(str(jwks_file), ["RS256", "ES256", "EdDSA", "HS256"], secret=SECRET)
    )
    await verifier.load()
    return verifier


@pytest.mark.parametrize(
    ("key", "alg", "kid"),
    [(RSA_KEY, "RS256", "rsa-1"), (EC_KEY, "ES256", "ec-1"), (ED_KEY, "EdDSA", "ed-1")],
)
def test_asymmetric_tokens_verify(verifier: JwtVerifier, key: Any, alg: str, kid: str) -> None:
    verified = verifier.verify(token(key, alg, kid))
    assert verified["sub"] == "orders-app"
    assert verifier.client_name(verified) == "orders-app"


def test_hs256_token_verifies_with_the_secret(verifier: JwtVerifier) -> None:
    assert verifier.verify(token(SECRET, "HS256", None))["iss"] == ISSUER


def reason(verifier: JwtVerifier, presented: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(presented)
    return caught.value.message


def test_expired(verifier: JwtVerifier) -> None:
    now = int(time.time())
    expired = token(RSA_KEY, "RS256", "rsa-1", iat=now - 1000, exp=now - 100)
    assert reason(verifier, expired) == "the token has expired"


def test_expiry_within_leeway_is_accepted(verifier: JwtVerifier) -> None:
    verifier.verify(token(RSA_KEY, "RS256", "rsa-1", exp=int(time.time()) - 5))


def test_not_yet_valid(verifier: JwtVerifier) -> None:
    early = token(RSA_KEY, "RS256", "rsa-1", nbf=int(time.time()) + 3600)
    assert reason(verifier, early).startswith("the token is not valid yet")


def test_wrong_audience(verifier: JwtVerifier) -> None:
    presented = token(RSA_KEY, "RS256", "rsa-1", aud="someone-else")
    assert reason(verifier, presented) == "the token's audience (aud) is not accepted"


def test_wrong_issuer(verifier: JwtVerifier) -> None:
    presented = token(RSA_KEY, "RS256", "rsa-1", iss="https://evil.example.com")
    assert reason(verifier, presented) == "the token's issuer (iss) is not accepted"


@pytest.mark.parametrize("claim", ["exp", "iss", "aud"])
def test_required_claims(verifier: JwtVerifier, claim: str) -> None:
    presented = token(RSA_KEY, "RS256", "rsa-1", **{claim: None})
    assert reason(verifier, presented) == f"the token lacks the required claim {claim!r}"


def test_alg_none_is_rejected(verifier: JwtVerifier) -> None:
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."
    assert reason(verifier, unsigned) == "the token's algorithm 'none' is not accepted"


def test_algorithm_confusion_is_rejected(jwks_file: Path) -> None:
    # The classic attack: HS256 "signed" with the RSA *public* key as the HMAC secret.
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header, payload = b64({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}), b64(claims())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    rsa_only = JwtVerifier(settings(str(jwks_file), ["RS256"]))
    asyncio.run(rsa_only.load())
    assert reason(rsa_only, forged) == "the token's algorithm 'HS256' is not accepted"

    both = JwtVerifier(settings(str(jwks_file), ["RS256", "HS256"], secret=SECRET))
    asyncio.run(both.load())
    assert reason(both, forged) == "the token's signature is invalid"


def test_token_algorithm_must_fit_the_key(verifier: JwtVerifier) -> None:
    # An ES256 token naming the RSA key's kid never reaches the signature check.
    mismatched = token(EC_KEY, "ES256", "rsa-1")
    assert reason(verifier, mismatched) == "the token's algorithm ES256 does not fit its key"


def test_declared_jwk_alg_narrows_the_key(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(RSAAlgorithm, RSA_KEY, "r", alg="RS512")]}))
    verifier = JwtVerifier(settings(str(path), ["RS256", "RS512"]))
    asyncio.run(verifier.load())
    verifier.verify(token(RSA_KEY, "RS512", "r"))
    assert reason(verifier, token(RSA_KEY, "RS256", "r")).endswith("does not fit its key")


def test_bad_signature(verifier: JwtVerifier) -> None:
    header, _, signature = token(RSA_KEY, "RS256", "rsa-1").split(".")
    tampered = f"{header}.{b64(claims(sub='admin'))}.{signature}"
    assert reason(verifier, tampered) == "the token's signature is invalid"


def test_signed_by_another_key(verifier: JwtVerifier) -> None:
    presented = token(OTHER_RSA_KEY, "RS256", "rsa-1")
    assert reason(verifier, presented) == "the token's signature is invalid"


def test_unknown_kid(verifier: JwtVerifier) -> None:
    presented = token(RSA_KEY, "RS256", "rotated-2")
    assert reason(verifier, presented) == "the token's key id 'rotated-2' is not in the JWKS"


def test_missing_kid_uses_the_single_fitting_key(verifier: JwtVerifier) -> None:
    verifier.verify(token(EC_KEY, "ES256", None))


def test_missing_kid_with_several_fitting_keys(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    keys = [public_jwk(RSAAlgorithm, RSA_KEY, "a"), public_jwk(RSAAlgorithm, OTHER_RSA_KEY, "b")]
    path.write_text(json.dumps({"keys": keys}))
    verifier = JwtVerifier(settings(str(path), ["RS256"]))
    asyncio.run(verifier.load())
    assert "no key id" in reason(verifier, token(RSA_KEY, "RS256", None))


@pytest.mark.parametrize("garbage", ["a.b.c", "not-a-jwt", "....", f"{b64({'alg': 'RS256'})}.x.y"])
def test_malformed_tokens(verifier: JwtVerifier, garbage: str) -> None:
    assert reason(verifier, garbage) == "the bearer token is not a well-formed JWT"


def test_client_claim_must_be_a_string(jwks_file: Path) -> None:
    verifier = JwtVerifier(settings(str(jwks_file), ["RS256"], client_claim="client_id"))
    asyncio.run(verifier.load())
    verified = verifier.verify(token(RSA_KEY, "RS256", "rsa-1"))
    with pytest.raises(Unauthenticated, match="no 'client_id' claim"):
        verifier.client_name(verified)
    verified = verifier.verify(token(RSA_KEY, "RS256", "rsa-1", client_id="billing"))
    assert verifier.client_name(verified) == "billing"


def test_disabled_verifier_refuses_every_token() -> None:
    verifier = JwtVerifier(JwtSettings())
    assert not verifier.enabled
    assert reason(verifier, token(SECRET, "HS256", None)) == (
        "this server does not accept JWT bearer tokens"
    )


def test_looks_like_jwt() -> None:
    assert looks_like_jwt("a.b.c")
    assert not looks_like_jwt("sg_abcdef")


def test_secret_is_not_in_repr() -> None:
    verifier = JwtVerifier(settings(None, ["HS256"], secret=SECRET))
    assert SECRET not in repr(verifier)
    assert SECRET not in repr(verifier.settings)


# -- loading ---------------------------------------------------------------------------


async def test_missing_jwks_file_is_a_config_error(tmp_path: Path) -> None:
    verifier = JwtVerifier(settings(str(tmp_path / "nope.json"), ["RS256"]))
    with pytest.raises(ConfigError) as caught:
        await verifier.load()
    assert caught.value.key == "auth.jwt.jwks"


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        json.dumps({"keys": "nope"}),
        json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}),
        json.dumps({"keys": [{"kty": "RSA", "kid": "broken"}]}),
    ],
)
async def test_unusable_jwks_file_is_a_config_error(tmp_path: Path, document: str) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(document)
    with pytest.raises(ConfigError, match=r"auth\.jwt\.jwks"):
        await JwtVerifier(settings(str(path), ["RS256"])).load()


class JwksServer:
    """A JWKS endpoint behind ``httpx.MockTransport``: serves ``document``, counts fetches."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.fetches = 0
        self.fail = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if self.fail:
            return httpx.Response(503)
        return httpx.Response(200, json=self.document)


async def test_jwks_url_is_prefetched_and_refreshed_on_unknown_kid() -> None:
    server = JwksServer(jwks())
    now = [1000.0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(server.handler)) as http:
        verifier = JwtVerifier(
            settings("https://idp.example.com/jwks", ["RS256"]),
            http_client=http,
            clock=lambda: now[0],
        )
        await verifier.load()
        assert server.fetches == 1
        verifier.verify(token(RSA_KEY, "RS256", "rsa-1"))

        # The IdP rotates to a new key; a token with its kid triggers an early refresh.
        server.document = {"keys": [public_jwk(RSAAlgorithm, OTHER_RSA_KEY, "rsa-2")]}
        rotated = token(OTHER_RSA_KEY, "RS256", "rsa-2")
        assert "not in the JWKS" in reason(verifier, rotated)
        generation = verifier.generation
        now[0] += 60  # past the minimum interval between refreshes
        refresher = asyncio.create_task(verifier.run())
        try:
            for _ in range(500):
                if server.fetches >= 2:
                    break
                await asyncio.sleep(0.01)
        finally:
            refresher.cancel()
            with pytest.raises(asyncio.CancelledError):
                await refresher
        assert verifier.verify(rotated)["sub"] == "orders-app"
        assert verifier.generation == generation + 1
        assert "not in the JWKS" in reason(verifier, token(RSA_KEY, "RS256", "rsa-1"))


async def test_unreachable_jwks_url_does_not_stop_the_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = JwksServer(jwks())
    server.fail = True
    async with httpx.AsyncClient(transport=httpx.MockTransport(server.handler)) as http:
        verifier = JwtVerifier(
            settings("https://idp.example.com/jwks", ["RS256"]), http_client=http
        )
        await verifier.load()
        assert "cannot fetch the JWKS" in caplog.text
        assert "not in the JWKS" in reason(verifier, token(RSA_KEY, "RS256", "rsa-1"))
        server.fail = False
        await verifier.refresh()
        verifier.verify(token(RSA_KEY, "RS256", "rsa-1"))


async def test_oversized_jwks_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b" " * (2 * 1024 * 1024))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        verifier = JwtVerifier(
            settings("https://idp.example.com/jwks", ["RS256"]), http_client=http
        )
        with pytest.raises(ValueError, match="larger than"):
            await verifier.refresh()
