"""An OAuth 2.0 identity provider for the OIDC tests, on 127.0.0.1: the client credentials
grant at ``/token`` (RFC 6749 §4.4, the client authenticated with HTTP Basic, as
librdkafka's ``sasl.oauthbearer.method = "oidc"`` sends it) issuing RS256 JWTs, and the
key that signs them at ``/jwks`` (RFC 7517), where Kafka's validator fetches it.

Small on purpose: one client, one key, a token whose ``sub`` is the client's principal.
It counts the tokens it issued and the refusals, so a test can tell the gateway asked.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["IdentityProvider", "identity_provider"]

#: Seconds a token is valid: librdkafka refreshes it at 80% of that.
TOKEN_LIFETIME = 3600


@dataclass
class IdentityProvider:
    """What a test needs of the provider: where it answers, whom it knows, what it did."""

    url: str
    client_id: str
    client_secret: str
    subject: str
    issued: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"


@contextmanager
def identity_provider(
    client_id: str, client_secret: str, subject: str
) -> Iterator[IdentityProvider]:
    """Serve the provider on a free port of 127.0.0.1 until the block ends."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = uuid.uuid4().hex
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwks = json.dumps({"keys": [{**jwk, "kid": kid, "alg": "RS256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # a test's output stays its own

        def _answer(self, status: int, body: dict[str, Any] | bytes) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path != "/jwks":
                self._answer(404, {"error": "not_found"})
                return
            self._answer(200, jwks)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            if self.path != "/token":
                self._answer(404, {"error": "not_found"})
                return
            if form.get("grant_type") != ["client_credentials"]:
                self._answer(400, {"error": "unsupported_grant_type"})
                return
            if _basic_credentials(self.headers.get("authorization")) != (
                provider.client_id,
                provider.client_secret,
            ):
                with provider.lock:
                    provider.refused += 1
                self._answer(401, {"error": "invalid_client"})
                return
            now = int(time.time())
            claims = {
                "iss": provider.url,
                "sub": provider.subject,
                "iat": now,
                "exp": now + TOKEN_LIFETIME,
                "scope": " ".join(form.get("scope", [])),
            }
            token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})
            with provider.lock:
                provider.issued += 1
            self._answer(
                200, {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME}
            )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    provider = IdentityProvider(
        url=f"http://127.0.0.1:{server.server_address[1]}",
        client_id=client_id,
        client_secret=client_secret,
        subject=subject,
    )
    serving = threading.Thread(target=server.serve_forever, name="identity-provider", daemon=True)
    serving.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        serving.join()


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """The client id and secret of an ``Authorization: Basic`` header, if it is one."""
    if header is None or not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header.removeprefix("Basic "), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    return (client_id, secret) if colon else None
