"""mTLS through a real ``sluicegate serve``: ``[server.tls]`` and a client mapped by certificate."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from sluicegate.testing.process import ServerProcess, serve_in_subprocess

TEXT = {"value": {"type": "text", "data": "v"}}
CONFIG = """\
[server.tls]
certfile = '{certfile}'
keyfile = '{certfile}'
client_ca = '{client_ca}'
client_cert = "{client_cert}"

[[auth.clients]]
name = "orders-app"
produce = ["orders"]
certificate_subjects = ["orders-app"]
"""


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@dataclass
class TlsServer:
    process: ServerProcess
    #: ``server.tls.client_cert``: ``required`` or ``optional``.
    client_cert: str

    @property
    def url(self) -> str:
        return self.process.url


@pytest.fixture(params=["required", "optional"])
def server(request: pytest.FixtureRequest, ca: trustme.CA, tmp_path: Path) -> Iterator[TlsServer]:
    certfile, client_ca = tmp_path / "server.pem", tmp_path / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(certfile))
    ca.cert_pem.write_to_path(str(client_ca))
    config = tmp_path / "sluicegate.toml"
    config.write_text(
        CONFIG.format(certfile=certfile, client_ca=client_ca, client_cert=request.param)
    )
    with serve_in_subprocess(tmp_path / "data", args=("--config", str(config))) as process:
        yield TlsServer(process, request.param)


def tls(ca: trustme.CA, cert: trustme.LeafCert | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return context


def produce(server: TlsServer, context: ssl.SSLContext, topic: str) -> httpx.Response:
    with httpx.Client(verify=context, timeout=10) as client:
        return client.post(f"{server.url}/v2/topics/{topic}/records", json=TEXT)


def test_a_mapped_certificate_authenticates_its_client(server: TlsServer, ca: trustme.CA) -> None:
    assert server.url.startswith("https://127.0.0.1:")
    orders_app = tls(ca, ca.issue_cert("orders.example.com", common_name="orders-app"))
    response = produce(server, orders_app, "orders")
    assert response.status_code == 200, response.text
    assert response.json()["topic_name"] == "orders"
    # The certificate's client is held to its permissions.
    assert produce(server, orders_app, "payments").status_code == 403
    stranger = tls(ca, ca.issue_cert("who.example.com", common_name="who"))
    refused = produce(server, stranger, "orders")
    assert refused.status_code == 401
    assert refused.json()["message"] == "the TLS client certificate is not mapped to any client"


def test_without_a_certificate(server: TlsServer, ca: trustme.CA) -> None:
    if server.client_cert == "required":
        with pytest.raises(httpx.TransportError):  # the handshake is refused
            produce(server, tls(ca, None), "orders")
    else:
        response = produce(server, tls(ca, None), "orders")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    # A certificate from another CA is refused in both modes.
    stranger = trustme.CA().issue_cert("mallory.example.com", common_name="orders-app")
    with pytest.raises(httpx.TransportError):
        produce(server, tls(ca, stranger), "orders")
