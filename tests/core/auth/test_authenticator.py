"""The Authenticator: API keys (Bearer and Basic), JWTs, certificates, and what 401s say."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from sluicegate.config import AuthSettings, ClientSettings, JwtSettings
from sluicegate.core.auth.authenticator import Authenticator
from sluicegate.core.auth.certificates import PeerCertificate
from sluicegate.core.auth.clients import ClientStore
from sluicegate.core.auth.principals import Permissions
from sluicegate.errors import Unauthenticated
from sluicegate.storage.base import running
from sluicegate.storage.sqlite import SqliteLog

SECRET = "a-shared-secret-of-at-least-32-bytes!!"
JWT_SETTINGS = JwtSettings(
    issuer="https://idp.example.com", audience="sluicegate", algorithms=["HS256"], secret=SECRET
)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[ClientStore]:
    async with running(SqliteLog(tmp_path)) as log:
        configured = [
            ClientSettings(name="svc", produce=["svc.*"], certificate_subjects=["svc.example.com"])
        ]
        store = ClientStore(log, configured, clock=clock)
        await store.load()
        await store.create_client("orders-app", Permissions(produce=["orders.*"]))
        yield store


@pytest.fixture
async def authenticator(store: ClientStore, clock: Clock) -> Authenticator:
    authenticator = Authenticator(AuthSettings(jwt=JWT_SETTINGS), store, clock=clock)
    await authenticator.load()
    return authenticator


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def reason(authenticator: Authenticator, header: str | None, cert: Any = None) -> str:
    with pytest.raises(Unauthenticated) as caught:
        authenticator.authenticate(header, cert)
    return caught.value.message


async def test_api_key_as_bearer_and_as_basic_password(
    authenticator: Authenticator, store: ClientStore
) -> None:
    key = (await store.create_key("orders-app")).key
    for header in (
        f"Bearer {key}",
        f"bearer   {key}  ",
        basic("orders-app", key),
        basic("anything", key),
        basic(key, ""),
    ):
        principal = authenticator.authenticate(header, None)
        assert principal.name == "orders-app", header
    assert authenticator.authenticate(f"Bearer {key}") is store.principal("orders-app")


async def test_api_key_failures(
    authenticator: Authenticator, store: ClientStore, clock: Clock
) -> None:
    created = await store.create_key("orders-app", expires_at=clock.now + 60)
    assert reason(authenticator, "Bearer sg_" + "x" * 43) == "unknown or revoked API key"
    clock.now += 61
    assert reason(authenticator, f"Bearer {created.key}") == "the API key has expired"
    fresh = await store.create_key("orders-app")
    await store.revoke_key("orders-app", fresh.record.id)
    assert reason(authenticator, f"Bearer {fresh.key}") == "unknown or revoked API key"
    other = await store.create_key("orders-app")
    await store.delete_client("orders-app")
    assert reason(authenticator, f"Bearer {other.key}") == "unknown or revoked API key"


async def test_a_remembered_key_follows_every_change_at_once(
    authenticator: Authenticator, store: ClientStore, clock: Clock
) -> None:
    # Each key is accepted first (and so remembered), then changed behind its back.
    expiring = await store.create_key("orders-app", expires_at=clock.now + 60)
    assert authenticator.authenticate(f"Bearer {expiring.key}").name == "orders-app"
    clock.now += 61
    assert reason(authenticator, f"Bearer {expiring.key}") == "the API key has expired"

    revoked = await store.create_key("orders-app")
    assert authenticator.authenticate(f"Bearer {revoked.key}").name == "orders-app"
    await store.revoke_key("orders-app", revoked.record.id)
    assert reason(authenticator, f"Bearer {revoked.key}") == "unknown or revoked API key"

    kept = await store.create_key("orders-app")
    before = authenticator.authenticate(f"Bearer {kept.key}")
    assert not before.allows("produce", "payments")
    await store.update_client("orders-app", Permissions(produce=["payments"]))
    after = authenticator.authenticate(f"Bearer {kept.key}")
    assert after.allows("produce", "payments")
    assert not after.allows("produce", "orders.eu")

    await store.delete_client("orders-app")
    assert reason(authenticator, f"Bearer {kept.key}") == "unknown or revoked API key"


async def test_a_remembered_key_follows_a_revocation_on_another_node(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(SqliteLog(tmp_path)) as log:
        writer, follower = ClientStore(log), ClientStore(log)
        await writer.load()
        await follower.load()
        authenticator = Authenticator(AuthSettings(jwt=JWT_SETTINGS), follower, clock=clock)
        following = asyncio.create_task(follower.follow())
        try:
            await writer.create_client("remote", Permissions(produce=["*"]))
            created = await writer.create_key("remote")
            header = f"Bearer {created.key}"
            for _ in range(500):
                if follower.principal("remote") is not None and created.record.id in {
                    k.id for k in follower.keys("remote")
                }:
                    break
                await asyncio.sleep(0.01)
            assert authenticator.authenticate(header).name == "remote"
            await writer.revoke_key("remote", created.record.id)
            for _ in range(500):
                if follower.find_key(created.record.digest) is None:
                    break
                await asyncio.sleep(0.01)
            assert reason(authenticator, header) == "unknown or revoked API key"
        finally:
            following.cancel()
            with pytest.raises(asyncio.CancelledError):
                await following


async def test_credentials_are_proven_again_each_time_they_are_asked(
    authenticator: Authenticator, store: ClientStore, clock: Clock
) -> None:
    # What a long-lived stream holds: the header as it came, and a certificate that
    # counts only without one.
    created = await store.create_key("orders-app", expires_at=clock.now + 60)
    cert = PeerCertificate(common_name="svc.example.com")
    by_key = authenticator.credentials(f"Bearer {created.key}".encode(), cert)
    by_cert = authenticator.credentials(None, cert)
    assert by_key.principal().name == "orders-app"
    assert by_cert.principal().name == "svc"
    await store.update_client("orders-app", Permissions(produce=["other.*"]))
    assert by_key.principal().allows("produce", "other.x")
    clock.now += 61
    with pytest.raises(Unauthenticated, match="expired"):
        by_key.principal()


async def test_messages_never_echo_the_secret(authenticator: Authenticator) -> None:
    presented = "sg_" + "S3cr3t" * 7
    for header in (f"Bearer {presented}", basic("u", presented)):
        assert presented not in reason(authenticator, header)


async def test_missing_and_malformed_headers(authenticator: Authenticator) -> None:
    assert reason(authenticator, None).startswith("this request needs credentials")
    assert reason(authenticator, "").startswith("this request needs credentials")
    assert reason(authenticator, "Bearer").endswith("carries no credentials")
    assert reason(authenticator, "Bearer    ").endswith("carries no credentials")
    assert reason(authenticator, "Digest abc").startswith("unsupported Authorization scheme")
    assert reason(authenticator, "Basic not-base64!") == "malformed HTTP Basic credentials"
    assert reason(authenticator, "Basic " + base64.b64encode(b"\xff\xfe").decode()) == (
        "malformed HTTP Basic credentials"
    )
    assert reason(authenticator, basic("", "")).endswith("carries no credentials")


def make_jwt(**overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://idp.example.com",
        "aud": "sluicegate",
        "sub": "orders-app",
        "exp": now + 300,
        **overrides,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def test_jwt_names_the_client(authenticator: Authenticator) -> None:
    assert authenticator.authenticate(f"Bearer {make_jwt()}").name == "orders-app"
    assert authenticator.authenticate(f"Bearer {make_jwt(sub='svc')}").name == "svc"
    assert reason(authenticator, f"Bearer {make_jwt(sub='nobody')}") == (
        "the token's 'sub' claim names no known client"
    )
    assert reason(authenticator, f"Bearer {make_jwt(aud='other')}") == (
        "the token's audience (aud) is not accepted"
    )


async def test_verified_jwts_are_cached_until_they_expire(
    authenticator: Authenticator, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = make_jwt(exp=int(clock.now) + 100)
    calls = []
    verify = authenticator.jwt.verify

    def counting(presented: str) -> dict[str, Any]:
        calls.append(presented)
        return verify(presented)

    monkeypatch.setattr(authenticator.jwt, "verify", counting)
    for _ in range(5):
        authenticator.authenticate(f"Bearer {token}")
    assert len(calls) == 1
    clock.now += 101  # past exp: the cache no longer vouches; the verifier decides again
    authenticator.authenticate(f"Bearer {token}")  # still inside PyJWT's leeway
    assert len(calls) == 2


async def test_a_cached_jwt_follows_client_changes(
    authenticator: Authenticator, store: ClientStore
) -> None:
    token = f"Bearer {make_jwt()}"
    assert authenticator.authenticate(token).allows("produce", "orders.x")
    await store.update_client("orders-app", Permissions(consume=["orders.*"]))
    assert not authenticator.authenticate(token).allows("produce", "orders.x")
    await store.delete_client("orders-app")
    assert "names no known client" in reason(authenticator, token)


async def test_jwts_refused_when_not_configured(store: ClientStore) -> None:
    authenticator = Authenticator(AuthSettings(), store)
    await authenticator.load()
    assert reason(authenticator, f"Bearer {make_jwt()}") == (
        "this server does not accept JWT bearer tokens"
    )


async def test_client_certificates(authenticator: Authenticator, store: ClientStore) -> None:
    await store.update_client("orders-app", Permissions(produce=["orders.*"]), ["orders-cn"])
    by_cn = PeerCertificate(common_name="orders-cn")
    assert authenticator.authenticate(None, by_cn).name == "orders-app"
    by_san = PeerCertificate(common_name="x", alt_names=("svc.example.com",))
    assert authenticator.authenticate(None, by_san).name == "svc"
    assert reason(authenticator, None, PeerCertificate(common_name="stranger")) == (
        "the TLS client certificate is not mapped to any client"
    )


async def test_a_bad_header_is_not_rescued_by_a_certificate(
    authenticator: Authenticator,
) -> None:
    cert = PeerCertificate(common_name="svc.example.com")
    assert reason(authenticator, "Bearer sg_wrong", cert) == "unknown or revoked API key"


async def test_no_auth_serves_everyone_as_anonymous(
    store: ClientStore, caplog: pytest.LogCaptureFixture
) -> None:
    authenticator = Authenticator(AuthSettings(enabled=False), store)
    await authenticator.load()
    assert "AUTHENTICATION IS OFF" in caplog.text
    for header in (None, "Bearer nonsense"):
        principal = authenticator.authenticate(header, None)
        assert principal.name == "anonymous"
        assert principal.is_admin


async def test_api_key_path_is_fast(authenticator: Authenticator, store: ClientStore) -> None:
    header = f"Bearer {(await store.create_key('orders-app')).key}"
    rounds = 20_000
    started = time.perf_counter()
    for _ in range(rounds):
        authenticator.authenticate(header, None).require("produce", "orders.eu")
    per_request = (time.perf_counter() - started) / rounds
    assert per_request < 20e-6  # a few microseconds in practice; generous for slow CI
