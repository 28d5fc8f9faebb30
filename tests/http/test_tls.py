"""mTLS over a real socket: each server (uvicorn, Hypercorn) with our SSL context, httpx
and a WebSocket client as the clients."""

from __future__ import annotations

import json
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from websockets.asyncio.client import connect

from sluicegate.config import AuthSettings, ServerSettings, Settings, TlsSettings
from sluicegate.core.auth.authenticator import Authenticator
from sluicegate.core.auth.clients import ClientStore
from sluicegate.core.auth.principals import Permissions
from sluicegate.errors import ConfigError, Unauthenticated
from sluicegate.http.tls import (
    peer_certificate,
    server_ssl_context,
    uvicorn_tls_options,
)
from sluicegate.http.types import ASGIApp, Receive, Scope, Send
from sluicegate.storage.base import running
from sluicegate.storage.sqlite import SqliteLog
from tests.helpers import serving
from tests.http.conftest import client_context


async def echo_peer(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with what ``peer_certificate`` finds in the scope (HTTP and WebSocket)."""
    cert = peer_certificate(scope)
    body = json.dumps(
        None
        if cert is None
        else {"cn": cert.common_name, "sans": list(cert.alt_names), "subject": cert.subject}
    ).encode()
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": body.decode()})
        await send({"type": "websocket.close"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


#: Which server ``serve`` runs: set for each test by the ``server`` fixture.
HTTP2 = False


@pytest.fixture(autouse=True, params=[False, True], ids=["uvicorn", "hypercorn"])
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here runs under each server (``[server] http2``)."""
    monkeypatch.setattr(sys.modules[__name__], "HTTP2", request.param)


@asynccontextmanager
async def serve(tls: TlsSettings, app: ASGIApp = echo_peer) -> AsyncIterator[int]:
    settings = Settings(server=ServerSettings(tls=tls, http2=HTTP2))
    async with serving(app, settings) as port:
        yield port


def settings(files: dict[str, str], **extra: Any) -> TlsSettings:
    return TlsSettings(certfile=files["certfile"], keyfile=files["certfile"], **extra)


async def get(port: int, context: ssl.SSLContext) -> Any:
    async with httpx.AsyncClient(verify=context) as client:
        response = await client.get(f"https://127.0.0.1:{port}/")
        assert response.status_code == 200
        return response.json()


async def test_required_client_certificate(ca: trustme.CA, tls_files: dict[str, str]) -> None:
    alice = ca.issue_cert("alice@example.com", "alice.example.com", common_name="alice")
    async with serve(settings(tls_files, client_ca=tls_files["client_ca"])) as port:
        seen = await get(port, client_context(ca, alice))
        assert seen["cn"] == "alice"
        assert seen["sans"] == ["alice@example.com", "alice.example.com"]
        assert "CN=alice" in seen["subject"]
        # Twice on one connection and on a new one: the extension is there each time.
        assert await get(port, client_context(ca, alice)) == seen
        with pytest.raises(httpx.TransportError):
            await get(port, client_context(ca, None))


async def test_certificate_from_another_ca_is_refused(
    ca: trustme.CA, tls_files: dict[str, str]
) -> None:
    stranger = trustme.CA().issue_cert("mallory.example.com", common_name="mallory")
    async with serve(settings(tls_files, client_ca=tls_files["client_ca"])) as port:
        with pytest.raises(httpx.TransportError):
            await get(port, client_context(ca, stranger))


async def test_optional_client_certificate(ca: trustme.CA, tls_files: dict[str, str]) -> None:
    bob = ca.issue_cert("bob.example.com", common_name="bob")
    tls = settings(tls_files, client_ca=tls_files["client_ca"], client_cert="optional")
    async with serve(tls) as port:
        assert await get(port, client_context(ca, None)) is None
        assert (await get(port, client_context(ca, bob)))["cn"] == "bob"


async def test_tls_without_client_certificates(ca: trustme.CA, tls_files: dict[str, str]) -> None:
    carol = ca.issue_cert("carol.example.com")
    async with serve(settings(tls_files)) as port:
        # The server does not ask, so a client certificate is never sent.
        assert await get(port, client_context(ca, carol)) is None


async def test_websocket_scope_has_the_certificate(
    ca: trustme.CA, tls_files: dict[str, str]
) -> None:
    dave = ca.issue_cert("dave.example.com", common_name="dave")
    tls = settings(tls_files, client_ca=tls_files["client_ca"])
    async with (
        serve(tls) as port,
        connect(f"wss://127.0.0.1:{port}/ce/ws", ssl=client_context(ca, dave)) as ws,
    ):
        assert json.loads(await ws.recv())["cn"] == "dave"


async def test_certificate_subject_maps_to_a_client(
    ca: trustme.CA, tls_files: dict[str, str], tmp_path: Path
) -> None:
    async with running(SqliteLog(tmp_path / "data")) as log:
        store = ClientStore(log)
        await store.load()
        await store.create_client("orders-app", Permissions(produce=["orders.*"]), ["orders-app"])
        await store.create_client("billing", Permissions(), ["billing.example.com"])
        authenticator = Authenticator(AuthSettings(), store)
        await authenticator.load()

        async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                status, body = 200, authenticator.authenticate(None, peer_certificate(scope)).name
            except Unauthenticated as exc:
                status, body = 401, exc.message
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": body.encode()})

        tls = settings(tls_files, client_ca=tls_files["client_ca"], client_cert="optional")
        async with serve(tls, whoami) as port:

            async def ask(cert: trustme.LeafCert | None) -> tuple[int, str]:
                async with httpx.AsyncClient(verify=client_context(ca, cert)) as client:
                    response = await client.get(f"https://127.0.0.1:{port}/")
                    return response.status_code, response.text

            assert await ask(ca.issue_cert("o.example.com", common_name="orders-app")) == (
                200,
                "orders-app",
            )
            assert await ask(ca.issue_cert("billing.example.com")) == (200, "billing")
            status, text = await ask(ca.issue_cert("who.example.com", common_name="who"))
            assert (status, text) == (401, "the TLS client certificate is not mapped to any client")
            status, text = await ask(None)
            assert status == 401
            assert text.startswith("this request needs credentials")


def test_plain_scopes_have_no_certificate() -> None:
    assert peer_certificate({"type": "http"}) is None
    assert peer_certificate({"type": "http", "extensions": {}}) is None
    assert peer_certificate({"extensions": {"tls": {"client_cert_chain": []}}}) is None
    assert peer_certificate({"extensions": {"tls": {"client_cert_chain": ["garbage"]}}}) is None


def test_no_certificate_no_tls_options() -> None:
    assert uvicorn_tls_options(TlsSettings()) == {}
    with pytest.raises(ConfigError, match=r"server\.tls\.certfile"):
        server_ssl_context(TlsSettings())


def test_context_settings(tls_files: dict[str, str]) -> None:
    context = server_ssl_context(settings(tls_files, client_ca=tls_files["client_ca"]))
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    optional = server_ssl_context(
        settings(tls_files, client_ca=tls_files["client_ca"], client_cert="optional")
    )
    assert optional.verify_mode == ssl.CERT_OPTIONAL
    assert server_ssl_context(settings(tls_files)).verify_mode == ssl.CERT_NONE
    strict = server_ssl_context(settings(tls_files, minimum_version="1.3"))
    assert strict.minimum_version == ssl.TLSVersion.TLSv1_3


def test_unreadable_files_are_config_errors(tmp_path: Path, tls_files: dict[str, str]) -> None:
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigError) as caught:
        server_ssl_context(TlsSettings(certfile=missing, keyfile=missing))
    assert caught.value.key == "server.tls.certfile"
    with pytest.raises(ConfigError) as caught:
        server_ssl_context(settings(tls_files, client_ca=missing))
    assert caught.value.key == "server.tls.client_ca"
